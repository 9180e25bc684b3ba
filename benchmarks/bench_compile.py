"""``torch.compile`` against eager: training-step time of the ViT encoder, MaskHOI and HOISDF.

For each model, two copies with the same weights: one eager, one compiled in
place (``module.compile()``, inductor, default mode). Each step is a forward
and a backward pass on the same batch (``SyntheticHOI`` scenes through
``collate``, so HOISDF has its SDF targets); the copies are timed round-robin
after ``--warmup`` steps (the first of which compiles; its time is printed as
the compile time), median over ``--steps``. Printed: eager ms, compiled ms,
eager / compiled, compile seconds, and the graphs and graph breaks that
``torch._dynamo.explain`` finds in the whole forward (the breaks are in the
masking, the sampling and the losses; the encoder and the heads trace as single
graphs, ``tests/models/test_compile.py``).

Usage::

    python benchmarks/bench_compile.py                        # tiny presets, CPU, batch 8
    python benchmarks/bench_compile.py --device cuda --batch 32
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch._dynamo as dynamo

from hoimask.data import SyntheticHOI, collate
from hoimask.models import HOISDF, MaskHOI
from hoimask.nn import ViTEncoder


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def cases(batch_size: int, device: torch.device) -> dict:
    """name -> (model, the inputs of its forward, the scalar a training step backpropagates from its output)."""
    torch.manual_seed(0)
    scenes = SyntheticHOI(batch_size, image_size=128, num_sdf_points=512, seed=0)
    batch = to(collate([scenes[i] for i in range(batch_size)]), device)
    encoder = ViTEncoder(img_size=128, patch_size=16, embed_dim=192, depth=4, num_heads=3)

    def token_energy(out):
        return out.tokens.float().square().mean()

    def model_loss(out):
        return out["loss"]

    return {
        "ViT encoder (tiny)": (encoder, (batch["image"],), token_energy),
        "MaskHOI tiny": (MaskHOI.from_preset("tiny"), (batch,), model_loss),
        "HOISDF tiny": (HOISDF.from_preset("tiny"), (batch,), model_loss),
    }


def breaks(model, inputs: tuple) -> tuple[int, int]:
    """Graphs and graph breaks of ``model.forward(*inputs)`` under ``torch._dynamo.explain``."""
    dynamo.reset()
    e = dynamo.explain(model.forward)(*inputs)
    dynamo.reset()
    return e.graph_count, e.graph_break_count


def measure(name: str, model, inputs: tuple, loss, args, device: torch.device) -> str:
    model = model.to(device).train()
    graphs, n_breaks = breaks(model, inputs)
    compiled = copy.deepcopy(model)
    compiled.compile(backend=args.backend)
    models = {"eager": model, "compiled": compiled}
    seed = torch.initial_seed()

    def run(m) -> float:
        torch.manual_seed(seed)  # the same masks / sampling in both copies
        m.zero_grad(set_to_none=True)
        sync(device)
        t = time.perf_counter()
        loss(m(*inputs)).backward()
        sync(device)
        return time.perf_counter() - t

    compile_s = run(compiled)  # first call: traces and compiles
    for _ in range(args.warmup):
        for m in models.values():
            run(m)
    times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(args.steps):
        for key, m in models.items():
            times[key].append(run(m))
    eager, comp = (statistics.median(times[k]) * 1e3 for k in ("eager", "compiled"))
    return (f"| {name} | {eager:.1f} | {comp:.1f} | {eager / comp:.2f} | {compile_s:.0f} | {graphs} | {n_breaks} |")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per copy (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per copy after compiling (default 3)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--only", nargs="*", help="names (substrings) of the cases to run")
    p.add_argument("--backend", default="inductor", help="torch.compile backend (default inductor; eager: trace only)")
    args = p.parse_args(argv)
    if args.batch < 1 or args.steps < 1 or args.warmup < 0:
        p.error("--batch and --steps must be >= 1, --warmup >= 0")
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"median of {args.steps} forward+backward steps, backend {args.backend}")
    print("| model | eager ms | compiled ms | eager / compiled | compile s | graphs | graph breaks |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (model, inputs, loss) in cases(args.batch, device).items():
        if args.only and not any(s.lower() in name.lower() for s in args.only):
            continue
        print(measure(name, model, inputs, loss, args, device), flush=True)


if __name__ == "__main__":
    main()
