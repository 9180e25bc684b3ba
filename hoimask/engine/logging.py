"""Run logs: JSON Lines and plain text always, TensorBoard when installed, a tqdm bar.

Only the main process (rank 0) writes; other ranks get a logger whose methods
do nothing. ``log.jsonl`` holds one JSON object per logged step
(``{"step": ..., "loss": ..., ...}``); ``train.log`` the same as readable text.
On resume, :meth:`RunLogger.truncate_after` drops records a killed run wrote
after its last checkpoint, so the log of a resumed run reads like one run.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path

import torch
from tqdm.auto import tqdm

from hoimask._checks import FileFormatError, check_shape
from hoimask._io import write_error
from hoimask.engine.checkpoint import atomic_write

__all__ = ["RunLogger", "progress_bar", "save_png", "tensorboard_available"]


def tensorboard_available() -> bool:
    """Whether ``torch.utils.tensorboard`` can be used (the ``tensorboard`` package is installed)."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def progress_bar(total: int, *, initial: int = 0, enabled: bool = True, desc: str = "train") -> tqdm:
    """A tqdm bar over optimisation steps (disabled on non-main ranks).

    Args:
        total: total number of steps.
        initial: steps already done (when resuming).
        enabled: ``False`` gives a silent bar.
        desc: label.

    Returns:
        The ``tqdm`` object; call ``update(1)`` and ``set_postfix``.

    Shape:
        Not applicable.
    """
    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, dynamic_ncols=True, smoothing=0.1)


def _to_uint8_hwc(image: torch.Tensor) -> torch.Tensor:
    check_shape(image, "3 H W", name="image", fn="save_png")
    img = image.detach().cpu()
    if img.dtype != torch.uint8:
        img = (img.float().clamp(0, 1) * 255).round().to(torch.uint8)
    return img.permute(1, 2, 0).contiguous()


def save_png(path: str | os.PathLike, image: torch.Tensor) -> Path:
    """Write a ``(3, H, W)`` image (uint8, or float in [0, 1]) as PNG, atomically.

    Float values outside [0, 1] are clipped for display (this is a picture, not data).

    Args:
        path: destination ``.png``.
        image: the image.

    Returns:
        The path.

    Shape:
        image: ``(3, H, W)``.
    """
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(_to_uint8_hwc(image).numpy()).save(buf, format="PNG")
    return atomic_write(path, buf.getvalue())


class RunLogger:
    """Scalars to ``log.jsonl``/``train.log`` (and TensorBoard), pictures to TensorBoard.

    Args:
        directory: run directory (created).
        enabled: ``False`` on non-main ranks: every method is a no-op.
        tensorboard: ``True`` requires TensorBoard, ``False`` disables it,
            ``None`` uses it when installed.

    Shape:
        Not applicable.
    """

    def __init__(self, directory: str | os.PathLike, *, enabled: bool = True, tensorboard: bool | None = None) -> None:
        self.directory = Path(directory)
        self.enabled = enabled
        self.jsonl_path = self.directory / "log.jsonl"
        self.text_path = self.directory / "train.log"
        self._writer = None
        if not enabled:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        if tensorboard is None:
            tensorboard = tensorboard_available()
        if tensorboard:
            if not tensorboard_available():
                raise ImportError("RunLogger(): tensorboard=True but the 'tensorboard' package is not installed "
                                  "(pip install 'hoimask[tensorboard]')")
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.directory / "tensorboard"))

    @property
    def tensorboard_dir(self) -> Path | None:
        """The TensorBoard event directory, or ``None`` when TensorBoard is off."""
        return self.directory / "tensorboard" if self._writer is not None else None

    def _append(self, path: Path, line: str) -> None:
        """Append ``line`` to ``path``; a full disk or a read-only folder is a ``FileWriteError`` naming ``path``."""
        try:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(line)
        except OSError as err:
            raise write_error(path, err) from err

    def text(self, message: str) -> None:
        """Append a line to ``train.log``.

        Raises:
            FileWriteError: the file cannot be written (disk full, read-only folder).
        """
        if not self.enabled:
            return
        self._append(self.text_path, f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def log_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """Record scalars for ``step`` in every sink.

        Args:
            step: the optimisation step.
            scalars: name → number (tensors are converted with ``float``).

        Raises:
            FileWriteError: a log file cannot be written (disk full, read-only folder).
        """
        if not self.enabled:
            return
        values = {k: float(v) for k, v in scalars.items()}
        record = {"step": int(step), **{k: (v if math.isfinite(v) else str(v)) for k, v in values.items()}}
        self._append(self.jsonl_path, json.dumps(record) + "\n")
        self.text(f"step {step}: " + " ".join(f"{k}={v:.6g}" for k, v in values.items()))
        if self._writer is not None:
            try:
                for k, v in values.items():
                    self._writer.add_scalar(k, v, step)
            except OSError as err:  # TensorBoard's writer thread reports a failed write on the next call
                raise write_error(self.directory / "tensorboard", err) from err

    def log_image(self, tag: str, image: torch.Tensor, step: int) -> None:
        """Send a ``(3, H, W)`` picture (uint8 or float in [0, 1]) to TensorBoard, if enabled."""
        if not self.enabled or self._writer is None:
            return
        try:
            self._writer.add_image(tag, _to_uint8_hwc(image).permute(2, 0, 1), step)
        except OSError as err:
            raise write_error(self.directory / "tensorboard", err) from err

    def _read(self) -> tuple[list[dict], bool]:
        """The complete JSONL records, and whether a torn last line (no newline: a killed write) follows them."""
        text = self.jsonl_path.read_text(encoding="utf-8", errors="replace")
        complete, _, tail = text.rpartition("\n")
        records = []
        for number, line in enumerate(complete.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError as err:
                raise FileFormatError(
                    f"RunLogger: line {number} of {str(self.jsonl_path)!r} is not a JSON record: {err}"
                ) from err
        return records, bool(tail.strip())

    def has_torn_line(self) -> bool:
        """Whether ``log.jsonl`` ends with a torn line: text after the last newline (a write cut short by a kill)."""
        if not self.enabled or not self.jsonl_path.is_file():
            return False
        return bool(self.jsonl_path.read_text(encoding="utf-8", errors="replace").rpartition("\n")[2].strip())

    def read_records(self) -> list[dict]:
        """All JSONL records written so far (main rank; ``[]`` otherwise).

        A torn last line (a run killed while writing it) is not a record and is left out.

        Raises:
            FileFormatError: a complete line is not JSON.
        """
        if not self.enabled or not self.jsonl_path.is_file():
            return []
        return self._read()[0]

    def truncate_after(self, step: int) -> int:
        """Drop JSONL records with ``step`` greater than ``step``, and a torn last line (rewritten atomically).

        Returns:
            The number of records (and torn lines) dropped.
        """
        if not self.enabled or not self.jsonl_path.is_file():
            return 0
        records, torn = self._read()
        kept = [r for r in records if r.get("step", -1) <= step]
        dropped = len(records) - len(kept) + int(torn)
        if dropped:
            atomic_write(self.jsonl_path, "".join(json.dumps(r) + "\n" for r in kept))
        return dropped

    def close(self) -> None:
        """Flush and close TensorBoard."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
