import json

import pytest

from hoimask.engine import RUN_MARKER, CheckpointManager, OutputDirError, prepare_output_dir


def test_fresh_then_refuse_then_overwrite(tmp_path):
    out = tmp_path / "run"
    assert prepare_output_dir(out, settings={"lr": 1e-3}) == "fresh"
    assert json.loads((out / RUN_MARKER).read_text()) == {"lr": 1e-3}
    (out / "log.jsonl").write_text("{}\n")
    with pytest.raises(OutputDirError, match="already exists.*--resume.*--overwrite"):
        prepare_output_dir(out)
    assert prepare_output_dir(out, overwrite=True) == "overwrite"
    assert not (out / "log.jsonl").exists()


def test_empty_existing_dir_is_fresh(tmp_path):
    assert prepare_output_dir(tmp_path) == "fresh"


def test_resume_needs_a_checkpoint(tmp_path):
    out = tmp_path / "run"
    prepare_output_dir(out)
    with pytest.raises(OutputDirError, match="no checkpoint"):
        prepare_output_dir(out, resume=True)
    CheckpointManager(out / "checkpoints").save(5, {"step": 5})
    assert prepare_output_dir(out, resume=True, settings={"again": True}) == "resume"
    assert (out / RUN_MARKER).is_file() and (out / "hoimask_run.resumed.json").is_file()


def test_never_deletes_foreign_directories(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(OutputDirError, match="not a hoimask run"):
        prepare_output_dir(tmp_path, overwrite=True)
    assert (tmp_path / "thesis.tex").read_text() == "precious"
    with pytest.raises(OutputDirError, match="exclude"):
        prepare_output_dir(tmp_path / "x", resume=True, overwrite=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputDirError, match="not a directory"):
        prepare_output_dir(tmp_path / "file")
