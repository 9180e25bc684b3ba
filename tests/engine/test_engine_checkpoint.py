import json

import pytest
import torch

from hoimask._checks import DTypeError, FileFormatError
from hoimask.engine import CheckpointManager, atomic_write, load_checkpoint, save_checkpoint
from hoimask.engine.seed import capture_rng_state, restore_rng_state


def _state():
    return {"step": 3, "w": torch.arange(1000, dtype=torch.float32), "nested": {"a": [1, 2.5, "x", None]}}


def test_round_trip_and_no_temp_files(tmp_path):
    path = save_checkpoint(tmp_path / "ck.pt", _state())
    loaded = load_checkpoint(path)
    assert loaded["step"] == 3 and torch.equal(loaded["w"], _state()["w"])
    assert loaded["nested"] == {"a": [1, 2.5, "x", None]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt", "ck.pt.sha256"]
    # plain torch.load works too (weights_only)
    assert torch.load(path, weights_only=True)["step"] == 3


@pytest.mark.parametrize("with_sidecar", [True, False])
def test_truncated_checkpoint_is_a_clear_error(tmp_path, with_sidecar):
    path = save_checkpoint(tmp_path / "ck.pt", _state())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    if not with_sidecar:
        (tmp_path / "ck.pt.sha256").unlink()
    with pytest.raises(FileFormatError, match=r"ck\.pt.*(truncated|corrupt)"):
        load_checkpoint(path)


def test_flipped_byte_detected_by_digest(tmp_path):
    path = save_checkpoint(tmp_path / "ck.pt", _state())
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match="SHA-256"):
        load_checkpoint(path)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileFormatError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(FileFormatError, match="not a hoimask checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip file at all")
    with pytest.raises(FileFormatError, match="cannot read"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(DTypeError, match="state"):
        save_checkpoint(tmp_path / "x.pt", [1, 2])


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write(target, "old")

    class Boom(bytes):
        def __bytes__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_write(target, Boom(b"new"))
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_manager_latest_and_pruning(tmp_path):
    m = CheckpointManager(tmp_path / "ck", keep=2)
    assert m.latest() is None
    for step in (10, 20, 30):
        m.save(step, {"step": step})
    assert m.steps() == [20, 30]
    assert m.latest().name == "step_00000030.pt"
    assert load_checkpoint(m.latest())["step"] == 30
    (tmp_path / "ck" / "step_00000030.pt").unlink()
    with pytest.raises(FileFormatError, match="does not exist"):
        m.latest()
    (tmp_path / "ck" / "latest.json").write_text("{broken")
    with pytest.raises(FileFormatError, match="corrupt"):
        m.latest()
    (tmp_path / "ck" / "latest.json").unlink()
    assert m.latest().name == "step_00000020.pt"
    assert json.loads((tmp_path / "ck" / "step_00000020.pt.sha256").read_text())["bytes"] > 0


def test_manager_never_prunes_the_checkpoint_it_just_wrote(tmp_path):
    # A run resumed from an older checkpoint saves a step below the newest one on disk;
    # latest.json must keep pointing at an existing file.
    m = CheckpointManager(tmp_path / "ck", keep=1)
    m.save(20, {"step": 20})
    m.save(15, {"step": 15})
    assert m.latest().name == "step_00000015.pt"
    assert load_checkpoint(m.latest())["step"] == 15


def test_rng_state_survives_weights_only_checkpoint(tmp_path):
    import random

    import numpy as np

    g = torch.Generator().manual_seed(5)
    torch.rand(3, generator=g)
    state = capture_rng_state({"masking": g})
    save_checkpoint(tmp_path / "rng.pt", {"rng": state})
    expected = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=g))  # noqa: NPY002
    restore_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"], {"masking": g})
    got = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=g))  # noqa: NPY002
    assert expected[:2] == got[:2]
    assert torch.equal(expected[2], got[2]) and torch.equal(expected[3], got[3])
    with pytest.raises(FileFormatError, match="other"):
        restore_rng_state(state, {"other": torch.Generator()})
