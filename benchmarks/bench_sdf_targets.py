"""SDF targets per frame at data-loader speed: ``mesh_sdf_targets`` for a hand + a 20k-triangle object.

One frame = ``Q`` query points (85 % near the two surfaces, the rest uniform in
their box; ``hoimask.data.mesh_sdf_targets``) and their exact signed distances to
a MANO-sized hand (torus, 1536 triangles; MANO has 1538 — its tree is built
every frame, since the hand moves) and to a 20480-triangle object. Three ways:

* ``pure torch`` — ``HOIMASK_DISABLE_NUMBA=1``: the cluster search;
* ``tree per call`` — the op's BVH, built for both meshes every frame;
* ``cached object tree`` — the object's ``MeshBVH`` built once per model
  (``ObjectModels.bvh``), the points moved into the model frame
  (``hoimask.data.posed_model_sdf``): what ``DexYCB`` / ``HO3D`` do.

The goal (issue 17): at most 20 ms per frame for ``Q = 2000`` on one core. The
object pose changes every frame (a random rotation), the hand is fixed.

Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_sdf_targets.py
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from hoimask.data import mesh_sdf_targets, posed_model_sdf
from hoimask.geometry import axis_angle_to_matrix
from hoimask.ops import MeshBVH
from hoimask.sdf import icosphere, torus_mesh

GOAL_MS = 20.0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, nargs="+", default=[2000, 1000])
    ap.add_argument("--frames", type=int, default=20)
    args = ap.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_table(args.points, args.frames)
    finally:
        torch.set_num_threads(threads)


def run_table(points: list[int], frames: int) -> None:
    """Print the table: per ``Q``, the three methods on ``frames`` frames."""
    hand_v, hand_f = torus_mesh(0.04, 0.015, 48, 16)
    hand_v = (hand_v + torch.tensor([0.0, 0.0, 0.6], dtype=torch.float64)).float()
    obj_v, obj_f = icosphere(5, 0.06)
    obj_v = obj_v * torch.tensor([1.0, 0.7, 1.4], dtype=obj_v.dtype)  # not a sphere: the pose matters
    t = torch.tensor([0.07, -0.01, 0.6], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    poses = [axis_angle_to_matrix(torch.randn(3, generator=g, dtype=torch.float64)) for _ in range(frames)]
    tree = MeshBVH(obj_v, obj_f)  # once per model

    def run(q: int, mode: str) -> float:
        times = []
        for i, R in enumerate(poses):
            posed = (obj_v @ R.T + t).float()
            sdf = posed_model_sdf(tree, R, t) if mode == "cached object tree" else None
            gen = torch.Generator().manual_seed(i)
            t0 = time.perf_counter()
            mesh_sdf_targets(hand_v, hand_f, posed, obj_f, q, generator=gen, object_sdf=sdf)
            times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2] * 1e3  # median

    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, torch threads 1, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; hand 1536 triangles, object {obj_f.shape[0]} "
          f"triangles, {frames} frames, median")
    print("| Q | method | ms / frame | vs pure torch | vs the 20 ms goal |")
    print("|---|---|---|---|---|")
    for q in points:
        base = None
        for mode in ("pure torch", "tree per call", "cached object tree"):
            old = os.environ.get("HOIMASK_DISABLE_NUMBA")
            os.environ["HOIMASK_DISABLE_NUMBA"] = "1" if mode == "pure torch" else "0"
            try:
                run(q, mode)  # warm-up (compilation, caches)
                ms = run(q, mode)
            finally:
                if old is None:
                    del os.environ["HOIMASK_DISABLE_NUMBA"]
                else:
                    os.environ["HOIMASK_DISABLE_NUMBA"] = old
            base = ms if base is None else base
            verdict = "meets" if ms <= GOAL_MS else "misses"
            print(f"| {q} | {mode} | {ms:.1f} | {base / ms:.2f}x | {verdict} ({GOAL_MS / ms:.2f}x) |", flush=True)


if __name__ == "__main__":
    main()
