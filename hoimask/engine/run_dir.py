"""The run directory policy: never overwrite a run without ``--resume`` or ``--overwrite``.

A run directory holds ``hoimask_run.json`` (the marker, with the command's
settings), ``checkpoints/``, ``log.jsonl``, ``train.log`` and pictures.
:func:`prepare_output_dir` decides, on rank 0, whether the directory may be
used and tells the other ranks, so every process fails or proceeds together.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hoimask._checks import HoimaskError
from hoimask.engine.checkpoint import CheckpointManager, atomic_write
from hoimask.engine.distributed import DistributedContext, barrier, broadcast_object

__all__ = ["OutputDirError", "prepare_output_dir", "RUN_MARKER"]

#: File marking a directory as a hoimask run (only such directories are ever deleted by ``overwrite``).
RUN_MARKER = "hoimask_run.json"


class OutputDirError(HoimaskError, FileExistsError):
    """The output directory cannot be used as asked."""


def _decide(path: Path, resume: bool, overwrite: bool) -> str:
    if resume and overwrite:
        raise OutputDirError("prepare_output_dir(): --resume and --overwrite exclude each other")
    exists = path.exists()
    if exists and not path.is_dir():
        raise OutputDirError(f"prepare_output_dir(): output dir {str(path)!r} exists and is not a directory")
    empty = not exists or not any(path.iterdir())
    if resume:
        if empty or CheckpointManager(path / "checkpoints").latest() is None:
            raise OutputDirError(
                f"prepare_output_dir(): --resume given but {str(path)!r} holds no checkpoint "
                f"(expected {str(path / 'checkpoints')!r}); drop --resume to start a new run"
            )
        return "resume"
    if empty:
        return "fresh"
    if not overwrite:
        raise OutputDirError(
            f"prepare_output_dir(): output dir {str(path)!r} already exists and is not empty; pass --resume to "
            "continue that run, --overwrite to replace it, or choose another --output-dir"
        )
    if not (path / RUN_MARKER).is_file():
        raise OutputDirError(
            f"prepare_output_dir(): refusing to --overwrite {str(path)!r}: it is not a hoimask run directory "
            f"(no {RUN_MARKER}); delete it yourself if you mean it"
        )
    return "overwrite"


def prepare_output_dir(
    path: str | os.PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    settings: Mapping[str, Any] | None = None,
    ctx: DistributedContext | None = None,
) -> str:
    """Check and create the run directory; collective under DDP.

    Args:
        path: the output directory.
        resume: continue the run in it (it must hold a checkpoint).
        overwrite: delete an existing *hoimask run* directory first.
        settings: JSON-serialisable settings written to :data:`RUN_MARKER`
            (on resume the previous marker is kept and the new settings are
            stored as ``hoimask_run.resumed.json``).
        ctx: distributed context; rank 0 decides and acts.

    Returns:
        ``"fresh"``, ``"overwrite"`` or ``"resume"``.

    Raises:
        OutputDirError: the directory cannot be used as asked (raised on every rank).

    Shape:
        Not applicable.
    """
    ctx = ctx or DistributedContext()
    path = Path(path)
    decision: tuple[str, str] = ("", "")
    if ctx.is_main:
        try:
            mode = _decide(path, resume, overwrite)
            if mode == "overwrite":
                shutil.rmtree(path)
            path.mkdir(parents=True, exist_ok=True)
            text = json.dumps(dict(settings or {}), indent=2, default=str) + "\n"
            atomic_write(path / ("hoimask_run.resumed.json" if mode == "resume" else RUN_MARKER), text)
            decision = (mode, "")
        except OutputDirError as err:
            decision = ("", str(err))
    decision = broadcast_object(decision, ctx)
    barrier(ctx)
    if decision[1]:
        raise OutputDirError(decision[1])
    return decision[0]
