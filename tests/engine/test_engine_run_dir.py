import errno
import json

import pytest

from hoimask._checks import FileWriteError
from hoimask.engine import RUN_MARKER, CheckpointManager, OutputDirError, prepare_output_dir
from hoimask.engine.cli import resume_differences


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


def test_resume_check_sees_the_recorded_settings_and_refuses_before_writing(tmp_path):
    out = tmp_path / "run"
    prepare_output_dir(out, settings={"lr": 1e-3})
    CheckpointManager(out / "checkpoints").save(6, {"step": 6})
    seen = []

    def refuse(recorded, source, step):
        seen.append((recorded, source.name, step))
        raise OutputDirError("argument --resume: --lr differs")

    with pytest.raises(OutputDirError, match="--lr differs"):
        prepare_output_dir(out, resume=True, settings={"lr": 1e-2}, check_resume=refuse)
    assert seen == [({"lr": 1e-3}, RUN_MARKER, 6)]
    assert not (out / "hoimask_run.resumed.json").exists()  # refused before anything was written
    assert prepare_output_dir(out, resume=True, settings={"lr": 1e-3, "steps": 9},
                              check_resume=lambda *a: seen.append(a)) == "resume"
    prepare_output_dir(out, resume=True, settings={}, check_resume=lambda *a: seen.append(a))
    assert seen[-1][:2] == ({"lr": 1e-3, "steps": 9}, out / "hoimask_run.resumed.json")  # the latest resume's
    (out / RUN_MARKER).unlink()
    (out / "hoimask_run.resumed.json").write_text("{not json")
    with pytest.raises(OutputDirError, match="does not hold the run's settings"):
        prepare_output_dir(out, resume=True, check_resume=lambda *a: None)
    (out / "hoimask_run.resumed.json").unlink()
    with pytest.raises(OutputDirError, match=f"has no {RUN_MARKER}"):
        prepare_output_dir(out, resume=True, check_resume=lambda *a: None)


def test_an_unwritable_output_dir_is_a_write_error_naming_the_file(tmp_path, monkeypatch):
    import hoimask._io as io_module

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(io_module.tempfile, "mkstemp", read_only)
    with pytest.raises(FileWriteError, match=rf"cannot write '.*/run/{RUN_MARKER}': Read-only file system"):
        prepare_output_dir(tmp_path / "run")


RUN = {"argv": ["train.py"], "output_dir": "runs/x", "resume": False, "overwrite": True, "masking": "hybrid",
       "mask_ratio": None, "no_geometric": False, "steps": None, "batch_size": None, "lr": None, "num_workers": None, "log_every": None,
       "device": None, "init": "mae.pth", "data_root": "/data/a",
       "train_config": {"steps": 300, "batch_size": 8, "lr": 0.001, "warmup_steps": 20, "seed": 0, "num_workers": 0,
                        "log_every": 10, "checkpoint_every": 50, "betas": [0.9, 0.95]}}


def _resumed(**changes):
    settings = json.loads(json.dumps(RUN))
    settings.update({"resume": True, "overwrite": False, "argv": ["train.py", "--resume"]})
    for key, value in changes.items():
        if key.startswith("cfg_"):
            settings["train_config"][key[4:]] = value
        else:
            settings[key] = value
    return settings


@pytest.mark.parametrize("changes, refused, accepted", [
    ({}, [], []),
    # how it is shown, logged, saved and read, where the data lives, the start the checkpoint replaces
    (dict(num_workers=4, cfg_num_workers=4, log_every=1, cfg_log_every=1, cfg_checkpoint_every=5, device="cuda",
          init=None, data_root="/mnt/a", output_dir="./runs/x"), [], []),
    (dict(lr=0.01, cfg_lr=0.01), ["--lr 0.01 (run: 0.001)"], []),
    (dict(cfg_batch_size=4, masking="random", mask_ratio=0.6, no_geometric=True),
     ["--batch-size 4 (run: 8)", "--masking random (run: hybrid)", "--mask-ratio 0.6 (run: not given)",
      "--no-geometric on (run: off)"], []),
    (dict(cfg_steps=1000, cfg_warmup_steps=20), ["--steps 1000 (run: 300)"], []),  # --steps not given: a default
    (dict(steps=600, cfg_steps=600), [], ["--steps 600 (run: 300)"]),  # given: the run is extended
    (dict(steps=100, cfg_steps=100, cfg_warmup_steps=10), ["--steps 100 (run: 300), below the checkpoint's step 150"],
     []),
    (dict(cfg_weight_decay=0.1), [], []),  # a key the run did not record is not compared
    (dict(cfg_betas=[0.9, 0.999]), ["training setting 'betas' [0.9, 0.999] (run: [0.9, 0.95])"], []),
])
def test_resume_differences_name_each_setting_with_both_values(changes, refused, accepted):
    assert resume_differences(RUN, _resumed(**changes), current_step=150) == (refused, accepted)
