import hashlib
import json
import os
import zipfile

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hoimask._checks import DTypeError, FileFormatError
from hoimask.engine import CheckpointManager, atomic_write, load_checkpoint, save_checkpoint
from hoimask.engine.checkpoint import FORMAT_KEY, TRAILER_BYTES
from hoimask.engine.seed import capture_rng_state, restore_rng_state


def _state():
    return {"step": 3, "w": torch.arange(1000, dtype=torch.float32), "nested": {"a": [1, 2.5, "x", None]}}


def _write_previous_format(path, state, *, side_file=True):
    """A checkpoint as hoimask wrote it before the trailer: plain torch.save plus a ``.sha256`` side file."""
    torch.save(dict(state, **{FORMAT_KEY: 1}), path)
    data = path.read_bytes()
    if side_file:
        record = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        path.with_name(path.name + ".sha256").write_text(json.dumps(record) + "\n")
    return path


def test_round_trip_single_file_readable_by_torch_and_zipfile(tmp_path):
    path = save_checkpoint(tmp_path / "ck.pt", _state())
    loaded = load_checkpoint(path)
    assert loaded["step"] == 3 and torch.equal(loaded["w"], _state()["w"])
    assert loaded["nested"] == {"a": [1, 2.5, "x", None]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]  # no side file, no temporary
    data = path.read_bytes()
    assert data[-TRAILER_BYTES:].startswith(b"hoimask-checkpoint sha256/1 ")
    assert zipfile.ZipFile(path).comment == data[-TRAILER_BYTES:]  # the trailer is the archive's comment
    # plain torch.load still works (weights_only, also memory-mapped)
    assert torch.load(path, weights_only=True)["step"] == 3
    assert torch.load(path, weights_only=True, mmap=True)["step"] == 3


@settings(max_examples=60, deadline=None)
@given(where=st.floats(0.0, 1.0, exclude_max=True), mask=st.integers(1, 255))
def test_any_changed_byte_is_detected_without_any_side_file(tmp_path_factory, where, mask):
    # The case: a corrupted checkpoint with no .sha256 beside it must never load.
    path = save_checkpoint(tmp_path_factory.mktemp("ck") / "ck.pt", _state())
    data = bytearray(path.read_bytes())
    data[int(where * len(data))] ^= mask
    path.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match=r"ck\.pt"):
        load_checkpoint(path)


@pytest.mark.parametrize("offset", [0, 1, 100, -TRAILER_BYTES - 22, -TRAILER_BYTES - 2, -TRAILER_BYTES - 1,
                                    -TRAILER_BYTES, -TRAILER_BYTES + 30, -1])  # fmt: skip
def test_changed_byte_in_header_archive_end_and_trailer_is_detected(tmp_path, offset):
    path = save_checkpoint(tmp_path / "ck.pt", _state())
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match=r"ck\.pt.*(corrupt|truncated)"):
        load_checkpoint(path)


@settings(max_examples=40, deadline=None)
@given(keep=st.floats(0.0, 1.0, exclude_max=True))
def test_truncation_anywhere_is_detected(tmp_path_factory, keep):
    path = save_checkpoint(tmp_path_factory.mktemp("ck") / "ck.pt", _state())
    data = path.read_bytes()
    path.write_bytes(data[: int(keep * len(data))])
    with pytest.raises(FileFormatError, match=r"ck\.pt.*(truncated|corrupt)"):
        load_checkpoint(path)


def test_appended_bytes_are_detected(tmp_path):
    path = save_checkpoint(tmp_path / "ck.pt", _state())
    path.write_bytes(path.read_bytes() + b"\n")
    with pytest.raises(FileFormatError, match="no integrity record"):
        load_checkpoint(path)


def test_previous_format_loads_only_with_its_side_file(tmp_path):
    path = _write_previous_format(tmp_path / "old.pt", _state())
    assert load_checkpoint(path)["step"] == 3
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match="SHA-256"):
        load_checkpoint(path)
    # without its side file it cannot be verified: refused, loudly, unless the caller opts out
    lost = _write_previous_format(tmp_path / "lost.pt", _state(), side_file=False)
    with pytest.raises(FileFormatError, match=r"lost\.pt.*no integrity record.*verify=False"):
        load_checkpoint(lost)
    assert load_checkpoint(lost, verify=False)["step"] == 3


def test_saving_replaces_a_stale_side_file_and_ignores_one_left_behind(tmp_path):
    old = _write_previous_format(tmp_path / "ck.pt", {"step": 1})
    save_checkpoint(old, _state())
    assert not (tmp_path / "ck.pt.sha256").exists()
    (tmp_path / "ck.pt.sha256").write_text(json.dumps({"sha256": "0" * 64, "bytes": 1}))  # e.g. a crash in between
    assert load_checkpoint(old)["step"] == 3  # the trailer decides


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileFormatError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(FileFormatError, match="not a hoimask checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(FileFormatError, match="not a hoimask checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt", verify=False)
    (tmp_path / "junk.pt").write_bytes(b"not a zip file at all")
    with pytest.raises(FileFormatError, match="no integrity record"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(FileFormatError, match="cannot read"):
        load_checkpoint(tmp_path / "junk.pt", verify=False)
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
    assert not list((tmp_path / "ck").glob("*.sha256"))


def test_manager_prunes_previous_format_side_files(tmp_path):
    m = CheckpointManager(tmp_path / "ck", keep=1)
    m.directory.mkdir()
    _write_previous_format(m.path_for(5), {"step": 5})
    m.save(10, {"step": 10})
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["latest.json", "step_00000010.pt"]


@pytest.mark.parametrize(
    "name",
    ["/etc/passwd", "../outside.pt", "sub/../../outside.pt", "..\\outside.pt", "C:\\x.pt", "\\\\server\\share\\x.pt",
     "", 7, None, ["step_00000010.pt"]],
)  # fmt: skip
def test_latest_pointer_cannot_leave_the_checkpoint_directory(tmp_path, name):
    m = CheckpointManager(tmp_path / "run" / "checkpoints")
    m.save(10, {"step": 10})
    save_checkpoint(tmp_path / "outside.pt", {"step": 99})
    (m.directory / "latest.json").write_text(json.dumps({"file": name, "step": 99}))
    with pytest.raises(FileFormatError, match="latest.json"):
        m.latest()


def test_latest_pointer_symlink_out_of_the_directory_is_refused(tmp_path):
    m = CheckpointManager(tmp_path / "ck")
    m.save(10, {"step": 10})
    save_checkpoint(tmp_path / "elsewhere.pt", {"step": 99})
    try:
        os.symlink(tmp_path / "elsewhere.pt", m.directory / "link.pt")
    except (OSError, NotImplementedError):
        pytest.skip("no symbolic links here")
    (m.directory / "latest.json").write_text(json.dumps({"file": "link.pt", "step": 99}))
    with pytest.raises(FileFormatError, match="points outside"):
        m.latest()
    (m.directory / "sub").mkdir()
    save_checkpoint(m.directory / "sub" / "best.pt", {"step": 7})  # a name inside the directory is fine
    (m.directory / "latest.json").write_text(json.dumps({"file": "sub/best.pt", "step": 7}))
    assert load_checkpoint(m.latest())["step"] == 7


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
