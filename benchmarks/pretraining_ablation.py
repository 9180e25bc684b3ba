#!/usr/bin/env python
"""Pre-training ablation on synthetic data: does MaskHOI (or HandMIM) pre-training help fine-tuning, under occlusion?

The protocol (issue 18, item 5) is the one under which pre-training *can* show
an effect:

1. **Pre-train** each encoder on a large pool of unlabelled-for-fine-tuning
   synthetic scenes (``--pool``; MaskHOI uses the pool's labels, as it does on
   DexYCB's training set; MAE and HandMIM use the images only).
2. **Fine-tune** ``PoseRegressionModel`` the same way for every encoder on a
   small *labelled* subset: each of ``--label-fractions`` of ``--labelled``
   scenes (drawn with another seed than the pool).
3. **Evaluate** on held-out scenes in four hand-occlusion bins (0–25, 25–50,
   50–75, 75–100 %), ``--test-per-bin`` scenes each, built with
   ``SyntheticHOI(occlusion_range=...)``, beside the constant predictors fitted
   on the labelled subset.
4. Repeat for ``--seeds`` and report mean ± standard deviation.

Variants (MaskHOI Tables IV–VI where they apply): ``none`` (no pre-training),
``mae`` (pixel MAE, random masking), ``handmim`` (HandMIM §2: EMA
self-distillation on two views with pose-aware alignment, patch distillation
and multi-level pixel reconstruction; the preset's mask ratios 0.1–0.5, the
teacher moved after every optimiser step, its momentum schedule spanning
``--pretrain-steps``), ``maskhoi`` (hybrid masking, GML, DPR;
skeleton proportion 0.5), ``maskhoi-random`` / ``maskhoi-region`` (masking
strategy, Table V), ``maskhoi-no-gml`` / ``maskhoi-no-dpr`` (Table IV),
``skeleton-0`` / ``skeleton-1`` / ``skeleton-0to1`` (skeleton proportion,
Table VI; 0.5 is ``maskhoi``). Every pre-trained encoder is the ``tiny``
preset's ViT (128 px, 16 px patches, 4 blocks of 192, 3 heads) — MAE's,
MaskHOI's and HandMIM's ``tiny`` presets share it — so the same
``PoseRegressionModel`` fine-tunes each.

    python benchmarks/pretraining_ablation.py --preset cpu            # hours on 2 CPU cores (see docs/results.md)
    python benchmarks/pretraining_ablation.py --preset gpu --device cuda --json gpu.json
    python benchmarks/pretraining_ablation.py --preset smoke          # a minute: checks the pipeline only
    python benchmarks/pretraining_ablation.py --variants none mae maskhoi handmim   # the four pre-trainings

Prints one table per label fraction: root-relative MJE per occlusion bin (mm),
OCE, and the ratio to variant ``none``.
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
from torch.utils.data import Subset

from hoimask.data import SyntheticHOI, collate
from hoimask.engine import (
    MemoryCache,
    TrainConfig,
    Trainer,
    atomic_write,
    seed_everything,
    unwrap_model,
)
from hoimask.engine.cli import exit_with_usage_errors
from hoimask.engine.datasets import fit_constant_baselines
from hoimask.engine.flags import HelpFormatter, integer, output_file, real
from hoimask.models import HANDMIM_PRESETS, MAE, HandMIM, MaskHOI, PoseRegressionModel

ROOT = Path(__file__).resolve().parents[1]
BINS = ((0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))

#: variant -> how to pre-train (None: no pre-training).
VARIANTS: dict[str, dict | None] = {
    "none": None,
    "mae": {"model": "mae"},
    "handmim": {"model": "handmim"},
    "maskhoi": {"model": "maskhoi"},
    "maskhoi-random": {"model": "maskhoi", "masking": "random"},
    "maskhoi-region": {"model": "maskhoi", "masking": "region"},
    "maskhoi-no-gml": {"model": "maskhoi", "geometric": False},
    "maskhoi-no-dpr": {"model": "maskhoi", "direct_regression": False},
    "skeleton-0": {"model": "maskhoi", "masker_kwargs": {"skeleton_prob": 0.0}},
    "skeleton-1": {"model": "maskhoi", "masker_kwargs": {"skeleton_prob": 1.0}},
    "skeleton-0to1": {"model": "maskhoi", "masker_kwargs": {"skeleton_prob": 0.0, "skeleton_prob_end": 1.0}},
}

#: Scales. ``cpu`` fits one variant-seed-fraction run in ~10 min on 2 cores; ``gpu`` is for one GPU.
PRESETS = {
    "smoke": dict(pool=16, labelled=16, label_fractions=[1.0], test_per_bin=2, pretrain_steps=4,
                  finetune_steps=4, batch_size=4, seeds=[0], variants=["none", "maskhoi", "handmim"]),
    "cpu": dict(pool=2048, labelled=1024, label_fractions=[0.1, 1.0], test_per_bin=64, pretrain_steps=600,
                finetune_steps=1000, batch_size=16, seeds=[0, 1, 2], variants=["none", "mae", "maskhoi"]),
    "gpu": dict(pool=100_000, labelled=10_000, label_fractions=[0.01, 0.1, 1.0], test_per_bin=500,
                pretrain_steps=20_000, finetune_steps=10_000, batch_size=64, seeds=[0, 1, 2],
                variants=list(VARIANTS)),
}


def _evaluate_fn():
    spec = importlib.util.spec_from_file_location("hoimask_evaluate_example", ROOT / "examples" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.evaluate


def _config(steps: int, batch: int, lr: float, seed: int, layer_decay: float | None = None) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=batch, lr=lr, warmup_steps=max(1, math.ceil(0.05 * steps)),
                       layer_decay=layer_decay, log_every=max(1, steps // 10), checkpoint_every=steps, seed=seed)


def _ctx(args):
    from hoimask.engine import DistributedContext

    return DistributedContext(device=torch.device(args.device))


class _HandMIMTrainer(Trainer):
    """The engine's Trainer, moving HandMIM's EMA teacher after every optimiser step (as ``train_handmim.py``)."""

    def train_step(self, batch) -> dict:
        output = super().train_step(batch)
        unwrap_model(self.model).update_teacher(self.step - 1)  # the optimiser step just taken, from 0
        return output


def build_pretraining(variant: str, steps: int) -> tuple[torch.nn.Module, type[Trainer]]:
    """The ``tiny`` pre-training model of a variant (not ``none``) for a run of ``steps``, and its trainer class.

    HandMIM's is built as ``train_handmim.py`` builds it: the teacher's
    momentum schedule spans the run, its temperature warm-up is the preset's
    (at most an eighth of the run), and the teacher moves after every optimiser step.
    """
    spec = VARIANTS[variant]
    if spec["model"] == "mae":
        return MAE.from_preset("tiny"), Trainer
    if spec["model"] == "handmim":
        warmup = min(HANDMIM_PRESETS["tiny"]["temperature_warmup_steps"], math.ceil(steps / 8))
        return HandMIM.from_preset("tiny", total_steps=steps, temperature_warmup_steps=warmup), _HandMIMTrainer
    return MaskHOI.from_preset("tiny", **{k: v for k, v in spec.items() if k != "model"}), Trainer


def pretrain(variant: str, data, args, seed: int, workdir: Path) -> dict | None:
    """Pre-train and return the encoder weights (``None`` for variant ``none``)."""
    if VARIANTS[variant] is None:
        return None
    seed_everything(seed)
    model, trainer_class = build_pretraining(variant, args.pretrain_steps)
    trainer = trainer_class(model, _config(args.pretrain_steps, args.batch_size, args.pretrain_lr, seed),
                            dataset=data, output_dir=workdir / f"pre-{variant}-{seed}", collate_fn=collate,
                            progress=args.progress, tensorboard=False, ctx=_ctx(args))
    hist = trainer.fit()
    print(f"  pre-train {variant:15s} seed {seed}: loss {hist[0]['loss']:.3f} -> {hist[-1]['loss']:.3f}", flush=True)
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
    print(f"  fine-tune {name:22s} seed {seed}: loss {hist[0]['loss']:.3f} -> {hist[-1]['loss']:.3f}", flush=True)
    return model.eval()


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags (``--help`` documents each; values are checked as they are parsed)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--preset", choices=tuple(PRESETS), default="cpu",
                   help="scale of every setting below (smoke: a minute; cpu: hours on 2 cores; gpu: one GPU)")
    p.add_argument("--pool", type=integer(low=1), help="synthetic scenes in the pre-training pool (default: the preset's)")
    p.add_argument("--labelled", type=integer(low=1),
                   help="labelled scenes; fractions of them are fine-tuned on (default: the preset's)")
    p.add_argument("--label-fractions", type=real(0, 1, low_open=True), nargs="+",
                   help="fractions of --labelled, in (0, 1] (default: the preset's)")
    p.add_argument("--test-per-bin", type=integer(low=1),
                   help="held-out scenes per occlusion bin (default: the preset's)")
    p.add_argument("--pretrain-steps", type=integer(low=1), help="pre-training steps per variant (default: the preset's)")
    p.add_argument("--finetune-steps", type=integer(low=1), help="fine-tuning steps per run (default: the preset's)")
    p.add_argument("--batch-size", type=integer(low=1),
                   help="batch size of pre-training and fine-tuning (default: the preset's)")
    p.add_argument("--pretrain-lr", type=real(low=0, low_open=True), default=1e-3, help="peak pre-training learning rate")
    p.add_argument("--finetune-lr", type=real(low=0, low_open=True), default=1e-3, help="peak fine-tuning learning rate")
    p.add_argument("--layer-decay", type=real(0, 1, low_open=True), default=0.75,
                   help="layer-wise lr decay of the encoder when fine-tuning, in (0, 1]")
    p.add_argument("--seeds", type=integer(low=0), nargs="+", help="seeds to repeat everything with (default: the preset's)")
    p.add_argument("--variants", nargs="+", choices=tuple(VARIANTS),
                   help="pre-training variants compared: none, mae (pixel MAE), handmim (HandMIM), maskhoi and its "
                        "Table IV-VI ablations; every one pre-trains the same tiny encoder (default: the preset's)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train and evaluate")
    p.add_argument("--progress", action="store_true", help="show tqdm bars")
    p.add_argument("--json", type=output_file, help="also write the raw results here")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check the flags; a bad value exits with a usage error naming the flag (status 2)."""
    p = build_parser()
    args = p.parse_args(argv)
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for f in args.label_fractions:
        if round(f * args.labelled) < 1:
            p.error(f"argument --label-fractions: expected values in (0, 1] that keep >= 1 of --labelled "
                    f"{args.labelled} scenes, got {f}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("argument --device: cuda is not available on this machine")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    evaluate = _evaluate_fn()
    start = time.perf_counter()
    common = dict(image_size=128, num_sdf_points=512, num_object_points=256)
    pool = MemoryCache(SyntheticHOI(args.pool, seed=1, **common))
    labelled = MemoryCache(SyntheticHOI(args.labelled, seed=4, **{**common, "num_sdf_points": 16}))
    tests = {f"{int(lo * 100)}-{int(hi * 100)}%": MemoryCache(SyntheticHOI(
        args.test_per_bin, seed=10 + k, hand_only_prob=0.0, occlusion_range=(lo, hi), max_attempts=2000, **common))
        for k, (lo, hi) in enumerate(BINS)}
    results: dict[str, dict[str, list[float]]] = {}

    def record(key: str, metric: str, value: float) -> None:
        results.setdefault(key, {}).setdefault(metric, []).append(float(value))

    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            encoders = {v: pretrain(v, pool, args, seed, Path(tmp)) for v in args.variants}
            for fraction in args.label_fractions:
                subset = Subset(labelled, range(round(fraction * args.labelled)))
                constants = fit_constant_baselines(subset, max_samples=len(subset))
                for variant in args.variants:
                    model = finetune(encoders[variant], subset, args, seed, Path(tmp), f"{variant}@{fraction:g}")
                    for split, data in tests.items():
                        ev, const = evaluate(model, data, batch_size=16, protocol="hoisdf", device=args.device,
                                             baselines=constants, root_depth="ground-truth")
                        values = ev.compute()
                        for metric in ("rr_mje", "pa_mje", "oce"):
                            record(f"{fraction:g}/{variant}/{split}", metric, values[metric])
                            if variant == args.variants[0]:
                                record(f"{fraction:g}/constant/{split}", metric,
                                       const["mean_pose"].compute()[metric])
    elapsed = time.perf_counter() - start
    print(f"\nPre-training ablation ({args.preset}): pool {args.pool}, labelled {args.labelled} x "
          f"{args.label_fractions}, {args.pretrain_steps} pre-training + {args.finetune_steps} fine-tuning steps of "
          f"{args.batch_size}, {args.test_per_bin} test scenes per occlusion bin, seeds {args.seeds}, "
          f"device {args.device}; {elapsed / 60:.1f} min")
    print("Root-relative MJE (mm) per hand-occlusion bin, mean ± std over seeds; ratio = variant / none.\n")
    splits = list(tests)
    for fraction in args.label_fractions:
        print(f"labelled fraction {fraction:g} ({round(fraction * args.labelled)} scenes)")
        print("| variant | " + " | ".join(splits) + " | OCE | " + " | ".join(f"ratio {s}" for s in splits) + " |")
        print("|---|" + "---:|" * (2 * len(splits) + 1))
        for variant in [*args.variants, "constant"]:
            cells, ratios = [], []
            for split in splits:
                vals = results[f"{fraction:g}/{variant}/{split}"]["rr_mje"]
                sd = f" ± {statistics.stdev(vals):.1f}" if len(vals) > 1 else ""
                cells.append(f"{statistics.fmean(vals):.1f}{sd}")
                base = statistics.fmean(results[f"{fraction:g}/none/{split}"]["rr_mje"]) \
                    if "none" in args.variants else float("nan")
                ratios.append(f"{statistics.fmean(vals) / base:.2f}")
            oce = [statistics.fmean(results[f"{fraction:g}/{variant}/{s}"]["oce"]) for s in splits]
            print(f"| {variant} | " + " | ".join(cells) + f" | {statistics.fmean(oce):.1f} | " + " | ".join(ratios) + " |")
        print()
    if args.json:
        atomic_write(args.json, json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results,
                                            "minutes": elapsed / 60}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(exit_with_usage_errors(main))
