"""The run directory policy: never overwrite a run without ``--resume`` or ``--overwrite``.

A run directory holds ``hoimask_run.json`` (the marker, with the command's
settings), ``checkpoints/``, ``log.jsonl``, ``train.log`` and pictures.
:func:`prepare_output_dir` decides, on rank 0, whether the directory may be
used and tells the other ranks, so every process fails or proceeds together.
Everything it refuses is refused before it writes anything.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hoimask._checks import FileWriteError, HoimaskError
from hoimask._io import write_error
from hoimask.engine.checkpoint import CheckpointManager, atomic_write
from hoimask.engine.distributed import DistributedContext, barrier, broadcast_object

__all__ = ["OutputDirError", "prepare_output_dir", "RUN_MARKER"]

#: File marking a directory as a hoimask run (only such directories are ever deleted by ``overwrite``).
RUN_MARKER = "hoimask_run.json"
#: The settings of the latest resume, beside :data:`RUN_MARKER` (which keeps those the run started with).
RESUMED_MARKER = "hoimask_run.resumed.json"

#: ``check_resume(recorded settings, the file they were read from, the newest checkpoint's step)``.
ResumeCheck = Callable[[Mapping[str, Any], Path, "int | None"], None]


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


def _recorded_settings(path: Path) -> tuple[dict, Path]:
    """The settings of the latest resume, else those the run started with; and the file they were read from."""
    for name in (RESUMED_MARKER, RUN_MARKER):
        file = path / name
        if not file.is_file():
            continue
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            data = err
        if not isinstance(data, dict):
            raise OutputDirError(f"prepare_output_dir(): {str(file)!r} does not hold the run's settings "
                                 f"({data}); cannot check that --resume continues the same run")
        return data, file
    raise OutputDirError(f"prepare_output_dir(): {str(path)!r} has no {RUN_MARKER} recording the run's settings; "
                         "cannot check that --resume continues the same run")


def _checkpoint_step(path: Path | None) -> int | None:
    found = None if path is None else re.fullmatch(r"step_(\d+)\.pt", path.name)
    return int(found.group(1)) if found else None


def prepare_output_dir(
    path: str | os.PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    settings: Mapping[str, Any] | None = None,
    ctx: DistributedContext | None = None,
    check_resume: ResumeCheck | None = None,
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
        check_resume: on resume, called (rank 0) with the recorded settings (those of the latest resume,
            else :data:`RUN_MARKER`'s), the file they come from and the newest checkpoint's step, before
            anything is written; it raises :class:`OutputDirError` to refuse. With it, a run directory
            without readable recorded settings is refused too.

    Returns:
        ``"fresh"``, ``"overwrite"`` or ``"resume"``.

    Raises:
        OutputDirError: the directory cannot be used as asked (raised on every rank).
        FileWriteError: the directory cannot be written (read-only, disk full; raised on every rank).
        FileFormatError: ``checkpoints/latest.json`` is damaged (raised on every rank).

    Shape:
        Not applicable.
    """
    ctx = ctx or DistributedContext()
    path = Path(path)
    decision: tuple[str, HoimaskError | None] = ("", None)
    if ctx.is_main:
        try:
            mode = _decide(path, resume, overwrite)
            if mode == "resume" and check_resume is not None:
                recorded, source = _recorded_settings(path)
                check_resume(recorded, source, _checkpoint_step(CheckpointManager(path / "checkpoints").latest()))
            if mode == "overwrite":
                try:
                    shutil.rmtree(path)
                except OSError as err:
                    raise FileWriteError(f"cannot delete {str(err.filename or path)!r} to --overwrite the run: "
                                         f"{err.strerror or err}") from err
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise write_error(path, err) from err
            text = json.dumps(dict(settings or {}), indent=2, default=str) + "\n"
            atomic_write(path / (RESUMED_MARKER if mode == "resume" else RUN_MARKER), text)
            decision = (mode, None)
        except HoimaskError as err:  # every rank raises it: none waits for a rank that has given up
            decision = ("", err)
    decision = broadcast_object(decision, ctx)
    barrier(ctx)
    if decision[1] is not None:
        raise decision[1]
    return decision[0]
