"""Cluster-accelerated exact closest-triangle search for ``hoimask::mesh_sdf`` on CPU.

The brute-force search (``reference.triangle_search``) evaluates every
(point, triangle) pair. This search groups the triangles into ``2**L`` small,
compact clusters (recursive median splits, a balanced kd-tree over the
centroids) with an axis-aligned bounding box per cluster and per triangle
(the distance to a box is a lower bound of the distance to what it holds),
and per chunk of points:

1. in the cluster whose box is nearest, evaluates exactly the triangle whose
   box is nearest, which gives an upper bound ``d0`` of the distance;
2. evaluates exactly every triangle whose box is at most ``d0`` away (plus a
   rounding slack), found through the clusters whose box is at most ``d0``
   away. No triangle closer than ``d0`` can be skipped, so the closest
   triangle is exact, with the same pair formula as the brute force.

The candidate (point, cluster) and (point, triangle) pairs are gathered into
sparse lists, so the work per point is the handful of triangles around it
rather than the whole mesh. Large meshes (at least ``GROUP_MIN_CLUSTERS``
clusters, e.g. a 20k-triangle YCB model) add one level above the clusters:
groups of consecutive clusters (subtrees of the kd-tree) with their own boxes,
so a point is compared with every group box and only with the cluster boxes of
the groups within ``d0``, instead of with every cluster box. Step 1 then takes
the nearest box within the nearest group (still an upper bound) and the result
is unchanged. The sign (pseudo-normal of the closest feature)
does not need any further pass over the mesh except for points whose closest
feature touches an open boundary.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .table import triangle_table

__all__ = ["CLUSTER_MIN_TRIANGLES", "GROUP_MIN_CLUSTERS", "clustered_search", "cluster_triangles"]

#: Below this many triangles the brute-force search is as fast and is used instead.
CLUSTER_MIN_TRIANGLES = 64
#: From this many clusters on, clusters are grouped under a second level of boxes.
GROUP_MIN_CLUSTERS = 256

_INV_DET = 16  # column of 1/det in ``triangle_table`` (0 for degenerate triangles)
_VALID = 21  # column flagging non-degenerate triangles
_NUM_USED = 21  # columns used by the pair formula


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


def _eval_pairs(px: Tensor, py: Tensor, pz: Tensor, cols: tuple[Tensor, ...]) -> Tensor:
    """Squared distance for broadcast (point, triangle) pairs.

    ``cols[k]`` is table column ``k`` broadcastable against the point
    coordinates. The arithmetic is the one of ``reference._search_chunk``.
    """
    dx = px - cols[0]
    dy = py - cols[1]
    dz = pz - cols[2]

    def dot(x0: Tensor, x1: Tensor, x2: Tensor) -> Tensor:  # dx * x0 + dy * x1 + dz * x2 in 3 passes
        return (dx * x0).addcmul_(dy, x1).addcmul_(dz, x2)

    dd = dot(dx, dy, dz)
    de0 = dot(cols[3], cols[4], cols[5])
    de1 = dot(cols[6], cols[7], cols[8])
    dn = dot(cols[9], cols[10], cols[11])
    d00, d01, d11, d22 = cols[12], cols[13], cols[14], cols[15]
    v = (d11 * de0).addcmul_(d01, de1, value=-1).mul_(cols[16])
    w = (d00 * de1).addcmul_(d01, de0, value=-1).mul_(cols[16])
    # Inside when v, w >= 0 and v + w <= 1; False for degenerate triangles (inv_det is NaN).
    inside = (torch.minimum(v, w) >= 0).logical_and_(v.add_(w) <= 1)
    plane_sq = dn.mul_(dn).mul_(cols[17])

    def segment(dot_e: Tensor, len_sq: Tensor, inv_len_sq: Tensor, base: Tensor) -> Tensor:
        # |d - t e|^2 = |d|^2 - t (2 d.e - t |e|^2) with t = clamp(d.e / |e|^2, 0, 1)
        t = (dot_e * inv_len_sq).clamp_(0, 1)
        return torch.addcmul(base, t, (t * len_sq).sub_(dot_e, alpha=2))

    best = segment(de0, d00, cols[18], dd)
    best = torch.minimum(best, segment(de1, d11, cols[19], dd))
    dbb = (dd - 2 * de0).add_(d00)  # |p - b|^2
    dbe2 = (de1 - de0).sub_(d01).add_(d00)  # (p - b).(c - b)
    best = torch.minimum(best, segment(dbe2, d22, cols[20], dbb))
    return torch.where(inside, plane_sq, best).clamp_min_(0)



def _box_lower_sq(p: Tensor, boxes: Tensor) -> Tensor:
    """Squared distance from points to boxes given by centre and half-width.

    ``boxes[..., k, :]`` holds the centres along axis ``k`` and
    ``boxes[..., 3 + k, :]`` the half-widths.

    Shape:
        - p: ``(..., 3)``; boxes: ``(..., 6, G)``; output: ``(..., G)``
    """
    out = None
    for k in range(3):
        gap = (p[..., k : k + 1] - boxes[..., k, :]).abs_().sub_(boxes[..., 3 + k, :]).clamp_min_(0)
        out = gap.mul_(gap) if out is None else out.addcmul_(gap, gap)
    return out


def _group_size(num_clusters: int, group_size: int | None) -> int:
    """Clusters per group of the upper level (1 = no grouping), a power of two dividing ``num_clusters``."""
    if group_size is None:
        if num_clusters < GROUP_MIN_CLUSTERS:
            return 1
        levels = num_clusters.bit_length() - 1
        return 1 << ((levels + 1) // 2)
    return max(1, min(int(group_size), num_clusters))


def clustered_search(
    points: Tensor,
    vertices: Tensor,
    faces: Tensor,
    *,
    cluster_size: int = 16,
    chunk_points: int = 2048,
    group_size: int | None = None,
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
        group_size: clusters per group of the upper level, a power of two
            (1: no grouping); ``None`` groups ``2**ceil(L/2)`` of the ``2**L``
            clusters when there are at least ``GROUP_MIN_CLUSTERS`` of them.

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
        S = _group_size(C, group_size)  # clusters per group; C is a power of two, so is S
        NG = C // S
        # Padding slots repeat triangle T - 1, which the median splits place in its own cluster:
        # a duplicate never changes the minimum nor the lowest index among ties.
        order = slots.clamp_max(T - 1)
        full = triangle_table(vertices, faces)[:, order]  # (B, C*G, 24)
        # One row per slot (cluster-major), NaN 1/det for degenerate triangles so that their
        # "projection inside" test is false.
        table = full[..., :_NUM_USED].contiguous()
        table[..., _INV_DET] = torch.where(
            full[..., _VALID] > 0, table[..., _INV_DET], torch.full_like(table[..., _INV_DET], math.nan)
        )
        table = table.view(B * C * G, _NUM_USED).t().contiguous()  # (21, B*C*G): gathers give contiguous columns
        face_of = order  # (C*G,) triangle id of each slot
        # Axis-aligned bounding boxes of the triangles, one row of 6 * G values per cluster
        # (centre x, y, z then half-width x, y, z, G values each; rounding in the centre form
        # is covered by the slack below); of the clusters, one row of 6 * S values per group;
        # and of the top level (the groups, or the clusters without grouping), one (B, 1, NG)
        # tensor per axis and side.
        corners = tri[:, order]  # (B, C*G, 3, 3)
        tri_lo, tri_hi = corners.amin(2), corners.amax(2)  # (B, C*G, 3)
        tri_box = torch.cat([(tri_lo + tri_hi) * 0.5, (tri_hi - tri_lo) * 0.5], dim=-1)
        tri_box = tri_box.view(B, C, G, 6).transpose(2, 3).reshape(B * C, 6 * G)
        cl_lo, cl_hi = tri_lo.view(B, C, G, 3).amin(2), tri_hi.view(B, C, G, 3).amax(2)  # (B, C, 3)
        cl_box = torch.cat([(cl_lo + cl_hi) * 0.5, (cl_hi - cl_lo) * 0.5], dim=-1)
        cl_box = cl_box.view(B, NG, S, 6).transpose(2, 3).reshape(B * NG, 6 * S)
        box_lo = cl_lo.view(B, NG, S, 3).amin(2).permute(2, 0, 1).unsqueeze(2)  # (3, B, 1, NG)
        box_hi = cl_hi.view(B, NG, S, 3).amax(2).permute(2, 0, 1).unsqueeze(2)
        scale = float(corners.abs().amax())
        slack_rel = 64 * torch.finfo(points.dtype).eps
        index = torch.empty(B, Q, dtype=torch.int64, device=points.device)
        row_base = (torch.arange(B, device=points.device) * C).view(B, 1)
        top_base = (torch.arange(B, device=points.device) * NG).view(B, 1)
        for start in range(0, Q, chunk_points):
            stop = min(Q, start + chunk_points)
            p = points[:, start:stop]  # (B, Qc, 3)
            Qc = stop - start
            # Squared distance from each point to each top-level box: a lower bound for its triangles.
            lower_sq = None
            for axis in range(3):
                x = p[..., axis].unsqueeze(-1)  # (B, Qc, 1)
                gap = torch.maximum(box_lo[axis] - x, x - box_hi[axis]).clamp_min_(0)  # (B, Qc, NG)
                lower_sq = gap * gap if lower_sq is None else lower_sq.addcmul_(gap, gap)

            # Step 1: in the nearest cluster box (within the nearest group box when grouped), the
            # triangle with the nearest box; its exact distance is an upper bound d0 of the distance.
            pflat = p.reshape(-1, 3)
            top0 = lower_sq.min(-1).indices  # (B, Qc)
            if S > 1:
                group_row = (top_base + top0).reshape(-1)  # (B * Qc,) row b * NG + group
                cl_lower = _box_lower_sq(pflat, cl_box.index_select(0, group_row).view(-1, 6, S))  # (B * Qc, S)
                first_cluster = top0.reshape(-1) * S + cl_lower.min(-1).indices
            else:
                first_cluster = top0.reshape(-1)
            first_row = (row_base + first_cluster.view(B, Qc)).reshape(-1)  # (B * Qc,) row b * C + c
            tri_lower = _box_lower_sq(pflat, tri_box.index_select(0, first_row).view(-1, 6, G))  # (B * Qc, G)
            slot0 = first_row * G + tri_lower.min(-1).indices  # row of the table, b * C * G + c * G + g
            d0_sq = _eval_pairs(*pflat.unbind(-1), table.index_select(1, slot0).unbind(0))
            # Step 2: every triangle whose box is at most d0 away (with slack for rounding in the
            # bounds, e.g. coordinates in camera space): those of the first cluster from the
            # bounds above, then those of every other cluster whose box is at most d0 away
            # (found through the group boxes at most d0 away when grouped).
            slack = slack_rel * (float(p.abs().amax()) + scale)
            bound = (d0_sq.sqrt() * (1 + 1e-6) + slack).square()  # (B * Qc,)
            pid_a, g_a = (tri_lower <= bound.unsqueeze(-1)).nonzero(as_tuple=True)
            near = lower_sq.view(-1, NG) <= bound.unsqueeze(-1)
            if S > 1:
                pid_g, gg = near.nonzero(as_tuple=True)
                groups = (pid_g // Qc) * NG + gg
                cl_lower = _box_lower_sq(pflat.index_select(0, pid_g), cl_box.index_select(0, groups).view(-1, 6, S))
                pair_g, s_b = (cl_lower <= bound.index_select(0, pid_g).unsqueeze(-1)).nonzero(as_tuple=True)
                pid_c = pid_g.index_select(0, pair_g)
                cc = gg.index_select(0, pair_g) * S + s_b
                other = cc != first_cluster.index_select(0, pid_c)
                pid_c, cc = pid_c[other], cc[other]
            else:
                near.scatter_(1, first_cluster.unsqueeze(-1), False)
                pid_c, cc = near.nonzero(as_tuple=True)
            rows = (pid_c // Qc) * C + cc
            tri_lower = _box_lower_sq(pflat.index_select(0, pid_c), tri_box.index_select(0, rows).view(-1, 6, G))
            pair, g_b = (tri_lower <= bound.index_select(0, pid_c).unsqueeze(-1)).nonzero(as_tuple=True)
            pid = torch.cat([pid_a, pid_c.index_select(0, pair)])
            slot = torch.cat([first_row.index_select(0, pid_a) * G + g_a, rows.index_select(0, pair) * G + g_b])
            dsq = _eval_pairs(*pflat.index_select(0, pid).unbind(-1), table.index_select(1, slot).unbind(0))
            best = d0_sq.clone().scatter_reduce_(0, pid, dsq, reduce="amin")
            # Lowest face index among the exact ties, over both steps.
            face = face_of.index_select(0, slot % (C * G))
            chosen = torch.where(d0_sq == best, face_of.index_select(0, slot0 % (C * G)), T)
            ties = torch.where(dsq == best.index_select(0, pid), face, T)
            chosen.scatter_reduce_(0, pid, ties, reduce="amin")
            index[:, start:stop] = chosen.view(B, Qc)
    return index
