"""The non-finite policy of :mod:`hoimask.metrics` (docs/conventions.md, "Non-finite values").

* A non-finite **prediction** is an error: :func:`check_prediction` raises
  :class:`~hoimask._checks.ValueRangeError` naming the argument and the index
  of the first NaN or infinity. Predictions are never excluded.
* A non-finite **ground-truth** point (joint, vertex) is *unannotated*: it is
  excluded from the means (:func:`annotated`, :func:`masked_mean`); a sample
  left with nothing to measure gets NaN, which the :class:`Evaluator` leaves out
  of its means and counts.
* Inputs that are neither (model points, diameters, thresholds) cannot be
  excluded and must be finite.

Excluded entries are replaced by zeros (:func:`sanitise`) *before* any
arithmetic, so the NaNs never reach the values kept nor their gradients.
"""

from __future__ import annotations

import torch

from hoimask._checks import ValueRangeError
from hoimask.geometry import similarity_procrustes

__all__ = ["check_prediction", "annotated", "sanitise", "masked_mean", "masked_procrustes_align"]

_POLICY = "docs/conventions.md, 'Non-finite values'"


def check_prediction(x: torch.Tensor | None, *, name: str, fn: str) -> None:
    """Raise :class:`ValueRangeError` if a prediction holds a NaN or an infinity.

    The message names ``fn``, the argument, the number of non-finite values and
    the index of the first one (its first entry is the sample).
    """
    _require_finite(x, name=name, fn=fn, why="a prediction is never excluded")


def check_finite_input(x: torch.Tensor | None, *, name: str, fn: str) -> None:
    """Raise :class:`ValueRangeError` if an input that cannot be excluded (model points, ...) is not finite."""
    _require_finite(x, name=name, fn=fn, why="it cannot be excluded")


def _require_finite(x: torch.Tensor | None, *, name: str, fn: str, why: str) -> None:
    """The check of both functions above; ``why`` explains in the message why NaN is an error there."""
    if x is None:
        return
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        first = tuple(int(i) for i in bad.nonzero()[0].tolist())
        raise ValueRangeError(
            f"{fn}(): argument '{name}' must be finite ({why}, see {_POLICY}), "
            f"got {int(bad.sum())} non-finite value(s), the first at index {first}"
        )


def annotated(gt: torch.Tensor, point_dims: int = 1) -> torch.Tensor:
    """Which ground-truth entries are annotated: every coordinate finite.

    Args:
        gt: ground truth whose last ``point_dims`` dimensions form one entry
            (``1`` for points ``(..., 3)``, ``2`` for rotations ``(..., 3, 3)``).
        point_dims: how many trailing dimensions one entry has.

    Returns:
        bool of shape ``gt.shape[:-point_dims]``.
    """
    return torch.isfinite(gt).flatten(-point_dims).all(dim=-1)


def sanitise(gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``gt`` with its excluded entries set to 0 (``valid`` has ``gt``'s leading shape)."""
    mask = valid.reshape(*valid.shape, *([1] * (gt.dim() - valid.dim())))
    return torch.where(mask, gt, torch.zeros_like(gt))


def masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over the last dimension of the ``valid`` entries; NaN where a row has none.

    Rows with every entry valid get exactly ``values.mean(-1)``.

    Shape:
        values, valid ``(B, N)`` -> ``(B,)``.
    """
    count = valid.sum(dim=-1)  # (B,)
    total = torch.where(valid, values, torch.zeros_like(values)).sum(dim=-1)
    partial = total / count.clamp_min(1).to(values.dtype)
    out = torch.where(valid.all(dim=-1), values.mean(dim=-1), partial)
    return torch.where(count > 0, out, torch.full_like(out, float("nan")))


def masked_procrustes_align(
    source: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, *, allow_reflection: bool
) -> torch.Tensor:
    """``source`` moved by the similarity transform fitted on its ``valid`` points only.

    Fully valid rows are aligned together in one batched call (exactly
    :func:`hoimask.geometry.procrustes_align`); each partially valid row is
    fitted on its valid points alone; rows without a valid point are returned
    unchanged (their errors are excluded anyway).

    Shape:
        source, target ``(B, N, 3)``, valid ``(B, N)`` -> ``(B, N, 3)``.
    """
    full = valid.all(dim=1)  # (B,)
    if bool(full.all()):
        scale, R, t = similarity_procrustes(source, target, allow_reflection=allow_reflection)
        return scale[:, None, None] * source @ R.transpose(1, 2) + t[:, None, :]  # (B, N, 3)
    # Rows are fitted apart so that no SVD sees a zero-filled (degenerate) row: its
    # gradient would be NaN and would reach the other rows' gradients.
    rows = list(source.unbind(0))  # rows without a valid point stay as they are
    idx = full.nonzero().flatten()
    if idx.numel():
        scale, R, t = similarity_procrustes(source[idx], target[idx], allow_reflection=allow_reflection)
        aligned = scale[:, None, None] * source[idx] @ R.transpose(1, 2) + t[:, None, :]  # (B_full, N, 3)
        for k, b in enumerate(idx.tolist()):
            rows[b] = aligned[k]
    for b in (~full & valid.any(dim=1)).nonzero().flatten().tolist():
        keep = valid[b]
        s, Rb, tb = similarity_procrustes(
            source[b : b + 1, keep], target[b : b + 1, keep], allow_reflection=allow_reflection
        )
        rows[b] = s[0] * source[b] @ Rb[0].T + tb[0]
    return torch.stack(rows)
