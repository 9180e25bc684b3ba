"""Exact, memory-bounded nearest-neighbour distances between point sets.

F-score and ADD-S need, for every point of one set, the distance to the
closest point of another set. The official codes use Open3D
(``compute_point_cloud_distance``, HO3D/FreiHAND), a SciPy k-d tree (BOP
``adi``) or a dense ``(N, N, 3)`` difference tensor (HOISDF). hoimask computes
the same exact distances by brute force in chunks: the query set is processed
``query_chunk`` points at a time against ``reference_chunk`` reference points at
a time, keeping a running minimum, so peak memory is proportional to
``max_elements`` pairwise distances whatever the set sizes (default 256 Ki:
2 MiB of float64 distances per chunk; the measured peak growth of the process
for 10k x 10k points is a few MiB, see ``docs/benchmarks/metrics.md``). Small
chunks are also the fastest on a CPU (they stay in cache). Distances use direct differences
(``torch.cdist`` with ``donot_use_mm_for_euclid_dist``), not the
``|a|^2 + |b|^2 - 2ab`` expansion, so they are exact to rounding and zero for
coincident points.
"""

from __future__ import annotations

import torch

from hoimask._checks import ShapeError, check_finite, check_positive, check_shape
from hoimask.metrics._arrays import ArrayLike, like_input, to_tensors

__all__ = ["nearest_distances", "point_set_diameter", "DEFAULT_MAX_ELEMENTS"]

#: Default bound on the number of pairwise distances computed at once (256 Ki entries).
DEFAULT_MAX_ELEMENTS: int = 1 << 18


def _chunk_sizes(batch: int, num_query: int, num_ref: int, max_elements: int) -> tuple[int, int]:
    """Query and reference chunk sizes so that batch * q * r <= max_elements."""
    ref_chunk = max(1, min(num_ref, max_elements // max(1, batch)))
    query_chunk = max(1, min(num_query, max_elements // max(1, batch * ref_chunk)))
    return query_chunk, ref_chunk


def _nearest(
    query: torch.Tensor, reference: torch.Tensor, max_elements: int, reference_valid: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, Q, D), (B, R, D) -> (B, Q) distance to the nearest reference point.

    ``reference_valid`` ``(B, R)`` bool leaves reference points out (their
    coordinates must still be finite, e.g. zeroed); a row without any valid
    reference gets ``inf``.
    """
    B, Q, _ = query.shape
    R = reference.shape[1]
    q_chunk, r_chunk = _chunk_sizes(B, Q, R, max_elements)
    out = []
    for q0 in range(0, Q, q_chunk):
        q = query[:, q0 : q0 + q_chunk]  # (B, q, D)
        best = None
        for r0 in range(0, R, r_chunk):
            r = reference[:, r0 : r0 + r_chunk]  # (B, r, D)
            d = torch.cdist(q, r, compute_mode="donot_use_mm_for_euclid_dist")  # (B, q, r)
            if reference_valid is not None:
                ok = reference_valid[:, None, r0 : r0 + r_chunk]  # (B, 1, r)
                d = torch.where(ok, d, torch.full_like(d, float("inf")))
            m = d.amin(dim=2)  # (B, q)
            best = m if best is None else torch.minimum(best, m)
        out.append(best)
    return torch.cat(out, dim=1)  # (B, Q)


def nearest_distances(
    query: ArrayLike,
    reference: ArrayLike,
    *,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> ArrayLike:
    """Distance from every query point to its nearest reference point (exact).

    Args:
        query: ``(B, Q, 3)`` finite points (any coordinate dimension ``D`` works).
        reference: ``(B, R, 3)`` finite points; must share ``B`` and ``D`` with ``query``.
        max_elements: upper bound on the number of pairwise distances computed
            at once; the search is chunked to respect it.

    Returns:
        ``(B, Q)`` Euclidean distances, in the input's units, type and dtype.
        Differentiable with respect to both inputs (torch inputs).

    Raises:
        ValueRangeError: a NaN or infinite coordinate (this helper does not
            know which set is the ground truth, so it cannot exclude anything).

    Shape:
        - query: ``(B, Q, D)``
        - reference: ``(B, R, D)``
        - output: ``(B, Q)``

    Example:
        >>> import torch
        >>> q = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0]]])
        >>> r = torch.tensor([[[0.0, 0, 2], [1.0, 0, 0.5]]])
        >>> nearest_distances(q, r)
        tensor([[1.1180, 0.5000]])
    """
    was_numpy, t = to_tensors(query=query, reference=reference)
    dims = check_shape(t["query"], "B Q D", name="query")
    check_shape(t["reference"], "B R D", name="reference", dims=dims)
    check_finite(t["query"], name="query")
    check_finite(t["reference"], name="reference")
    check_positive(max_elements, name="max_elements")
    if dims["Q"] == 0 or dims["R"] == 0:
        raise ShapeError(
            "nearest_distances(): 'query' and 'reference' need at least one point each, "
            f"got Q={dims['Q']}, R={dims['R']}"
        )
    return like_input(was_numpy, _nearest(t["query"], t["reference"], int(max_elements)))


def point_set_diameter(points: ArrayLike, *, max_elements: int = DEFAULT_MAX_ELEMENTS) -> ArrayLike:
    """Largest distance between any two points of each set (the BOP object diameter).

    Computed exactly in chunks (memory bounded by ``max_elements``), as the BOP
    toolkit's ``misc.calc_pts_diameter`` does by brute force.

    Args:
        points: ``(B, P, 3)`` finite point sets, or ``(P, 3)`` for a single set.
        max_elements: bound on the pairwise distances held at once.

    Returns:
        ``(B,)`` diameters (a 0-dim value for a ``(P, 3)`` input), in the
        input's units and type.

    Shape:
        - points: ``(B, P, D)`` or ``(P, D)``
        - output: ``(B,)`` or ``()``
    """
    was_numpy, t = to_tensors(points=points)
    p = t["points"]
    single = p.dim() == 2
    if single:
        p = p.unsqueeze(0)
    dims = check_shape(p, "B P D", name="points")
    check_finite(p, name="points")
    check_positive(max_elements, name="max_elements")
    B, P = dims["B"], dims["P"]
    if P == 0:
        raise ShapeError("point_set_diameter(): argument 'points' needs at least one point, got P=0")
    chunk = max(1, int(max_elements) // max(1, B * P))
    best = p.new_zeros(B)
    for i0 in range(0, P, chunk):
        d = torch.cdist(p[:, i0 : i0 + chunk], p, compute_mode="donot_use_mm_for_euclid_dist")
        best = torch.maximum(best, d.flatten(1).amax(dim=1))
    out = best[0] if single else best
    return like_input(was_numpy, out)
