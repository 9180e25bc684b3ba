"""Numba kernels that build the CPU bounding-volume hierarchy (imported only when numba is importable).

Connected components, the tree (surface-area splits within a component,
component boundaries above), its depth, and the per-node data of the fast
winding number (closed nodes, dipole expansions). The queries are in
:mod:`hoimask.ops.mesh_sdf._bvh_kernels`; the data layout and algorithms are
described in :mod:`hoimask.ops.mesh_sdf.bvh`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_JIT = {"cache": True, "nogil": True}
_INF = np.inf
#: Deepest level at which a node may take a surface-area split; deeper nodes split at the median.
SAH_MAX_DEPTH = 32
_PAIRS = np.array([[0, 0], [0, 1], [0, 2], [1, 1], [1, 2], [2, 2]])  # entries of a symmetric 3x3


@njit(**_JIT)
def triangle_components(faces, num_vertices):
    """``(T,)`` int64 label of each triangle's connected component (triangles sharing a vertex), ``0 .. C - 1``
    in order of first appearance."""
    parent = np.arange(num_vertices)
    for t in range(faces.shape[0]):
        for k in range(1, 3):
            a, b = faces[t, 0], faces[t, k]
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            while parent[b] != b:
                parent[b] = parent[parent[b]]
                b = parent[b]
            if a != b:
                parent[max(a, b)] = min(a, b)
    label = np.full(num_vertices, -1, np.int64)
    out = np.empty(faces.shape[0], np.int64)
    count = 0
    for t in range(faces.shape[0]):
        r = faces[t, 0]
        while parent[r] != r:
            r = parent[r]
        if label[r] < 0:
            label[r] = count
            count += 1
        out[t] = label[r]
    return out


@njit(**_JIT)
def _bin(c, lo, width, bins):
    """Bin ``0 .. bins - 1`` of centroid coordinate ``c`` in ``[lo, lo + width]`` (``0 < width < inf``)."""
    return max(0, min(int((c - lo) / width * bins), bins - 1))


@njit(**_JIT)
def _half_area(lo, hi):
    dx, dy, dz = hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]
    return dx * dy + dy * dz + dz * dx


@njit(**_JIT)
def _sah_split(perm, s, e, tlo, thi, cen, cmin, cmax, bins, blo, bhi, bcount, rarea, rcount, acc_lo, acc_hi):
    """Best binned surface-area split of slots ``s:e``: ``(axis, last bin of the first child)``, or ``(-1, -1)``.

    The cost of a split is ``area(first) n_first + area(second) n_second`` (half the box
    surfaces, ``n`` triangles per side) over the ``bins - 1`` bin boundaries of the
    centroids along each axis; both sides hold a triangle. ``blo, bhi (3, bins, 3)``,
    ``bcount (3, bins)``, ``rarea, rcount (bins,)`` and ``acc_lo, acc_hi (3,)`` are scratch space.
    """
    for axis in range(3):
        for b in range(bins):
            bcount[axis, b] = 0
            for k in range(3):
                blo[axis, b, k] = _INF
                bhi[axis, b, k] = -_INF
    for i in range(s, e):  # one pass bins every axis
        t = perm[i]
        for axis in range(3):
            width = cmax[axis] - cmin[axis]
            if not 0 < width < _INF:  # one point, or a spread beyond float64 (inf / inf bins): no split here
                continue
            b = _bin(cen[t, axis], cmin[axis], width, bins)
            bcount[axis, b] += 1
            for k in range(3):
                blo[axis, b, k] = min(blo[axis, b, k], tlo[t, k])
                bhi[axis, b, k] = max(bhi[axis, b, k], thi[t, k])
    best_cost = _INF
    best_axis = -1
    best_bin = -1
    for axis in range(3):
        if not 0 < cmax[axis] - cmin[axis] < _INF:
            continue
        n = 0
        for k in range(3):
            acc_lo[k] = _INF
            acc_hi[k] = -_INF
        for b in range(bins - 1, 0, -1):  # the second child: bins b .. end
            n += bcount[axis, b]
            for k in range(3):
                acc_lo[k] = min(acc_lo[k], blo[axis, b, k])
                acc_hi[k] = max(acc_hi[k], bhi[axis, b, k])
            rcount[b] = n
            rarea[b] = _half_area(acc_lo, acc_hi) if n > 0 else 0.0
        n = 0
        for k in range(3):
            acc_lo[k] = _INF
            acc_hi[k] = -_INF
        for b in range(bins - 1):  # the first child: bins 0 .. b
            n += bcount[axis, b]
            for k in range(3):
                acc_lo[k] = min(acc_lo[k], blo[axis, b, k])
                acc_hi[k] = max(acc_hi[k], bhi[axis, b, k])
            if n == 0 or rcount[b + 1] == 0:
                continue
            cost = _half_area(acc_lo, acc_hi) * n + rarea[b + 1] * rcount[b + 1]
            if cost < best_cost:
                best_cost, best_axis, best_bin = cost, axis, b
    return best_axis, best_bin


@njit(**_JIT)
def build_tree(tri, leaf_size, group, bins):
    """BVH over triangles ``tri (T, 3, 3)`` whose upper levels keep ``group`` s whole.

    A node holding triangles of several groups (``group (T,)`` int64: the mesh's
    connected components) splits between groups — ordered by their centroids
    along the axis where those spread most, at the group boundary nearest the
    median — so that every group is the whole of some node. A node of one group
    splits where the surface-area heuristic over ``bins`` centroid bins per
    axis puts it (:func:`_sah_split`; 0.8-0.9x the median split's search time
    on the test meshes), or at the median triangle along the longest centroid
    axis (``bins <= 1``, when all centroids coincide, and below depth
    ``SAH_MAX_DEPTH``, so that uneven surface-area splits can neither make the
    tree deeper than ``SAH_MAX_DEPTH + ceil(log2 T)`` levels nor the build
    quadratic). One group and ``bins <= 1``: the plain median split, at most
    ``ceil(log2 T) + 1`` levels.

    Returns ``(perm, box, left, start, stop)``: the tree order of the triangles and, per
    node, its box ``(lo, hi)``, its first child (the second is ``left + 1``; -1 for a
    leaf) and its range of tree-order slots.
    """
    T = tri.shape[0]
    G = 0
    for t in range(T):
        G = max(G, group[t] + 1)
    gcen = np.zeros((G, 3))  # each group's mean triangle centroid
    gcount = np.zeros(G)
    for t in range(T):
        gcount[group[t]] += 1.0
        for k in range(3):
            gcen[group[t], k] += (tri[t, 0, k] + tri[t, 1, k] + tri[t, 2, k]) / 3.0
    for g in range(G):
        for k in range(3):
            gcen[g, k] /= max(gcount[g], 1.0)
    tlo = np.empty((T, 3))
    thi = np.empty((T, 3))
    cen = np.empty((T, 3))
    for t in range(T):
        for k in range(3):
            a, b, c = tri[t, 0, k], tri[t, 1, k], tri[t, 2, k]
            tlo[t, k] = min(a, b, c)
            thi[t, k] = max(a, b, c)
            cen[t, k] = (a + b + c) / 3.0
    perm = np.arange(T)
    cap = 2 * T
    lo = np.empty((cap, 3))
    hi = np.empty((cap, 3))
    left = np.full(cap, -1, np.int64)
    start = np.zeros(cap, np.int64)
    stop = np.zeros(cap, np.int64)
    pending = np.empty(cap, np.int64)
    depth = np.zeros(cap, np.int64)
    stop[0] = T
    n = 1
    sp = 1
    pending[0] = 0
    cmin = np.empty(3)
    cmax = np.empty(3)
    nb = max(bins, 1)
    blo, bhi, bcount = np.empty((3, nb, 3)), np.empty((3, nb, 3)), np.zeros((3, nb), np.int64)
    rcount, rarea = np.zeros(nb, np.int64), np.zeros(nb)
    acc_lo, acc_hi = np.empty(3), np.empty(3)
    while sp > 0:
        sp -= 1
        node = pending[sp]
        s, e = start[node], stop[node]
        for k in range(3):
            lo[node, k] = _INF
            hi[node, k] = -_INF
            cmin[k] = _INF
            cmax[k] = -_INF
        for i in range(s, e):
            t = perm[i]
            for k in range(3):
                lo[node, k] = min(lo[node, k], tlo[t, k])
                hi[node, k] = max(hi[node, k], thi[t, k])
                cmin[k] = min(cmin[k], cen[t, k])
                cmax[k] = max(cmax[k], cen[t, k])
        if e - s <= leaf_size:
            continue
        mixed = False
        for i in range(s + 1, e):
            if group[perm[i]] != group[perm[s]]:
                mixed = True
                break
        if mixed:  # the spread of the groups' centroids
            for k in range(3):
                cmin[k] = _INF
                cmax[k] = -_INF
            for i in range(s, e):
                for k in range(3):
                    cmin[k] = min(cmin[k], gcen[group[perm[i]], k])
                    cmax[k] = max(cmax[k], gcen[group[perm[i]], k])
        axis, last = -1, -1
        if not mixed and bins > 1 and depth[node] < SAH_MAX_DEPTH:
            axis, last = _sah_split(perm, s, e, tlo, thi, cen, cmin, cmax, bins, blo, bhi, bcount, rarea, rcount,
                                    acc_lo, acc_hi)  # fmt: skip
        if last >= 0:  # the surface-area split: a stable partition by centroid bin (no sort needed)
            width = cmax[axis] - cmin[axis]
            sub = perm[s:e].copy()
            m = s
            for j in range(e - s):
                if _bin(cen[sub[j], axis], cmin[axis], width, bins) <= last:
                    perm[m] = sub[j]
                    m += 1
            i = m
            for j in range(e - s):
                if _bin(cen[sub[j], axis], cmin[axis], width, bins) > last:
                    perm[i] = sub[j]
                    i += 1
        else:
            axis = 0
            for k in range(1, 3):
                if cmax[k] - cmin[k] > cmax[axis] - cmin[axis]:
                    axis = k
            sub = perm[s:e].copy()
            keys = np.empty(e - s)
            if mixed:  # by group, the groups by centroid: each group a run of slots
                for j in range(e - s):
                    keys[j] = group[sub[j]]
                order = np.argsort(keys, kind="mergesort")
                sub = sub[order]
                for j in range(e - s):
                    keys[j] = gcen[group[sub[j]], axis]
            else:
                for j in range(e - s):
                    keys[j] = cen[sub[j], axis]
            order = np.argsort(keys, kind="mergesort")  # stable: the tree is deterministic
            for j in range(e - s):
                perm[s + j] = sub[order[j]]
            m = (s + e) // 2
            if mixed:  # the group boundary nearest the median (there is one: two groups at least)
                best = -1
                for i in range(s + 1, e):
                    if group[perm[i]] != group[perm[i - 1]] and (best < 0 or abs(i - m) < abs(best - m)):
                        best = i
                m = best
        left[node] = n
        start[n], stop[n] = s, m
        start[n + 1], stop[n + 1] = m, e
        depth[n] = depth[n + 1] = depth[node] + 1
        pending[sp] = n + 1
        pending[sp + 1] = n
        sp += 2
        n += 2
    box = np.empty((n, 6))
    box[:, :3] = lo[:n]
    box[:, 3:] = hi[:n]
    return perm, box, left[:n].copy(), start[:n].copy(), stop[:n].copy()


@njit(**_JIT)
def tree_depth(left):
    """Levels of the tree (1 for a single leaf); children are numbered after their parent."""
    depth = np.ones(left.shape[0], np.int64)
    deepest = 1
    for node in range(left.shape[0]):
        if left[node] >= 0:
            depth[left[node]] = depth[left[node] + 1] = depth[node] + 1
            deepest = max(deepest, depth[node] + 1)
    return deepest


@njit(**_JIT)
def closed_nodes(perm, group, group_size, group_closed, start, stop):
    """``(N,)`` bool: the nodes whose triangles are whole groups, each closed (no oriented boundary).

    Such a node's winding number is 0 outside its box: the traversal skips it there.
    """
    N = start.shape[0]
    out = np.zeros(N, np.bool_)
    for node in range(N):
        ok = True
        i = start[node]
        while ok and i < stop[node]:
            g = group[perm[i]]
            j = i
            while j < stop[node] and group[perm[j]] == g:
                j += 1
            ok = group_closed[g] and j - i == group_size[g]
            i = j
        out[node] = ok
    return out


@njit(**_JIT)
def dipoles(tri, left, start, stop):
    """Per node: the far-field expansion of its solid angle (bottom-up, O(nodes + T)) and its radius.

    Returns ``(normal (n, 3), center (n, 3), moment (n, 9), second (n, 18), radius (n,))``:
    the sum of the triangles' area vectors ``A_t``, their area-weighted centroid ``c``, the
    first moment ``sum_t A_t (c_t - c)^T`` (row-major), the second moment
    ``sum_t A_t (x) S_t`` with ``S_t`` the triangle's second moment about ``c`` per unit area
    (6 entries of the symmetric ``S_t`` per component of ``A_t``), and the largest distance
    from ``c`` to a corner (exact: a tighter radius opens fewer nodes).
    Children are numbered after their parent, so one pass from the last node up suffices;
    the moments are accumulated about the origin and moved to ``c`` at the end.
    """
    n = start.shape[0]
    weight = np.zeros(n)  # sum |A_t|
    wsum = np.zeros((n, 3))  # sum |A_t| c_t
    csum = np.zeros((n, 3))  # sum c_t (for all-degenerate nodes)
    normal = np.zeros((n, 3))
    raw1 = np.zeros((n, 9))  # sum A_i c_j
    raw2 = np.zeros((n, 18))  # sum A_i (c c^T + cov)_jk, jk in _PAIRS order
    cen = np.empty(3)
    area = np.empty(3)
    for node in range(n - 1, -1, -1):
        child = left[node]
        if child >= 0:
            weight[node] = weight[child] + weight[child + 1]
            for k in range(3):
                wsum[node, k] = wsum[child, k] + wsum[child + 1, k]
                csum[node, k] = csum[child, k] + csum[child + 1, k]
                normal[node, k] = normal[child, k] + normal[child + 1, k]
            for k in range(9):
                raw1[node, k] = raw1[child, k] + raw1[child + 1, k]
            for k in range(18):
                raw2[node, k] = raw2[child, k] + raw2[child + 1, k]
            continue
        for t in range(start[node], stop[node]):
            e0x, e0y, e0z = tri[t, 1, 0] - tri[t, 0, 0], tri[t, 1, 1] - tri[t, 0, 1], tri[t, 1, 2] - tri[t, 0, 2]
            e1x, e1y, e1z = tri[t, 2, 0] - tri[t, 0, 0], tri[t, 2, 1] - tri[t, 0, 1], tri[t, 2, 2] - tri[t, 0, 2]
            area[0] = 0.5 * (e0y * e1z - e0z * e1y)
            area[1] = 0.5 * (e0z * e1x - e0x * e1z)
            area[2] = 0.5 * (e0x * e1y - e0y * e1x)
            mag = math.sqrt(area[0] * area[0] + area[1] * area[1] + area[2] * area[2])
            for k in range(3):
                cen[k] = (tri[t, 0, k] + tri[t, 1, k] + tri[t, 2, k]) / 3.0
            weight[node] += mag
            for k in range(3):
                wsum[node, k] += mag * cen[k]
                csum[node, k] += cen[k]
                normal[node, k] += area[k]
            for i in range(3):
                for j in range(3):
                    raw1[node, 3 * i + j] += area[i] * cen[j]
                for m in range(6):
                    j, k = _PAIRS[m, 0], _PAIRS[m, 1]
                    # Per unit area, about the origin: c c^T + (1/12) sum over corners of (v - c)(v - c)^T.
                    s = cen[j] * cen[k]
                    for corner in range(3):
                        s += (tri[t, corner, j] - cen[j]) * (tri[t, corner, k] - cen[k]) / 12.0
                    raw2[node, 6 * i + m] += area[i] * s
    center = np.empty((n, 3))
    moment = np.empty((n, 9))
    second = np.empty((n, 18))
    radius = np.zeros(n)
    for node in range(n):
        count = stop[node] - start[node]
        for k in range(3):
            center[node, k] = wsum[node, k] / weight[node] if weight[node] > 0 else csum[node, k] / count
        c = center[node]
        for i in range(3):
            for j in range(3):
                moment[node, 3 * i + j] = raw1[node, 3 * i + j] - normal[node, i] * c[j]
            for m in range(6):
                j, k = _PAIRS[m, 0], _PAIRS[m, 1]
                second[node, 6 * i + m] = (raw2[node, 6 * i + m] - raw1[node, 3 * i + j] * c[k]
                                           - raw1[node, 3 * i + k] * c[j] + normal[node, i] * c[j] * c[k])  # fmt: skip
    for node in range(n):  # exact: O(T log T) corner distances, once per tree
        r2 = 0.0
        for t in range(start[node], stop[node]):
            for corner in range(3):
                d2 = 0.0
                for k in range(3):
                    d2 += (tri[t, corner, k] - center[node, k]) ** 2
                r2 = max(r2, d2)
        radius[node] = math.sqrt(r2)
    return normal, center, moment, second, radius
