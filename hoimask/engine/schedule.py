"""Learning-rate schedule: linear warm-up, an optional constant plateau, then cosine decay.

MaskHOI §IV-B: "About 1k steps are used for linear warmup, and the learning
rate is decayed with a cosine schedule at 72% of the training process." We read
this as: warm up linearly for ``warmup_steps``, hold the peak learning rate
until ``decay_start * total_steps``, then follow a half cosine down to
``min_lr_ratio * peak`` at ``total_steps``. ``decay_start=0`` gives the usual
MAE schedule (cosine right after warm-up).
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LRScheduler

from hoimask._checks import ValueRangeError, check_in_range, check_int

__all__ = ["warmup_cosine_factor", "WarmupCosineSchedule"]


def _check_schedule_args(total_steps: int, warmup_steps: int, decay_start: float, min_lr_ratio: float, fn: str) -> None:
    for name, value in (("total_steps", total_steps), ("warmup_steps", warmup_steps)):
        check_int(value, name=name, fn=fn)
    if total_steps < 1:
        raise ValueRangeError(f"{fn}(): argument 'total_steps' expected >= 1, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueRangeError(
            f"{fn}(): argument 'warmup_steps' expected a value in [0, total_steps={total_steps}], got {warmup_steps}"
        )
    check_in_range(decay_start, name="decay_start", low=0.0, high=1.0, fn=fn)
    check_in_range(min_lr_ratio, name="min_lr_ratio", low=0.0, high=1.0, fn=fn)


def warmup_cosine_factor(
    step: int,
    *,
    total_steps: int,
    warmup_steps: int,
    decay_start: float = 0.0,
    min_lr_ratio: float = 0.0,
) -> float:
    """Multiplier of the peak learning rate at optimisation step ``step``.

    ``step`` counts optimiser steps from 0. During warm-up the factor is
    ``(step + 1) / warmup_steps`` so the very first step already uses a
    non-zero rate. The cosine phase starts at
    ``max(warmup_steps, round(decay_start * total_steps))`` and ends at
    ``total_steps`` with ``min_lr_ratio``; later steps keep ``min_lr_ratio``.

    Args:
        step: optimiser step (>= 0).
        total_steps: length of the schedule.
        warmup_steps: number of linear warm-up steps (0 disables warm-up).
        decay_start: fraction of ``total_steps`` at which cosine decay starts
            (MaskHOI: 0.72); before it, after warm-up, the factor is 1.
        min_lr_ratio: final factor, in [0, 1].

    Returns:
        The factor, a float in [min_lr_ratio, 1] after warm-up.

    Shape:
        Scalars only.

    Example:
        >>> warmup_cosine_factor(0, total_steps=100, warmup_steps=10)
        0.1
        >>> warmup_cosine_factor(100, total_steps=100, warmup_steps=10)
        0.0
    """
    _check_schedule_args(total_steps, warmup_steps, decay_start, min_lr_ratio, "warmup_cosine_factor")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueRangeError(f"warmup_cosine_factor(): argument 'step' expected an int >= 0, got {step!r}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    start = max(warmup_steps, int(round(decay_start * total_steps)))
    if step < start:
        return 1.0
    if step >= total_steps or start >= total_steps:
        return min_lr_ratio
    progress = (step - start) / (total_steps - start)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupCosineSchedule(LRScheduler):
    """Scheduler applying :func:`warmup_cosine_factor` to every parameter group.

    Each group's learning rate is its initial ``lr`` (which already carries any
    layer-wise scale, see :func:`hoimask.engine.param_groups`) times the factor.
    Call :meth:`step` once per optimiser step, after ``optimizer.step()``.
    Its ``state_dict`` holds only numbers, so it round-trips through
    ``torch.load(weights_only=True)``.

    Args:
        optimizer: the optimiser to drive.
        total_steps: steps of the whole schedule, as in :func:`warmup_cosine_factor`.
        warmup_steps: linear warm-up steps, as there.
        decay_start: fraction of ``total_steps`` where the cosine decay begins, as there.
        min_lr_ratio: final learning rate as a fraction of the peak, as there.
        last_epoch: index of the last step taken (``-1`` for a fresh start).

    Shape:
        Not applicable (acts on the optimiser's groups).

    Example:
        >>> p = torch.nn.Parameter(torch.zeros(1))
        >>> opt = torch.optim.SGD([p], lr=1.0)
        >>> sched = WarmupCosineSchedule(opt, total_steps=10, warmup_steps=2)
        >>> opt.param_groups[0]["lr"]
        0.5
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        total_steps: int,
        warmup_steps: int,
        decay_start: float = 0.0,
        min_lr_ratio: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        _check_schedule_args(total_steps, warmup_steps, decay_start, min_lr_ratio, "WarmupCosineSchedule")
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.decay_start = float(decay_start)
        self.min_lr_ratio = float(min_lr_ratio)
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        """The learning-rate multiplier at ``step`` (see :func:`warmup_cosine_factor`)."""
        return warmup_cosine_factor(
            max(step, 0),
            total_steps=self.total_steps,
            warmup_steps=self.warmup_steps,
            decay_start=self.decay_start,
            min_lr_ratio=self.min_lr_ratio,
        )

    def get_lr(self) -> list[float]:
        """Learning rates for the current ``last_epoch`` (one per group)."""
        f = self.factor(self.last_epoch)
        return [base * f for base in self.base_lrs]
