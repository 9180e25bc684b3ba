"""UniHOPE's object-switcher loss ``L^s`` (eq. 2): binary cross-entropy of the grasp logit."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hoimask._checks import DTypeError, ValueRangeError, check_shape

__all__ = ["UNIHOPE_SWITCH_WEIGHT", "grasp_switch_loss"]

#: α of UniHOPE eq. (11): the released code's ``out_obj_conf_weight`` default (the paper gives no value).
UNIHOPE_SWITCH_WEIGHT: float = 10.0


def _grasp_labels(grasped: torch.Tensor, *, name: str, fn: str, batch: int | None = None) -> torch.Tensor:
    """``grasped`` as a ``(B,)`` bool tensor: bool, or numbers that are all exactly 0 or 1.

    Raises:
        ShapeError: not ``(B,)`` (``B = batch`` when given).
        DTypeError: not a tensor, or a complex tensor.
        ValueRangeError: a number other than 0 or 1 (0.5, 2, −1, NaN), naming the first.
    """
    check_shape(grasped, "B" if batch is None else str(batch), name=name, fn=fn)
    if grasped.dtype == torch.bool:
        return grasped
    if grasped.is_complex():
        raise DTypeError(f"{fn}(): argument '{name}' expected bool or 0/1 labels, got dtype {grasped.dtype}")
    bad = (grasped != 0) & (grasped != 1)  # NaN is != both
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueRangeError(f"{fn}(): argument '{name}' expected grasp labels that are bool or exactly 0/1, got "
                              f"{grasped[i].item()} at index {i} ({int(bad.sum())} such value(s))")
    return grasped == 1


def grasp_switch_loss(logit: torch.Tensor, grasped: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy between the switcher's grasp logit and the grasp label (UniHOPE eq. 2).

    ``mean_b BCEWithLogits(logit_b, grasped_b)``. The paper writes eq. (2) as
    a two-class softmax cross-entropy over ``g(F_p^o) = (z₀, z₁)``; with one
    logit ``z = z₁ − z₀`` it is exactly this loss (``softmax(z₀, z₁)₁ =
    sigmoid(z₁ − z₀)``). The released code weighs it by α = 10
    (:data:`UNIHOPE_SWITCH_WEIGHT`) in eq. (11).

    Args:
        logit: ``(B,)`` floating grasp logits (positive = grasping), e.g. :class:`hoimask.nn.GraspSwitcher`'s.
        grasped: ``(B,)`` labels: bool, or numbers that are exactly 0 or 1.

    Returns:
        Scalar mean loss (natural log), in ``logit``'s dtype.

    Raises:
        ShapeError: not ``(B,)``, or batch sizes that differ.
        DTypeError: a non-floating ``logit``.
        ValueRangeError: a label other than 0/1 (e.g. 0.5 or NaN), naming ``grasped``.

    Shape:
        ``(B,), (B,) -> ()``

    Example:
        >>> round(float(grasp_switch_loss(torch.tensor([0.0, 0.0]), torch.tensor([True, False]))), 4)  # log 2
        0.6931
    """
    fn = "grasp_switch_loss"
    dims = check_shape(logit, "B", name="logit", fn=fn)
    if not logit.is_floating_point():
        raise DTypeError(f"{fn}(): argument 'logit' expected a floating-point tensor, got dtype {logit.dtype}")
    target = _grasp_labels(grasped, name="grasped", fn=fn, batch=dims["B"])
    return F.binary_cross_entropy_with_logits(logit, target.to(device=logit.device, dtype=logit.dtype))
