"""Benchmark: exact nearest-neighbour search behind F-score and ADD-S.

Compares ``hoimask.metrics.nearest_distances`` (chunked brute force, bounded
memory) with the two approaches of the official codes, measured in the same
run on the same points:

* dense  -- HOISDF ``compute_obj_metrics_*``: one ``(B, N, N, 3)`` difference
  tensor (re-written here in torch, same memory footprint);
* kdtree -- BOP ``pose_error.adi``: SciPy ``cKDTree`` build + query (skipped
  when SciPy is missing).

For each size it prints the median wall time of ``--repeats`` runs, the
largest intermediate the method allocates (analytic, in MiB), the ratio of
hoimask's time to each baseline, and the largest absolute difference of the
distances from hoimask's (exactness check). The dense variant is skipped when
its intermediate would exceed ``--dense-limit-mib``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/metrics_nearest.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from hoimask.metrics import nearest_distances
from hoimask.metrics.nearest import DEFAULT_MAX_ELEMENTS, _chunk_sizes


def _dense(q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    N, M = q.shape[1], r.shape[1]
    a = q.unsqueeze(2).expand(-1, -1, M, -1).contiguous()  # (B, N, M, 3), as HOISDF's repeat()
    b = r.unsqueeze(1).expand(-1, N, -1, -1).contiguous()
    return (a - b).norm(dim=-1).amin(dim=2)


def _kdtree(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    from scipy.spatial import cKDTree

    return np.stack([cKDTree(rb).query(qb, k=1)[0] for qb, rb in zip(q, r)])


def _time(fn, args, repeats: int) -> tuple[float, object]:
    out = fn(*args)  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(*args)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1x778,32x778,1x2000,1x10000", help="BxN pairs (N x N points)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dense-limit-mib", type=float, default=1024.0)
    args = ap.parse_args()
    try:
        import scipy  # noqa: F401

        have_scipy = True
    except ImportError:
        have_scipy = False
    rows = []
    for spec in args.sizes.split(","):
        B, N = (int(v) for v in spec.split("x"))
        g = torch.Generator().manual_seed(0)
        q = torch.rand(B, N, 3, generator=g, dtype=torch.float64)
        r = torch.rand(B, N, 3, generator=g, dtype=torch.float64)
        qc, rc = _chunk_sizes(B, N, N, DEFAULT_MAX_ELEMENTS)
        ours_mib = B * qc * rc * 8 / 2**20
        t_ours, d_ours = _time(nearest_distances, (q, r), args.repeats)
        dense_mib = 2 * B * N * N * 3 * 8 / 2**20
        if dense_mib <= args.dense_limit_mib:
            t_dense, d_dense = _time(_dense, (q, r), args.repeats)
            dense = (f"{t_dense * 1e3:9.1f}", f"{t_ours / t_dense:6.2f}", f"{(d_dense - d_ours).abs().max():.1e}")
        else:
            dense = ("  skipped", "     -", "-")
        if have_scipy:
            qn, rn = q.numpy(), r.numpy()
            t_kd, d_kd = _time(_kdtree, (qn, rn), args.repeats)
            kd = (f"{t_kd * 1e3:9.1f}", f"{t_ours / t_kd:6.2f}", f"{np.abs(d_kd - d_ours.numpy()).max():.1e}")
        else:
            kd = ("  no scipy", "     -", "-")
        rows.append((spec, f"{t_ours * 1e3:9.1f}", f"{ours_mib:8.1f}", dense[0], f"{dense_mib:9.1f}", dense[1],
                     dense[2], kd[0], kd[1], kd[2]))
    header = ("B x N", "hoimask ms", "chunk MiB", "dense ms", "dense MiB", "ours/dense", "max abs diff (dense)",
              "kdtree ms", "ours/kdtree", "max abs diff (kdtree)")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, float64, median of {args.repeats}")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---:" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
