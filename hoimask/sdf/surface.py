"""Explicit surface points from an implicit field: project query points onto the zero level set.

:func:`project_to_surface` turns points near the zero level of a signed
distance function into points *on* it (and their outward normals), by one
closest-point step along the field's gradient:

``p' = p - d(p) · n(p)``, ``n = ∇d / |∇d|``.

For an exact SDF (``|∇d| = 1``) this is the closest surface point of every
point whose closest-point segment does not cross the medial axis (e.g. every
point of a sphere but its centre). For a learned, approximate field it is one
Newton step towards the level set along the unit normal; points whose field
value is large (beyond what the field was trained to represent) or whose
gradient vanishes are flagged in ``near`` rather than moved far.

HOMAE ("combine the implicit SDF with an explicit point cloud derived from the
SDF") uses such a cloud next to the field; :class:`~hoimask.models.HOISDF`
builds it with ``point_cloud_fusion=True`` (docs/models.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from .._checks import (
    ShapeError,
    ValueRangeError,
    check_finite,
    check_floating,
    check_positive,
    check_shape,
)

__all__ = ["SurfacePoints", "project_to_surface"]


class SurfacePoints(NamedTuple):
    """What :func:`project_to_surface` returns (all detached)."""

    points: Tensor  #: (..., N, 3) projected points p - d·n (the input point where ``near`` is False)
    normals: Tensor  #: (..., N, 3) unit outward normals ∇d/|∇d| at the input points (zero where the gradient vanishes)
    sdf: Tensor  #: (..., N) d at the input points
    near: Tensor  #: (..., N) bool: finite d below ``max_distance`` and a non-vanishing gradient


def project_to_surface(
    sdf_fn: Callable[[Tensor], Tensor],
    points: Tensor,
    *,
    max_distance: float | None = None,
    min_gradient: float = 1e-6,
) -> SurfacePoints:
    """Project points onto the zero level set of ``sdf_fn`` along its normalised gradient.

    ``d`` and ``∇d`` come from one evaluation of ``sdf_fn`` and one backward
    pass (autograd with respect to the points only), so a stochastic field
    (e.g. a decoder in training mode, with dropout) is read consistently:
    the value and the gradient belong to the same draw. It runs with autograd
    enabled even inside :func:`torch.no_grad`; the outputs are detached — the
    cloud is a geometric read-out of the field, no gradient flows through it.

    Points that are not ``near`` (``|d| >= max_distance``, a non-finite
    ``d`` or ``∇d``, or ``|∇d| <= min_gradient``) are returned unmoved, with
    the normal set to zero where the gradient is unusable.

    Args:
        sdf_fn: maps ``(..., N, 3)`` points to ``(..., N)`` signed distances
            in the units of the points, differentiable with respect to the
            points (positive outside).
        points: ``(..., N, 3)`` query points, floating point, finite.
        max_distance: points with ``|d| >= max_distance`` are not moved and
            not ``near`` (``None``: no limit).
        min_gradient: gradient norms at or below this are treated as zero.

    Returns:
        :class:`SurfacePoints` (points and normals ``(..., N, 3)``, sdf and near ``(..., N)``).

    Raises:
        ShapeError: ``points`` is not ``(..., N, 3)``, or ``sdf_fn`` returns a shape other than ``(..., N)``.
        ValueRangeError: non-finite points; a bad ``max_distance`` or
            ``min_gradient``; called under :func:`torch.inference_mode`
            (which forbids the backward pass; use :func:`torch.no_grad`).

    Shape:
        points ``(..., N, 3)`` -> :class:`SurfacePoints` of ``(..., N, 3)`` / ``(..., N)``.

    Example:
        >>> from hoimask.sdf import sphere_sdf
        >>> points = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.5, 0.0]])
        >>> out = project_to_surface(lambda p: sphere_sdf(p, torch.zeros(3), 1.0), points)
        >>> out.points, out.normals, out.sdf
        (tensor([[1., 0., 0.],
                [0., 1., 0.]]), tensor([[1., 0., 0.],
                [0., 1., 0.]]), tensor([ 1.0000, -0.5000]))
    """
    fn = "project_to_surface"
    check_shape(points, "... N 3", name="points", fn=fn)
    check_floating(points, name="points", fn=fn)
    check_finite(points, name="points", fn=fn)
    if max_distance is not None:
        check_positive(max_distance, name="max_distance", fn=fn)
    check_positive(min_gradient, name="min_gradient", strict=False, fn=fn)
    if torch.is_inference_mode_enabled():
        raise ValueRangeError(
            f"{fn}(): cannot differentiate argument 'sdf_fn' under torch.inference_mode(); "
            "call it under torch.no_grad() instead"
        )
    with torch.enable_grad():
        p = points.detach().requires_grad_(True)
        d = sdf_fn(p)
        if not isinstance(d, Tensor) or tuple(d.shape) != tuple(points.shape[:-1]):
            got = tuple(d.shape) if isinstance(d, Tensor) else type(d).__name__
            raise ShapeError(f"{fn}(): argument 'sdf_fn' expected to return shape {tuple(points.shape[:-1])}, got {got}")
        if d.requires_grad:
            (grad,) = torch.autograd.grad(d.sum(), p)
        else:  # the field does not depend on the points (constant): no direction to move along
            grad = torch.zeros_like(p)
    d, grad = d.detach(), grad.detach()
    norm = grad.norm(dim=-1, keepdim=True)  # (..., N, 1)
    usable = torch.isfinite(grad).all(-1) & (norm[..., 0] > min_gradient)
    normals = torch.where(usable[..., None], grad / norm.clamp_min(min_gradient), torch.zeros_like(grad))
    near = usable & torch.isfinite(d)
    if max_distance is not None:
        near = near & (d.abs() < max_distance)
    step = torch.where(near, d, torch.zeros_like(d))  # (..., N)
    return SurfacePoints(points.detach() - step[..., None] * normals, normals, d, near)
