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
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hoimask._checks import ValueRangeError, check_in_range, check_positive, check_shape
from hoimask.metrics._arrays import ArrayLike, like_input, to_tensors
from hoimask.metrics.nearest import DEFAULT_MAX_ELEMENTS, _nearest

__all__ = ["f_score", "f_score_from_distances"]


def f_score_from_distances(
    d_pred: torch.Tensor, d_gt: torch.Tensor, thresholds: torch.Tensor
) -> torch.Tensor:
    """F-scores from precomputed nearest-neighbour distances.

    Args:
        d_pred: ``(B, P)`` distance of each predicted point to the ground truth.
        d_gt: ``(B, G)`` distance of each ground-truth point to the prediction.
        thresholds: ``(T,)`` thresholds.

    Returns:
        ``(B, T)`` F-scores in ``d_pred``'s dtype.
    """
    th = thresholds.to(d_pred.dtype)
    a = (d_pred[:, :, None] < th).to(d_pred.dtype).mean(dim=1)  # (B, T)
    b = (d_gt[:, :, None] < th).to(d_pred.dtype).mean(dim=1)  # (B, T)
    s = a + b
    return torch.where(s > 0, 2 * a * b / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(s))


def f_score(
    pred_points: ArrayLike,
    gt_points: ArrayLike,
    threshold: float | Sequence[float],
    *,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> ArrayLike:
    """F-score of two point sets at ``threshold`` (HO3D ``calculate_fscore``).

    Args:
        pred_points: predicted points (e.g. MANO vertices).
        gt_points: ground-truth points; the counts may differ from ``P``.
        threshold: a distance (> 0) in the points' units (HO3D: 0.005 and 0.015 m),
            or a sequence of distances evaluated from one nearest-neighbour search.
        max_elements: memory bound of the exact chunked nearest-neighbour search.

    Returns:
        ``(B,)`` F-scores in [0, 1] for a single threshold, ``(B, T)`` for a
        sequence, in the input's array type.

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
    th = torch.tensor([float(v) for v in values], dtype=p.dtype, device=p.device)
    d_pred = _nearest(p, g, int(max_elements))  # (B, P)
    d_gt = _nearest(g, p, int(max_elements))  # (B, G)
    f = f_score_from_distances(d_pred, d_gt, th)  # (B, T)
    return like_input(was_numpy, f[:, 0] if single else f)
