"""Triton kernel for the search step of ``hoimask::mesh_sdf``.

One program handles ``BLOCK_Q`` query points of one batch element and sweeps
over the triangles in tiles of ``BLOCK_T``. For every (point, triangle) pair it
computes the squared point-triangle distance and the triangle's solid angle
with the same shared dot products as the reference search
(:mod:`hoimask.ops.mesh_sdf.reference`), keeping a running minimum with its
triangle index and a running sum of solid angles. The exact distance, sign and
barycentric coordinates are then finished in torch (``finish_from_search``),
so the kernel only has to agree with the reference on *which* triangle is
closest and on the winding number.

Triton has no ``atan2``; :func:`_atan2` uses an odd minimax-style polynomial
for ``atan`` on [0, 1] (max error 4e-8 rad) with octant reduction.

This module imports Triton; it is only imported when Triton is importable.
Under ``TRITON_INTERPRET=1`` the launcher runs on CPU tensors (used by tests).
"""

from __future__ import annotations

import torch
from torch import Tensor

try:  # pragma: no cover - exercised only where triton is installed
    import triton
    import triton.language as tl

    TRITON_AVAILABLE = True
except ImportError:  # pragma: no cover
    TRITON_AVAILABLE = False

from .table import TABLE_COLUMNS, triangle_table

__all__ = ["TRITON_AVAILABLE", "mesh_sdf_search_triton"]


if TRITON_AVAILABLE:

    @triton.jit
    def _atan2(y, x):
        ax = tl.abs(x)
        ay = tl.abs(y)
        hi = tl.maximum(ax, ay)
        lo = tl.minimum(ax, ay)
        t = lo / tl.where(hi == 0, 1.0, hi)
        s = t * t
        r = -0.00407293
        r = r * s + 0.02194531
        r = r * s - 0.05606139
        r = r * s + 0.09656133
        r = r * s - 0.13915757
        r = r * s + 0.19948501
        r = r * s - 0.33330106
        r = r * s + 0.99999944
        r = r * t
        r = tl.where(ay > ax, 1.5707963267948966 - r, r)
        r = tl.where(x < 0, 3.141592653589793 - r, r)
        r = tl.where(y < 0, -r, r)
        return r

    @triton.jit
    def _mesh_sdf_search_kernel(
        points_ptr, table_ptr, boxes_ptr, index_ptr, winding_ptr,
        Q, T, num_tiles, slack,
        NCOL: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_T: tl.constexpr, WINDING: tl.constexpr,
    ):
        pid_q = tl.program_id(0)
        pid_b = tl.program_id(1)
        offs_q = pid_q * BLOCK_Q + tl.arange(0, BLOCK_Q)
        mask_q = offs_q < Q
        pbase = points_ptr + pid_b * Q * 3 + offs_q * 3
        px = tl.load(pbase + 0, mask=mask_q, other=0.0)
        py = tl.load(pbase + 1, mask=mask_q, other=0.0)
        pz = tl.load(pbase + 2, mask=mask_q, other=0.0)
        best = tl.full([BLOCK_Q], float("inf"), px.dtype)
        best_idx = tl.zeros([BLOCK_Q], dtype=tl.int32)
        wsum = tl.zeros([BLOCK_Q], dtype=px.dtype)
        qx = px
        qy = py
        qz = pz
        px = px[:, None]
        py = py[:, None]
        pz = pz[:, None]
        tbase = table_ptr + pid_b * T * NCOL
        for t0 in range(0, T, BLOCK_T):
            if WINDING:
                need = 1
            else:
                # Skip the tile when its bounding box is farther than every point's current best.
                bb = boxes_ptr + (pid_b * num_tiles + t0 // BLOCK_T) * 6
                gx = tl.maximum(tl.maximum(tl.load(bb + 0) - qx, qx - tl.load(bb + 3)), 0.0)
                gy = tl.maximum(tl.maximum(tl.load(bb + 1) - qy, qy - tl.load(bb + 4)), 0.0)
                gz = tl.maximum(tl.maximum(tl.load(bb + 2) - qz, qz - tl.load(bb + 5)), 0.0)
                lower = tl.sqrt(gx * gx + gy * gy + gz * gz)
                near = (lower <= tl.sqrt(best) * 1.000001 + slack) & mask_q
                need = tl.sum(near.to(tl.int32), axis=0)
            if need > 0:
                best, best_idx, wsum = _tile(
                    px, py, pz, tbase, t0, T, best, best_idx, wsum, NCOL, BLOCK_T, WINDING
                )
        out = pid_b * Q + offs_q
        tl.store(index_ptr + out, best_idx.to(tl.int64), mask=mask_q)
        if WINDING:
            tl.store(winding_ptr + out, wsum * 0.15915494309189535, mask=mask_q)

    @triton.jit
    def _tile(px, py, pz, tbase, t0, T, best, best_idx, wsum,
              NCOL: tl.constexpr, BLOCK_T: tl.constexpr, WINDING: tl.constexpr):
        """One tile of BLOCK_T triangles against the block's points: running min, argmin, solid angles."""
        offs_t = t0 + tl.arange(0, BLOCK_T)
        mask_t = offs_t < T
        row = tbase + offs_t * NCOL
        ax = tl.load(row + 0, mask=mask_t, other=0.0)[None, :]
        ay = tl.load(row + 1, mask=mask_t, other=0.0)[None, :]
        az = tl.load(row + 2, mask=mask_t, other=0.0)[None, :]
        e0x = tl.load(row + 3, mask=mask_t, other=0.0)[None, :]
        e0y = tl.load(row + 4, mask=mask_t, other=0.0)[None, :]
        e0z = tl.load(row + 5, mask=mask_t, other=0.0)[None, :]
        e1x = tl.load(row + 6, mask=mask_t, other=0.0)[None, :]
        e1y = tl.load(row + 7, mask=mask_t, other=0.0)[None, :]
        e1z = tl.load(row + 8, mask=mask_t, other=0.0)[None, :]
        nx = tl.load(row + 9, mask=mask_t, other=0.0)[None, :]
        ny = tl.load(row + 10, mask=mask_t, other=0.0)[None, :]
        nz = tl.load(row + 11, mask=mask_t, other=0.0)[None, :]
        d00 = tl.load(row + 12, mask=mask_t, other=0.0)[None, :]
        d01 = tl.load(row + 13, mask=mask_t, other=0.0)[None, :]
        d11 = tl.load(row + 14, mask=mask_t, other=0.0)[None, :]
        d22 = tl.load(row + 15, mask=mask_t, other=0.0)[None, :]
        inv_det = tl.load(row + 16, mask=mask_t, other=0.0)[None, :]
        inv_nn = tl.load(row + 17, mask=mask_t, other=0.0)[None, :]
        inv_d00 = tl.load(row + 18, mask=mask_t, other=0.0)[None, :]
        inv_d11 = tl.load(row + 19, mask=mask_t, other=0.0)[None, :]
        inv_d22 = tl.load(row + 20, mask=mask_t, other=0.0)[None, :]
        valid = tl.load(row + 21, mask=mask_t, other=0.0)[None, :]

        dx = px - ax
        dy = py - ay
        dz = pz - az
        dd = dx * dx + dy * dy + dz * dz
        de0 = dx * e0x + dy * e0y + dz * e0z
        de1 = dx * e1x + dy * e1y + dz * e1z
        dn = dx * nx + dy * ny + dz * nz
        v = (d11 * de0 - d01 * de1) * inv_det
        w = (d00 * de1 - d01 * de0) * inv_det
        inside = (v >= 0) & (w >= 0) & (v + w <= 1) & (valid > 0)
        plane_sq = dn * dn * inv_nn
        t = tl.minimum(tl.maximum(de0 * inv_d00, 0.0), 1.0)
        seg = dd - t * (2 * de0 - t * d00)
        t = tl.minimum(tl.maximum(de1 * inv_d11, 0.0), 1.0)
        seg = tl.minimum(seg, dd - t * (2 * de1 - t * d11))
        dbb = dd - 2 * de0 + d00
        dbe2 = de1 - de0 - d01 + d00
        t = tl.minimum(tl.maximum(dbe2 * inv_d22, 0.0), 1.0)
        seg = tl.minimum(seg, dbb - t * (2 * dbe2 - t * d22))
        dist_sq = tl.maximum(tl.where(inside, plane_sq, seg), 0.0)
        dist_sq = tl.where(mask_t[None, :], dist_sq, float("inf"))
        tile_min, tile_idx = tl.min(dist_sq, axis=1, return_indices=True, return_indices_tie_break_left=True)
        better = tile_min < best
        best = tl.where(better, tile_min, best)
        best_idx = tl.where(better, tile_idx + t0, best_idx)
        if WINDING:
            la = tl.sqrt(dd)
            lb = tl.sqrt(tl.maximum(dbb, 0.0))
            lc = tl.sqrt(tl.maximum(dd - 2 * de1 + d11, 0.0))
            denom = la * lb * lc + (dd - de0) * lc + (d01 - de0 - de1 + dd) * la + (dd - de1) * lb
            omega = _atan2(-dn, denom)
            wsum += tl.sum(tl.where(mask_t[None, :], omega, 0.0), axis=1)
        return best, best_idx, wsum


def _morton_codes(points: Tensor) -> Tensor:
    """30-bit Morton codes of points (10 bits per axis in their bounding box), per batch element.

    Shape:
        - points: ``(B, Q, 3)``; output: ``(B, Q)`` int64
    """
    lo = points.amin(1, keepdim=True)
    span = (points.amax(1, keepdim=True) - lo).clamp_min(torch.finfo(points.dtype).tiny)
    q = ((points - lo) / span * 1023).round().long().clamp(0, 1023)

    def spread(x: Tensor) -> Tensor:
        x = (x | (x << 16)) & 0x030000FF
        x = (x | (x << 8)) & 0x0300F00F
        x = (x | (x << 4)) & 0x030C30C3
        return (x | (x << 2)) & 0x09249249

    return spread(q[..., 0]) | (spread(q[..., 1]) << 1) | (spread(q[..., 2]) << 2)


def mesh_sdf_search_triton(
    points: Tensor,
    vertices: Tensor,
    faces: Tensor,
    *,
    with_winding: bool = True,
    block_q: int = 64,
    block_t: int = 32,
) -> tuple[Tensor, Tensor | None]:
    """Closest triangle (and winding number) with the Triton kernel.

    Drop-in replacement of :func:`hoimask.ops.mesh_sdf.reference.triangle_search`
    (inputs assumed validated). Runs on CUDA tensors, or on CPU tensors when the
    process was started with ``TRITON_INTERPRET=1``.

    Without the winding number the sweep culls: triangles are put in kd-tree
    order (:func:`hoimask.ops.mesh_sdf.clustered.cluster_triangles`) so that
    each tile of ``block_t`` triangles is compact, the points are sorted along a
    Morton curve so that each block of ``block_q`` points is compact, and a
    tile is skipped when its bounding box is farther than every point's
    current best distance. The result is still exact; on exact ties any of the
    tied triangles may be returned.

    Args:
        points: query points.
        vertices: mesh vertices.
        faces: triangles (int64).
        with_winding: also compute the winding number of every point (no culling).
        block_q: query points per program (power of two).
        block_t: triangles per tile (power of two).

    Returns:
        ``(face_index, winding)``: int64 closest-triangle index and the
        generalised winding number (``None`` without ``with_winding``).

    Shape:
        - points: ``(B, Q, 3)``; vertices: ``(B, V, 3)``; faces: ``(T, 3)``
        - outputs: ``(B, Q)`` each
    """
    if not TRITON_AVAILABLE:  # pragma: no cover
        raise RuntimeError("mesh_sdf_search_triton(): triton is not installed")
    from .clustered import cluster_triangles

    B, Q, _ = points.shape
    T = faces.shape[0]
    with torch.no_grad():
        pts = points.detach()
        verts = vertices.detach()
        perm = torch.arange(T, device=faces.device)
        order_q = None
        if not with_winding:
            centroids = verts[:, faces].mean(2).mean(0)
            slots, _ = cluster_triangles(centroids, block_t)
            perm = slots[slots < T]
            order_q = torch.argsort(_morton_codes(pts), dim=1)
            pts = torch.gather(pts, 1, order_q.unsqueeze(-1).expand(-1, -1, 3))
        tri_faces = faces[perm]
        table = triangle_table(verts, tri_faces)
        num_tiles = -(-T // block_t)
        corners = verts[:, tri_faces]  # (B, T, 3, 3)
        pad = num_tiles * block_t - T
        if pad:
            corners = torch.cat([corners, corners[:, -1:].expand(-1, pad, -1, -1)], dim=1)
        corners = corners.view(B, num_tiles, block_t * 3, 3)
        boxes = torch.cat([corners.amin(2), corners.amax(2)], dim=-1).contiguous()  # (B, tiles, 6)
        slack = 64 * torch.finfo(pts.dtype).eps * (float(pts.abs().amax()) + float(corners.abs().amax())) if Q else 0.0
        pts = pts.contiguous()
        index = torch.empty(B, Q, dtype=torch.int64, device=points.device)
        winding = points.new_empty(B, Q) if with_winding else index.new_empty(0).to(points.dtype)
        if Q > 0:
            grid = (triton.cdiv(Q, block_q), B)
            _mesh_sdf_search_kernel[grid](
                pts, table, boxes, index, winding, Q, T, num_tiles, slack,
                NCOL=TABLE_COLUMNS, BLOCK_Q=block_q, BLOCK_T=block_t, WINDING=with_winding,
            )
        index = perm[index]
        if order_q is not None:
            index = torch.empty_like(index).scatter_(1, order_q, index)
    return index, (winding if with_winding else None)
