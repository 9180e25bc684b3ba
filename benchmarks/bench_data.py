"""Benchmark of the synthetic data pipeline (issue #6 target: >= 20 samples/s on one CPU core).

Measures, in one run and on one thread:

1. ``SyntheticHOI`` samples/s at 128×128 with 2048 SDF points, against the
   20 samples/s target;
2. the renderer: closed-form ray casting with coarse culling (the library's
   path) against the baseline of sphere tracing the same scene SDF
   (bounding-sphere early-out, 48 steps), and against ray casting without
   the coarse culling pass;
3. SDF targets: the hand's analytic capsule SDF (the library's path) against
   the baseline of ``hoimask.ops.mesh_sdf`` on the hand mesh;
4. a ``DataLoader`` with 2 workers (samples/s seen by the training loop).

Run:  OMP_NUM_THREADS=1 python benchmarks/bench_data.py [--samples 60] [--size 128]
"""

from __future__ import annotations

import argparse
import time

import torch


def _rate(fn, n: int) -> float:
    fn(0)  # warm-up
    t = time.perf_counter()
    for i in range(n):
        fn(i + 1)
    return n / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--sdf-points", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from hoimask.data import SyntheticHOI, collate
    from hoimask.data.raycast import camera_rays, sphere_trace
    from hoimask.data.scene import render_scene, sample_scene
    from hoimask.ops import mesh_sdf

    n, size = args.samples, args.size
    ds = SyntheticHOI(num_samples=10_000, image_size=size, seed=0, num_sdf_points=args.sdf_points)
    rows = []
    full = _rate(lambda i: ds[i], n)
    rows.append(("SyntheticHOI sample (render + labels + SDF)", f"{full:.1f} samples/s", "target 20 samples/s", full / 20))

    scenes = [sample_scene(ds.hand, (size, size), generator=torch.Generator().manual_seed(i)) for i in range(n + 1)]
    cast = _rate(lambda i: render_scene(scenes[i]), n)
    nocull = _rate(lambda i: render_scene(scenes[i], coarse_culling=False), n)

    def trace(i: int) -> None:
        sc = scenes[i]
        dirs = camera_rays(sc.K.float(), size, size)

        def scene_sdf(p: torch.Tensor) -> torch.Tensor:
            d = sc.hand_sdf(p)
            return d if sc.obj is None else torch.minimum(d, sc.obj.sdf(p))

        a, b, r = sc.capsules
        pts = torch.cat([a, b] + ([sc.obj.translation[None]] if sc.obj is not None else [])).float()
        c = (pts.amin(0) + pts.amax(0)) / 2
        rad = float((pts - c).norm(dim=-1).max()) + 0.03 + (sc.obj.bounding_radius() if sc.obj is not None else 0.0)
        sphere_trace(scene_sdf, dirs, center=c, radius=rad, max_steps=48, eps=2e-4)

    traced = _rate(trace, max(10, n // 3))
    rows.append(("render: closed-form ray cast + coarse culling", f"{cast:.1f} frames/s", "baseline: sphere tracing", cast / traced))
    rows.append(("render: sphere tracing (48 steps, baseline)", f"{traced:.1f} frames/s", "", 1.0))
    rows.append(("render: ray cast without coarse culling", f"{nocull:.1f} frames/s", "baseline: sphere tracing", nocull / traced))

    sc = scenes[0]
    q = args.sdf_points
    pts = sc.vertices.mean(0) + 0.05 * torch.randn(q, 3, generator=torch.Generator().manual_seed(0))
    analytic = _rate(lambda i: sc.hand_sdf(pts), 50)
    exact = _rate(lambda i: mesh_sdf(pts[None], sc.vertices[None], ds.hand.faces), 5)
    rows.append((f"sdf_hand, {q} points: analytic capsules", f"{analytic:.0f} /s", "baseline: mesh_sdf", analytic / exact))
    rows.append((f"sdf_hand, {q} points: mesh_sdf (baseline)", f"{exact:.1f} /s", "", 1.0))

    if args.workers > 0:
        loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=args.workers, collate_fn=collate)
        it = iter(loader)
        next(it)
        t = time.perf_counter()
        batches = max(4, n // 8)
        for _ in range(batches):
            next(it)
        rate = batches * 8 / (time.perf_counter() - t)
        rows.append((f"DataLoader, {args.workers} workers, batch 8", f"{rate:.1f} samples/s", "target 20 samples/s", rate / 20))

    print(f"hoimask.data benchmark: image {size}x{size}, {args.sdf_points} SDF points, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s)")  # fmt: skip
    print(f"| {'what':48s} | {'measured':>16s} | {'compared with':26s} | ratio |")
    print(f"|{'-' * 50}|{'-' * 18}|{'-' * 28}|-------|")
    for what, value, base, ratio in rows:
        print(f"| {what:48s} | {value:>16s} | {base:26s} | {ratio:5.2f} |")


if __name__ == "__main__":
    main()
