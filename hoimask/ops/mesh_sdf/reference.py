"""Pure-torch reference of the signed distance from points to a triangle mesh.

This file is the source of truth for ``hoimask::mesh_sdf``: the Triton kernel
and the custom-op autograd formula are tested against it. It runs on every
device and in float32 and float64.

Algorithm (per batch element, chunked so that memory stays bounded):

1. **Search.** For every (point, triangle) pair the squared distance is
   computed from a handful of shared dot products: with ``d = p - a``,
   ``e0 = b - a``, ``e1 = c - a``, the point projects inside the triangle when
   its barycentric coordinates are non-negative, otherwise the closest point
   lies on one of the three edges (segment distances). The closest triangle
   (smallest squared distance, lowest index on ties) is kept.
2. **Refine.** The exact closest point on that triangle is recomputed with
   the region test of Ericson (Real-Time Collision Detection, 5.1.5),
   differentiably, in O(Q) memory; the distance is ``|p - closest|``.
3. **Sign.** The angle-weighted pseudo-normal of the closest feature
   (:mod:`hoimask.ops.mesh_sdf.sign`); where that feature touches an open
   boundary (MANO's wrist), the generalised winding number
   ``w(p) = sum_t Omega_t(p) / 4pi`` with the solid angle of Van Oosterom &
   Strackee (1983), ``tan(Omega / 2) = a.(b x c) / (|a||b||c| + (a.b)|c| +
   (b.c)|a| + (c.a)|b|)`` for ``a, b, c`` the corners relative to ``p``;
   inside when ``|w| > 0.5``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..._checks import ShapeError, check_floating, check_int, check_shape
from .sign import mesh_topology, pseudo_normal_sign
from .table import sliver

__all__ = [
    "DEFAULT_CHUNK_ELEMENTS",
    "closest_point_on_triangle",
    "triangle_search",
    "finish_from_search",
    "brute_force_winding",
    "mesh_sdf_reference",
]

#: Number of (point, triangle) pairs evaluated at once by the reference search.
#: About 1 MiB per float32 temporary, so that the ~40 temporaries stay in cache.
DEFAULT_CHUNK_ELEMENTS = 1 << 18


def _dot(x: Tensor, y: Tensor) -> Tensor:
    return (x * y).sum(-1)


def _safe(den: Tensor) -> Tensor:
    """Replace exact zeros in a denominator by one (the branch is then unused)."""
    return torch.where(den == 0, torch.ones_like(den), den)


def _override(
    weights: tuple[Tensor, Tensor, Tensor], region: Tensor, values: tuple[Tensor, Tensor, Tensor]
) -> tuple[Tensor, Tensor, Tensor]:
    """Barycentric weights with ``values`` where ``region`` holds, ``weights`` elsewhere.

    Args:
        weights: the current ``(wa, wb, wc)``.
        region: where the Voronoi region applies (boolean).
        values: the region's ``(wa, wb, wc)``.

    Returns:
        The new ``(wa, wb, wc)``.

    Shape:
        - all tensors: ``(...)``, broadcast against each other
    """
    return (torch.where(region, values[0], weights[0]), torch.where(region, values[1], weights[1]),
            torch.where(region, values[2], weights[2]))


def closest_point_on_triangle(p: Tensor, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """Barycentric coordinates of the point of triangle ``abc`` closest to ``p``.

    Ericson's Voronoi-region test, vectorised with ``torch.where`` so it is
    differentiable almost everywhere (all denominators are guarded, so no NaN
    reaches the gradient, also for degenerate triangles).

    Args:
        p: query points.
        a: first corners.
        b: second corners.
        c: third corners (all four broadcast against each other).

    Returns:
        Barycentric coordinates ``(wa, wb, wc)`` that sum to one; the closest
        point is ``wa * a + wb * b + wc * c``.

    Shape:
        - p, a, b, c: ``(..., 3)``
        - output: ``(..., 3)``
    """
    fn = "closest_point_on_triangle"
    for name, x in (("p", p), ("a", a), ("b", b), ("c", c)):
        check_shape(x, "... 3", name=name, fn=fn)
        check_floating(x, name=name, fn=fn)
    try:
        torch.broadcast_shapes(p.shape, a.shape, b.shape, c.shape)
    except RuntimeError:
        raise ShapeError(
            f"{fn}(): arguments 'p', 'a', 'b', 'c' expected shapes that broadcast against each other, got "
            f"{tuple(p.shape)}, {tuple(a.shape)}, {tuple(b.shape)}, {tuple(c.shape)}"
        ) from None
    return _closest_point_on_triangle(p, a, b, c)


def _closest_point_on_triangle(p: Tensor, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """:func:`closest_point_on_triangle` without the input checks (inputs validated by the caller)."""
    ab = b - a
    ac = c - a
    ap = p - a
    d1 = _dot(ab, ap)
    d2 = _dot(ac, ap)
    bp = p - b
    d3 = _dot(ab, bp)
    d4 = _dot(ac, bp)
    cp = p - c
    d5 = _dot(ab, cp)
    d6 = _dot(ac, cp)
    vc = d1 * d4 - d3 * d2
    vb = d5 * d2 - d1 * d6
    va = d3 * d6 - d5 * d4
    one = torch.ones_like(d1)
    zero = torch.zeros_like(d1)

    # Interior of the face (the default, lowest priority).
    denom = _safe(va + vb + vc)
    v_in = vb / denom
    w_in = vc / denom
    w = (one - v_in - w_in, v_in, w_in)
    # Edge BC.
    e_bc = (d4 - d3) + (d5 - d6)
    t_bc = (d4 - d3) / _safe(e_bc)
    w = _override(w, (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0), (zero, one - t_bc, t_bc))
    # Edge AC.
    t_ac = d2 / _safe(d2 - d6)
    w = _override(w, (vb <= 0) & (d2 >= 0) & (d6 <= 0), (one - t_ac, zero, t_ac))
    # Vertex C.
    w = _override(w, (d6 >= 0) & (d5 <= d6), (zero, zero, one))
    # Edge AB.
    t_ab = d1 / _safe(d1 - d3)
    w = _override(w, (vc <= 0) & (d1 >= 0) & (d3 <= 0), (one - t_ab, t_ab, zero))
    # Vertex B.
    w = _override(w, (d3 >= 0) & (d4 <= d3), (zero, one, zero))
    # Vertex A.
    w = _override(w, (d1 <= 0) & (d2 <= 0), (one, zero, zero))
    # Degenerate triangles (a segment or a point, or a sliver whose area is lost to rounding) have no
    # consistent regions: the nearest point of their three edges (highest priority).
    cross = torch.linalg.cross(ab, ac, dim=-1)
    degenerate = sliver(_dot(cross, cross), _dot(ab, ab), _dot(ac, ac))
    if bool(degenerate.any()):
        w = _override(w, degenerate, _segments_closest(p, a, b, c))
    return torch.stack(w, dim=-1)


def _segments_closest(p: Tensor, a: Tensor, b: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Barycentric weights of the point of segments ``ab``, ``ac``, ``bc`` nearest to ``p`` (first on ties)."""
    zero = torch.zeros_like(p[..., 0])
    best = best_d = None
    for start, end, pick in ((a, b, (0, 1)), (a, c, (0, 2)), (b, c, (1, 2))):
        e = end - start
        t = (_dot(p - start, e) / _safe(_dot(e, e))).clamp(0, 1)
        t = torch.where(_dot(e, e) == 0, zero, t)
        q = p - start - t.unsqueeze(-1) * e
        d = _dot(q, q)
        weights = [zero, zero, zero]
        weights[pick[0]], weights[pick[1]] = 1 - t, t
        if best is None:
            best, best_d = tuple(weights), d
        else:
            closer = d < best_d
            best = _override(best, closer, tuple(weights))
            best_d = torch.where(closer, d, best_d)
    return best


def _triangle_table(vertices: Tensor, faces: Tensor) -> dict[str, Tensor]:
    """Per-triangle constants of the search, each ``(B, 1, T)`` (or ``(B, 1, T, 3)``)."""
    tri = vertices[:, faces]  # (B, T, 3 corners, 3 xyz)
    a = tri[:, :, 0]
    e0 = tri[:, :, 1] - a
    e1 = tri[:, :, 2] - a
    d00 = _dot(e0, e0)
    d01 = _dot(e0, e1)
    d11 = _dot(e1, e1)
    e2 = e1 - e0
    d22 = _dot(e2, e2)
    normal = torch.linalg.cross(e0, e1, dim=-1)  # length = twice the area
    det = d00 * d11 - d01 * d01
    return {
        "a": a.unsqueeze(1),
        "normal": normal.unsqueeze(1),
        "d00": d00.unsqueeze(1),
        "d01": d01.unsqueeze(1),
        "d11": d11.unsqueeze(1),
        "d22": d22.unsqueeze(1),
        "e0": e0.unsqueeze(1),
        "e1": e1.unsqueeze(1),
        "inv_det": (1.0 / _safe(det)).unsqueeze(1),
        "inv_nn": (1.0 / _safe(_dot(normal, normal))).unsqueeze(1),
        "inv_d00": (1.0 / _safe(d00)).unsqueeze(1),
        "inv_d11": (1.0 / _safe(d11)).unsqueeze(1),
        "inv_d22": (1.0 / _safe(d22)).unsqueeze(1),
        "degenerate": ((det <= 0) | sliver(_dot(normal, normal), d00, d11)).unsqueeze(1),
    }


def _search_chunk(p: Tensor, tab: dict[str, Tensor], with_winding: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    """Closest triangle (and winding number) for a chunk of points ``p`` (B, Qc, 3)."""
    d = p.unsqueeze(2) - tab["a"]  # (B, Qc, T, 3)
    dd = _dot(d, d)
    de0 = _dot(d, tab["e0"])
    de1 = _dot(d, tab["e1"])
    dn = _dot(d, tab["normal"])
    d00, d01, d11, d22 = tab["d00"], tab["d01"], tab["d11"], tab["d22"]

    # Projection into the plane: inside when its barycentric coordinates are >= 0.
    v = (d11 * de0 - d01 * de1) * tab["inv_det"]
    w = (d00 * de1 - d01 * de0) * tab["inv_det"]
    inside = (v >= 0) & (w >= 0) & (v + w <= 1) & ~tab["degenerate"]
    plane_sq = dn * dn * tab["inv_nn"]
    # Segment AB: d.e0 / |e0|^2 clamped; |d - t e0|^2 expanded.
    t = (de0 * tab["inv_d00"]).clamp(0, 1)
    best = dd - t * (2 * de0 - t * d00)
    # Segment AC.
    t = (de1 * tab["inv_d11"]).clamp(0, 1)
    best = torch.minimum(best, dd - t * (2 * de1 - t * d11))
    # Segment BC, relative to b: d' = d - e0, e2 = e1 - e0.
    dbb = dd - 2 * de0 + d00
    dbe2 = de1 - de0 - d01 + d00
    t = (dbe2 * tab["inv_d22"]).clamp(0, 1)
    best = torch.minimum(best, dbb - t * (2 * dbe2 - t * d22))
    dist_sq = torch.where(inside, plane_sq, best).clamp_min(0)
    dist_sq, index = dist_sq.min(dim=2)
    if not with_winding:
        return dist_sq, index, None

    # Solid angle of every triangle seen from p (corners relative to p: -d, e0 - d, e1 - d).
    la = dd.sqrt()
    lb = dbb.clamp_min(0).sqrt()
    lc = (dd - 2 * de1 + d11).clamp_min(0).sqrt()
    numer = -dn
    denom = la * lb * lc + (dd - de0) * lc + (d01 - de0 - de1 + dd) * la + (dd - de1) * lb
    winding = torch.atan2(numer, denom).sum(dim=2) * (1.0 / (2.0 * math.pi))
    return dist_sq, index, winding


def triangle_search(
    points: Tensor,
    vertices: Tensor,
    faces: Tensor,
    *,
    with_winding: bool = True,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> tuple[Tensor, Tensor | None]:
    """Closest-triangle index and generalised winding number, brute force in chunks.

    Inputs are assumed validated (see :func:`hoimask.ops.mesh_sdf`). Runs
    without autograd; memory is ``O(B * chunk_elements)`` plus ``O(B * T)``.

    Args:
        points: query points.
        vertices: mesh vertices.
        faces: triangle corner indices into ``vertices``.
        with_winding: also compute the winding number (else ``None``).
        chunk_elements: number of (point, triangle) pairs per batch element
            evaluated at once.

    Returns:
        ``(face_index, winding)``: the index of the closest triangle (int64,
        lowest index on exact ties) and the winding number (``~1`` inside a
        closed outward-oriented mesh, ``~0`` outside).

    Shape:
        - points: ``(B, Q, 3)``; vertices: ``(B, V, 3)``; faces: ``(T, 3)``
        - outputs: ``(B, Q)`` each
    """
    B, Q, _ = points.shape
    T = faces.shape[0]
    with torch.no_grad():
        tab = _triangle_table(vertices, faces)
        step = max(1, chunk_elements // max(T, 1))
        index = torch.empty(B, Q, dtype=torch.int64, device=points.device)
        winding = points.new_empty(B, Q) if with_winding else None
        for start in range(0, Q, step):
            stop = min(Q, start + step)
            _, idx, wn = _search_chunk(points[:, start:stop], tab, with_winding)
            index[:, start:stop] = idx
            if winding is not None:
                winding[:, start:stop] = wn
    return index, winding


WindingFn = Callable[[Tensor], Tensor]


def brute_force_winding(points: Tensor, vertices: Tensor, faces: Tensor) -> WindingFn:
    """A ``winding_of(mask)`` callable computing winding numbers of the masked points by brute force.

    Shape:
        - points: ``(B, Q, 3)``; mask: ``(B, Q)`` bool; result: ``(B, Q)``
          (entries outside the mask are 0)
    """

    def winding_of(mask: Tensor) -> Tensor:
        out = points.new_zeros(mask.shape)
        count = int(mask.sum(dim=1).max()) if mask.numel() else 0
        if count == 0:
            return out
        # Masked points of every batch element first (stable), padded to the largest count: one
        # batched search instead of one per batch element.
        order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :count]  # (B, M)
        sub = torch.gather(points, 1, order.unsqueeze(-1).expand(-1, -1, 3))  # (B, M, 3)
        winding = triangle_search(sub, vertices, faces)[1]  # (B, M)
        keep = torch.gather(mask, 1, order)
        # ``order`` holds distinct indices per row, so the scatter writes every entry once.
        return out.scatter_(1, order, torch.where(keep, winding, torch.zeros_like(winding)))

    return winding_of


def _closest_triangles(vertices: Tensor, faces: Tensor, face_index: Tensor) -> Tensor:
    """Corners of triangle ``face_index`` of every point: ``(B, Q, 3 corners, 3 xyz)`` (differentiable)."""
    corner = faces[face_index]  # (B, Q, 3) vertex ids
    return torch.gather(
        vertices.unsqueeze(1).expand(-1, corner.shape[1], -1, -1),
        2,
        corner.unsqueeze(-1).expand(-1, -1, -1, 3),
    )


def finish_from_search(
    points: Tensor,
    vertices: Tensor,
    faces: Tensor,
    face_index: Tensor,
    winding_of: WindingFn,
) -> tuple[Tensor, Tensor]:
    """Signed distance and barycentric coordinates from a search result.

    Differentiable w.r.t. ``points`` and ``vertices`` (the index and the sign
    are piecewise constant). Shared by every search (brute force, clustered,
    Triton). The sign comes from :func:`hoimask.ops.mesh_sdf.sign.pseudo_normal_sign`
    and, for points whose closest feature touches an open boundary, from the
    winding number (inside when ``|w| > 0.5``).

    Args:
        points: query points.
        vertices: mesh vertices.
        faces: triangles.
        face_index: closest triangle per point.
        winding_of: maps a ``(B, Q)`` bool mask to winding numbers of the
            masked points (other entries are ignored).

    Returns:
        ``(sdf, barycentric)``: signed distance (negative inside) and the
        barycentric coordinates of the closest point on triangle ``face_index``.

    Shape:
        - points: ``(B, Q, 3)``; vertices: ``(B, V, 3)``; faces: ``(T, 3)``
        - face_index: ``(B, Q)``
        - sdf: ``(B, Q)``; barycentric: ``(B, Q, 3)``
    """
    tri = _closest_triangles(vertices, faces, face_index)  # (B, Q, 3 corners, 3 xyz)
    bary = _closest_point_on_triangle(points, tri[..., 0, :], tri[..., 1, :], tri[..., 2, :])
    closest = (bary.unsqueeze(-1) * tri).sum(-2)
    diff = points - closest
    dist_sq = _dot(diff, diff)
    # sqrt with a zero-safe gradient: at the surface the gradient is defined as 0.
    positive = dist_sq > 0
    dist = torch.where(positive, _safe(dist_sq).sqrt(), torch.zeros_like(dist_sq))
    with torch.no_grad():
        topology = mesh_topology(faces, vertices.shape[1])
        sign, boundary = pseudo_normal_sign(
            points.detach(), closest.detach(), vertices.detach(), faces, face_index, bary.detach(), topology
        )
        if bool(boundary.any()):
            winding = winding_of(boundary)
            sign = torch.where(boundary, torch.where(winding.abs() > 0.5, -1.0, 1.0).to(sign.dtype), sign)
    return sign * dist, bary


def closest_points_from_barycentric(vertices: Tensor, faces: Tensor, face_index: Tensor, bary: Tensor) -> Tensor:
    """Closest points ``sum_i bary_i * v_i`` with the barycentric weights held fixed.

    Differentiable w.r.t. ``vertices`` only: the point moves with the surface.

    Shape:
        - vertices: ``(B, V, 3)``; faces: ``(T, 3)``; face_index: ``(B, Q)``;
          bary: ``(B, Q, 3)``; output: ``(B, Q, 3)``
    """
    return (bary.detach().unsqueeze(-1) * _closest_triangles(vertices, faces, face_index)).sum(-2)


def mesh_sdf_reference(
    points: Tensor,
    vertices: Tensor,
    faces: Tensor,
    *,
    return_index: bool = False,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> Tensor | tuple[Tensor, Tensor, Tensor]:
    """Signed distance from points to a triangle mesh, in pure torch (reference).

    Same contract and validation as :func:`hoimask.ops.mesh_sdf`, but computed
    with plain torch operations and differentiated by autograd; the custom op
    is tested against it.

    Args:
        points: query points in metres.
        vertices: mesh vertices, one mesh per batch element.
        faces: triangles shared by the batch (int64 or int32 indices).
        return_index: also return the closest face index and closest point.
        chunk_elements: (point, triangle) pairs evaluated at once per batch
            element; bounds the memory of the search.

    Returns:
        ``sdf`` (negative inside), or ``(sdf, face_index, closest_point)`` when
        ``return_index`` is true.

    Shape:
        - points: ``(B, Q, 3)``; vertices: ``(B, V, 3)``; faces: ``(T, 3)``
        - sdf: ``(B, Q)``; face_index: ``(B, Q)`` int64; closest_point: ``(B, Q, 3)``

    Example:
        >>> from hoimask.sdf.meshes import icosphere
        >>> v, f = icosphere(3)
        >>> p = torch.tensor([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]], dtype=v.dtype)
        >>> mesh_sdf_reference(p, v[None], f).round(decimals=2)
        tensor([[-1.,  1.]], dtype=torch.float64)
    """
    from .op import validate_mesh_sdf_inputs

    faces = validate_mesh_sdf_inputs(points, vertices, faces, fn="mesh_sdf_reference")
    check_int(chunk_elements, name="chunk_elements", low=1, fn="mesh_sdf_reference")
    index, _ = triangle_search(points, vertices, faces, with_winding=False, chunk_elements=chunk_elements)
    sdf, bary = finish_from_search(points, vertices, faces, index, brute_force_winding(points, vertices, faces))
    if not return_index:
        return sdf
    return sdf, index, closest_points_from_barycentric(vertices, faces, index, bary)
