"""Analytic signed distance functions of primitives, rigid placement and unions.

Conventions: distances in the units of the points (metres), negative inside,
exact Euclidean distances (not bounds) for every primitive here. All functions
broadcast over any number of leading dimensions: ``points (..., 3)`` against
parameters of shape ``(...)`` / ``(..., 3)`` (Python floats are accepted for
scalar parameters).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .._checks import ShapeError, ValueRangeError, check_floating, check_shape

__all__ = [
    "sphere_sdf",
    "box_sdf",
    "capsule_sdf",
    "cylinder_sdf",
    "to_local",
    "transformed_sdf",
    "union",
    "smooth_union",
]


def _points(points: Tensor, fn: str) -> None:
    check_shape(points, "... 3", name="points", fn=fn)
    check_floating(points, name="points", fn=fn)


def _scalar(value: Tensor | float, like: Tensor, *, name: str, fn: str, positive: bool = True) -> Tensor:
    """A scalar-per-sample parameter as a tensor on the points' device/dtype."""
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if positive and not bool((t > 0).all()):  # NaN fails too
        raise ValueRangeError(f"{fn}(): argument '{name}' expected values > 0, got min {float(t.min())}")
    return t


def _vector(value: Tensor, like: Tensor, *, name: str, fn: str) -> Tensor:
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    check_shape(t, "... 3", name=name, fn=fn)
    return t


def sphere_sdf(points: Tensor, center: Tensor, radius: Tensor | float) -> Tensor:
    """Signed distance to a sphere: ``|p - c| - r``.

    Args:
        points: query points.
        center: sphere centres (broadcast against ``points``).
        radius: radii, > 0.

    Returns:
        Signed distances, negative inside.

    Shape:
        - points: ``(..., 3)``; center: ``(..., 3)``; radius: ``(...)`` or float
        - output: ``(...)``

    Example:
        >>> sphere_sdf(torch.tensor([2.0, 0.0, 0.0]), torch.zeros(3), 1.0)
        tensor(1.)
    """
    _points(points, "sphere_sdf")
    c = _vector(center, points, name="center", fn="sphere_sdf")
    r = _scalar(radius, points, name="radius", fn="sphere_sdf")
    return (points - c).norm(dim=-1) - r


def box_sdf(points: Tensor, half_extents: Tensor) -> Tensor:
    """Signed distance to an axis-aligned box centred at the origin.

    ``q = |p| - h``; ``d = |max(q, 0)| + min(max_i q_i, 0)``. Place the box
    elsewhere with :func:`transformed_sdf`.

    Args:
        points: query points.
        half_extents: half side lengths, all > 0.

    Returns:
        Signed distances, negative inside.

    Shape:
        - points: ``(..., 3)``; half_extents: ``(..., 3)``; output: ``(...)``

    Example:
        >>> box_sdf(torch.tensor([[0.0, 0.0, 0.0], [0.0, 3.0, 0.0]]), torch.tensor([1.0, 1.0, 1.0]))
        tensor([-1.,  2.])
    """
    _points(points, "box_sdf")
    h = _vector(half_extents, points, name="half_extents", fn="box_sdf")
    if not bool((h > 0).all()):  # NaN fails too
        raise ValueRangeError(f"box_sdf(): argument 'half_extents' expected values > 0, got min {float(h.min())}")
    q = points.abs() - h
    return q.clamp_min(0).norm(dim=-1) + q.amax(dim=-1).clamp_max(0)


def capsule_sdf(points: Tensor, a: Tensor, b: Tensor, radius: Tensor | float) -> Tensor:
    """Signed distance to a capsule: the segment ``ab`` swept by a ball of ``radius``.

    Args:
        points: query points.
        a: first segment end points.
        b: second segment end points (``a == b`` gives a sphere).
        radius: radii, > 0.

    Returns:
        Signed distances, negative inside.

    Shape:
        - points, a, b: ``(..., 3)``; radius: ``(...)`` or float; output: ``(...)``

    Example:
        >>> capsule_sdf(torch.tensor([0.0, 2.0, 0.0]), torch.zeros(3), torch.tensor([1.0, 0, 0]), 0.5)
        tensor(1.5000)
    """
    _points(points, "capsule_sdf")
    a = _vector(a, points, name="a", fn="capsule_sdf")
    b = _vector(b, points, name="b", fn="capsule_sdf")
    r = _scalar(radius, points, name="radius", fn="capsule_sdf")
    ab = b - a
    ap = points - a
    len_sq = (ab * ab).sum(-1)
    safe = torch.where(len_sq > 0, len_sq, torch.ones_like(len_sq))
    t = ((ap * ab).sum(-1) / safe).clamp(0, 1)
    t = torch.where(len_sq > 0, t, torch.zeros_like(t))
    return (ap - t.unsqueeze(-1) * ab).norm(dim=-1) - r


def cylinder_sdf(points: Tensor, radius: Tensor | float, half_height: Tensor | float) -> Tensor:
    """Signed distance to a capped cylinder along the z axis, centred at the origin.

    ``q = (|p_xy| - r, |p_z| - h)``; ``d = |max(q, 0)| + min(max(q), 0)``.

    Args:
        points: query points.
        radius: cylinder radii, > 0.
        half_height: half of the height along z, > 0.

    Returns:
        Signed distances, negative inside.

    Shape:
        - points: ``(..., 3)``; radius, half_height: ``(...)`` or float; output: ``(...)``

    Example:
        >>> cylinder_sdf(torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 3.0]]), 1.0, 2.0)
        tensor([-1.,  1.])
    """
    _points(points, "cylinder_sdf")
    r = _scalar(radius, points, name="radius", fn="cylinder_sdf")
    h = _scalar(half_height, points, name="half_height", fn="cylinder_sdf")
    radial = points[..., :2].norm(dim=-1) - r
    axial = points[..., 2].abs() - h
    q = torch.stack(torch.broadcast_tensors(radial, axial), dim=-1)
    return q.clamp_min(0).norm(dim=-1) + q.amax(dim=-1).clamp_max(0)


def to_local(points: Tensor, R: Tensor, t: Tensor) -> Tensor:
    """Express world points in a primitive's local frame: ``R^T (p - t)``.

    The primitive's pose maps local to world as ``x_world = R x_local + t``.

    Args:
        points: world points.
        R: rotation matrices (orthonormal; not re-checked).
        t: translations.

    Returns:
        Local coordinates.

    Shape:
        - points: ``(..., 3)``; R: ``(..., 3, 3)``; t: ``(..., 3)``; output: ``(..., 3)``
    """
    _points(points, "to_local")
    check_shape(R, "... 3 3", name="R", fn="to_local")
    check_shape(t, "... 3", name="t", fn="to_local")
    return ((points - t).unsqueeze(-2) @ R).squeeze(-2)


def transformed_sdf(sdf_fn: Callable[..., Tensor], points: Tensor, R: Tensor, t: Tensor, *args, **kwargs) -> Tensor:
    """Evaluate a primitive placed with a rigid transform (rotation ``R``, translation ``t``).

    Rigid motions preserve distances, so the SDF of the placed primitive is the
    primitive's SDF at the local coordinates ``R^T (p - t)``.

    Args:
        sdf_fn: a primitive such as :func:`box_sdf`; called as
            ``sdf_fn(local_points, *args, **kwargs)``.
        points: world points.
        R: rotation of the primitive.
        t: position of the primitive's origin.
        *args: further arguments of ``sdf_fn``.
        **kwargs: further keyword arguments of ``sdf_fn``.

    Returns:
        Signed distances.

    Shape:
        - points: ``(..., 3)``; R: ``(..., 3, 3)``; t: ``(..., 3)``; output: ``(...)``

    Example:
        >>> R = torch.eye(3); t = torch.tensor([5.0, 0.0, 0.0])
        >>> transformed_sdf(box_sdf, torch.tensor([5.0, 0.0, 0.0]), R, t, torch.ones(3))
        tensor(-1.)
    """
    return sdf_fn(to_local(points, R, t), *args, **kwargs)


def union(*sdfs: Tensor) -> Tensor:
    """Union of shapes: the element-wise minimum of their SDFs.

    Exact outside and on the boundary; inside overlapping shapes it is a bound
    (as for every min-union).

    Args:
        *sdfs: at least one tensor of signed distances (broadcast together).

    Returns:
        The union's signed distances.

    Shape:
        - each input: ``(...)``; output: the broadcast shape
    """
    if not sdfs:
        raise ShapeError("union(): expected at least one SDF tensor, got none")
    out = sdfs[0]
    for k, d in enumerate(sdfs[1:], start=1):
        if not isinstance(d, Tensor):
            raise ShapeError(f"union(): argument {k} expected a tensor, got {type(d).__name__}")
        out = torch.minimum(out, d)
    return out


def smooth_union(a: Tensor, b: Tensor, k: float) -> Tensor:
    """Smooth union (polynomial smooth minimum) with blend radius ``k``.

    ``h = clamp(0.5 + 0.5 (b - a) / k, 0, 1)``;
    ``d = b (1 - h) + a h - k h (1 - h)``. Equals ``min(a, b)`` where
    ``|a - b| >= k`` and is never larger than it.

    Args:
        a: signed distances of the first shape.
        b: signed distances of the second shape.
        k: blend radius, > 0, in distance units.

    Returns:
        Blended signed distances (a bound, not exact, inside the blend zone).

    Shape:
        - a, b: ``(...)`` broadcastable; output: broadcast shape

    Example:
        >>> smooth_union(torch.tensor(0.0), torch.tensor(0.0), 0.1)
        tensor(-0.0250)
    """
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not k > 0:
        raise ValueRangeError(f"smooth_union(): argument 'k' expected a number > 0, got {k!r}")
    check_shape(a, "...", name="a")
    check_shape(b, "...", name="b")
    try:
        torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        raise ShapeError(
            f"smooth_union(): arguments 'a' and 'b' expected broadcastable shapes, got {tuple(a.shape)} and {tuple(b.shape)}"
        ) from None
    h = (0.5 + 0.5 * (b - a) / k).clamp(0, 1)
    return b * (1 - h) + a * h - k * h * (1 - h)
