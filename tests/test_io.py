import errno
import os
import stat
from pathlib import Path

import pytest

from hoimask._checks import FileWriteError
from hoimask._io import TEMP_FILE, atomic_replace, remove_stale_temp_files


def test_atomic_replace_writes_and_leaves_no_temporary(tmp_path):
    dest = tmp_path / "sub" / "file.bin"
    with atomic_replace(dest) as tmp, open(tmp, "wb") as fh:
        fh.write(b"new")
    assert dest.read_bytes() == b"new"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["file.bin"]
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600


def test_failed_write_keeps_the_old_file(tmp_path):
    dest = tmp_path / "file.txt"
    dest.write_text("old")
    with pytest.raises(RuntimeError), atomic_replace(dest) as tmp:
        with open(tmp, "w") as fh:
            fh.write("half")
        raise RuntimeError("interrupted")
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_a_full_disk_is_a_write_error_naming_the_destination_and_leaves_no_temporary(tmp_path):
    # Issue 15 item 8: ENOSPC while writing, EROFS/EACCES when the folder cannot take a file.
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"old")
    with pytest.raises(FileWriteError, match=r"cannot write '.*file\.bin': No space left on device$") as info:
        with atomic_replace(dest) as tmp, open(tmp, "wb") as fh:
            fh.write(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert isinstance(info.value, OSError) and info.value.__cause__.errno == errno.ENOSPC
    assert dest.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_a_read_only_folder_is_a_write_error_naming_the_destination(tmp_path, monkeypatch):
    import hoimask._io as io_module

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".file.bin.abcdefgh.tmp"))

    monkeypatch.setattr(io_module.tempfile, "mkstemp", read_only)
    with pytest.raises(FileWriteError, match=r"cannot write '.*/file\.bin': Read-only file system$"):
        with atomic_replace(tmp_path / "file.bin"):
            pass
    other = OSError(errno.ENOENT, "No such file or directory", str(tmp_path / "source.txt"))
    monkeypatch.undo()
    with pytest.raises(OSError) as info, atomic_replace(tmp_path / "file.bin"):
        raise other  # an error about another file (one the block reads) passes unchanged
    assert info.value is other and not isinstance(info.value, FileWriteError)


def test_remove_stale_temp_files_removes_only_atomic_replace_temporaries(tmp_path):
    with pytest.raises(RuntimeError), atomic_replace(tmp_path / "step_00000009.pt") as tmp:
        with open(tmp, "wb") as fh:
            fh.write(b"half")
        left = Path(tmp).name
        raise RuntimeError("killed")
    (tmp_path / left).write_bytes(b"half")  # what a SIGKILL leaves behind: the cleanup above never ran
    assert TEMP_FILE.match(left)
    keep = ["notes.tmp", ".notes.tmp", ".a.ABCDEFGH.tmp", ".a.abcdefg.tmp", "step_00000009.pt.abcdefgh.tmp"]
    for name in keep:
        (tmp_path / name).write_text("mine")
    (tmp_path / ".dir.abcdefgh.tmp").mkdir()
    assert remove_stale_temp_files(tmp_path) == [tmp_path / left]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*keep, ".dir.abcdefgh.tmp"])
    assert remove_stale_temp_files(tmp_path / "missing") == []
