"""F-score between two point sets at a distance threshold (F@5 mm, F@15 mm).

Matches ``calculate_fscore`` of HO3D/FreiHAND ``eval.py`` (also copied into
HOISDF ``common/eval_util.py``): with ``d_pred`` the distance from each
predicted point to its nearest ground-truth point and ``d_gt`` the distance
from each ground-truth point to its nearest predicted point,

* ``a = mean(d_pred < threshold)`` (the official code calls it recall),
* ``b = mean(d_gt < threshold)`` (the official code calls it precision),
* ``F = 2ab / (a + b)``, and ``F = 0`` when ``a + b = 0``.

The comparison is strict (``<``) as in the official code, and ``F`` is
symmetric in its two arguments.

Non-finite values (docs/conventions.md): a NaN or infinite predicted point
raises ``ValueRangeError``; a non-finite ground-truth point is unannotated and
is not part of the ground-truth set (neither a neighbour of the predicted
points nor averaged over); a sample without an annotated point gets NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hoimask._checks import ValueRangeError, check_in_range, check_positive, check_shape
from hoimask.metrics._arrays import ArrayLike, like_input, to_tensors
from hoimask.metrics._finite import annotated, check_prediction, sanitise
from hoimask.metrics.nearest import DEFAULT_MAX_ELEMENTS, _nearest

__all__ = ["f_score", "f_score_from_distances"]


def f_score_from_distances(
    d_pred: torch.Tensor, d_gt: torch.Tensor, thresholds: torch.Tensor, gt_valid: torch.Tensor | None = None
) -> torch.Tensor:
    """F-scores from precomputed nearest-neighbour distances.

    Args:
        d_pred: ``(B, P)`` distance of each predicted point to the ground truth.
        d_gt: ``(B, G)`` distance of each ground-truth point to the prediction.
        thresholds: ``(T,)`` thresholds.
        gt_valid: optional ``(B, G)`` bool, the annotated ground-truth points;
            the others are left out of ``b``, and a row without any gets NaN.

    Returns:
        ``(B, T)`` F-scores in ``d_pred``'s dtype.
    """
    th = thresholds.to(d_pred.dtype)
    a = (d_pred[:, :, None] < th).to(d_pred.dtype).mean(dim=1)  # (B, T)
    hits = (d_gt[:, :, None] < th).to(d_pred.dtype)  # (B, G, T)
    if gt_valid is None:
        b = hits.mean(dim=1)  # (B, T)
    else:
        n = gt_valid.sum(dim=1, keepdim=True)  # (B, 1)
        b = (hits * gt_valid[:, :, None].to(hits.dtype)).sum(dim=1) / n.clamp_min(1).to(hits.dtype)
        b = torch.where(gt_valid.all(dim=1, keepdim=True), hits.mean(dim=1), b)  # exact when all valid
    s = a + b
    f = torch.where(s > 0, 2 * a * b / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(s))
    if gt_valid is not None:
        f = torch.where(gt_valid.any(dim=1, keepdim=True), f, torch.full_like(f, float("nan")))
    return f


def f_score(
    pred_points: ArrayLike,
    gt_points: ArrayLike,
    threshold: float | Sequence[float],
    *,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> ArrayLike:
    """F-score of two point sets at ``threshold`` (HO3D ``calculate_fscore``).

    Args:
        pred_points: predicted points (e.g. MANO vertices), finite.
        gt_points: ground-truth points; the counts may differ from ``P``.
            Non-finite points are unannotated and not part of the set.
        threshold: a distance (> 0) in the points' units (HO3D: 0.005 and 0.015 m),
            or a sequence of distances evaluated from one nearest-neighbour search.
        max_elements: memory bound of the exact chunked nearest-neighbour search.

    Returns:
        ``(B,)`` F-scores in [0, 1] for a single threshold, ``(B, T)`` for a
        sequence, in the input's array type; NaN for a sample without an
        annotated ground-truth point.

    Raises:
        ValueRangeError: ``pred_points`` holds a NaN or infinity.

    Shape:
        - pred_points: ``(B, P, 3)``
        - gt_points: ``(B, G, 3)``
        - output: ``(B,)`` or ``(B, T)``

    Example:
        >>> import torch
        >>> x = torch.rand(2, 50, 3)
        >>> f_score(x, x, 0.005)
        tensor([1., 1.])
    """
    was_numpy, t = to_tensors(pred_points=pred_points, gt_points=gt_points)
    p, g = t["pred_points"], t["gt_points"]
    dims = check_shape(p, "B P 3", name="pred_points")
    check_shape(g, "B G 3", name="gt_points", dims=dims)
    if dims["P"] == 0 or dims["G"] == 0:
        raise ValueRangeError(
            f"f_score(): both point sets need at least one point, got P={dims['P']}, G={dims['G']}"
        )
    single = not isinstance(threshold, Sequence)
    values = [threshold] if single else list(threshold)
    if not values:
        raise ValueRangeError("f_score(): argument 'threshold' is an empty sequence")
    for v in values:
        check_in_range(v, name="threshold", low=0.0, low_inclusive=False, fn="f_score")
    check_positive(max_elements, name="max_elements", fn="f_score")
    check_prediction(p, name="pred_points", fn="f_score")
    valid = annotated(g)  # (B, G)
    g = sanitise(g, valid)
    th = torch.tensor([float(v) for v in values], dtype=p.dtype, device=p.device)
    d_pred = _nearest(p, g, int(max_elements), valid)  # (B, P)
    d_gt = _nearest(g, p, int(max_elements))  # (B, G)
    f = f_score_from_distances(d_pred, d_gt, th, valid)  # (B, T)
    return like_input(was_numpy, f[:, 0] if single else f)
