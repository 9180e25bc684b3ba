"""Clamped L1 loss on signed distances, masked for invalid points (MaskHOI L_3D)."""

from __future__ import annotations

import torch
from torch import nn

from hoimask._checks import check_positive, check_shape

__all__ = ["sdf_l1_loss", "SDFLoss"]


def sdf_l1_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    clamp_distance: float = 0.05,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean ``|clamp(pred) - clamp(target)|`` over the valid points (DeepSDF/HOISDF).

    Both sides are clamped to ``±clamp_distance`` so that far-away points only
    have to be predicted as "far". Points whose target is not finite (NaN marks
    an absent object or an invalid sample) or where ``valid`` is False do not
    count. With no valid point at all the loss is an exact zero that still
    depends on ``pred`` (so backward works and gives zero gradients).

    Args:
        pred: ``(B, Q)`` predicted signed distances (m).
        target: ``(B, Q)`` ground truth (m), may contain NaN.
        clamp_distance: δ in metres, > 0.
        valid: optional ``(B, Q)`` bool mask of points to use.

    Returns:
        Scalar loss in metres.

    Shape:
        pred, target, valid ``(B, Q)`` -> ``()``.

    Example:
        >>> sdf_l1_loss(torch.zeros(1, 2), torch.tensor([[0.01, float("nan")]]))
        tensor(0.0100)
    """
    dims = check_shape(pred, "B Q", name="pred")
    check_shape(target, "B Q", name="target", dims=dims)
    check_positive(clamp_distance, name="clamp_distance")
    use = torch.isfinite(target)
    if valid is not None:
        check_shape(valid, "B Q", name="valid", dims=dims)
        use = use & valid.bool()
    safe_target = torch.where(use, target, torch.zeros_like(target))
    err = (pred.clamp(-clamp_distance, clamp_distance) - safe_target.clamp(-clamp_distance, clamp_distance)).abs()
    err = torch.where(use, err, torch.zeros_like(err))
    return err.sum() / use.sum().clamp(min=1).to(err.dtype)


class SDFLoss(nn.Module):
    """Module form of :func:`sdf_l1_loss` holding the clamp distance.

    Shape:
        pred, target ``(B, Q)`` -> ``()``.
    """

    def __init__(self, clamp_distance: float = 0.05) -> None:
        super().__init__()
        self.clamp_distance = check_positive(clamp_distance, name="clamp_distance")

    def forward(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """See :func:`sdf_l1_loss`."""
        return sdf_l1_loss(pred, target, clamp_distance=self.clamp_distance, valid=valid)
