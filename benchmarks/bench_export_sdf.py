"""Benchmark the SDF export (``python -m hoimask.data.export_sdf``): time per frame on one core vs trimesh.

Claim: 40k samples per frame (AlignSDF's 20k per mesh, each with its signed
distance to the hand *and* to the object, plus hand-part labels) in at most
0.5 s per CPU core.

The frame is synthetic, with the sizes of a DexYCB frame (no licensed data):

* ``hand``: a MANO-sized closed-off ellipsoid, 9 x 4 x 2.5 cm, 778 vertices
  and 1517 triangles (MANO: 778 / 1538) with one open rim like MANO's wrist;
* ``object``: an icosphere of radius 5 cm with 20480 triangles (the YCB
  ``textured_simple`` models have up to ~20k), touching the hand,
  0.6 m in front of the camera.

Rows (process CPU time and wall time, best of ``--repeats`` after a warm-up;
torch uses one thread, as each exporter worker does):

* ``frame``: :func:`hoimask.data.sample_frame_sdf` — sampling, both exact
  signed distances of every sample, nearest-vertex part labels;
* its parts: sampling only; ``mesh_sdf`` to the hand; ``mesh_sdf`` to the
  object; nearest MANO vertex;
* the closest-triangle search inside ``mesh_sdf`` to the object with the
  clusters grouped under a second level of boxes (the default for large
  meshes) and flat (``group_size=1``, the search before grouping existed);
* ``write``: building both layouts and writing them (``.npy`` + 3 ``.npz``,
  atomic, fsync) to a temporary folder;
* ``MANO forward``: :class:`hoimask.hand.MANOLayer` on a synthetic MANO file
  with the real array sizes (what the exporter runs per frame);
* ``trimesh``: ``trimesh.proximity.signed_distance`` (needs ``rtree``) of the
  same 40k points to the same two meshes — the baseline; one run (it takes
  tens of seconds). The ratio is trimesh's time over hoimask's for the same
  two signed distances, and over hoimask's whole frame. The error column is
  the largest difference from hoimask's float64 distances (trimesh returns
  positive inside; it is negated).

Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_export_sdf.py
    python benchmarks/bench_export_sdf.py --no-trimesh --repeats 5
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from hoimask.data import sample_frame_sdf
from hoimask.data.sdf_export import _save_npy, _save_npz
from hoimask.data.sdf_files import alignsdf_arrays, hoisdf_rows
from hoimask.data.sdf_samples import nearest_vertex, normalization, sample_mesh_queries
from hoimask.ops import mesh_sdf
from hoimask.ops.mesh_sdf.clustered import clustered_search
from hoimask.sdf import icosphere

CAMERA = torch.tensor([0.0, 0.0, 0.6], dtype=torch.float64)


def hand_sized_mesh(rings: int = 21, segments: int = 37) -> tuple[torch.Tensor, torch.Tensor]:
    """A UV ellipsoid with one pole removed: ``rings * segments + 1`` = 778 vertices, ``segments * (2 rings - 1)`` = 1517 triangles."""
    verts = [[0.0, 0.0, 1.0]]
    for i in range(1, rings + 1):
        theta = math.pi * i / (rings + 1)
        for j in range(segments):
            phi = 2 * math.pi * j / segments
            verts.append([math.sin(theta) * math.cos(phi), math.sin(theta) * math.sin(phi), math.cos(theta)])
    faces = [[0, 1 + j, 1 + (j + 1) % segments] for j in range(segments)]
    for i in range(rings - 1):
        for j in range(segments):
            a, b = 1 + i * segments + j, 1 + i * segments + (j + 1) % segments
            faces += [[a, a + segments, b + segments], [a, b + segments, b]]
    v = torch.tensor(verts, dtype=torch.float64) * torch.tensor([0.025, 0.04, 0.09], dtype=torch.float64)
    return v + CAMERA, torch.tensor(faces)


def make_frame() -> tuple[torch.Tensor, ...]:
    hv, hf = hand_sized_mesh()
    ov, of = icosphere(5, 0.05)
    ov = ov + CAMERA + torch.tensor([0.075, 0.0, 0.0], dtype=torch.float64)  # touches the hand's side
    weights = torch.rand(hv.shape[0], 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return hv, hf, weights, ov, of


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """Best wall and best process-CPU time of ``repeats`` runs after one warm-up, and the last result."""
    out = fn()
    wall = cpu = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=20_000, help="samples per mesh (AlignSDF: 20000)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-trimesh", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    hv, hf, w, ov, of = make_frame()
    n = args.samples
    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch threads {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"# hand {hv.shape[0]} vertices / {hf.shape[0]} triangles, object {ov.shape[0]} / {of.shape[0]}, "
          f"{n} samples per mesh = {2 * n} rows, {args.repeats} repeats")
    g = torch.Generator()

    def frame():
        return sample_frame_sdf(hv, hf, w, ov, of, num_samples=n, generator=g.manual_seed(0))

    offset, scale = normalization(hv, ov)
    hvf, ovf = hv.float(), ov.float()

    def sampling():
        g.manual_seed(0)
        return torch.cat([sample_mesh_queries(hvf, hf, n, center=-offset, scale=scale, generator=g),
                          sample_mesh_queries(ovf, of, n, center=-offset, scale=scale, generator=g)])

    points = sampling()
    rows: list[tuple[str, float, float, str]] = []
    for label, fn in (
        ("frame: sample_frame_sdf (all below)", frame),
        ("  sampling (2 x 20k)", sampling),
        ("  mesh_sdf to the hand (40k points)", lambda: mesh_sdf(points[None], hvf[None], hf)),
        ("  mesh_sdf to the object (40k points)", lambda: mesh_sdf(points[None], ovf[None], of)),
        ("  nearest MANO vertex (labels)", lambda: nearest_vertex(points, hvf)),
        ("closest-triangle search to the object, clusters grouped (default)",
         lambda: clustered_search(points[None], ovf[None], of)),
        ("closest-triangle search to the object, flat clusters (group_size=1)",
         lambda: clustered_search(points[None], ovf[None], of, group_size=1)),
    ):
        wall, cpu, _ = timed(fn, args.repeats)
        rows.append((label, wall, cpu, ""))
    samples = frame()
    with tempfile.TemporaryDirectory() as tmp:
        def write():
            _save_npy(Path(tmp) / "sdf_processed" / "f.npy", hoisdf_rows(samples))
            for folder, arrays in alignsdf_arrays(samples).items():
                _save_npz(Path(tmp) / folder / "f.npz", arrays)

        wall, cpu, _ = timed(write, args.repeats)
        rows.append(("write both layouts (atomic, fsync)", wall, cpu, ""))
        from hoimask.hand import MANOLayer
        from hoimask.hand.testing import write_synthetic_mano

        layer = MANOLayer(write_synthetic_mano(Path(tmp) / "MANO_RIGHT.pkl", "right"), use_pca=True,
                          num_pca_comps=45, flat_hand_mean=False, dtype=torch.float64)  # fmt: skip
        pose = torch.randn(1, 48, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 0.3
        wall, cpu, _ = timed(lambda: layer(pose, torch.zeros(1, 10, dtype=torch.float64)), args.repeats)
        rows.append(("MANO forward (synthetic file, real sizes)", wall, cpu, ""))
    sdf_wall = sum(r[1] for r in rows[2:4])
    sdf_cpu = sum(r[2] for r in rows[2:4])
    has_trimesh = importlib.util.find_spec("rtree") is not None and not args.no_trimesh
    if has_trimesh:
        import trimesh

        p64 = points.double()
        ref = torch.cat([mesh_sdf(p64[None], hv[None], hf), mesh_sdf(p64[None], ov[None], of)]).numpy()
        pts = points.double().numpy()
        hand_mesh = trimesh.Trimesh(hv.numpy(), hf.numpy(), process=False)
        obj_mesh = trimesh.Trimesh(ov.numpy(), of.numpy(), process=False)
        t0, c0 = time.perf_counter(), time.process_time()
        th = -trimesh.proximity.signed_distance(hand_mesh, pts)
        to = -trimesh.proximity.signed_distance(obj_mesh, pts)
        t_wall, t_cpu = time.perf_counter() - t0, time.process_time() - c0
        err_h, err_o = np.abs(th - ref[0]).max(), np.abs(to - ref[1]).max()
        wrong_h, wrong_o = int((np.sign(th) != np.sign(ref[0])).sum()), int((np.sign(to) != np.sign(ref[1])).sum())
        rows.append(("trimesh signed_distance, hand + object", t_wall, t_cpu,
                     f"max err hand {err_h:.1e} m ({wrong_h} signs differ), object {err_o:.1e} m ({wrong_o})"))
    print("| step | wall (s) | CPU (s) | note |")
    print("|---|---|---|---|")
    for label, wall, cpu, note in rows:
        print(f"| {label} | {wall:.3f} | {cpu:.3f} | {note} |")
    frame_cpu, frame_wall = rows[0][2], rows[0][1]
    print()
    print(f"per frame on one core: {frame_cpu:.3f} s CPU ({frame_wall:.3f} s wall) for {2 * n} samples; "
          f"target <= 0.5 s: {'met' if frame_cpu <= 0.5 else 'NOT met'} (CPU time)")
    if has_trimesh:
        print(f"trimesh / hoimask, the two signed distances: {t_cpu / sdf_cpu:.1f}x CPU ({t_wall / sdf_wall:.1f}x wall); "
              f"trimesh / hoimask whole frame: {t_cpu / frame_cpu:.1f}x CPU ({t_wall / frame_wall:.1f}x wall)")
    else:
        print("trimesh baseline not run (--no-trimesh or rtree missing)")


if __name__ == "__main__":
    main()
