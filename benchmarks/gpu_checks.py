"""Every GPU check of the project in one run, in under 10 minutes (issue 17 item 6; docs/benchmarks.md).

Run from the repository root on a machine with a CUDA device (nothing is
installed or downloaded: it uses the environment it finds; missing peers such
as Warp are reported by the step that needs them)::

    python benchmarks/gpu_checks.py --out gpu-run
    python benchmarks/gpu_checks.py --dry-run             # the commands, anywhere

Steps, in this order (each a subprocess with its own time limit, cut to what
is left of ``--budget``; a step that fails or runs out of time is recorded and
the next one runs):

1. ``triton`` — the Triton ``mesh_sdf`` against the pure-torch reference on
   CUDA: values, inside/outside signs, gradients w.r.t. points and vertices,
   winding numbers (the ``gpu``-marked tests of
   ``tests/ops/test_mesh_sdf_triton.py``);
2. ``mesh_sdf`` — its speed against Warp CUDA (goal ≥ 1×) on the hand-sized
   torus and the 20k-triangle object, Q = 10k, 100k and 1M
   (``bench_mesh_sdf.py``; CPU peers only at Q = 10k);
3. ``maskhoi`` — MaskHOI's ``paper`` preset (ViT-B/16, 224 px) training step
   in bf16: images/s, peak memory and MFU (goal ≥ 40 % on an H200), beside
   MAE and HandMIM (``bench_model.py``);
4. ``hoisdf`` — HOISDF's ``paper`` preset step time and memory, both
   backbones (``bench_hoisdf.py``);
5. ``compile`` — ``torch.compile`` against eager on CUDA (``bench_compile.py``).

Writes ``OUT/<step>.txt`` (the step's output) and ``OUT/summary.md`` (date,
device, torch version, each command with its exit status and seconds), the
summary rewritten atomically after every step so that a cut-off run keeps
what it measured. Record the results in docs/benchmarks/ with the date and
device. Without a CUDA device it stops with exit status 2 before running
anything.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch

from hoimask._io import atomic_replace

ROOT = Path(__file__).resolve().parents[1]
#: H200 SXM, dense bf16 (NVIDIA's data sheet), the MFU denominator unless ``--peak-tflops`` says otherwise.
H200_BF16_TFLOPS = 989.0


class Step(NamedTuple):  # (a NamedTuple: the tests load this script without registering it as a module)
    name: str
    limit_s: int  # the step's own time limit; the run's budget may cut it shorter
    argv: tuple[str, ...]
    what: str


def steps(peak_tflops: float) -> list[Step]:
    """The checks, in the order they run."""
    py = sys.executable
    bench = str(ROOT / "benchmarks")
    return [
        Step("triton", 150, (py, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "-m", "gpu",
                             str(ROOT / "tests" / "ops" / "test_mesh_sdf_triton.py")),
             "Triton mesh_sdf vs the reference on CUDA: values, signs, gradients, winding numbers"),
        Step("mesh_sdf", 150, (py, f"{bench}/bench_mesh_sdf.py", "--queries", "10000", "100000", "1000000",
                               "--meshes", "hand", "object", "--repeats", "3", "--baseline-max-q", "10000"),
             "Triton vs Warp CUDA, Q = 10k / 100k / 1M"),
        Step("maskhoi", 120, (py, f"{bench}/bench_model.py", "--preset", "paper", "--device", "cuda", "--bf16",
                              "--batch", "64", "--steps", "10", "--warmup", "3", "--peak-tflops", f"{peak_tflops:g}"),
             "MaskHOI paper preset, bf16: images/s, peak memory, MFU; MAE and HandMIM beside it"),
        Step("hoisdf", 90, (py, f"{bench}/bench_hoisdf.py", "--preset", "paper", "--device", "cuda", "--batch", "22",
                            "--points", "2000", "--steps", "5", "--warmup", "2"),
             "HOISDF paper preset (batch 22, 2000 SDF samples): step time and memory, both backbones"),
        Step("compile", 150, (py, f"{bench}/bench_compile.py", "--device", "cuda", "--batch", "32", "--steps", "5",
                              "--warmup", "2"),
             "torch.compile vs eager on CUDA: ViT encoder, MaskHOI, HOISDF"),
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    all_steps = [s.name for s in steps(H200_BF16_TFLOPS)]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="folder for the outputs (new or empty; required unless --dry-run)")
    p.add_argument("--budget", type=float, default=540.0,
                   help="seconds for the whole run; each step gets at most what is left (default 540)")
    p.add_argument("--only", nargs="+", choices=all_steps, metavar="STEP",
                   help=f"run only these steps, in the usual order ({', '.join(all_steps)})")
    p.add_argument("--peak-tflops", type=float, default=H200_BF16_TFLOPS,
                   help=f"the device's dense bf16 peak for MFU (default: H200, {H200_BF16_TFLOPS:g})")
    p.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    args = p.parse_args(argv)
    if not args.budget > 0:
        p.error(f"argument --budget: expected a positive number of seconds, got {args.budget:g}")
    if not args.peak_tflops > 0:
        p.error(f"argument --peak-tflops: expected a positive number, got {args.peak_tflops:g}")
    if not args.dry_run:
        if args.out is None:
            p.error("argument --out: required (a new or empty folder for the outputs)")
        if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
            p.error(f"argument --out: {args.out} exists and is not an empty folder; choose a new one")
        if not torch.cuda.is_available():
            p.error("no CUDA device: these are the GPU checks (use --dry-run to see the commands)")
    return args


def _summary(header: list[str], rows: list[str]) -> str:
    table = ["| step | exit | seconds | what | command |", "|---|---:|---:|---|---|"]
    return "\n".join(header + [""] + table + rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = [s for s in steps(args.peak_tflops) if args.only is None or s.name in args.only]
    if args.dry_run:
        for s in chosen:
            print(f"# {s.name} (at most {s.limit_s} s): {s.what}\n{' '.join(s.argv)}")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name(0)
    header = [
        "# GPU checks",
        "",
        f"* Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"* Device: {device}; torch {torch.__version__}, CUDA {torch.version.cuda}; {platform.machine()}",
        f"* Command: `python benchmarks/gpu_checks.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
    ]
    rows: list[str] = []
    start = time.monotonic()
    failed = 0
    for s in chosen:
        left = args.budget - (time.monotonic() - start)
        if left < 10:
            rows.append(f"| {s.name} | not run | 0 | {s.what} | budget spent |")
            failed += 1
            continue
        t0 = time.monotonic()
        log = args.out / f"{s.name}.txt"
        with open(log, "w") as f:
            try:
                rc = subprocess.run(s.argv, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                                    timeout=min(s.limit_s, left)).returncode
                status = str(rc)
            except subprocess.TimeoutExpired:
                rc, status = 124, "timeout"
        failed += rc != 0
        seconds = time.monotonic() - t0
        rows.append(f"| {s.name} | {status} | {seconds:.0f} | {s.what} | `{' '.join(s.argv)}` |")
        print(f"{s.name}: {status} in {seconds:.0f} s -> {log}", flush=True)
        with atomic_replace(args.out / "summary.md") as tmp, open(tmp, "w") as f:
            f.write(_summary(header, rows))
    with atomic_replace(args.out / "summary.md") as tmp, open(tmp, "w") as f:
        f.write(_summary(header, rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
