"""Numba kernels of the CPU bounding-volume hierarchy's queries (imported only when numba is importable).

Closest triangles, pseudo-normal and winding-number signs, Morton order; the
tree itself is built by :mod:`hoimask.ops.mesh_sdf._bvh_build`. Everything
here works on float64 NumPy arrays in the BVH's triangle order (see
:mod:`hoimask.ops.mesh_sdf.bvh` for the data layout and the algorithms).
The kernels are compiled once (``cache=True`` keeps the machine code on disk)
and release the GIL, so that ranges of query points can run on several
threads at once.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._bvh_build import _INF, _JIT
from .table import SLIVER_EPS

_TINY = np.finfo(np.float64).tiny
_STACK = 128  # traversal stack; the tree is at most MAX_DEPTH deep (bvh.py rebuilds deeper ones without groups)
MAX_DEPTH = _STACK // 2 - 1  # a traversal holds at most two entries per level
_ABS_SLACK = (64 * np.finfo(np.float64).eps) ** 2
_SLIVER = (SLIVER_EPS * np.finfo(np.float64).eps) ** 2


@njit(**_JIT)
def pseudo_normals(tri, faces, face_edge, num_edges, num_vertices):
    """Unit face normals, edge pseudo-normals and angle-weighted vertex pseudo-normals (input triangle order)."""
    T = tri.shape[0]
    face_n = np.zeros((T, 3))
    edge_n = np.zeros((num_edges, 3))
    vert_n = np.zeros((num_vertices, 3))
    for t in range(T):
        e0x, e0y, e0z = tri[t, 1, 0] - tri[t, 0, 0], tri[t, 1, 1] - tri[t, 0, 1], tri[t, 1, 2] - tri[t, 0, 2]
        e1x, e1y, e1z = tri[t, 2, 0] - tri[t, 0, 0], tri[t, 2, 1] - tri[t, 0, 1], tri[t, 2, 2] - tri[t, 0, 2]
        nx = e0y * e1z - e0z * e1y
        ny = e0z * e1x - e0x * e1z
        nz = e0x * e1y - e0y * e1x
        norm = max(math.sqrt(nx * nx + ny * ny + nz * nz), _TINY)
        if _degenerate(nx, ny, nz, e0x * e0x + e0y * e0y + e0z * e0z, e1x * e1x + e1y * e1y + e1z * e1z):
            nx, ny, nz = 0.0, 0.0, 0.0  # its direction would be rounding noise
        else:
            nx, ny, nz = nx / norm, ny / norm, nz / norm
        face_n[t, 0], face_n[t, 1], face_n[t, 2] = nx, ny, nz
        for k in range(3):
            e = face_edge[t, k]
            edge_n[e, 0] += nx
            edge_n[e, 1] += ny
            edge_n[e, 2] += nz
            k1, k2 = (k + 1) % 3, (k + 2) % 3
            ux, uy, uz = tri[t, k1, 0] - tri[t, k, 0], tri[t, k1, 1] - tri[t, k, 1], tri[t, k1, 2] - tri[t, k, 2]
            wx, wy, wz = tri[t, k2, 0] - tri[t, k, 0], tri[t, k2, 1] - tri[t, k, 1], tri[t, k2, 2] - tri[t, k, 2]
            den = max(math.sqrt(ux * ux + uy * uy + uz * uz) * math.sqrt(wx * wx + wy * wy + wz * wz), _TINY)
            angle = math.acos(min(max((ux * wx + uy * wy + uz * wz) / den, -1.0), 1.0))
            vid = faces[t, k]
            vert_n[vid, 0] += angle * nx
            vert_n[vid, 1] += angle * ny
            vert_n[vid, 2] += angle * nz
    return face_n, edge_n, vert_n


@njit(**_JIT)
def _safe(den):
    return 1.0 if den == 0 else den


@njit(**_JIT)
def closest_on_triangle(px, py, pz, tri, t):
    """Ericson's closest point on triangle ``t`` (same region rules as the torch reference).

    Returns ``(squared distance, u, v, w)`` with exact zeros/ones on edges and vertices.
    """
    ax, ay, az = tri[t, 0, 0], tri[t, 0, 1], tri[t, 0, 2]
    bx, by, bz = tri[t, 1, 0], tri[t, 1, 1], tri[t, 1, 2]
    cx, cy, cz = tri[t, 2, 0], tri[t, 2, 1], tri[t, 2, 2]
    abx, aby, abz = bx - ax, by - ay, bz - az
    acx, acy, acz = cx - ax, cy - ay, cz - az
    apx, apy, apz = px - ax, py - ay, pz - az
    d1 = abx * apx + aby * apy + abz * apz
    d2 = acx * apx + acy * apy + acz * apz
    if d1 <= 0 and d2 <= 0:
        u, v, w = 1.0, 0.0, 0.0
    else:
        bpx, bpy, bpz = px - bx, py - by, pz - bz
        d3 = abx * bpx + aby * bpy + abz * bpz
        d4 = acx * bpx + acy * bpy + acz * bpz
        vc = d1 * d4 - d3 * d2
        if d3 >= 0 and d4 <= d3:
            u, v, w = 0.0, 1.0, 0.0
        elif vc <= 0 and d1 >= 0 and d3 <= 0:
            s = d1 / _safe(d1 - d3)
            u, v, w = 1.0 - s, s, 0.0
        else:
            cpx, cpy, cpz = px - cx, py - cy, pz - cz
            d5 = abx * cpx + aby * cpy + abz * cpz
            d6 = acx * cpx + acy * cpy + acz * cpz
            vb = d5 * d2 - d1 * d6
            va = d3 * d6 - d5 * d4
            if d6 >= 0 and d5 <= d6:
                u, v, w = 0.0, 0.0, 1.0
            elif vb <= 0 and d2 >= 0 and d6 <= 0:
                s = d2 / _safe(d2 - d6)
                u, v, w = 1.0 - s, 0.0, s
            elif va <= 0 and (d4 - d3) >= 0 and (d5 - d6) >= 0:
                s = (d4 - d3) / _safe((d4 - d3) + (d5 - d6))
                u, v, w = 0.0, 1.0 - s, s
            else:
                den = _safe(va + vb + vc)
                v = vb / den
                w = vc / den
                u = 1.0 - v - w
    nx = aby * acz - abz * acy
    ny = abz * acx - abx * acz
    nz = abx * acy - aby * acx
    if _degenerate(nx, ny, nz, abx * abx + aby * aby + abz * abz, acx * acx + acy * acy + acz * acz):
        return _segments_closest(px, py, pz, ax, ay, az, bx, by, bz, cx, cy, cz)
    qx = px - (u * ax + v * bx + w * cx)
    qy = py - (u * ay + v * by + w * cy)
    qz = pz - (u * az + v * bz + w * cz)
    return qx * qx + qy * qy + qz * qz, u, v, w


@njit(**_JIT)
def _segment(px, py, pz, sx, sy, sz, ex, ey, ez):
    """``(squared distance, t)`` of the point ``s + t (e - s)``, ``t`` in [0, 1], nearest to ``p``."""
    dx, dy, dz = ex - sx, ey - sy, ez - sz
    den = dx * dx + dy * dy + dz * dz
    t = 0.0 if den == 0 else min(max(((px - sx) * dx + (py - sy) * dy + (pz - sz) * dz) / den, 0.0), 1.0)
    qx, qy, qz = px - sx - t * dx, py - sy - t * dy, pz - sz - t * dz
    return qx * qx + qy * qy + qz * qz, t


@njit(**_JIT)
def _segments_closest(px, py, pz, ax, ay, az, bx, by, bz, cx, cy, cz):
    """Nearest point of segments ``ab``, ``ac``, ``bc`` (first on ties) as ``(squared distance, u, v, w)``."""
    best, t = _segment(px, py, pz, ax, ay, az, bx, by, bz)
    u, v, w = 1.0 - t, t, 0.0
    d, t = _segment(px, py, pz, ax, ay, az, cx, cy, cz)
    if d < best:
        best, u, v, w = d, 1.0 - t, 0.0, t
    d, t = _segment(px, py, pz, bx, by, bz, cx, cy, cz)
    if d < best:
        best, u, v, w = d, 0.0, 1.0 - t, t
    return best, u, v, w


@njit(**_JIT)
def _degenerate(nx, ny, nz, ab2, ac2):
    """Zero area up to rounding: ``|ab x ac|^2 <= (SLIVER_EPS eps)^2 |ab|^2 |ac|^2`` (as the torch reference)."""
    return nx * nx + ny * ny + nz * nz <= _SLIVER * ab2 * ac2


@njit(**_JIT)
def search_table(tri):
    """Per triangle (tree order): ``a, b - a, c - a, |b - a|^2, (b - a).(c - a), |c - a|^2``, the unit normal
    and a flag for zero area (:func:`_degenerate`)."""
    T = tri.shape[0]
    tab = np.zeros((T, 16))
    for t in range(T):
        for k in range(3):
            tab[t, k] = tri[t, 0, k]
            tab[t, 3 + k] = tri[t, 1, k] - tri[t, 0, k]
            tab[t, 6 + k] = tri[t, 2, k] - tri[t, 0, k]
        e0x, e0y, e0z = tab[t, 3], tab[t, 4], tab[t, 5]
        e1x, e1y, e1z = tab[t, 6], tab[t, 7], tab[t, 8]
        tab[t, 9] = e0x * e0x + e0y * e0y + e0z * e0z
        tab[t, 10] = e0x * e1x + e0y * e1y + e0z * e1z
        tab[t, 11] = e1x * e1x + e1y * e1y + e1z * e1z
        nx = e0y * e1z - e0z * e1y
        ny = e0z * e1x - e0x * e1z
        nz = e0x * e1y - e0y * e1x
        norm = math.sqrt(nx * nx + ny * ny + nz * nz)
        if _degenerate(nx, ny, nz, tab[t, 9], tab[t, 11]):
            tab[t, 15] = 1.0
        elif norm > 0:
            tab[t, 12], tab[t, 13], tab[t, 14] = nx / norm, ny / norm, nz / norm
    return tab


@njit(**_JIT)
def _search_dist2(px, py, pz, tab, t, best):
    """Squared distance from p to triangle ``t`` for the search (``inf`` when its plane is farther than ``best``).

    The region rules of :func:`closest_on_triangle`, with the edge dot products from
    :func:`search_table`. The plane distance is a lower bound; it is loosened by a
    relative ``1e-9`` and by ``_ABS_SLACK |p - a|^2`` (its rounding error, which matters
    when the best distance is 0) so that rounding never drops a tied triangle: the
    lowest-index rule then does not depend on the order of the search.
    """
    apx, apy, apz = px - tab[t, 0], py - tab[t, 1], pz - tab[t, 2]
    if tab[t, 15] != 0:  # zero area: the nearest point of the three edges, as closest_on_triangle
        ax, ay, az = tab[t, 0], tab[t, 1], tab[t, 2]
        bx, by, bz = ax + tab[t, 3], ay + tab[t, 4], az + tab[t, 5]
        cx, cy, cz = ax + tab[t, 6], ay + tab[t, 7], az + tab[t, 8]
        return _segments_closest(px, py, pz, ax, ay, az, bx, by, bz, cx, cy, cz)[0]
    h = apx * tab[t, 12] + apy * tab[t, 13] + apz * tab[t, 14]
    if h * h > best * (1.0 + 1e-9) + _ABS_SLACK * (apx * apx + apy * apy + apz * apz):
        return _INF
    abx, aby, abz = tab[t, 3], tab[t, 4], tab[t, 5]
    acx, acy, acz = tab[t, 6], tab[t, 7], tab[t, 8]
    d1 = abx * apx + aby * apy + abz * apz
    d2 = acx * apx + acy * apy + acz * apz
    if d1 <= 0 and d2 <= 0:  # vertex a
        return apx * apx + apy * apy + apz * apz
    d3 = d1 - tab[t, 9]
    d4 = d2 - tab[t, 10]
    if d3 >= 0 and d4 <= d3:  # vertex b
        qx, qy, qz = apx - abx, apy - aby, apz - abz
        return qx * qx + qy * qy + qz * qz
    vc = d1 * d4 - d3 * d2
    if vc <= 0 and d1 >= 0 and d3 <= 0:  # edge ab
        s = d1 / _safe(d1 - d3)
        qx, qy, qz = apx - s * abx, apy - s * aby, apz - s * abz
        return qx * qx + qy * qy + qz * qz
    d5 = d1 - tab[t, 10]
    d6 = d2 - tab[t, 11]
    if d6 >= 0 and d5 <= d6:  # vertex c
        qx, qy, qz = apx - acx, apy - acy, apz - acz
        return qx * qx + qy * qy + qz * qz
    vb = d5 * d2 - d1 * d6
    if vb <= 0 and d2 >= 0 and d6 <= 0:  # edge ac
        s = d2 / _safe(d2 - d6)
        qx, qy, qz = apx - s * acx, apy - s * acy, apz - s * acz
        return qx * qx + qy * qy + qz * qz
    va = d3 * d6 - d5 * d4
    if va <= 0 and (d4 - d3) >= 0 and (d5 - d6) >= 0:  # edge bc
        s = (d4 - d3) / _safe((d4 - d3) + (d5 - d6))
        qx = apx - abx - s * (acx - abx)
        qy = apy - aby - s * (acy - aby)
        qz = apz - abz - s * (acz - abz)
        return qx * qx + qy * qy + qz * qz
    # Face interior: the plane distance (a degenerate triangle has no face region in exact arithmetic).
    den = _safe(va + vb + vc)
    v = vb / den
    w = vc / den
    qx = apx - v * abx - w * acx
    qy = apy - v * aby - w * acy
    qz = apz - v * abz - w * acz
    return qx * qx + qy * qy + qz * qz


@njit(**_JIT)
def _box_dist2(px, py, pz, box, node):
    dx = max(box[node, 0] - px, 0.0, px - box[node, 3])
    dy = max(box[node, 1] - py, 0.0, py - box[node, 4])
    dz = max(box[node, 2] - pz, 0.0, pz - box[node, 5])
    return dx * dx + dy * dy + dz * dz


@njit(**_JIT)
def nearest_triangle(px, py, pz, tab, perm, box, left, start, stop, seed, stack, bound):
    """Slot (tree order) of the closest triangle, lowest input index on exact ties; and its squared distance.

    ``seed`` is a slot whose distance starts as the upper bound (the previous point's
    answer, for points in Morton order), or -1. ``stack`` (int64) and ``bound``
    (float64) are scratch space of ``_STACK`` entries: nodes to visit and their box
    distances.
    """
    best = _INF
    best_slot = -1
    if seed >= 0:
        best = _search_dist2(px, py, pz, tab, seed, _INF)
        best_slot = seed
    stack[0] = 0
    bound[0] = 0.0
    sp = 1
    while sp > 0:
        sp -= 1
        if bound[sp] > best * (1.0 + 1e-9):
            continue
        node = stack[sp]
        child = left[node]
        if child < 0:
            for i in range(start[node], stop[node]):
                d2 = _search_dist2(px, py, pz, tab, i, best)
                if d2 < best or (d2 == best and perm[i] < perm[best_slot]):
                    best = d2
                    best_slot = i
            continue
        dl = _box_dist2(px, py, pz, box, child)
        dr = _box_dist2(px, py, pz, box, child + 1)
        limit = best * (1.0 + 1e-9)  # boxes are lower bounds; the slack keeps rounding-level ties
        if dl <= dr:
            if dr <= limit:
                stack[sp], bound[sp] = child + 1, dr
                sp += 1
            if dl <= limit:
                stack[sp], bound[sp] = child, dl
                sp += 1
        else:
            if dl <= limit:
                stack[sp], bound[sp] = child, dl
                sp += 1
            if dr <= limit:
                stack[sp], bound[sp] = child + 1, dr
                sp += 1
    return best_slot, best


@njit(**_JIT)
def _spread(x):
    """Spread the low 10 bits of ``x`` to every third bit."""
    x &= 0x3FF
    x = (x | (x << 16)) & 0x30000FF
    x = (x | (x << 8)) & 0x300F00F
    x = (x | (x << 4)) & 0x30C30C3
    x = (x | (x << 2)) & 0x9249249
    return x


@njit(**_JIT)
def morton_order(points):
    """Permutation sorting ``points (Q, 3)`` along a 30-bit Morton curve over their bounding box."""
    Q = points.shape[0]
    lo = np.empty(3)
    scale = np.empty(3)
    for k in range(3):
        a = points[:, k].min()
        b = points[:, k].max()
        lo[k] = a
        scale[k] = 1023.0 / (b - a) if b > a else 0.0
    codes = np.empty(Q, np.int64)
    for q in range(Q):
        code = 0
        for k in range(3):
            cell = int((points[q, k] - lo[k]) * scale[k])
            code |= _spread(min(max(cell, 0), 1023)) << k
        codes[q] = code
    return _radix_argsort(codes)


_RADIX_BITS = 10  # three passes over the 30-bit Morton codes


@njit(**_JIT)
def _radix_argsort(codes):
    """Stable argsort of non-negative codes below ``2^30`` (the same permutation as a merge sort), O(Q)."""
    n = codes.shape[0]
    idx = np.arange(n)
    tmp = np.empty(n, np.int64)
    mask = (1 << _RADIX_BITS) - 1
    count = np.empty((1 << _RADIX_BITS) + 1, np.int64)
    for shift in range(0, 30, _RADIX_BITS):
        count[:] = 0
        for i in range(n):
            count[((codes[idx[i]] >> shift) & mask) + 1] += 1
        for d in range(1 << _RADIX_BITS):
            count[d + 1] += count[d]
        for i in range(n):  # in order within each digit: stable
            d = (codes[idx[i]] >> shift) & mask
            tmp[count[d]] = idx[i]
            count[d] += 1
        idx, tmp = tmp, idx
    return idx


@njit(**_JIT)
def solid_angle(px, py, pz, tri, t):
    """Signed solid angle of triangle ``t`` seen from ``p`` (Van Oosterom & Strackee)."""
    ax, ay, az = tri[t, 0, 0] - px, tri[t, 0, 1] - py, tri[t, 0, 2] - pz
    bx, by, bz = tri[t, 1, 0] - px, tri[t, 1, 1] - py, tri[t, 1, 2] - pz
    cx, cy, cz = tri[t, 2, 0] - px, tri[t, 2, 1] - py, tri[t, 2, 2] - pz
    la = math.sqrt(ax * ax + ay * ay + az * az)
    lb = math.sqrt(bx * bx + by * by + bz * bz)
    lc = math.sqrt(cx * cx + cy * cy + cz * cz)
    det = ax * (by * cz - bz * cy) + ay * (bz * cx - bx * cz) + az * (bx * cy - by * cx)
    den = la * lb * lc + (ax * bx + ay * by + az * bz) * lc + (bx * cx + by * cy + bz * cz) * la
    den += (cx * ax + cy * ay + cz * az) * lb
    return 2.0 * math.atan2(det, den)


@njit(**_JIT)
def exact_winding(px, py, pz, tri):
    """Generalised winding number by summing every triangle's solid angle."""
    total = 0.0
    for t in range(tri.shape[0]):
        total += solid_angle(px, py, pz, tri, t)
    return total / (4.0 * math.pi)


@njit(**_JIT)
def _far_field(dx, dy, dz, d2, a, m, q):
    """Solid angle of a node seen from ``p`` with ``d = c - p``: ``sum_t A_t . f(x)``, ``f(x) = (x - p) / |x - p|^3``,
    Taylor-expanded about the node's centroid ``c`` to second order (Barill et al. 2018)::

        A . f + sum_ij J_ij M_ij + 1/2 sum_ijk H_ijk Q_ijk

    with ``J = grad f = I / r^3 - 3 d d^T / r^5`` and ``H`` its derivative,
    ``H_ijk = -3 (d_i delta_jk + d_j delta_ik + d_k delta_ij) / r^5 + 15 d_i d_j d_k / r^7``.
    """
    r2inv = 1.0 / d2
    r3inv = r2inv * math.sqrt(r2inv)
    r5inv = r3inv * r2inv
    # Order 0.
    total = (a[0] * dx + a[1] * dy + a[2] * dz) * r3inv
    # Order 1: tr(M) / r^3 - 3 d^T M d / r^5.
    dmd = dx * (m[0] * dx + m[1] * dy + m[2] * dz) + dy * (m[3] * dx + m[4] * dy + m[5] * dz)
    dmd += dz * (m[6] * dx + m[7] * dy + m[8] * dz)
    total += (m[0] + m[4] + m[8]) * r3inv - 3.0 * dmd * r5inv
    # Order 2, per component i of A with symmetric S_i = (xx, xy, xz, yy, yz, zz):
    # 1/2 [-3 (d_i tr S_i + 2 (S_i d)_i) / r^5 + 15 d_i (d^T S_i d) / r^7].
    acc = 0.0
    sx = q[0] * dx + q[1] * dy + q[2] * dz
    sy = q[1] * dx + q[3] * dy + q[4] * dz
    sz = q[2] * dx + q[4] * dy + q[5] * dz
    acc += dx * (-3.0 * (q[0] + q[3] + q[5]) * r5inv + 15.0 * (dx * sx + dy * sy + dz * sz) * r5inv * r2inv)
    acc -= 6.0 * sx * r5inv
    sx = q[6] * dx + q[7] * dy + q[8] * dz
    sy = q[7] * dx + q[9] * dy + q[10] * dz
    sz = q[8] * dx + q[10] * dy + q[11] * dz
    acc += dy * (-3.0 * (q[6] + q[9] + q[11]) * r5inv + 15.0 * (dx * sx + dy * sy + dz * sz) * r5inv * r2inv)
    acc -= 6.0 * sy * r5inv
    sx = q[12] * dx + q[13] * dy + q[14] * dz
    sy = q[13] * dx + q[15] * dy + q[16] * dz
    sz = q[14] * dx + q[16] * dy + q[17] * dz
    acc += dz * (-3.0 * (q[12] + q[15] + q[17]) * r5inv + 15.0 * (dx * sx + dy * sy + dz * sz) * r5inv * r2inv)
    acc -= 6.0 * sz * r5inv
    return total + 0.5 * acc


@njit(**_JIT)
def fast_winding(px, py, pz, tri, left, start, stop, normal, center, moment, second, radius, box, closed, beta, band,
                 stack):  # fmt: skip
    """Barill et al.'s hierarchical winding number: a node farther than ``beta`` times its radius is one dipole.

    A ``closed`` node (whole closed components, :func:`closed_nodes`) adds exactly 0 from
    outside its box and is skipped there. When the result lies within ``band`` of the
    inside/outside threshold ``|w| = 0.5``, it is recomputed exactly, so that the sign
    never depends on the approximation unless its error exceeds ``band``. ``stack`` is
    scratch space of ``_STACK`` int64.
    """
    stack[0] = 0
    sp = 1
    total = 0.0
    while sp > 0:
        sp -= 1
        node = stack[sp]
        if closed[node] and (
            px < box[node, 0] or py < box[node, 1] or pz < box[node, 2]
            or px > box[node, 3] or py > box[node, 4] or pz > box[node, 5]
        ):  # fmt: skip
            continue
        dx = center[node, 0] - px
        dy = center[node, 1] - py
        dz = center[node, 2] - pz
        d2 = dx * dx + dy * dy + dz * dz
        if d2 > (beta * radius[node]) ** 2:
            # Far field: the solid angle of a small patch is its area vector seen from p.
            total += _far_field(dx, dy, dz, d2, normal[node], moment[node], second[node])
            continue
        child = left[node]
        if child < 0:
            for i in range(start[node], stop[node]):
                total += solid_angle(px, py, pz, tri, i)
            continue
        stack[sp] = child
        stack[sp + 1] = child + 1
        sp += 2
    w = total / (4.0 * math.pi)
    if abs(abs(w) - 0.5) < band:
        w = exact_winding(px, py, pz, tri)
    return w


@njit(**_JIT)
def winding_range(points, q0, q1, tri, box, left, start, stop, normal, center, moment, second, radius, closed, beta,
                  band, out):  # fmt: skip
    """Winding numbers of points ``q0 .. q1`` into ``out``."""
    stack = np.empty(_STACK, np.int64)
    for q in range(q0, q1):
        out[q] = fast_winding(
            points[q, 0], points[q, 1], points[q, 2], tri, left, start, stop, normal, center, moment, second, radius,
            box, closed, beta, band, stack,
        )


#: A point inside this fraction of the previous point's squared empty-ball radius reuses its winding sign
#: (a margin against rounding at the ball's rim).
_BALL_SHRINK = 0.98


@njit(**_JIT)
def sdf_range(
    points, order, q0, q1, tri, tab, perm, box, left, start, stop, faces, face_edge, face_n, edge_n, vert_n,
    boundary_edge, boundary_vertex, normal, center, moment, second, radius, closed_node, beta, band, winding_sign,
    closed, out_sdf, out_index, out_bary,
    out_closest,
):  # fmt: skip
    """Signed distance, closest triangle (input index), barycentric coordinates and closest point of points ``order[q0:q1]``.

    The sign is the pseudo-normal of the closest feature, or the winding number where that
    feature touches an open boundary, or (``winding_sign``) the winding number for every point.

    ``closed`` (every directed edge matched by its reverse: the winding number is constant
    off the surface, on each connected piece of space): a point strictly inside the
    previous point's empty ball (radius = its distance to the mesh) is joined to it by a
    segment that crosses no triangle, so it takes that point's winding sign instead of
    evaluating the winding number again. Points come in Morton order, so neighbours follow
    each other.
    """
    stack = np.empty(_STACK, np.int64)
    bound = np.empty(_STACK)
    slot = -1
    # The last point whose sign came from the winding number (or from its ball): position, squared radius, sign.
    bx, by, bz, ball2, ball_inside = 0.0, 0.0, 0.0, -1.0, False
    for j in range(q0, q1):
        q = order[j]
        px, py, pz = points[q, 0], points[q, 1], points[q, 2]
        slot, _ = nearest_triangle(px, py, pz, tab, perm, box, left, start, stop, slot, stack, bound)
        d2, u, v, w = closest_on_triangle(px, py, pz, tri, slot)
        t = perm[slot]
        out_index[q] = t
        out_bary[q, 0], out_bary[q, 1], out_bary[q, 2] = u, v, w
        dist = math.sqrt(d2)
        if winding_sign:
            boundary = True
        else:
            zeros = (u == 0) + (v == 0) + (w == 0)
            if zeros == 0:
                nx, ny, nz = face_n[t, 0], face_n[t, 1], face_n[t, 2]
                boundary = False
            elif zeros == 1:
                k = 0 if u == 0 else (1 if v == 0 else 2)
                e = face_edge[t, k]
                nx, ny, nz = edge_n[e, 0], edge_n[e, 1], edge_n[e, 2]
                boundary = boundary_edge[e]
            else:
                k = 0 if u == 1 else (1 if v == 1 else 2)
                vid = faces[t, k]
                nx, ny, nz = vert_n[vid, 0], vert_n[vid, 1], vert_n[vid, 2]
                boundary = boundary_vertex[vid]
        cx = u * tri[slot, 0, 0] + v * tri[slot, 1, 0] + w * tri[slot, 2, 0]
        cy = u * tri[slot, 0, 1] + v * tri[slot, 1, 1] + w * tri[slot, 2, 1]
        cz = u * tri[slot, 0, 2] + v * tri[slot, 1, 2] + w * tri[slot, 2, 2]
        out_closest[q, 0], out_closest[q, 1], out_closest[q, 2] = cx, cy, cz
        if boundary:
            gx, gy, gz = px - bx, py - by, pz - bz
            if closed and gx * gx + gy * gy + gz * gz < _BALL_SHRINK * ball2:
                inside = ball_inside  # the same piece of space as the ball's centre
            else:
                wn = fast_winding(
                    px, py, pz, tri, left, start, stop, normal, center, moment, second, radius, box, closed_node, beta,
                    band, stack,
                )
                inside = abs(wn) > 0.5
            bx, by, bz, ball2, ball_inside = px, py, pz, d2, inside
        else:
            inside = (px - cx) * nx + (py - cy) * ny + (pz - cz) * nz < 0
        out_sdf[q] = -dist if inside else dist


@njit(**_JIT)
def nearest_range(points, order, q0, q1, tab, perm, box, left, start, stop, out_index):
    """Closest triangle (input index) of points ``order[q0:q1]``."""
    stack = np.empty(_STACK, np.int64)
    bound = np.empty(_STACK)
    slot = -1
    for j in range(q0, q1):
        q = order[j]
        slot, _ = nearest_triangle(points[q, 0], points[q, 1], points[q, 2], tab, perm, box, left, start, stop, slot,
                                   stack, bound)  # fmt: skip
        out_index[q] = perm[slot]
