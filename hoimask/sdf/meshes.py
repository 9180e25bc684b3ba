"""Procedural triangle meshes: icosphere, torus and box.

All meshes are closed, 2-manifold, with outward-facing counter-clockwise
triangles (the normal ``(b - a) x (c - a)`` points out of the solid), which is
the orientation :func:`hoimask.ops.mesh_sdf` expects. They are used as test
fixtures, benchmark meshes and synthetic objects.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._checks import (
    DTypeError,
    ValueRangeError,
    check_floating,
    check_in_range,
    check_int,
    check_positive,
    check_shape,
)

__all__ = ["icosphere", "torus_mesh", "box_mesh", "open_mesh"]


def icosphere(
    subdivisions: int = 3,
    radius: float = 1.0,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """Geodesic sphere: an icosahedron whose triangles are split ``subdivisions`` times.

    Args:
        subdivisions: number of 1-to-4 splits (0 gives the icosahedron).
            The mesh has ``20 * 4**subdivisions`` triangles (3: 1280, 5: 20480).
        radius: radius of the circumscribed sphere (all vertices lie on it).
        dtype: dtype of the vertices.
        device: device of both outputs.

    Returns:
        ``(vertices, faces)``, faces int64, outward counter-clockwise.

    Shape:
        - vertices: ``(10 * 4**s + 2, 3)``; faces: ``(20 * 4**s, 3)``

    Example:
        >>> v, f = icosphere(1)
        >>> v.shape, f.shape
        (torch.Size([42, 3]), torch.Size([80, 3]))
    """
    check_int(subdivisions, name="subdivisions", low=0, fn="icosphere")
    check_in_range(subdivisions, name="subdivisions", high=8, fn="icosphere")
    check_positive(radius, name="radius", fn="icosphere")
    g = (1.0 + math.sqrt(5.0)) / 2.0
    verts = torch.tensor(
        [[-1, g, 0], [1, g, 0], [-1, -g, 0], [1, -g, 0],
         [0, -1, g], [0, 1, g], [0, -1, -g], [0, 1, -g],
         [g, 0, -1], [g, 0, 1], [-g, 0, -1], [-g, 0, 1]],
        dtype=torch.float64,
    )
    faces = torch.tensor(
        [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11],
         [1, 5, 9], [5, 11, 4], [11, 10, 2], [10, 7, 6], [7, 1, 8],
         [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9],
         [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]],
        dtype=torch.int64,
    )
    verts = verts / verts.norm(dim=-1, keepdim=True)
    for _ in range(subdivisions):
        # Every edge gets one midpoint, shared by the two triangles that use it.
        edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], dim=0)  # (3T, 2)
        unique, inverse = torch.unique(edges.sort(dim=1).values, dim=0, return_inverse=True)
        mid = verts[unique].mean(dim=1)
        mid = mid / mid.norm(dim=-1, keepdim=True)
        mid_id = inverse.view(3, -1) + verts.shape[0]  # (3, T): midpoint of edge 01, 12, 20
        verts = torch.cat([verts, mid], dim=0)
        a, b, c = faces.unbind(1)
        m01, m12, m20 = mid_id
        faces = torch.cat(
            [
                torch.stack([a, m01, m20], 1),
                torch.stack([b, m12, m01], 1),
                torch.stack([c, m20, m12], 1),
                torch.stack([m01, m12, m20], 1),
            ],
            dim=0,
        )
    return (verts * radius).to(dtype=dtype, device=device), faces.to(device=device)


def torus_mesh(
    major_radius: float = 1.0,
    minor_radius: float = 0.25,
    major_segments: int = 48,
    minor_segments: int = 24,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """Torus around the z axis, vertices on the exact torus surface.

    Args:
        major_radius: distance from the z axis to the tube centre ``R``.
        minor_radius: tube radius ``r`` (must be smaller than ``R``).
        major_segments: segments around the z axis.
        minor_segments: segments around the tube.
        dtype: dtype of the vertices.
        device: device of both outputs.

    Returns:
        ``(vertices, faces)``, faces int64, outward counter-clockwise.

    Shape:
        - vertices: ``(major_segments * minor_segments, 3)``
        - faces: ``(2 * major_segments * minor_segments, 3)``

    Example:
        >>> v, f = torus_mesh(1.0, 0.25, 8, 6)
        >>> v.shape, f.shape
        (torch.Size([48, 3]), torch.Size([96, 3]))
    """
    check_positive(major_radius, name="major_radius", fn="torus_mesh")
    check_in_range(minor_radius, name="minor_radius", low=0.0, high=major_radius,
                   low_inclusive=False, high_inclusive=False, fn="torus_mesh")
    check_int(major_segments, name="major_segments", low=3, fn="torus_mesh")
    check_int(minor_segments, name="minor_segments", low=3, fn="torus_mesh")
    u = torch.arange(major_segments, dtype=torch.float64) * (2 * math.pi / major_segments)
    v = torch.arange(minor_segments, dtype=torch.float64) * (2 * math.pi / minor_segments)
    uu, vv = torch.meshgrid(u, v, indexing="ij")
    ring = major_radius + minor_radius * vv.cos()
    verts = torch.stack([ring * uu.cos(), ring * uu.sin(), minor_radius * vv.sin()], dim=-1).reshape(-1, 3)
    i = torch.arange(major_segments).view(-1, 1)
    j = torch.arange(minor_segments).view(1, -1)
    i1 = (i + 1) % major_segments
    j1 = (j + 1) % minor_segments
    p00 = (i * minor_segments + j).reshape(-1)
    p10 = (i1 * minor_segments + j).reshape(-1)
    p01 = (i * minor_segments + j1).reshape(-1)
    p11 = (i1 * minor_segments + j1).reshape(-1)
    faces = torch.cat([torch.stack([p00, p10, p11], 1), torch.stack([p00, p11, p01], 1)], dim=0)
    return verts.to(dtype=dtype, device=device), faces.to(device=device)


def box_mesh(
    half_extents: tuple[float, float, float] = (1.0, 1.0, 1.0),
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """Axis-aligned box centred at the origin, 8 vertices and 12 triangles.

    Args:
        half_extents: half side lengths along x, y, z (all positive).
        dtype: dtype of the vertices.
        device: device of both outputs.

    Returns:
        ``(vertices, faces)``, faces int64, outward counter-clockwise.

    Shape:
        - vertices: ``(8, 3)``; faces: ``(12, 3)``

    Example:
        >>> v, f = box_mesh((0.1, 0.2, 0.3))
        >>> v.abs().amax(dim=0).tolist()
        [0.1, 0.2, 0.3]
    """
    if len(half_extents) != 3:
        raise DTypeError(f"box_mesh(): argument 'half_extents' expected 3 numbers, got {len(half_extents)}")
    for k, h in enumerate(half_extents):
        check_positive(h, name=f"half_extents[{k}]", fn="box_mesh")
    corners = torch.tensor(
        [[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)], dtype=torch.float64
    )  # vertex id = 4 * (x > 0) + 2 * (y > 0) + (z > 0)
    faces = torch.tensor(
        [[0, 1, 3], [0, 3, 2],  # -x
         [4, 6, 7], [4, 7, 5],  # +x
         [0, 4, 5], [0, 5, 1],  # -y
         [2, 3, 7], [2, 7, 6],  # +y
         [0, 2, 6], [0, 6, 4],  # -z
         [1, 5, 7], [1, 7, 3]],  # +z
        dtype=torch.int64,
    )
    verts = corners * torch.tensor(half_extents, dtype=torch.float64)
    return verts.to(dtype=dtype, device=device), faces.to(device=device)


def open_mesh(vertices: Tensor, faces: Tensor, direction: Tensor, cos_angle: float) -> tuple[Tensor, Tensor]:
    """Cut a hole: drop the triangles whose centroid direction is within an angle of ``direction``.

    Used to model MANO's open wrist on closed test meshes. Vertices are kept
    (unused ones are harmless for :func:`hoimask.ops.mesh_sdf`).

    Args:
        vertices: mesh vertices, centred on the origin.
        faces: triangles.
        direction: direction of the hole's centre.
        cos_angle: triangles with ``cos(angle to direction) > cos_angle`` are removed.

    Returns:
        ``(vertices, kept_faces)``.

    Shape:
        - vertices: ``(V, 3)``; faces: ``(T, 3)``; direction: ``(3,)``
        - kept_faces: ``(T', 3)`` with ``T' <= T``
    """
    fn = "open_mesh"
    check_shape(vertices, "V 3", name="vertices", fn=fn)
    check_shape(faces, "T 3", name="faces", fn=fn)
    check_shape(direction, "3", name="direction", fn=fn)
    check_floating(vertices, name="vertices", fn=fn)
    check_in_range(cos_angle, name="cos_angle", low=-1.0, high=1.0, fn=fn)
    centroid = vertices[faces].mean(dim=1)
    unit = centroid / centroid.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(centroid.dtype).tiny)
    length = direction.to(unit).norm()
    if not bool(length > 0):  # also catches NaN, which would silently drop every triangle
        raise ValueRangeError(f"{fn}(): argument 'direction' expected a non-zero finite vector, got {direction.tolist()}")
    d = direction.to(unit) / length
    keep = (unit @ d) <= cos_angle
    return vertices, faces[keep]
