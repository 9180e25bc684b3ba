"""CPU mesh SDF, one thread: hoimask's BVH against every CPU peer, in one run.

Peers (each skipped, and said so, when missing): pysdf (``SDF(v, f)(p,
n_threads=1)``: nearest-vertex kd-tree + the faces around that vertex, sign by
ray casting), NVIDIA Warp on the CPU (BVH, ``mesh_query_point_sign_winding_number``),
libigl (``signed_distance``, pseudo-normal and fast-winding-number signs; it
builds its AABB tree inside every call), trimesh (``proximity.signed_distance``).

Rows, per mesh:

* ``hoimask MeshBVH`` — the tree built once (``hoimask.ops.MeshBVH``), queried;
  ``sign="winding"`` takes every sign from the fast winding number;
* ``hoimask mesh_sdf (tree per call)`` — the op, which builds one tree per call;
* ``hoimask mesh_sdf, pure torch`` — the op with ``HOIMASK_DISABLE_NUMBA=1``;
* ``... 2 threads`` — MeshBVH with two torch threads (scaling; not a peer row);
* ``build`` — the one-off cost of a structure (hoimask's tree, pysdf's; Warp's
  ``wp.Mesh`` is built outside the timing and not reported).

Meshes (camera frame, 0.6 m in front of the camera): ``hand`` — torus with 1536
triangles (MANO has 1538); ``procedural_hand`` — hoimask's licence-free hand
(3312 triangles, overlapping capsules: signs by winding number); ``object`` —
icosphere with 20480 triangles (a YCB-sized model, 8 cm); ``box`` — a 12-triangle
box (large triangles: where a nearest-vertex search is not exact).
Queries: half near the surface, half uniform in the box padded by 2 cm (the mix
of SDF targets). ``err`` is the max ``|sdf - exact|`` over the first 2000 points,
``exact`` the pure-torch brute force in float64; ``sign`` the fraction of those
points whose inside/outside differs from the brute-force winding number
(``|w| > 0.5``). Times: best of ``--repeats`` after a warm-up, float32 points.
``vs fastest peer`` = fastest peer's query time / this row's time (> 1: faster).

Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_mesh_sdf_cpu.py
    python benchmarks/bench_mesh_sdf_cpu.py --meshes hand --queries 2000
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import platform
from collections.abc import Callable

os.environ.setdefault("IGL_NUM_THREADS", "1")  # libigl's parallel_for: one thread, like everything here

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from hoimask.ops import MeshBVH, mesh_sdf  # noqa: E402
from hoimask.ops.mesh_sdf.reference import mesh_sdf_reference, triangle_search  # noqa: E402
from hoimask.sdf import box_mesh, icosphere, sample_near_surface, sample_uniform, torus_mesh  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_export_sdf import timed as best_time  # noqa: E402
from bench_mesh_sdf import run_warp  # noqa: E402

OFFSET = torch.tensor([0.02, -0.03, 0.6], dtype=torch.float64)
CHECK = 2000  # points compared with the brute force


def make_mesh(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if name == "hand":
        v, f = torus_mesh(0.04, 0.015, 48, 16)
    elif name == "procedural_hand":
        from hoimask.hand import ProceduralHand

        hand = ProceduralHand(dtype=torch.float64)
        pose = hand.grasp_pose(torch.tensor([0.5], dtype=torch.float64))
        v, f = hand(pose, torch.zeros(1, 10, dtype=torch.float64)).vertices[0], hand.faces
        v = v - v.mean(0)
    elif name == "object":
        v, f = icosphere(5, 0.08)
    elif name == "box":
        v, f = box_mesh((0.05, 0.03, 0.08))
    else:
        raise SystemExit(f"unknown mesh {name!r}")
    return v + OFFSET, f


def make_points(v: torch.Tensor, f: torch.Tensor, q: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    near = sample_near_surface(v[None], f, q // 2, generator=g)[0]
    uniform = sample_uniform(v.amin(0) - 0.02, v.amax(0) + 0.02, q - q // 2, generator=g)
    return torch.cat([near, uniform])  # (Q, 3) float64


@contextlib.contextmanager
def env(name: str, value: str):
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


@contextlib.contextmanager
def threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def peers(v: torch.Tensor, f: torch.Tensor, p: np.ndarray) -> dict[str, tuple[Callable[[], object] | str, Callable]]:
    """``label -> (build, query(structure) -> sdf in hoimask's sign convention)`` of the installed peers.

    ``build`` is a callable making the peer's structure (timed once), or a word on where it is built.
    """
    out: dict[str, tuple[Callable[[], object], Callable]] = {}
    vf, ff = v.float().numpy(), f.int().numpy()
    if importlib.util.find_spec("pysdf"):
        from pysdf import SDF

        out["pysdf"] = (lambda: SDF(vf, ff), lambda s: -s(p, n_threads=1))  # positive inside
    if importlib.util.find_spec("warp"):
        query = run_warp(v, f, torch.from_numpy(p)[None], "cpu")  # builds its wp.Mesh (not timed here)
        out["warp CPU"] = ("not timed", lambda _s: query())
    if importlib.util.find_spec("igl"):
        import igl

        vd, fd, pd = v.numpy(), f.numpy().astype(np.int64), p.astype(np.float64)
        for label, kind in (("libigl pseudonormal", igl.SIGNED_DISTANCE_TYPE_PSEUDONORMAL),
                            ("libigl fast winding", igl.SIGNED_DISTANCE_TYPE_FAST_WINDING_NUMBER)):  # fmt: skip
            out[label] = ("in query", lambda _s, kind=kind: igl.signed_distance(pd, vd, fd, sign_type=kind)[0])
    if importlib.util.find_spec("trimesh") and importlib.util.find_spec("rtree") and p.shape[0] <= 10_000:
        import trimesh

        mesh = trimesh.Trimesh(v.numpy(), f.numpy(), process=False)
        out["trimesh"] = ("cached by the warm-up", lambda _s: -trimesh.proximity.signed_distance(mesh, p))
    return out


def run_case(name: str, v: torch.Tensor, f: torch.Tensor, q: int, repeats: int) -> None:
    """Time every method on one mesh and ``q`` points; print the table rows."""
    p32 = make_points(v, f, q).float()
    vf = v.float()
    check = p32[:CHECK].double()
    exact = mesh_sdf_reference(check[None], vf.double()[None], f)[0].abs().numpy()
    inside = (triangle_search(check[None], vf.double()[None], f, with_winding=True)[1][0].abs() > 0.5).numpy()
    rows = []

    def add(label, build, query, note=""):
        """``build``: callable (timed once, its result passed to ``query``), a string (where it is built), or None."""
        try:
            if callable(build):
                b_wall = f"{best_time(build, 1)[0] * 1e3:.1f}"
                structure = build()
            else:
                b_wall, structure = build or "in query", None
            wall, cpu, out = best_time(lambda: query(structure), repeats)
            out = np.asarray(out.detach().double() if isinstance(out, torch.Tensor) else out, np.float64)
            rows.append((label, wall, cpu, b_wall, out[:CHECK], note))
        except Exception as exc:  # noqa: BLE001 - the table says what failed
            rows.append((label, None, None, None, None, f"failed: {type(exc).__name__}: {exc}"[:100]))

    add("hoimask MeshBVH", lambda: MeshBVH(vf, f), lambda t: t.sdf(p32))
    add("hoimask MeshBVH sign=winding", lambda: MeshBVH(vf, f), lambda t: t.sdf(p32, sign="winding"))
    add("hoimask mesh_sdf (tree per call)", None, lambda _: mesh_sdf(p32[None], vf[None], f)[0])
    with env("HOIMASK_DISABLE_NUMBA", "1"):
        add("hoimask mesh_sdf, pure torch", None, lambda _: mesh_sdf(p32[None], vf[None], f)[0])
    with threads(2):
        add("hoimask MeshBVH, 2 threads", lambda: MeshBVH(vf, f), lambda t: t.sdf(p32), "scaling, not a peer")
    peer_rows = peers(v, f, p32.numpy())
    for label, (build, query) in peer_rows.items():
        add(label, build, query)
    fastest = min((r[1] for r in rows if r[0] in peer_rows and r[1] is not None), default=None)
    for label, wall, cpu, b_wall, out, note in rows:
        if wall is None:
            cells = [name, str(f.shape[0]), str(q), label, "-", "-", "-", "-", "-", note]
        else:
            err = np.abs(np.abs(out) - exact).max()
            wrong = float(((out < 0) != inside).mean())
            ratio = f"{fastest / wall:.2f}x" if fastest else "-"
            cells = [name, str(f.shape[0]), str(q), label, f"{wall * 1e3:.1f}", f"{cpu * 1e3:.1f}", b_wall,
                     ratio, f"{err:.1e}", f"{wrong:.2%} {note}".strip()]  # fmt: skip
        print("| " + " | ".join(cells) + " |", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meshes", nargs="+", default=["hand", "procedural_hand", "object", "box"])
    ap.add_argument("--queries", type=int, nargs="+", default=[10_000])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, torch threads 1, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, IGL_NUM_THREADS={os.environ.get('IGL_NUM_THREADS')}")
    print("| mesh | T | Q | method | query wall (ms) | query CPU (ms) | build (ms) | vs fastest peer | err (m) | sign |")
    print("|" + "---|" * 10)
    with threads(1):
        for name in args.meshes:
            v, f = make_mesh(name)
            for q in args.queries:
                run_case(name, v, f, q, args.repeats)


if __name__ == "__main__":
    main()
