"""Cluster-accelerated exact closest-triangle search for ``hoimask::mesh_sdf`` on CPU.

The brute-force search (``reference.triangle_search``) evaluates every
(point, triangle) pair. This search groups the triangles into ``2**L`` small,
compact clusters (recursive median splits, a balanced kd-tree over the
centroids) with an axis-aligned bounding box each, and per chunk of points:

1. evaluates exactly the cluster whose box is nearest (the distance to a box
   is a lower bound of the distance to its triangles), which gives an upper
   bound ``d0`` of the distance;
2. evaluates exactly every cluster whose lower bound is at most ``d0`` (plus
   a rounding slack). No triangle closer than ``d0`` can be skipped, so the
   closest triangle is exact, with the same pair formula as the brute force.

The exact pairs are gathered into a sparse list, so the work per point is the
handful of clusters around it rather than the whole mesh. The sign (pseudo-normal
of the closest feature) does not need any further pass over the mesh except
for points whose closest feature touches an open boundary.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .reference import triangle_table

__all__ = ["CLUSTER_MIN_TRIANGLES", "clustered_search", "cluster_triangles"]

#: Below this many triangles the brute-force search is as fast and is used instead.
CLUSTER_MIN_TRIANGLES = 64

_REAL = 22  # table column flagging real (1) vs padding (0) triangles


def cluster_triangles(centroids: Tensor, target_size: int) -> tuple[Tensor, int]:
    """Group triangles into ``2**L`` compact clusters by recursive median splits (a balanced kd-tree).

    At every level each segment is sorted along the longest axis of its
    centroids' bounding box and halved. The triangle count is padded with
    copies of the last triangle to ``2**L * G`` with ``G`` in
    ``[target_size, 2 * target_size]``; slots ``>= T`` of the returned
    permutation are padding.

    Args:
        centroids: triangle centroids.
        target_size: smallest number of triangles per cluster.

    Returns:
        ``(slots, G)``: ``slots`` holds triangle ids in cluster order, ids
        ``>= T`` mark padding (they stand for triangle ``T - 1``).

    Shape:
        - centroids: ``(T, 3)``; slots: ``(2**L * G,)`` int64
    """
    T = centroids.shape[0]
    levels = max(0, int(math.floor(math.log2(max(T / target_size, 1.0)))))
    C = 1 << levels
    G = -(-T // C)
    slots = torch.arange(C * G, device=centroids.device)
    pts = centroids[slots.clamp_max(T - 1)]
    for level in range(levels):
        seg = pts.view(1 << level, -1, 3)
        axis = (seg.amax(1) - seg.amin(1)).argmax(-1)  # (nseg,)
        key = torch.gather(seg, 2, axis.view(-1, 1, 1).expand(-1, seg.shape[1], 1)).squeeze(-1)
        order = torch.argsort(key, dim=1, stable=True)
        slots = torch.gather(slots.view(1 << level, -1), 1, order).reshape(-1)
        pts = torch.gather(seg, 1, order.unsqueeze(-1).expand(-1, -1, 3)).reshape(-1, 3)
    return slots, G


def _eval_pairs(px: Tensor, py: Tensor, pz: Tensor, col) -> Tensor:
    """Squared distance for broadcast (point, triangle) pairs (padding slots give ``inf``).

    ``col(k)`` returns table column ``k`` broadcastable against the point
    coordinates. The arithmetic is the one of ``reference._search_chunk``.
    """
    dx = px - col(0)
    dy = py - col(1)
    dz = pz - col(2)
    dd = dx * dx + dy * dy + dz * dz
    de0 = dx * col(3) + dy * col(4) + dz * col(5)
    de1 = dx * col(6) + dy * col(7) + dz * col(8)
    dn = dx * col(9) + dy * col(10) + dz * col(11)
    d00, d01, d11, d22 = col(12), col(13), col(14), col(15)
    v = (d11 * de0 - d01 * de1) * col(16)
    w = (d00 * de1 - d01 * de0) * col(16)
    inside = (v >= 0) & (w >= 0) & (v + w <= 1) & (col(21) > 0)
    plane_sq = dn * dn * col(17)
    t = (de0 * col(18)).clamp(0, 1)
    best = dd - t * (2 * de0 - t * d00)
    t = (de1 * col(19)).clamp(0, 1)
    best = torch.minimum(best, dd - t * (2 * de1 - t * d11))
    dbb = dd - 2 * de0 + d00
    dbe2 = de1 - de0 - d01 + d00
    t = (dbe2 * col(20)).clamp(0, 1)
    best = torch.minimum(best, dbb - t * (2 * dbe2 - t * d22))
    dist_sq = torch.where(inside, plane_sq, best).clamp_min(0)
    return torch.where(col(_REAL) > 0, dist_sq, torch.full_like(dist_sq, math.inf))


def clustered_search(
    points: Tensor,
    vertices: Tensor,
    faces: Tensor,
    *,
    cluster_size: int = 16,
    chunk_points: int = 512,
) -> Tensor:
    """Index of the closest triangle of every point (exact) using triangle clusters.

    Same result as ``reference.triangle_search(..., with_winding=False)``
    (inputs assumed validated); used for CPU tensors when the mesh has at
    least ``CLUSTER_MIN_TRIANGLES`` triangles.

    Args:
        points: query points.
        vertices: mesh vertices.
        faces: triangles (int64).
        cluster_size: smallest number of triangles per cluster (see :func:`cluster_triangles`).
        chunk_points: points per batch element processed at once.

    Returns:
        The closest triangle per point (int64; lowest index on exact ties).

    Shape:
        - points: ``(B, Q, 3)``; vertices: ``(B, V, 3)``; faces: ``(T, 3)``
        - output: ``(B, Q)``
    """
    B, Q, _ = points.shape
    T = faces.shape[0]
    with torch.no_grad():
        tri = vertices[:, faces]  # (B, T, 3, 3)
        centroid = tri.mean(2)
        slots, G = cluster_triangles(centroid.mean(0), cluster_size)
        C = slots.shape[0] // G
        real = (slots < T).to(points.dtype)
        order = slots.clamp_max(T - 1)
        table = triangle_table(vertices, faces)[:, order]  # (B, C*G, 24)
        table[..., _REAL] = real
        tab = table.view(B, C, G, -1).permute(0, 1, 3, 2).contiguous()  # (B, C, 24, G)
        face_of = order.view(C, G)
        # Axis-aligned bounding boxes of the clusters.
        corners = tri[:, order].reshape(B, C, G * 3, 3)
        box_lo = corners.amin(2).unsqueeze(1)  # (B, 1, C, 3)
        box_hi = corners.amax(2).unsqueeze(1)
        scale = float(corners.abs().amax())
        index = torch.empty(B, Q, dtype=torch.int64, device=points.device)
        batch_ids = torch.arange(B, device=points.device)
        for start in range(0, Q, chunk_points):
            stop = min(Q, start + chunk_points)
            p = points[:, start:stop]  # (B, Qc, 3)
            Qc = stop - start
            q = p.unsqueeze(2)  # (B, Qc, 1, 3)
            gap = torch.maximum(box_lo - q, q - box_hi).clamp_min(0)  # (B, Qc, C, 3)
            lower = gap.norm(dim=-1)  # distance from the point to each cluster's box

            # Step 1: exact distance to the cluster with the smallest lower bound -> upper bound d0.
            first = lower.argmin(-1)  # (B, Qc)
            rows = tab[batch_ids.view(B, 1), first]  # (B, Qc, 24, G)
            dsq = _eval_pairs(p[..., 0:1], p[..., 1:2], p[..., 2:3], lambda k, rows=rows: rows[..., k, :])
            d0 = dsq.amin(-1).sqrt()  # (B, Qc)
            # Step 2: every cluster that may hold a triangle closer than d0.
            # Slack for rounding in the bounds (coordinates far from the origin, e.g. camera space).
            slack = 64 * torch.finfo(p.dtype).eps * (float(p.abs().amax()) + scale)
            exact = lower <= (d0.unsqueeze(-1) * (1 + 1e-6) + slack)
            bq, qq, cc = exact.nonzero(as_tuple=True)
            rows = tab[bq, cc]  # (P, 24, G)
            pp = p[bq, qq]  # (P, 3)
            dsq = _eval_pairs(pp[:, 0:1], pp[:, 1:2], pp[:, 2:3], lambda k, rows=rows: rows[:, k, :])
            pair_min, pair_arg = dsq.min(-1)  # (P,)
            pid = bq * Qc + qq
            best = torch.full((B * Qc,), math.inf, dtype=points.dtype, device=points.device)
            best.scatter_reduce_(0, pid, pair_min, reduce="amin")
            is_best = pair_min == best[pid]
            face = face_of[cc, pair_arg]
            big = torch.full_like(face, T)
            chosen = torch.full((B * Qc,), T, dtype=torch.int64, device=points.device)
            chosen.scatter_reduce_(0, pid, torch.where(is_best, face, big), reduce="amin")
            index[:, start:stop] = chosen.view(B, Qc)
    return index
