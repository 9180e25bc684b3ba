"""Step time and memory of MaskHOI (at several keep ratios) and HandMIM vs a plain MAE with the same encoder.

Measures, in the same run and on the same random batch:

* forward+backward time of one training step (median over ``--steps``,
  the models measured round-robin so that load changes affect them alike) and
  its FLOPs (``torch.utils.flop_counter``, independent of load) for
  ``MaskHOI`` (all heads, SDF branch, hand layer) and ``MAE`` (pixel decoder),
  with random masking so the number of kept tokens ``L`` is exactly
  ``keep * N`` for both;
* forward+backward time and FLOPs of the encoder alone (shows that its cost
  falls with the keep ratio);
* memory: peak allocated bytes on CUDA; on CPU the bytes of tensors saved for
  backward (activation memory, measured with ``saved_tensors_hooks``);
* on CUDA: images/s and model FLOPs utilisation (FLOPs counted by
  ``torch.utils.flop_counter`` / time / ``--peak-tflops``).

Then a second table, HandMIM vs MAE (``HandMIM`` preset ``tiny`` for
``--preset tiny``, ``base`` — ViT-B/16, 224 px — for ``paper``; the MAE of the
same preset, its encoder loaded with HandMIM's weights, so the encoders are the
same size; the same images, batch ``--batch``): the time of one whole training
step — forward, backward, an AdamW step and, for HandMIM, ``update_teacher()``
(also timed alone) — each model with its own masking (MAE: 75 % of the patches
dropped; HandMIM: a fixed draw of its masks, ratios in [0.1, 0.5] per view, the
masked patches kept as mask tokens), FLOPs, memory as above and trainable
parameters, with the ratios HandMIM / MAE. HandMIM's two views are made once
beforehand (what ``hoimask.data.TwoViewTransform`` does in the data pipeline);
the time ``HandMIM.make_views`` takes to draw them for the batch is printed
beside the table. ``--no-handmim`` skips this table.

Usage::

    python benchmarks/bench_model.py                       # tiny preset, CPU, batch 8
    python benchmarks/bench_model.py --preset paper --device cuda --batch 64 --bf16 --peak-tflops 989
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import torch
from torch.utils.flop_counter import FlopCounterMode

from hoimask.masking import RandomMasker
from hoimask.models import MAE, HandMIM, MaskHOI
from hoimask.models.config import resolve_preset

#: HandMIM's preset with the encoder of each ``--preset`` (MaskHOI's and MAE's ``tiny``; ViT-B/16 at 224 px).
HANDMIM_PRESET = {"tiny": "tiny", "paper": "base"}


def make_batch(batch: int, size: int, points: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors with the shapes and ranges of the data pipeline's batch (values do not affect timing)."""
    g = torch.Generator().manual_seed(seed)
    f = 1.6 * size
    K = torch.tensor([[f, 0.0, size / 2], [0.0, f, size / 2], [0.0, 0.0, 1.0]]).expand(batch, 3, 3).clone()
    joints_3d = torch.tensor([0.0, 0.0, 0.5]) + 0.05 * torch.randn(batch, 21, 3, generator=g)
    joints_2d = (joints_3d[..., :2] / joints_3d[..., 2:]) * f + size / 2
    sdf_points = torch.tensor([0.0, 0.0, 0.5]) + 0.1 * (torch.rand(batch, points, 3, generator=g) - 0.5)
    out = {
        "image": torch.rand(batch, 3, size, size, generator=g),  # RGB in [0, 1]: the models normalise it
        "segmentation": torch.randint(0, 3, (batch, size, size), generator=g),
        "joints_2d": joints_2d,
        "joints_3d": joints_3d,
        "K": K,
        "sdf_points": sdf_points,
        "sdf_hand": 0.03 * torch.randn(batch, points, generator=g),
        "sdf_object": 0.03 * torch.randn(batch, points, generator=g),
        "hand_pose": 0.2 * torch.randn(batch, 16, 3, generator=g),
        "hand_shape": torch.randn(batch, 10, generator=g),
        "object_rotation": torch.linalg.qr(torch.randn(batch, 3, 3, generator=g))[0],
        "object_translation": torch.tensor([0.0, 0.0, 0.5]) + 0.05 * torch.randn(batch, 3, generator=g),
    }
    return {k: v.to(device) for k, v in out.items()}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fns: dict, device: torch.device, steps: int, warmup: int) -> dict[str, float]:
    """Median wall time (s) of each ``fns[name]()``, run round-robin so load changes hit all alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(steps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def memory(fn, device: torch.device) -> float:
    """Peak CUDA bytes allocated by ``fn()``, or bytes saved for backward on CPU (MiB)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        seen[id(t.untyped_storage())] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values()) / 2**20


def matmul_gflops(device: torch.device, size: int = 1024, repeats: int = 5) -> float:
    """Throughput of a plain fp32 matmul right now: a yardstick for how loaded the machine is."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    t = timed({"mm": lambda: a @ b}, device, repeats, 1)["mm"]
    return 2 * size**3 / t / 1e9


def count_flops(fn) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return float(counter.get_total_flops())


def measure(keep: float, args, batch: dict[str, torch.Tensor], device: torch.device, amp) -> str:
    """One table row: MAE vs MaskHOI (and the encoder alone) at one keep ratio."""
    masker = RandomMasker(mask_ratio=1.0 - keep)
    maskhoi = MaskHOI.from_preset(args.preset, masker=masker).to(device)
    mae = MAE.from_preset(args.preset, masker=masker).to(device)
    mae.encoder.load_state_dict(maskhoi.encoder.state_dict())
    n = maskhoi.encoder.grid_size[0] * maskhoi.encoder.grid_size[1]
    mask = masker(args.batch, maskhoi.encoder.grid_size, device=device, generator=torch.Generator().manual_seed(0))

    def step(model):
        def run():
            model.zero_grad(set_to_none=True)
            with amp:
                out = model(batch, mask=mask)
            out["loss"].backward()

        return run

    def encoder_step():
        maskhoi.zero_grad(set_to_none=True)
        with amp:
            tokens = maskhoi.encoder(batch["image"], mask).tokens
        tokens.float().square().mean().backward()

    t = timed({"mae": step(mae), "hoi": step(maskhoi), "enc": encoder_step}, device, args.steps, args.warmup)
    t_mae, t_hoi, t_enc = t["mae"], t["hoi"], t["enc"]
    f_enc = count_flops(encoder_step) / 1e9
    f_mae = count_flops(step(mae)) / 1e9
    f_hoi = count_flops(step(maskhoi)) / 1e9
    m_mae = memory(step(mae), device)
    m_hoi = memory(step(maskhoi), device)
    row = (
        f"| {keep:.2f} | {mask.num_keep}/{n} | {1e3 * t_mae:.1f} | {1e3 * t_hoi:.1f} | {t_hoi / t_mae:.2f} "
        f"| {f_mae:.1f} | {f_hoi:.1f} | {f_hoi / f_mae:.2f} | {1e3 * t_enc:.1f} | {f_enc:.2f} | {m_mae:.0f} | {m_hoi:.0f} |"
    )
    if device.type == "cuda":
        mfu = f"{100 * f_hoi * 1e9 / t_hoi / (args.peak_tflops * 1e12):.1f} %" if args.peak_tflops else "n/a"
        row += f" {args.batch / t_hoi:.0f} | {mfu} |"
    return row


def train_step(model, optimizer, batch: dict, amp, *, ema: bool = False, **inputs):
    """One whole training step of ``model``: forward, backward, ``optimizer.step()`` and, if ``ema``, the EMA teacher."""

    def run():
        optimizer.zero_grad(set_to_none=True)
        with amp:
            out = model(batch, **inputs)
        out["loss"].backward()
        optimizer.step()
        if ema:
            model.update_teacher(0)  # the same momentum every call: the work does not depend on the step

    return run


def measure_handmim(args, device: torch.device, amp) -> list[str]:
    """The HandMIM vs MAE table (header lines first): whole training steps, same encoder size, same images."""
    handmim = HandMIM.from_preset(HANDMIM_PRESET[args.preset]).to(device)
    mae = MAE.from_preset(args.preset).to(device)
    mae.encoder.load_state_dict(handmim.encoder.state_dict())  # raises unless the encoders have the same size
    size = handmim.config.img_size
    g = torch.Generator().manual_seed(1)
    images = torch.rand(args.batch, 3, size, size, generator=g).to(device)  # HandMIM wants RGB in [0, 1]
    t0 = time.perf_counter()
    views, affines = handmim.make_views({"image": images}, generator=g)  # (2, B, 3, S, S), (2, B, 3, 3)
    t_views = time.perf_counter() - t0
    batch = {"image": images, "view_a": views[0], "view_b": views[1], "affine_a": affines[0], "affine_b": affines[1]}
    grid = handmim.encoder.grid_size
    n = grid[0] * grid[1]
    masks = handmim.draw_masks(args.batch, grid, device=device, generator=g)  # (2, B, N)
    mask = mae.masker(args.batch, grid, device=device, generator=g)

    def optimizer(model):
        return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    steps = {"mae": train_step(mae, optimizer(mae), batch, amp, mask=mask),
             "handmim": train_step(handmim, optimizer(handmim), batch, amp, ema=True, masks=masks)}
    t = timed({**steps, "ema": lambda: handmim.update_teacher(0)}, device, args.steps, args.warmup)
    flops = {name: count_flops(fn) / 1e9 for name, fn in steps.items()}
    mem = {name: memory(fn, device) for name, fn in steps.items()}
    params = {name: sum(p.numel() for p in m.parameters() if p.requires_grad) / 1e6
              for name, m in (("mae", mae), ("handmim", handmim))}
    cuda = device.type == "cuda"
    header = ("| model | encoder tokens per image | step ms | time / MAE | update_teacher ms | GFLOP | FLOP / MAE "
              "| mem MiB | mem / MAE | params (M) |" + (" img/s | MFU |" if cuda else ""))
    lines = [
        f"# HandMIM ({HANDMIM_PRESET[args.preset]}) vs MAE ({args.preset}): one training step = forward + backward "
        f"+ AdamW step (+ update_teacher); same encoder size, images, batch {args.batch}",
        f"# HandMIM.make_views for the batch (CPU augmentation, outside the step): {1e3 * t_views:.1f} ms",
        header,
        "|" + "---|" * (header.count("|") - 1),
    ]
    rows = {"mae": ("MAE", f"{mask.num_keep}/{n}", "—"),
            "handmim": ("HandMIM", f"student 2 × {n}/{n} (masked: mask token), teacher 2 × {n}",
                        f"{1e3 * t['ema']:.1f}")}
    for name, (label, tokens, ema) in rows.items():
        row = (f"| {label} | {tokens} | {1e3 * t[name]:.1f} | {t[name] / t['mae']:.2f} | {ema} | {flops[name]:.1f} "
               f"| {flops[name] / flops['mae']:.2f} | {mem[name]:.0f} | {mem[name] / mem['mae']:.2f} "
               f"| {params[name]:.2f} |")
        if cuda:
            mfu = (f"{100 * flops[name] * 1e9 / t[name] / (args.peak_tflops * 1e12):.1f} %"
                   if args.peak_tflops else "n/a")
            row += f" {args.batch / t[name]:.0f} | {mfu} |"
        lines.append(row)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="tiny", choices=["tiny", "paper"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--points", type=int, default=None, help="SDF query points per sample (default 256 tiny, 1024 paper)")
    parser.add_argument("--keep", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (H200 bf16 dense: 989)")
    parser.add_argument("--no-handmim", action="store_true", help="skip the HandMIM vs MAE table")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    points = args.points or (256 if args.preset == "tiny" else 1024)
    size = resolve_preset(args.preset, {}).img_size
    batch = make_batch(args.batch, size, points, device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else nullcontext()
    print(f"# bench_model: preset={args.preset} device={device} batch={args.batch} img={size} points={points} "
          f"bf16={args.bf16} torch={torch.__version__} threads={torch.get_num_threads()}")
    header = (
        "| keep | L/N | MAE step ms | MaskHOI step ms | time MaskHOI/MAE | MAE GFLOP | MaskHOI GFLOP | FLOP MaskHOI/MAE "
        "| encoder fwd+bwd ms | encoder GFLOP | MAE mem MiB | MaskHOI mem MiB |"
    )
    extra = " MaskHOI img/s | MaskHOI MFU |" if device.type == "cuda" else ""
    print(header + extra)
    print("|" + "---|" * (header.count("|") - 1 + extra.count("|")))
    print(f"# reference fp32 matmul 1024^3 before: {matmul_gflops(device):.1f} GFLOP/s")
    for keep in args.keep:
        print(measure(keep, args, batch, device, amp), flush=True)
    if not args.no_handmim:
        print()
        print("\n".join(measure_handmim(args, device, amp)), flush=True)
    print(f"# reference fp32 matmul 1024^3 after: {matmul_gflops(device):.1f} GFLOP/s")


if __name__ == "__main__":
    main()
