"""Step time and memory of HOISDF (both backbones) beside PoseRegressionModel, on the same synthetic batch.

Measures, in the same run (issue 12, "benchmarks/bench_model.py covers HOISDF"):

* forward+backward time of one training step (median over ``--steps``, the
  models measured round-robin so that load changes affect them alike) and its
  FLOPs (``torch.utils.flop_counter``, independent of load);
* memory: peak allocated bytes on CUDA; on CPU the bytes of tensors saved for
  backward (activation memory);
* the parameter count.

Models: ``HOISDF`` with the ViT + DPT backbone (MaskHOI's transfer) and with
the ResNet-50 U-Net (the HOISDF baseline), and ``PoseRegressionModel`` (the
2.5D keypoint model that ``finetune.py --model pose`` trains) as the yardstick.
``--preset tiny`` uses the fine-tuning ``tiny`` sizes (128 px, MaskHOI's tiny
ViT, HOISDF ``tiny`` / ``tiny_resnet``); ``--preset paper`` the published sizes
(HOISDF ``vit`` 224 px ViT-B, ``hoisdf`` 256 px ResNet-50; PoseRegressionModel
with a ViT-B at 224 px). The batch is real: ``SyntheticHOI`` scenes with the
recipe's SDF samples, collated.

Usage::

    python benchmarks/bench_hoisdf.py                      # tiny, CPU, batch 8
    python benchmarks/bench_hoisdf.py --preset paper --device cuda --batch 16
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import count_flops, matmul_gflops, memory, timed  # noqa: E402

from hoimask.data import SyntheticHOI, collate  # noqa: E402
from hoimask.engine.flags import HelpFormatter, integer  # noqa: E402
from hoimask.models import HOISDF, PoseRegressionModel  # noqa: E402

#: (name, builder, image size) per preset; builders take no argument.
MODELS = {
    "tiny": [
        ("HOISDF vit (tiny)", lambda: HOISDF.from_preset("tiny"), 128),
        ("HOISDF resnet50 (tiny_resnet)", lambda: HOISDF.from_preset("tiny_resnet"), 128),
        ("PoseRegressionModel (tiny)", lambda: PoseRegressionModel(), 128),
    ],
    "paper": [
        ("HOISDF vit (vit, ViT-B)", lambda: HOISDF.from_preset("vit"), 224),
        ("HOISDF resnet50 (hoisdf)", lambda: HOISDF.from_preset("hoisdf"), 256),
        ("PoseRegressionModel (ViT-B)", lambda: PoseRegressionModel(img_size=224, embed_dim=768, depth=12,
                                                                    num_heads=12, head_dim=256), 224),
    ],
}


def make_batch(batch: int, size: int, points: int, device: torch.device) -> dict:
    """``batch`` rendered synthetic scenes at ``size`` px with ``points`` SDF samples each."""
    ds = SyntheticHOI(batch, image_size=size, seed=0, num_sdf_points=points, num_object_points=256)
    out = collate([ds[i] for i in range(batch)])
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in out.items()}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--preset", choices=tuple(MODELS), default="tiny", help="model sizes")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to run")
    p.add_argument("--batch", type=integer(low=1), default=8, help="batch size")
    p.add_argument("--points", type=integer(low=1), default=512, help="SDF samples per scene (tiny recipe: 512)")
    p.add_argument("--steps", type=integer(low=1), default=5, help="timed steps per model (median)")
    p.add_argument("--warmup", type=integer(low=0), default=1, help="untimed steps first")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        build_parser().error("argument --device: cuda requested but no CUDA device is available")
    torch.manual_seed(0)
    print(f"# bench_hoisdf: preset {args.preset}, batch {args.batch}, {args.points} SDF points, device {device}, "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d')}")
    print(f"# load yardstick: fp32 matmul {matmul_gflops(device):.1f} GFLOP/s")
    built, batches = {}, {}
    for name, build, size in MODELS[args.preset]:
        model = build().to(device).train()
        if size not in batches:
            batches[size] = make_batch(args.batch, size, args.points, device)
        built[name] = (model, batches[size])

    def step(model, batch):
        def run():
            model.zero_grad(set_to_none=True)
            model(batch)["loss"].backward()
        return run

    steps = {name: step(m, b) for name, (m, b) in built.items()}
    times = timed(steps, device, args.steps, args.warmup)
    base = next(name for name in built if name.startswith("PoseRegressionModel"))
    print("| model | params (M) | step (s) | vs pose model | GFLOPs/step | memory (MiB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, (model, batch) in built.items():
        params = sum(p.numel() for p in model.parameters()) / 1e6
        flops = count_flops(steps[name]) / 1e9
        mem = memory(lambda m=model, b=batch: m(b)["loss"], device)
        print(f"| {name} | {params:.1f} | {times[name]:.3f} | {times[name] / times[base]:.2f}x | {flops:.1f} | "
              f"{mem:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
