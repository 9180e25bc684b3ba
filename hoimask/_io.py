"""Atomic file replacement shared by every writer in hoimask; safe joining of names read from files.

Checkpoints, cache shards, converted MANO files, test assets and submission
files are all written the same way: to a temporary file in the destination's
folder, flushed, then renamed over the destination with ``os.replace``. A crash
or an exception never leaves a half-written file under the final name.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PureWindowsPath

from hoimask._checks import FileFormatError, FileWriteError

__all__ = ["atomic_replace", "contained_path", "write_error", "TEMP_FILE", "remove_stale_temp_files"]

#: Names of :func:`atomic_replace`'s temporary files: ``.<destination name>.<8 random characters>.tmp``
#: (``tempfile.mkstemp``'s random part). A process killed while writing (SIGKILL, power loss) leaves one behind.
TEMP_FILE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise write_error(path, err) from err
    os.close(fd)
    try:
        os.chmod(tmp, _umask_mode())
        yield tmp
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass  # already gone, or the folder became unwritable: the original error is the one to report
        if isinstance(err, OSError) and not isinstance(err, FileWriteError) and err.filename in (None, tmp, str(path)):
            raise write_error(path, err) from err  # the temporary file could not be written or renamed
        raise
    _fsync_dir(path.parent)


def write_error(path: str | os.PathLike, err: OSError) -> FileWriteError:
    """``FileWriteError("cannot write '<path>': <reason>")`` for an ``OSError`` met while writing ``path``.

    Args:
        path: the file that was being written (not a temporary file beside it).
        err: the operating system's error (``No space left on device``, ``Read-only file system``, ...).

    Returns:
        The error to raise (``from err``).

    Example:
        >>> import errno
        >>> str(write_error("runs/x/log.jsonl", OSError(errno.ENOSPC, "No space left on device")))
        "cannot write 'runs/x/log.jsonl': No space left on device"
    """
    return FileWriteError(f"cannot write {os.fspath(path)!r}: {err.strerror or err}")


def remove_stale_temp_files(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that interrupted :func:`atomic_replace` writes left in ``directory``.

    Only regular files directly in ``directory`` whose names match :data:`TEMP_FILE` are removed;
    sub-folders and every other file are left alone. Call it only while no other process writes there
    (a run directory when its run starts).

    Args:
        directory: the folder to clean (a missing folder has nothing to clean).

    Returns:
        The paths removed, sorted.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / ".step_00000009.pt.k2j3h4g5.tmp").write_bytes(b"half a checkpoint")
        >>> [p.name for p in remove_stale_temp_files(folder)]
        ['.step_00000009.pt.k2j3h4g5.tmp']
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for entry in sorted(directory.iterdir()):
        if TEMP_FILE.match(entry.name) and entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def contained_path(directory: str | os.PathLike, name: object, *, source: str) -> Path:
    """``directory / name`` for a file name read from a pointer or manifest, refusing any way out of ``directory``.

    ``latest.json`` and cache manifests name files of their own folder. A name
    that is absolute (``/etc/passwd``, ``C:\\x``, ``\\\\server\\share``), that
    climbs with ``..`` (either separator), or that resolves outside the folder
    through a symbolic link is refused, so an edited or hostile pointer cannot
    make hoimask read (or later prune) a file elsewhere.

    Args:
        directory: the folder the name is relative to.
        name: the name as read (anything: it is type-checked here).
        source: what the name was read from, for the error message (e.g. the pointer file).

    Returns:
        ``Path(directory) / name``.

    Raises:
        FileFormatError: ``name`` is not a non-empty string or leaves ``directory``.

    Example:
        >>> contained_path("runs/x", "step_00000010.pt", source="latest.json").as_posix()
        'runs/x/step_00000010.pt'
        >>> contained_path("runs/x", "../y/step.pt", source="latest.json")
        Traceback (most recent call last):
        ...
        hoimask._checks.FileFormatError: latest.json: file name '../y/step.pt' points outside 'runs/x'; only names inside it are accepted
    """
    directory = Path(directory)
    if not isinstance(name, str) or not name or "\x00" in name:
        raise FileFormatError(f"{source}: expected a non-empty file name, got {name!r}")
    parts = PureWindowsPath(name)  # splits on both separators; knows drives and UNC roots
    escapes = (
        os.path.isabs(name) or parts.drive or parts.root or ".." in parts.parts
        or not (directory / name).resolve().is_relative_to(directory.resolve())
    )
    if escapes:
        raise FileFormatError(
            f"{source}: file name {name!r} points outside {str(directory)!r}; only names inside it are accepted"
        )
    return directory / name
