"""Atomic file replacement shared by every writer in hoimask.

Checkpoints, cache shards, converted MANO files, test assets and submission
files are all written the same way: to a temporary file in the destination's
folder, flushed, then renamed over the destination with ``os.replace``. A crash
or an exception never leaves a half-written file under the final name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_replace"]


def _umask_mode() -> int:
    """Permission bits a normally created file would get (``mkstemp`` makes 0600 files)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_replace(path: str | os.PathLike) -> Iterator[str]:
    """A temporary file beside ``path`` that replaces ``path`` when the ``with`` block succeeds.

    The temporary file gets the permissions of a normally created one; on any
    exception it is deleted and ``path`` is left as it was. The destination's
    folder is created if needed and synced after the rename.

    Args:
        path: the destination.

    Returns:
        (yields) the temporary file's name, for the block to write and flush.

    Example:
        >>> import tempfile, pathlib
        >>> dest = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
        >>> with atomic_replace(dest) as tmp, open(tmp, "w") as fh:
        ...     _ = fh.write("done")
        >>> dest.read_text()
        'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, _umask_mode())
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
