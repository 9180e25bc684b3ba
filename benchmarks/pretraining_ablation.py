#!/usr/bin/env python
"""Pre-training ablation on synthetic data: does MaskHOI pre-training help fine-tuning?

Three encoders are fine-tuned the same way and evaluated on held-out synthetic
scenes (hand-object and hand-only):

    (a) none     -- no pre-training (random encoder; the baseline);
    (b) mae      -- MAE pixel reconstruction with random masking;
    (c) maskhoi  -- MaskHOI: hybrid masking + SDF (GML) + parameter regression (DPR).

Pre-training and fine-tuning use the same labelled training scenes (as the
paper pre-trains and fine-tunes on DexYCB/HO3D train); the test scenes come
from a different seed. Every run is seeded; ``--seeds 0 1`` repeats the whole
experiment and reports mean ± spread.

    python benchmarks/pretraining_ablation.py                       # small CPU scale (defaults below)
    python benchmarks/pretraining_ablation.py --pretrain-steps 2000 --finetune-steps 2000 --num-train 2000 \
        --batch-size 32 --device cuda                              # larger, on a GPU

Prints a table with each variant's errors and its ratio to (a).
"""

from __future__ import annotations

import os

# Passive OpenMP waiting: on a busy CPU, spinning worker threads made training ~15x slower
# (measured: 13.8 s/step spinning vs 0.58 s/step passive, 2 threads, load average 7). Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import importlib.util
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from hoimask.data import SyntheticHOI, collate
from hoimask.engine import MemoryCache, TrainConfig, Trainer, atomic_write, seed_everything
from hoimask.models import MAE, MaskHOI, PoseRegressionModel

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("none", "mae", "maskhoi")
METRICS = (("rr_mje", "MJE (root-rel.)"), ("pa_mje", "PA-MJE"), ("oce", "OCE"), ("add_s", "ADD-S"))


def _evaluate_fn():
    spec = importlib.util.spec_from_file_location("hoimask_evaluate_example", ROOT / "examples" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.evaluate


def _config(steps: int, batch: int, lr: float, seed: int, layer_decay: float | None = None) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=batch, lr=lr, warmup_steps=max(1, math.ceil(0.1 * steps)),
                       layer_decay=layer_decay, log_every=max(1, steps // 10), checkpoint_every=steps, seed=seed)


def pretrain(variant: str, data, args, seed: int, workdir: Path) -> dict | None:
    """Pre-train and return the encoder weights (``None`` for variant ``none``)."""
    if variant == "none":
        return None
    seed_everything(seed)
    model = MAE.from_preset("tiny") if variant == "mae" else MaskHOI.from_preset("tiny")
    trainer = Trainer(model, _config(args.pretrain_steps, args.batch_size, args.pretrain_lr, seed), dataset=data,
                      output_dir=workdir / f"pre-{variant}-{seed}", collate_fn=collate, progress=args.progress,
                      tensorboard=False, ctx=_ctx(args))
    hist = trainer.fit()
    print(f"  pre-train {variant:8s} seed {seed}: loss {hist[0]['loss']:.3f} -> {hist[-1]['loss']:.3f}", flush=True)
    return model.encoder_state_dict()


def finetune(encoder: dict | None, data, args, seed: int, workdir: Path, name: str) -> PoseRegressionModel:
    seed_everything(seed + 17)  # the heads start identically for every variant
    model = PoseRegressionModel()
    if encoder is not None:
        model.load_encoder(encoder)
    trainer = Trainer(model, _config(args.finetune_steps, args.batch_size, args.finetune_lr, seed,
                                     layer_decay=args.layer_decay),
                      dataset=data, output_dir=workdir / f"ft-{name}-{seed}", collate_fn=collate,
                      num_layers=model.encoder_config["depth"], progress=args.progress, tensorboard=False,
                      ctx=_ctx(args))
    hist = trainer.fit()
    print(f"  fine-tune {name:8s} seed {seed}: loss {hist[0]['loss']:.3f} -> {hist[-1]['loss']:.3f}", flush=True)
    return model.eval()


def _ctx(args):
    from hoimask.engine import DistributedContext

    return DistributedContext(device=torch.device(args.device))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--pretrain-steps", type=int, default=60)
    p.add_argument("--finetune-steps", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--pretrain-lr", type=float, default=1e-3)
    p.add_argument("--finetune-lr", type=float, default=5e-4)
    p.add_argument("--layer-decay", type=float, default=0.75)
    p.add_argument("--num-train", type=int, default=48, help="synthetic training scenes (pre-training and fine-tuning)")
    p.add_argument("--num-test", type=int, default=32, help="held-out scenes per test split")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--device", default="cpu")
    p.add_argument("--progress", action="store_true", help="show tqdm bars")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    args = p.parse_args(argv)

    evaluate = _evaluate_fn()
    start = time.perf_counter()
    common = dict(image_size=128, num_sdf_points=512, num_object_points=256)
    # One rendered pool per split, shared by every variant (each scene rendered once).
    train = MemoryCache(SyntheticHOI(args.num_train, seed=1, hand_only_prob=0.1, **common))
    tests = {
        "hand-object": MemoryCache(SyntheticHOI(args.num_test, seed=2, hand_only_prob=0.0, **common)),
        "hand-only": MemoryCache(SyntheticHOI(args.num_test, seed=3, hand_only_prob=1.0, not_grasped_prob=0.0, **common)),
    }
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for variant in args.variants:
                encoder = pretrain(variant, train, args, seed, Path(tmp))
                model = finetune(encoder, train, args, seed, Path(tmp), variant)
                for split, data in tests.items():
                    values = evaluate(model, data, batch_size=16, protocol="hoisdf", device=args.device).compute()
                    for key, _ in METRICS:
                        if key in values:
                            results.setdefault(f"{variant}/{split}", {}).setdefault(key, []).append(float(values[key]))
    elapsed = time.perf_counter() - start

    print(f"\nPre-training ablation: {args.pretrain_steps} pre-training + {args.finetune_steps} fine-tuning steps, "
          f"batch {args.batch_size}, {args.num_train} training scenes, {args.num_test} test scenes per split, "
          f"seeds {args.seeds}, device {args.device}; {elapsed / 60:.1f} min")
    print("Errors in mm (mean over seeds; ± half the range when several seeds); ratio = variant / (a) none.\n")
    for split in tests:
        keys = [(k, label) for k, label in METRICS if f"none/{split}" in results and k in results[f"none/{split}"]]
        print(f"{split} test scenes")
        print("| variant | " + " | ".join(label for _, label in keys) + " | " + " | ".join(f"ratio {label}" for _, label in keys) + " |")
        print("|---|" + "---:|" * (2 * len(keys)))
        for variant in args.variants:
            row = results.get(f"{variant}/{split}", {})
            cells, ratios = [], []
            for key, _ in keys:
                vals = row.get(key, [])
                if not vals:
                    cells.append("-")
                    ratios.append("-")
                    continue
                mean = statistics.fmean(vals)
                spread = f" ± {(max(vals) - min(vals)) / 2:.1f}" if len(vals) > 1 else ""
                cells.append(f"{mean:.1f}{spread}")
                base = statistics.fmean(results[f"none/{split}"][key])
                ratios.append(f"{mean / base:.2f}")
            print(f"| ({'abc'[VARIANTS.index(variant)]}) {variant} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
        print()
    if args.json:
        atomic_write(args.json, json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results,
                                            "minutes": elapsed / 60}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
