"""Benchmark ``hoimask.ops.mesh_sdf`` against trimesh and NVIDIA Warp.

Meshes (camera space, 0.6 m in front of the camera):

* ``hand``: a torus with 1536 triangles (MANO has 1538), R = 4 cm, r = 1.5 cm;
* ``object``: an icosphere with 20480 triangles, radius 8 cm.

Query points: half near the surface (``sample_near_surface``, default sigmas),
half uniform in the bounding box padded by 2 cm. The error is the max
``|sdf - sdf_ref|`` over (up to) the first 20k points, where ``sdf_ref`` is
hoimask's float64 result (itself tested against an independent brute force
in ``tests/ops``). Ratios are ``baseline time / method time`` against
``trimesh.proximity.signed_distance`` (needs ``rtree``), on process CPU time
(robust to other processes sharing the machine) and on wall time. Times are
the best of ``--repeats`` runs after a warm-up (one run above Q = 100k).

Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_mesh_sdf.py            # full table
    python benchmarks/bench_mesh_sdf.py --queries 10000 --meshes hand  # quick

trimesh and Warp rows are skipped (and said so) when the package is missing
or when ``Q`` exceeds ``--baseline-max-q``. GPU rows (Triton, Warp CUDA) run
only when CUDA is available.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import torch

from hoimask.ops import mesh_sdf
from hoimask.sdf import icosphere, sample_near_surface, sample_uniform, torus_mesh

OFFSET = torch.tensor([0.02, -0.03, 0.6], dtype=torch.float64)
ERROR_POINTS = 20_000


def make_mesh(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if name == "hand":
        v, f = torus_mesh(0.04, 0.015, 48, 16)
    elif name == "object":
        v, f = icosphere(5, 0.08)
    else:
        raise SystemExit(f"unknown mesh {name!r}")
    return v + OFFSET, f


def make_points(v: torch.Tensor, f: torch.Tensor, q: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    near = sample_near_surface(v[None], f, q // 2, generator=g)
    uniform = sample_uniform(v.amin(0) - 0.02, v.amax(0) + 0.02, q - q // 2, generator=g)[None]
    return torch.cat([near, uniform], dim=1)  # (1, Q, 3) float64


def timed(
    fn: Callable[[], np.ndarray | torch.Tensor], repeats: int, sync: bool = False
) -> tuple[float, float, np.ndarray]:
    """Best wall and best process-CPU time of ``repeats`` runs after one warm-up, and the result.

    CPU time (all threads of this process) is less sensitive than wall time to
    other processes sharing the machine; the ratios use it.
    """
    out = fn()
    if sync:
        torch.cuda.synchronize()
    wall = cpu = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        if sync:
            torch.cuda.synchronize()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    if isinstance(out, torch.Tensor):
        out = out.detach().cpu().double().numpy()
    return wall, cpu, np.asarray(out, dtype=np.float64).reshape(-1)


def run_trimesh(v: torch.Tensor, f: torch.Tensor, p: torch.Tensor):
    import trimesh

    mesh = trimesh.Trimesh(v.numpy(), f.numpy(), process=False)
    pts = p[0].numpy()
    # trimesh returns positive inside; negate to hoimask's convention (negative inside).
    return lambda: -trimesh.proximity.signed_distance(mesh, pts)


def run_warp(v: torch.Tensor, f: torch.Tensor, p: torch.Tensor, device: str):
    import warp as wp

    wp.config.quiet = True
    wp.init()

    @wp.kernel
    def query(mesh: wp.uint64, pts: wp.array(dtype=wp.vec3), out: wp.array(dtype=float)):
        tid = wp.tid()
        x = pts[tid]
        res = wp.mesh_query_point_sign_winding_number(mesh, x, 1.0e6, 2.0, 0.5)
        if res.result:
            c = wp.mesh_eval_position(mesh, res.face, res.u, res.v)
            out[tid] = res.sign * wp.length(x - c)

    mesh = wp.Mesh(
        points=wp.array(v.float().numpy(), dtype=wp.vec3, device=device),
        indices=wp.array(f.int().numpy().reshape(-1), dtype=wp.int32, device=device),
    )
    pts = wp.array(p[0].float().numpy(), dtype=wp.vec3, device=device)
    out = wp.zeros(pts.shape[0], dtype=float, device=device)

    def call():
        wp.launch(query, dim=pts.shape[0], inputs=[mesh.id, pts, out], device=device)
        wp.synchronize_device(device)
        return out.numpy()

    return call


class _Recorder:
    """Times one method and appends its row; failures are reported in the table, not hidden."""

    def __init__(self, rows: list, repeats: int, n_err: int) -> None:
        self.rows, self.repeats, self.n_err = rows, repeats, n_err

    def __call__(self, label: str, fn: Callable[[], object], sync: bool = False) -> None:
        try:
            wall, cpu, out = timed(fn, self.repeats, sync)
            self.rows.append((label, (wall, cpu), out[: self.n_err], ""))
        except Exception as exc:  # noqa: BLE001 - the table says what failed
            self.rows.append((label, None, None, f"failed: {type(exc).__name__}: {exc}"[:120]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--meshes", nargs="+", default=["hand", "object"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-max-q", type=int, default=100_000, help="skip CPU baselines above this Q")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    has_trimesh = importlib.util.find_spec("trimesh") is not None and importlib.util.find_spec("rtree") is not None
    has_warp = importlib.util.find_spec("warp") is not None
    cuda = torch.cuda.is_available()
    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"torch threads {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"CUDA {'yes' if cuda else 'no'}")
    header = "| mesh | T | Q | method | wall (s) | CPU (s) | ratio vs trimesh (CPU) | ratio (wall) | max abs err (m) |"
    print(header)
    print("|" + "---|" * 9)
    for name in args.meshes:
        v, f = make_mesh(name)
        T = f.shape[0]
        for q in args.queries:
            p = make_points(v, f, q)
            n_err = min(q, ERROR_POINTS)
            ref = mesh_sdf(p[:, :n_err], v[None], f)[0].numpy()
            rows: list[tuple[str, tuple[float, float] | None, np.ndarray | None, str]] = []
            repeats = args.repeats if q <= 100_000 else 1
            add = _Recorder(rows, repeats, n_err)
            add("hoimask CPU float32", lambda p=p, v=v, f=f: mesh_sdf(p.float(), v[None].float(), f))
            add("hoimask CPU float64", lambda p=p, v=v, f=f: mesh_sdf(p, v[None], f))
            if has_trimesh and q <= args.baseline_max_q:
                add("trimesh signed_distance", run_trimesh(v, f, p))
            else:
                why = "rtree/trimesh missing" if not has_trimesh else f"Q > {args.baseline_max_q}"
                rows.append(("trimesh signed_distance", None, None, "not run: " + why))
            if has_warp and q <= args.baseline_max_q:
                add("warp CPU (winding number)", run_warp(v, f, p, "cpu"))
            else:
                why = "warp-lang missing" if not has_warp else f"Q > {args.baseline_max_q}"
                rows.append(("warp CPU (winding number)", None, None, "not run: " + why))
            if cuda:
                pc, vc, fc = p.float().cuda(), v[None].float().cuda(), f.cuda()
                add("hoimask CUDA Triton float32", lambda pc=pc, vc=vc, fc=fc: mesh_sdf(pc, vc, fc), sync=True)
                if has_warp:
                    add("warp CUDA (winding number)", run_warp(v, f, p, "cuda"), sync=True)
            else:
                rows.append(("hoimask CUDA Triton / warp CUDA", None, None, "not measured: no GPU"))
            base = next((t for label, t, _, _ in rows if label.startswith("trimesh") and t), None)
            for label, t, out, note in rows:
                wall = f"{t[0]:.4f}" if t else "-"
                cpu = f"{t[1]:.4f}" if t else "-"
                r_cpu = f"{base[1] / t[1]:.2f}x" if (t and base) else "-"
                r_wall = f"{base[0] / t[0]:.2f}x" if (t and base) else "-"
                err = f"{np.abs(out - ref).max():.2e}" if out is not None else "-"
                cells = [name, str(T), str(q), label, wall, cpu, r_cpu, r_wall, (err + " " + note).strip()]
                print("| " + " | ".join(cells) + " |", flush=True)

if __name__ == "__main__":
    main()
