"""Capsules: analytic signed distance and a closed triangle mesh with a fixed topology.

A capsule is the set of points within ``r`` of the segment ``a -> b``. Its
signed distance is ``|p - closest(p, [a, b])| - r`` (negative inside); a union
of capsules takes the minimum. The mesh of a capsule is a UV capsule whose
vertices are written in the capsule's own frame, so the same topology serves
every pose and shape and vertices stay differentiable in ``a``, ``b``, ``r``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from hoimask._checks import (
    ValueRangeError,
    check_floating,
    check_int,
    check_shape,
)

__all__ = [
    "CapsuleTemplate",
    "capsule_mesh_template",
    "capsule_mesh_vertices",
    "capsule_sdf",
    "sample_capsule_surface",
]


def capsule_sdf(points: Tensor, a: Tensor, b: Tensor, radius: Tensor) -> Tensor:
    """Signed distance from points to a union of capsules (negative inside).

    Args:
        points: query points.
        a: first endpoint of every capsule's segment.
        b: second endpoint.
        radius: capsule radii (positive).

    Returns:
        ``(B, Q)`` signed distance to the union (minimum over the ``S`` capsules).

    Shape:
        points ``(B, Q, 3)``, a ``(B, S, 3)``, b ``(B, S, 3)``, radius ``(B, S)`` -> ``(B, Q)``.

    Example:
        >>> a = torch.zeros(1, 1, 3); b = torch.tensor([[[1.0, 0, 0]]])
        >>> capsule_sdf(torch.tensor([[[0.5, 2.0, 0]]]), a, b, torch.tensor([[0.5]]))
        tensor([[1.5000]])
    """
    dims = check_shape(points, "B Q 3", name="points")
    check_shape(a, "B S 3", name="a", dims=dims)
    check_shape(b, "B S 3", name="b", dims=dims)
    check_shape(radius, "B S", name="radius", dims=dims)
    for name, t in (("points", points), ("a", a), ("b", b), ("radius", radius)):
        check_floating(t, name=name)
    ab = b - a  # (B, S, 3)
    ab_sq = (ab * ab).sum(-1).clamp_min(torch.finfo(ab.dtype).tiny)  # degenerate segments act as spheres
    ap = points[:, :, None, :] - a[:, None, :, :]  # (B, Q, S, 3)
    t = ((ap * ab[:, None]).sum(-1) / ab_sq[:, None]).clamp(0.0, 1.0)  # (B, Q, S)
    diff = ap - t[..., None] * ab[:, None]  # (B, Q, S, 3)
    # sqrt with a floor keeps the gradient finite for points exactly on a segment.
    dist = (diff * diff).sum(-1).clamp_min(torch.finfo(diff.dtype).tiny).sqrt() - radius[:, None, :]
    return dist.min(dim=-1).values


class CapsuleTemplate(NamedTuple):
    """Per-vertex coordinates of a UV capsule in its own frame, and its triangles.

    A vertex sits at ``a + end (b - a) + r (axial d + radial (cos θ e1 + sin θ e2))``
    with ``d`` the unit axis and ``(e1, e2, d)`` right-handed.
    """

    end: Tensor  # (Vc,) 0 for the hemisphere at a, 1 at b
    axial: Tensor  # (Vc,)
    radial: Tensor  # (Vc,)
    cos: Tensor  # (Vc,)
    sin: Tensor  # (Vc,)
    faces: Tensor  # (Tc, 3) int64, counter-clockwise seen from outside


def capsule_mesh_template(num_segments: int = 12) -> CapsuleTemplate:
    """UV capsule with ``num_segments`` around the axis and ``max(2, num_segments // 4)`` rings per cap.

    Args:
        num_segments: vertices per ring (>= 3).

    Returns:
        A :class:`CapsuleTemplate` (float64 coordinates); ``2 + 2 n_cap n`` vertices,
        ``4 n_cap n`` triangles.

    Shape:
        not applicable.
    """
    check_int(num_segments, name="num_segments", low=3, fn="capsule_mesh_template")
    n = num_segments
    n_cap = max(2, n // 4)
    end, axial, radial = [0.0], [-1.0], [0.0]  # pole at a
    cos, sin = [1.0], [0.0]
    lat = [(-math.pi / 2 + k * math.pi / (2 * n_cap), 0.0) for k in range(1, n_cap + 1)]
    lat += [(k * math.pi / (2 * n_cap), 1.0) for k in range(n_cap)]
    for phi, e in lat:
        for k in range(n):
            theta = 2 * math.pi * k / n
            end.append(e)
            axial.append(math.sin(phi))
            radial.append(math.cos(phi))
            cos.append(math.cos(theta))
            sin.append(math.sin(theta))
    end.append(1.0)
    axial.append(1.0)
    radial.append(0.0)
    cos.append(1.0)
    sin.append(0.0)
    rings = len(lat)
    pole_b = 1 + rings * n

    def vid(ring: int, k: int) -> int:
        return 1 + ring * n + (k % n)

    faces: list[tuple[int, int, int]] = []
    for k in range(n):
        faces.append((0, vid(0, k + 1), vid(0, k)))
        faces.append((pole_b, vid(rings - 1, k), vid(rings - 1, k + 1)))
        for i in range(rings - 1):
            faces.append((vid(i, k), vid(i, k + 1), vid(i + 1, k)))
            faces.append((vid(i, k + 1), vid(i + 1, k + 1), vid(i + 1, k)))
    f64 = torch.float64
    return CapsuleTemplate(
        torch.tensor(end, dtype=f64),
        torch.tensor(axial, dtype=f64),
        torch.tensor(radial, dtype=f64),
        torch.tensor(cos, dtype=f64),
        torch.tensor(sin, dtype=f64),
        torch.tensor(faces, dtype=torch.int64),
    )


def capsule_mesh_vertices(
    a: Tensor, b: Tensor, radius: Tensor, reference: Tensor, template: CapsuleTemplate
) -> Tensor:
    """Vertices of one closed UV capsule per ``(a, b, r)``.

    Args:
        a: segment starts.
        b: segment ends.
        radius: radii.
        reference: a direction per capsule not parallel to ``b - a``; it fixes
            where ``θ = 0`` lies (``e1`` is its part orthogonal to the axis), so
            pass a direction that rotates with the bone for a smooth mesh.
        template: :func:`capsule_mesh_template` cast to the inputs' dtype/device.

    Returns:
        ``(B, S, Vc, 3)`` vertices.

    Shape:
        a, b, reference ``(B, S, 3)``, radius ``(B, S)`` -> ``(B, S, Vc, 3)``.
    """
    dims = check_shape(a, "B S 3", name="a")
    check_shape(b, "B S 3", name="b", dims=dims)
    check_shape(radius, "B S", name="radius", dims=dims)
    check_shape(reference, "B S 3", name="reference", dims=dims)
    axis = b - a
    d = axis / axis.norm(dim=-1, keepdim=True)  # (B, S, 3)
    e1 = reference - (reference * d).sum(-1, keepdim=True) * d
    e1 = e1 / e1.norm(dim=-1, keepdim=True)
    e2 = torch.linalg.cross(d, e1)
    ring = template.cos[:, None] * e1[..., None, :] + template.sin[:, None] * e2[..., None, :]  # (B, S, Vc, 3)
    offset = template.axial[:, None] * d[..., None, :] + template.radial[:, None] * ring
    return a[..., None, :] + template.end[:, None] * axis[..., None, :] + radius[..., None, None] * offset


def sample_capsule_surface(
    a: Tensor,
    b: Tensor,
    radius: Tensor,
    num_points: int,
    *,
    generator: torch.Generator | None = None,
    oversample: int = 8,
) -> Tensor:
    """Uniform random points on the outer surface of a union of capsules.

    Points are drawn uniformly on every capsule's surface (capsules picked in
    proportion to their area ``2 pi r L + 4 pi r^2``), those inside another
    capsule are discarded, and ``num_points`` of the rest are kept per batch
    element, so the result is uniform on the union's boundary. Differentiable
    with respect to ``a``, ``b`` and ``radius`` (the random choices are not).

    Args:
        a: segment starts.
        b: segment ends.
        radius: radii (positive).
        num_points: points per batch element ``N``.
        generator: CPU random generator.
        oversample: candidates drawn per kept point (at least 256 in total).

    Returns:
        ``(B, N, 3)`` surface points.

    Raises:
        ValueRangeError: fewer than ``num_points`` candidates were on the outer
            surface (raise ``oversample``).

    Shape:
        a, b ``(B, S, 3)``, radius ``(B, S)`` -> ``(B, N, 3)``.
    """
    dims = check_shape(a, "B S 3", name="a")
    check_shape(b, "B S 3", name="b", dims=dims)
    check_shape(radius, "B S", name="radius", dims=dims)
    for name, t in (("a", a), ("b", b), ("radius", radius)):
        check_floating(t, name=name)
    check_int(num_points, name="num_points", low=1, fn="sample_capsule_surface")
    check_int(oversample, name="oversample", low=1, fn="sample_capsule_surface")
    batch, dev, dt = dims["B"], a.device, a.dtype
    count = max(oversample * num_points, 256)
    axis = b - a  # (B, S, 3)
    length = axis.norm(dim=-1)  # (B, S)
    side_area = 2 * math.pi * radius * length
    area = side_area + 4 * math.pi * radius * radius
    f64 = torch.float64
    pick = torch.multinomial(area.detach().to("cpu", f64), count, replacement=True, generator=generator)  # (B, M)
    u = torch.rand(batch, count, generator=generator, dtype=f64)
    t = torch.rand(batch, count, generator=generator, dtype=f64)
    direction = torch.randn(batch, count, 3, generator=generator, dtype=f64)
    pick, u, t, direction = pick.to(dev), u.to(dev, dt), t.to(dev, dt), direction.to(dev, dt)

    def gather(x: Tensor) -> Tensor:  # (B, S, ...) -> (B, M, ...)
        index = pick.view(batch, count, *([1] * (x.dim() - 2))).expand(batch, count, *x.shape[2:])
        return torch.gather(x, 1, index)

    a_k, axis_k, r_k = gather(a), gather(axis), gather(radius)
    d_k = axis_k / gather(length).clamp_min(torch.finfo(dt).tiny)[..., None]
    on_side = u * gather(area) < gather(side_area)  # (B, M)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    radial = direction - (direction * d_k).sum(-1, keepdim=True) * d_k  # uniform around the axis
    radial = radial / radial.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(dt).tiny)
    side_pt = a_k + t[..., None] * axis_k + r_k[..., None] * radial
    cap_centre = torch.where(((direction * d_k).sum(-1) < 0)[..., None], a_k, a_k + axis_k)
    cap_pt = cap_centre + r_k[..., None] * direction
    points = torch.where(on_side[..., None], side_pt, cap_pt)  # (B, M, 3)
    tol = 1e-6 * float(radius.detach().max())
    outer = capsule_sdf(points.detach(), a.detach(), b.detach(), radius.detach()) > -tol  # (B, M)
    short = outer.sum(1) < num_points
    if bool(short.any()):
        raise ValueRangeError(
            f"sample_capsule_surface(): only {int(outer.sum(1).min())} of {count} candidates lie on the outer "
            f"surface, fewer than num_points={num_points}; raise 'oversample'"
        )
    key = outer.to(f64) + 0.5 * torch.rand(batch, count, generator=generator, dtype=f64).to(dev)
    keep = key.topk(num_points, dim=1).indices  # outer candidates first, in random order
    return torch.gather(points, 1, keep[..., None].expand(batch, num_points, 3))
