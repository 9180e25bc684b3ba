"""Exponential-moving-average teacher (DINO / iBOT; HandMIM §2.3).

The teacher has the student's architecture, receives no gradient and follows
the student by ``θ_t ← m·θ_t + (1 − m)·θ_s`` after every optimiser step, with
``m`` rising from ``m0 = 0.996`` to 1 on a cosine over training
(:func:`teacher_momentum`). Buffers (e.g. BatchNorm statistics) are copied.

These live in :mod:`hoimask.nn` rather than :mod:`hoimask.engine` because the
composed model owns its teacher and :mod:`hoimask.models` never imports the
engine (DESIGN.md).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from hoimask._checks import DTypeError, ShapeError, ValueRangeError, check_in_range, check_int

__all__ = ["teacher_momentum", "make_teacher", "update_teacher"]


def teacher_momentum(step: int, total_steps: int, *, base: float = 0.996, final: float = 1.0) -> float:
    """DINO / iBOT momentum at optimiser step ``step``: a half cosine from ``base`` to ``final``.

    ``m(step) = final − (final − base)·(1 + cos(π·step / total_steps)) / 2``;
    steps at or after ``total_steps`` give ``final``.

    Args:
        step: optimiser step, from 0.
        total_steps: length of training in steps (>= 1).
        base: ``m0`` (0.996 in DINO, iBOT and HandMIM's recipe), in [0, 1].
        final: the momentum at the end (1), in [0, 1].

    Returns:
        The momentum, a float in ``[min(base, final), max(base, final)]``.

    Raises:
        ValueRangeError / DTypeError: a bad step, length or momentum.

    Example:
        >>> [round(teacher_momentum(step, 100), 6) for step in (0, 50, 100)]
        [0.996, 0.998, 1.0]
    """
    fn = "teacher_momentum"
    check_int(step, name="step", low=0, fn=fn)
    check_int(total_steps, name="total_steps", low=1, fn=fn)
    check_in_range(base, name="base", low=0.0, high=1.0, fn=fn)
    check_in_range(final, name="final", low=0.0, high=1.0, fn=fn)
    if step >= total_steps:
        return float(final)
    return final - (final - base) * (1.0 + math.cos(math.pi * step / total_steps)) / 2.0


def make_teacher(student: nn.Module) -> nn.Module:
    """A frozen copy of ``student`` to start the EMA teacher from (DINO: teacher = student at step 0).

    Args:
        student: the student network (unwrapped, not a DDP wrapper).

    Returns:
        A deep copy with ``requires_grad=False`` on every parameter.

    Example:
        >>> teacher = make_teacher(nn.Linear(2, 2))
        >>> any(p.requires_grad for p in teacher.parameters())
        False
    """
    if not isinstance(student, nn.Module):
        raise DTypeError(f"make_teacher(): argument 'student' expected an nn.Module, got {type(student).__name__}")
    teacher = copy.deepcopy(student)
    teacher.requires_grad_(False)
    return teacher


def _pairs(teacher: dict[str, torch.Tensor], student: dict[str, torch.Tensor], what: str) -> list[str]:
    """The shared names, after checking both sides name the same tensors with the same shapes."""
    if teacher.keys() != student.keys():
        missing = sorted(student.keys() - teacher.keys())[:5]
        extra = sorted(teacher.keys() - student.keys())[:5]
        raise ShapeError(f"update_teacher(): arguments 'teacher' and 'student' must have the same {what}; "
                         f"only in student: {missing}, only in teacher: {extra}")
    bad = [k for k in teacher if teacher[k].shape != student[k].shape]
    if bad:
        k = bad[0]
        raise ShapeError(f"update_teacher(): {what[:-1]} {k!r} has shape {tuple(teacher[k].shape)} in 'teacher' "
                         f"but {tuple(student[k].shape)} in 'student' ({len(bad)} mismatched)")
    return list(teacher)


@torch.no_grad()
def update_teacher(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """EMA step ``θ_t ← m·θ_t + (1 − m)·θ_s`` on every teacher parameter; buffers copied from the student.

    Parameters are matched by name. ``momentum = 1`` leaves the teacher's
    parameters as they are; ``0`` copies the student.

    Args:
        teacher: the EMA network (:func:`make_teacher`); none of its parameters may require grad.
        student: the trained network, same architecture (unwrap DDP first).
        momentum: ``m`` in [0, 1] (:func:`teacher_momentum`).

    Raises:
        ValueRangeError: ``momentum`` outside [0, 1]; a teacher parameter requires grad.
        DTypeError: ``momentum`` is not a real number; an argument is not a module.
        ShapeError: the two networks' parameter or buffer names or shapes differ.

    Shape:
        not applicable (updates ``teacher`` in place).

    Example:
        >>> student = nn.Linear(1, 1, bias=False)
        >>> teacher = make_teacher(student)
        >>> _ = teacher.weight.fill_(1.0), student.weight.data.fill_(0.0)
        >>> update_teacher(teacher, student, 0.9)
        >>> round(teacher.weight.item(), 6)
        0.9
    """
    fn = "update_teacher"
    for name, module in (("teacher", teacher), ("student", student)):
        if not isinstance(module, nn.Module):
            raise DTypeError(f"{fn}(): argument '{name}' expected an nn.Module, got {type(module).__name__}")
    m = check_in_range(momentum, name="momentum", low=0.0, high=1.0, fn=fn)
    t_params, s_params = dict(teacher.named_parameters()), dict(student.named_parameters())
    names = _pairs(t_params, s_params, "parameters")
    trained = [k for k in names if t_params[k].requires_grad]
    if trained:
        raise ValueRangeError(f"{fn}(): argument 'teacher' must not require gradients, but {len(trained)} parameters "
                              f"do (first {trained[0]!r}); build it with make_teacher() or call "
                              f"teacher.requires_grad_(False)")
    if names:
        targets = [t_params[k] for k in names]
        sources = [s_params[k].detach().to(t_params[k].dtype) for k in names]
        torch._foreach_mul_(targets, m)
        torch._foreach_add_(targets, sources, alpha=1.0 - m)
    t_bufs, s_bufs = dict(teacher.named_buffers()), dict(student.named_buffers())
    for k in _pairs(t_bufs, s_bufs, "buffers"):
        t_bufs[k].copy_(s_bufs[k])
