"""Atomic, verifiable checkpoints and a manager that keeps the last few.

A checkpoint is a plain ``torch.save`` file (a dict) written to a temporary file
in the same directory, flushed to disk and renamed over the target with
``os.replace``, so a crash never leaves a half-written file under the final
name. A sidecar ``<file>.sha256`` (also atomic) holds the digest and size;
:func:`load_checkpoint` verifies it, so a truncated or corrupted file raises
:class:`~hoimask._checks.FileFormatError` instead of loading garbage or
silently starting afresh. Files load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from hoimask._checks import DTypeError, FileFormatError
from hoimask._io import atomic_replace

__all__ = ["FORMAT_KEY", "atomic_write", "save_checkpoint", "load_checkpoint", "CheckpointManager"]

#: Key marking a dict as a hoimask checkpoint; its value is the format version.
FORMAT_KEY = "hoimask_checkpoint"
FORMAT_VERSION = 1
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


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


def _digest(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Save ``state`` atomically with a SHA-256 sidecar.

    Args:
        path: destination file (conventionally ``*.pt``).
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
        torch.save(payload, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        digest, size = _digest(Path(tmp))
    atomic_write(path.with_name(path.name + ".sha256"), json.dumps({"sha256": digest, "bytes": size}) + "\n")
    return path


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu", verify: bool = True) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint`, verifying its integrity.

    Args:
        path: the checkpoint file.
        map_location: where tensors are loaded.
        verify: check the size and SHA-256 against the sidecar when it exists.

    Returns:
        The state dict (including :data:`FORMAT_KEY`).

    Raises:
        FileFormatError: the file is missing, truncated, corrupt (digest or
            unpickling fails) or not a hoimask checkpoint.

    Shape:
        Not applicable.
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"load_checkpoint(): checkpoint file {str(path)!r} does not exist")
    sidecar = path.with_name(path.name + ".sha256")
    if verify and sidecar.is_file():
        try:
            expected = json.loads(sidecar.read_text())
            want_digest, want_size = str(expected["sha256"]), int(expected["bytes"])
        except (ValueError, KeyError, TypeError) as err:
            raise FileFormatError(f"load_checkpoint(): digest file {str(sidecar)!r} is corrupt: {err}") from err
        digest, size = _digest(path)
        if size != want_size:
            raise FileFormatError(
                f"load_checkpoint(): checkpoint {str(path)!r} is truncated or corrupt: it has {size} bytes, "
                f"{want_size} were written"
            )
        if digest != want_digest:
            raise FileFormatError(
                f"load_checkpoint(): checkpoint {str(path)!r} is corrupt: SHA-256 {digest[:12]}... does not match "
                f"the recorded {want_digest[:12]}..."
            )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
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
        (never a silent fallback to an older state).

        Raises:
            FileFormatError: ``latest.json`` is unreadable or names a missing file.
        """
        pointer = self.directory / "latest.json"
        if pointer.is_file():
            try:
                name = json.loads(pointer.read_text())["file"]
            except (ValueError, KeyError, TypeError) as err:
                raise FileFormatError(f"CheckpointManager.latest(): {str(pointer)!r} is corrupt: {err}") from err
            path = self.directory / name
            if not path.is_file():
                raise FileFormatError(
                    f"CheckpointManager.latest(): {str(pointer)!r} names {name!r}, which does not exist"
                )
            return path
        steps = self.steps()
        return self.path_for(steps[-1]) if steps else None
