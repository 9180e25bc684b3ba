"""Atomic, self-verifying checkpoints and a manager that keeps the last few.

A checkpoint is a ``torch.save`` archive (a dict) with its own SHA-256 inside:
the archive's end-of-central-directory record gets a fixed-length comment
(the *integrity trailer*, :data:`TRAILER_BYTES` bytes of ASCII)::

    <torch.save zip archive, its EOCD comment length set to TRAILER_BYTES>
    hoimask-checkpoint sha256/1 <64 hex digits> <20-digit length>

The digest covers every byte before the trailer (the comment length field
included) and the length is that byte count, so any changed, missing or added
byte is detected. A zip comment is part of the zip format: ``torch.load``,
``zipfile`` and other tools still read the file as an ordinary checkpoint.
It is written to a temporary file in the same directory, sealed, flushed and
renamed over the target with ``os.replace``, so a crash never leaves a
half-written file under the final name. :func:`load_checkpoint` verifies the
trailer, so a truncated or corrupted file raises
:class:`~hoimask._checks.FileFormatError` naming it, instead of loading garbage
or silently starting afresh. Files load with ``torch.load(weights_only=True)``.

Checkpoints written before the trailer existed carry their digest in a side
file ``<file>.sha256``; they still load when it is present and matches. A file
with neither a trailer nor a side file cannot be verified and is refused
(``verify=False`` loads it anyway).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch

from hoimask._checks import DTypeError, FileFormatError
from hoimask._io import atomic_replace, contained_path

__all__ = ["FORMAT_KEY", "TRAILER_BYTES", "atomic_write", "save_checkpoint", "load_checkpoint", "is_sealed_checkpoint",
           "CheckpointManager"]

#: Key marking a dict as a hoimask checkpoint; its value is the format version of the dict's layout.
FORMAT_KEY = "hoimask_checkpoint"
FORMAT_VERSION = 1
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")
_TRAILER_MAGIC = b"hoimask-checkpoint sha256/1 "
_TRAILER = re.compile(rb"hoimask-checkpoint sha256/1 ([0-9a-f]{64}) ([0-9]{20})")
#: Size of the integrity trailer that ends every checkpoint (the zip archive comment).
TRAILER_BYTES = len(_TRAILER_MAGIC) + 64 + 1 + 20
_EOCD = b"PK\x05\x06"  # zip end-of-central-directory record: 22 bytes, the last two the comment length


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same directory, then ``os.replace``).

    Args:
        path: destination; its directory is created if needed.
        data: bytes, or text written as UTF-8.

    Returns:
        The destination path.

    Shape:
        Not applicable.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    with atomic_replace(path) as tmp, open(tmp, "wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    return path


def _sha256(fh: BinaryIO, nbytes: int) -> str:
    """SHA-256 of the first ``nbytes`` of ``fh`` (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    fh.seek(0)
    left = nbytes
    while left > 0:
        chunk = fh.read(min(1 << 20, left))
        if not chunk:
            break
        h.update(chunk)
        left -= len(chunk)
    return h.hexdigest()


def _seal(tmp: str | os.PathLike) -> None:
    """Append the integrity trailer to the archive ``torch.save`` just wrote, as its zip comment."""
    with open(tmp, "rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(size - 22, 0))
        eocd = fh.read(22)
        if len(eocd) != 22 or eocd[:4] != _EOCD or eocd[20:] != b"\0\0":
            raise RuntimeError(
                "save_checkpoint(): torch.save did not end its archive with a comment-free zip end record; "
                "this torch version is not supported by hoimask's checkpoint trailer"
            )
        fh.seek(size - 2)
        fh.write(struct.pack("<H", TRAILER_BYTES))
        fh.flush()
        digest = _sha256(fh, size)
        fh.seek(size)
        fh.write(_TRAILER_MAGIC + f"{digest} {size:020d}".encode())
        fh.flush()
        os.fsync(fh.fileno())


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Save ``state`` atomically, sealed with its SHA-256 integrity trailer.

    Args:
        path: destination file (conventionally ``*.pt``). A ``<path>.sha256``
            side file left by an older hoimask is removed (it would be stale).
        state: a dict of tensors, numbers, strings, lists/tuples/dicts of them
            (what ``torch.load(weights_only=True)`` accepts). The key
            :data:`FORMAT_KEY` is added.

    Returns:
        The path written.

    Shape:
        Not applicable.
    """
    if not isinstance(state, Mapping):
        raise DTypeError(f"save_checkpoint(): argument 'state' expected a mapping, got {type(state).__name__}")
    path = Path(path)
    payload = dict(state)
    payload[FORMAT_KEY] = FORMAT_VERSION
    with atomic_replace(path) as tmp:
        with open(tmp, "wb") as fh:  # through a Python file: a full disk is an OSError, not a RuntimeError from C++
            torch.save(payload, fh)
        _seal(tmp)
    path.with_name(path.name + ".sha256").unlink(missing_ok=True)
    return path


def _check_trailer(fh: BinaryIO, path: Path) -> bool:
    """Verify the integrity trailer; ``False`` when the file has none (a previous-format or foreign file)."""
    size = fh.seek(0, os.SEEK_END)
    if size < TRAILER_BYTES:
        return False
    fh.seek(size - TRAILER_BYTES)
    tail = fh.read(TRAILER_BYTES)
    if not tail.startswith(_TRAILER_MAGIC):
        return False
    match = _TRAILER.fullmatch(tail)
    if match is None:
        raise FileFormatError(f"load_checkpoint(): checkpoint {str(path)!r} is corrupt: its integrity trailer is damaged")
    want_digest, want_size = match.group(1).decode(), int(match.group(2))
    if want_size != size - TRAILER_BYTES:
        raise FileFormatError(
            f"load_checkpoint(): checkpoint {str(path)!r} is truncated or corrupt: it has {size - TRAILER_BYTES} "
            f"bytes before its trailer, {want_size} were written"
        )
    digest = _sha256(fh, want_size)
    if digest != want_digest:
        raise FileFormatError(
            f"load_checkpoint(): checkpoint {str(path)!r} is corrupt: SHA-256 {digest[:12]}... does not match "
            f"the {want_digest[:12]}... stored in the file"
        )
    return True


def _check_side_file(fh: BinaryIO, path: Path, sidecar: Path) -> None:
    """Verify a previous-format checkpoint against its ``.sha256`` side file."""
    try:
        expected = json.loads(sidecar.read_text())
        want_digest, want_size = str(expected["sha256"]), int(expected["bytes"])
    except (ValueError, KeyError, TypeError) as err:
        raise FileFormatError(f"load_checkpoint(): digest file {str(sidecar)!r} is corrupt: {err}") from err
    size = fh.seek(0, os.SEEK_END)
    if size != want_size:
        raise FileFormatError(
            f"load_checkpoint(): checkpoint {str(path)!r} is truncated or corrupt: it has {size} bytes, "
            f"{want_size} were written"
        )
    digest = _sha256(fh, size)
    if digest != want_digest:
        raise FileFormatError(
            f"load_checkpoint(): checkpoint {str(path)!r} is corrupt: SHA-256 {digest[:12]}... does not match "
            f"the recorded {want_digest[:12]}..."
        )


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu", verify: bool = True) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint`, verifying its integrity.

    The integrity trailer inside the file is checked; a checkpoint of the
    previous format (no trailer) is checked against its ``.sha256`` side file
    and refused when that is missing. The bytes verified are the bytes loaded
    (one open file handle).

    Args:
        path: the checkpoint file.
        map_location: where tensors are loaded.
        verify: check the digest (trailer or side file). ``False`` skips every
            check and loads whatever ``torch.load`` can read: only for files you
            trust whose integrity record was lost.

    Returns:
        The state dict (including :data:`FORMAT_KEY`).

    Raises:
        FileFormatError: the file is missing, truncated, corrupt (digest or
            unpickling fails), carries no integrity record, or is not a
            hoimask checkpoint.

    Shape:
        Not applicable.
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"load_checkpoint(): checkpoint file {str(path)!r} does not exist")
    sidecar = path.with_name(path.name + ".sha256")
    with open(path, "rb") as fh:
        if verify and not _check_trailer(fh, path):
            if not sidecar.is_file():
                raise FileFormatError(
                    f"load_checkpoint(): {str(path)!r} carries no integrity record (no hoimask SHA-256 trailer, no "
                    f"{sidecar.name!r} side file): it is truncated or corrupt, not a hoimask checkpoint, or an older "
                    "checkpoint whose side file was lost; refusing to load unverified state (verify=False loads it)"
                )
            _check_side_file(fh, path, sidecar)
        fh.seek(0)
        try:
            state = torch.load(fh, map_location=map_location, weights_only=True)
        except Exception as err:  # torch raises RuntimeError/UnpicklingError/EOFError/... on damaged files
            raise FileFormatError(
                f"load_checkpoint(): cannot read checkpoint {str(path)!r} (truncated or corrupt?): "
                f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            ) from err
    if not isinstance(state, dict) or FORMAT_KEY not in state:
        raise FileFormatError(
            f"load_checkpoint(): {str(path)!r} is not a hoimask checkpoint (no '{FORMAT_KEY}' entry); "
            "encoder weights for fine-tuning are loaded with the model's own loader"
        )
    if state[FORMAT_KEY] > FORMAT_VERSION:
        raise FileFormatError(
            f"load_checkpoint(): {str(path)!r} has format version {state[FORMAT_KEY]}, this hoimask reads <= "
            f"{FORMAT_VERSION}"
        )
    return state


def is_sealed_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` carries a hoimask integrity record (a trailer, or a ``.sha256`` side file), intact or not.

    A script that accepts either a hoimask checkpoint or foreign weights (MAE,
    timm) tries :func:`load_checkpoint` first; when that fails, this tells a
    damaged hoimask checkpoint (an error to report) from a foreign file (to
    hand to another loader). A file truncated before its trailer is not
    recognised here; the other loader then fails on it.

    Args:
        path: any file.

    Returns:
        ``True`` when the file ends with the trailer's marker or has a side file.
    """
    path = Path(path)
    if path.with_name(path.name + ".sha256").is_file():
        return True
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size < TRAILER_BYTES:
                return False
            fh.seek(size - TRAILER_BYTES)
            return fh.read(len(_TRAILER_MAGIC)) == _TRAILER_MAGIC
    except OSError:
        return False


class CheckpointManager:
    """Numbered checkpoints ``step_XXXXXXXX.pt`` in a directory, a ``latest.json`` pointer, and pruning.

    Args:
        directory: where checkpoints live (created on first save).
        keep: how many of the newest numbered checkpoints to keep (>= 1).

    Shape:
        Not applicable.
    """

    def __init__(self, directory: str | os.PathLike, *, keep: int = 2) -> None:
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise DTypeError(f"CheckpointManager(): argument 'keep' expected an int >= 1, got {keep!r}")
        self.directory = Path(directory)
        self.keep = keep

    def path_for(self, step: int) -> Path:
        """File name used for ``step``."""
        return self.directory / f"step_{step:08d}.pt"

    def steps(self) -> list[int]:
        """Steps of the numbered checkpoints present, ascending."""
        if not self.directory.is_dir():
            return []
        found = (_STEP_FILE.match(p.name) for p in self.directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def save(self, step: int, state: Mapping[str, Any]) -> Path:
        """Write the checkpoint for ``step``, point ``latest.json`` at it, prune old ones.

        The checkpoint just written is never pruned, even when numbered
        checkpoints of later steps exist (a run resumed from an older one).

        Returns:
            The checkpoint path.
        """
        path = save_checkpoint(self.path_for(step), state)
        atomic_write(self.directory / "latest.json", json.dumps({"file": path.name, "step": step}) + "\n")
        for old in self.steps()[: -self.keep]:
            if old == step:
                continue
            old_path = self.path_for(old)
            for p in (old_path, old_path.with_name(old_path.name + ".sha256")):
                if p.exists():
                    p.unlink()
        return path

    def latest(self) -> Path | None:
        """Path of the newest checkpoint, or ``None`` if the directory has none.

        ``latest.json`` wins when present; a pointer to a missing file is an error
        (never a silent fallback to an older state), and so is one naming a file
        outside :attr:`directory` (an absolute path, ``..``, a symbolic link out).

        Raises:
            FileFormatError: ``latest.json`` is unreadable, names a missing file or
                a file outside the directory.
        """
        pointer = self.directory / "latest.json"
        if pointer.is_file():
            try:
                name = json.loads(pointer.read_text())["file"]
            except (ValueError, KeyError, TypeError) as err:
                raise FileFormatError(f"CheckpointManager.latest(): {str(pointer)!r} is corrupt: {err}") from err
            path = contained_path(self.directory, name, source=f"CheckpointManager.latest(): {str(pointer)!r}")
            if not path.is_file():
                raise FileFormatError(
                    f"CheckpointManager.latest(): {str(pointer)!r} names {name!r}, which does not exist"
                )
            return path
        steps = self.steps()
        return self.path_for(steps[-1]) if steps else None
