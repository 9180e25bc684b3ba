import os
import stat

import pytest

from hoimask._io import atomic_replace


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
