"""Mixed precision (bf16/fp16 autocast, gradient scaling), gradient clipping and non-finite detection."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable

import torch

from hoimask._checks import HoimaskError, ValueRangeError, check_choice, check_positive

__all__ = [
    "PRECISIONS",
    "autocast",
    "native_bf16",
    "resolve_precision",
    "make_grad_scaler",
    "clip_gradients",
    "NonFiniteLossError",
    "NonFiniteGuard",
]

#: Accepted ``precision`` names.
PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """Context manager running the forward pass in ``precision``.

    ``"fp32"`` returns a no-op context; ``"bf16"``/``"fp16"`` return
    ``torch.autocast`` on the device's type. fp16 should be paired with
    :func:`make_grad_scaler`; bf16 needs no scaling.

    Args:
        precision: one of ``"fp32"``, ``"bf16"``, ``"fp16"``.
        device: the device the model runs on.

    Returns:
        A context manager.

    Shape:
        Not applicable.

    Example:
        >>> with autocast("bf16", "cpu"):
        ...     y = torch.ones(2, 2) @ torch.ones(2, 2)
        >>> y.dtype
        torch.bfloat16
    """
    check_choice(precision, PRECISIONS, name="precision", fn="autocast")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=_DTYPES[precision])


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes in bf16 natively, so that bf16 autocast makes a step faster.

    CUDA: ``torch.cuda.is_bf16_supported()``. CPU: an x86 CPU with AVX512-BF16
    or AMX (torch's CPU capability probes; a torch without them answers
    ``False``). Elsewhere bf16 is emulated and usually *slower* than fp32.

    Args:
        device: the training device.

    Returns:
        ``True`` when bf16 is native there.

    Shape:
        Not applicable.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, hence the fallback
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``precision`` with ``"auto"`` replaced: ``"bf16"`` where :func:`native_bf16`, else ``"fp32"``.

    On the project's 2-core AVX512-BF16 CPU a ``tiny`` fine-tuning step takes
    about half the time in bf16 autocast, at the same accuracy per step
    (docs/results.md §3, fourth round); a CPU without native bf16 keeps fp32.

    Args:
        precision: ``"auto"`` or one of :data:`PRECISIONS`.
        device: the training device.

    Returns:
        One of :data:`PRECISIONS`.

    Shape:
        Not applicable.

    Example:
        >>> resolve_precision("fp16", "cpu")
        'fp16'
        >>> resolve_precision("auto", "cpu") in ("bf16", "fp32")
        True
    """
    check_choice(precision, ("auto", *PRECISIONS), name="precision", fn="resolve_precision")
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def make_grad_scaler(precision: str, device: torch.device | str) -> torch.amp.GradScaler:
    """A ``torch.amp.GradScaler``, enabled only for ``"fp16"``.

    A disabled scaler is a pass-through, so the training loop has one code path
    and the checkpoint always has a ``scaler`` entry.

    Args:
        precision: one of :data:`PRECISIONS`.
        device: the training device.

    Returns:
        The scaler.

    Shape:
        Not applicable.
    """
    check_choice(precision, PRECISIONS, name="precision", fn="make_grad_scaler")
    return torch.amp.GradScaler(torch.device(device).type, enabled=precision == "fp16")


def clip_gradients(parameters: Iterable[torch.nn.Parameter], max_norm: float | None) -> torch.Tensor:
    """Clip the global L2 norm of the gradients; return the norm before clipping.

    Args:
        parameters: parameters whose ``.grad`` to clip.
        max_norm: maximum norm (> 0), or ``None`` to only measure the norm.

    Returns:
        A 0-d tensor with the total gradient norm (may be non-finite; the caller
        decides what to do, see :class:`NonFiniteGuard`).

    Shape:
        Output: ``()``.
    """
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return torch.zeros(())
    if max_norm is None:
        return torch.nn.utils.clip_grad_norm_(params, math.inf)
    check_positive(max_norm, name="max_norm", fn="clip_gradients")
    return torch.nn.utils.clip_grad_norm_(params, max_norm)


class NonFiniteLossError(HoimaskError, FloatingPointError):
    """Training produced too many non-finite losses or gradients in a row."""


class NonFiniteGuard:
    """Skip-and-count policy for non-finite losses or gradient norms.

    Each step reports whether its loss (and gradient norm) was finite. A
    non-finite step is skipped by the caller; after ``max_consecutive``
    non-finite steps *in a row* :meth:`update` raises
    :class:`NonFiniteLossError` naming the step and the last values.

    Args:
        max_consecutive: how many non-finite steps in a row are tolerated (>= 1).

    Shape:
        Not applicable.

    Example:
        >>> guard = NonFiniteGuard(max_consecutive=2)
        >>> guard.update(1, torch.tensor(float("nan")))
        False
        >>> guard.skipped_total
        1
    """

    def __init__(self, max_consecutive: int = 5) -> None:
        if isinstance(max_consecutive, bool) or not isinstance(max_consecutive, int) or max_consecutive < 1:
            raise ValueRangeError(
                f"NonFiniteGuard(): argument 'max_consecutive' expected an int >= 1, got {max_consecutive!r}"
            )
        self.max_consecutive = max_consecutive
        self.skipped_total = 0
        self.consecutive = 0

    def update(self, step: int, loss: torch.Tensor, grad_norm: torch.Tensor | None = None) -> bool:
        """Record one step; return ``True`` when it is finite and may be applied.

        Args:
            step: the step number (for the message).
            loss: the step's loss (any shape; all entries must be finite).
            grad_norm: optional gradient norm to check as well.

        Returns:
            ``True`` if finite, ``False`` if the step must be skipped.

        Raises:
            NonFiniteLossError: the limit of consecutive non-finite steps was reached.
        """
        finite = bool(torch.isfinite(loss.detach()).all())
        if grad_norm is not None:
            finite = finite and bool(torch.isfinite(grad_norm.detach()).all())
        if finite:
            self.consecutive = 0
            return True
        self.consecutive += 1
        self.skipped_total += 1
        if self.consecutive >= self.max_consecutive:
            gn = "n/a" if grad_norm is None else f"{float(grad_norm.detach().float().max()):.4g}"
            raise NonFiniteLossError(
                f"training stopped at step {step}: {self.consecutive} non-finite steps in a row "
                f"(limit max_consecutive={self.max_consecutive}; last loss={float(loss.detach().float().max()):.4g}, "
                f"grad norm={gn}; {self.skipped_total} skipped in total). Lower the learning rate, use bf16 "
                "instead of fp16, or check the data for NaNs."
            )
        return False

    def state_dict(self) -> dict[str, int]:
        """Counters, for checkpoints."""
        return {"skipped_total": self.skipped_total, "consecutive": self.consecutive}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore the counters saved by :meth:`state_dict`."""
        self.skipped_total = int(state["skipped_total"])
        self.consecutive = int(state["consecutive"])
