#!/usr/bin/env python
"""Pre-training ablation on synthetic data: does MaskHOI (or HandMIM) pre-training help fine-tuning, under occlusion?

The protocol (issue 18, item 5) is the one under which pre-training *can* show
an effect:

1. **Pre-train** each encoder on a large pool of unlabelled-for-fine-tuning
   synthetic scenes (``--pool``; MaskHOI uses the pool's labels, as it does on
   DexYCB's training set; MAE and HandMIM use the images only).
2. **Fine-tune** ``PoseRegressionModel`` the same way for every encoder on a
   small *labelled* subset: each of ``--label-fractions`` of ``--labelled``
   scenes (drawn with another seed than the pool), with ``examples/finetune.py``'s
   ``tiny`` pose recipe — the one that learns (docs/results.md §3): its model
   and loss settings, learning rate, layer decay, warm-up, bf16 autocast where
   the CPU computes it natively, and augmented views of the cached scenes.
   Every scene (pool, labelled, test) is framed as ``finetune.py`` frames
   synthetic scenes: cropped around hand ∪ object (``--crop-padding``, 1.3).
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
OCE, and the ratio to variant ``none``. With ``--json F`` the raw results (and
each seed's value, ``per_seed``) are written after every finished (seed,
variant) pair; ``--resume`` continues such a file — in a later session, say —
skipping the pairs it holds (the scenes and seeds are the same, so the pairs run
later are those an uninterrupted run would have made), and adding ``--seeds`` or
``--variants`` extends it::

    python benchmarks/pretraining_ablation.py --seeds 1 2 --variants maskhoi-random --json rows.json
    python benchmarks/pretraining_ablation.py --seeds 1 2 --variants maskhoi-random --json rows.json --resume
"""

from __future__ import annotations

import os

# Passive OpenMP waiting: on a busy CPU, spinning worker threads made training ~15x slower
# (measured: 13.8 s/step spinning vs 0.58 s/step passive, 2 threads, load average 7). Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Subset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _examples import load_example  # noqa: E402

from hoimask.data import CenterCrop, ColorJitter, Compose, RandomRotateScale, SyntheticHOI, collate
from hoimask.engine import (
    AugmentedViews,
    MemoryCache,
    TrainConfig,
    Trainer,
    atomic_write,
    resolve_precision,
    seed_everything,
    train_preset,
    unwrap_model,
)
from hoimask.engine.cli import exit_with_usage_errors, short_run_warmup
from hoimask.engine.datasets import fit_constant_baselines, synthetic_render_size
from hoimask.engine.flags import HelpFormatter, integer, output_file, real
from hoimask.models import HANDMIM_PRESETS, MAE, HandMIM, MaskHOI, PoseRegressionModel

BINS = ((0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))

#: variant -> how to pre-train (None: no pre-training). ``skeleton-0`` (the hybrid masker at skeleton
#: probability 0) draws exactly RMRA's masks, so it repeats ``maskhoi-region`` (Table VI's 0 is Table V's RMRA).
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

#: Scales. ``cpu``: about 2 hours on the 2-core machine (132 min measured, docs/results.md §4: a fine-tuning run
#: ~3 min, a MaskHOI pre-training ~5 min, the 512 test scenes ~7 min, the occluded bins drawn by rejection);
#: ``gpu`` is for one GPU.
PRESETS = {
    "smoke": dict(pool=16, labelled=16, label_fractions=[1.0], test_per_bin=2, pretrain_steps=4,
                  finetune_steps=4, batch_size=4, seeds=[0], variants=["none", "maskhoi", "handmim"]),
    "cpu": dict(pool=2048, labelled=1024, label_fractions=[0.1, 1.0], test_per_bin=128, pretrain_steps=600,
                finetune_steps=500, batch_size=16, seeds=[0, 1, 2], variants=["none", "mae", "maskhoi"]),
    "gpu": dict(pool=100_000, labelled=10_000, label_fractions=[0.01, 0.1, 1.0], test_per_bin=500,
                pretrain_steps=20_000, finetune_steps=10_000, batch_size=64, seeds=[0, 1, 2],
                variants=list(VARIANTS)),
}


#: ``examples/finetune.py``: RECIPES, ENCODERS and POSE_LOSS_SETTINGS of its ``tiny`` pose recipe.
FINETUNE = load_example("finetune")
RECIPE = FINETUNE.RECIPES["tiny"]


def _config(steps: int, batch: int, lr: float, seed: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=batch, lr=lr, warmup_steps=max(1, math.ceil(0.05 * steps)),
                       log_every=max(1, steps // 10), checkpoint_every=steps, seed=seed)


def finetune_config(args, seed: int) -> TrainConfig:
    """``finetune.py``'s ``tiny`` training configuration for a run of ``--finetune-steps`` (no DataLoader worker)."""
    base = train_preset("tiny")
    return train_preset("tiny", steps=args.finetune_steps, batch_size=args.batch_size, lr=args.finetune_lr,
                        layer_decay=args.layer_decay, seed=seed, precision=resolve_precision(args.precision, args.device),
                        num_workers=0, log_every=max(1, args.finetune_steps // 10),
                        checkpoint_every=args.finetune_steps, warmup_steps=short_run_warmup(base, args.finetune_steps))


def scenes(count: int, seed: int, crop_padding: float | None, **kwargs) -> MemoryCache:
    """``count`` cached synthetic scenes of 128 px, framed as ``finetune.py`` frames them (``build_dataset``)."""
    size, crop = 128, None
    if crop_padding is not None:
        size, crop = synthetic_render_size(128, crop_padding), CenterCrop(128, padding=crop_padding)
    return MemoryCache(SyntheticHOI(count, seed=seed, image_size=size, num_object_points=256, transform=crop, **kwargs))


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


def build_finetuning_model() -> PoseRegressionModel:
    """``finetune.py --model pose``'s ``tiny`` model: the encoder sizes and the recipe's loss settings."""
    return PoseRegressionModel(**FINETUNE.ENCODERS["tiny"], **FINETUNE.POSE_LOSS_SETTINGS["tiny"])


def finetune(encoder: dict | None, data, args, seed: int, workdir: Path, name: str) -> PoseRegressionModel:
    """Fine-tune with ``finetune.py``'s ``tiny`` pose recipe on ``data`` (augmented views of it) and return the model."""
    seed_everything(seed + 17)  # the heads start identically for every variant
    model = build_finetuning_model()
    if encoder is not None:
        model.load_encoder(encoder)
    if args.augment_views > 1:
        data = AugmentedViews(data, Compose([RandomRotateScale(), ColorJitter()]), repeats=args.augment_views, seed=seed)
    trainer = Trainer(model, finetune_config(args, seed),
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
    p.add_argument("--finetune-lr", type=real(low=0, low_open=True), default=RECIPE["lr"],
                   help="peak fine-tuning learning rate (finetune.py's tiny recipe)")
    p.add_argument("--layer-decay", type=real(0, 1, low_open=True), default=RECIPE["layer_decay"],
                   help="layer-wise lr decay of the encoder when fine-tuning, in (0, 1]")
    p.add_argument("--augment-views", type=integer(low=1), default=RECIPE["augment_views"],
                   help="fine-tuning views per labelled scene: the scene, then rotated / zoomed / shifted, "
                        "colour-jittered copies (finetune.py's tiny recipe; 1: the scenes only)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default=RECIPE["precision"],
                   help="fine-tuning autocast; auto: bf16 where the device computes it natively, else fp32")
    framing = p.add_mutually_exclusive_group()
    framing.add_argument("--crop-padding", type=real(low=1.0), default=RECIPE["crop_padding"],
                         help="crop every scene around hand ∪ object with this margin factor (>= 1), as finetune.py "
                              "and the real datasets frame theirs")
    framing.add_argument("--no-crop", action="store_true", help="use the whole rendered frames")
    p.add_argument("--seeds", type=integer(low=0), nargs="+", help="seeds to repeat everything with (default: the preset's)")
    p.add_argument("--variants", nargs="+", choices=tuple(VARIANTS),
                   help="pre-training variants compared: none, mae (pixel MAE), handmim (HandMIM), maskhoi and its "
                        "Table IV-VI ablations; every one pre-trains the same tiny encoder (default: the preset's)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train and evaluate")
    p.add_argument("--progress", action="store_true", help="show tqdm bars")
    p.add_argument("--json", type=output_file,
                   help="also write the raw results here, after every (seed, variant) finished")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the run recorded in --json: skip its finished (seed, variant) pairs (the other "
                            "settings must be the same)")
    again.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    return p


#: Flags a resumed run may change: which pairs to run and how to show progress (the results do not depend on them).
RESUMABLE = ("seeds", "variants", "progress", "json", "resume", "overwrite", "previous")


def settings(args: argparse.Namespace) -> dict[str, str]:
    """The flags that decide the results, as the JSON records them (strings)."""
    return {k: str(v) for k, v in vars(args).items() if k not in RESUMABLE}


def load_previous(args: argparse.Namespace, p: argparse.ArgumentParser) -> dict:
    """The record of ``--json`` to continue (``--resume``); a usage error when it is missing, unreadable or was
    made with other settings."""
    try:
        previous = json.loads(args.json.read_text())
        done, per_seed = previous["done"], previous["per_seed"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        p.error(f"argument --resume: cannot continue from --json {str(args.json)!r} ({type(error).__name__}: "
                f"{error}); it must be a file this script wrote")
    recorded, now = previous.get("settings", {}), settings(args)
    differ = sorted(k for k in set(recorded) | set(now) if recorded.get(k) != now.get(k))
    if differ:
        p.error(f"argument --resume: --json {str(args.json)!r} was made with other settings ("
                + ", ".join(f"{k}: {recorded.get(k)} there, {now.get(k)} now" for k in differ) + ")")
    return {"done": [tuple(pair) for pair in done], "per_seed": per_seed}


def by_key(per_seed: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, list[float]]]:
    """``key -> metric -> [value per seed]`` (in the order the seeds ran) from ``key -> metric -> seed -> value``."""
    return {key: {metric: list(values.values()) for metric, values in metrics.items()}
            for key, metrics in per_seed.items()}


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
    if args.resume and args.json is None:
        p.error("argument --resume: needs --json, the record to continue")
    if args.overwrite and args.json is None:
        p.error("argument --overwrite: needs --json, the file to replace")
    args.previous = None
    if args.resume:
        if not args.json.is_file():
            p.error(f"argument --resume: --json {str(args.json)!r} does not exist; nothing to continue")
        args.previous = load_previous(args, p)
    elif args.json is not None and args.json.exists() and not args.overwrite:
        p.error(f"argument --json: {str(args.json)!r} exists; pass --resume to continue it or --overwrite to "
                "replace it")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    evaluate = load_example("evaluate").evaluate
    start = time.perf_counter()
    crop = None if args.no_crop else args.crop_padding
    pool = scenes(args.pool, 1, crop, num_sdf_points=512)
    labelled = scenes(args.labelled, 4, crop, num_sdf_points=16)
    tests = {f"{int(lo * 100)}-{int(hi * 100)}%": scenes(
        args.test_per_bin, 10 + k, crop, num_sdf_points=16, hand_only_prob=0.0, occlusion_range=(lo, hi),
        max_attempts=2000) for k, (lo, hi) in enumerate(BINS)}
    previous = args.previous or {"done": [], "per_seed": {}}
    per_seed: dict[str, dict[str, dict[str, float]]] = previous["per_seed"]  # key -> metric -> seed -> value
    done: list[tuple[int, str]] = [(int(s), v) for s, v in previous["done"]]
    if done:
        print(f"resuming {args.json}: {len(done)} (seed, variant) pairs done: {done}", flush=True)

    def record(key: str, metric: str, value: float, seed: int) -> None:  # the constants: once per seed
        per_seed.setdefault(key, {}).setdefault(metric, {})[str(seed)] = float(value)

    def save() -> None:  # after every (seed, variant), so an interrupted run keeps (and --resume skips) what finished
        if args.json:
            seeds_done = [s for s in args.seeds if all((s, v) in done for v in args.variants)]
            atomic_write(args.json, json.dumps({"args": {k: str(v) for k, v in vars(args).items() if k != "previous"},
                                                "settings": settings(args), "done": done, "seeds_done": seeds_done,
                                                "results": by_key(per_seed), "per_seed": per_seed,
                                                "minutes": (time.perf_counter() - start) / 60}, indent=2))

    constants: dict[float, Any] = {}  # the constant predictors of each labelled subset
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for variant in args.variants:
                if (seed, variant) in done:
                    continue
                encoder = pretrain(variant, pool, args, seed, Path(tmp))
                for fraction in args.label_fractions:
                    subset = Subset(labelled, range(round(fraction * args.labelled)))
                    if fraction not in constants:
                        constants[fraction] = fit_constant_baselines(subset, max_samples=len(subset))
                    model = finetune(encoder, subset, args, seed, Path(tmp), f"{variant}@{fraction:g}")
                    for split, data in tests.items():
                        ev, const = evaluate(model, data, batch_size=16, protocol="hoisdf", device=args.device,
                                             baselines=constants[fraction], root_depth="ground-truth")
                        values = ev.compute()
                        for metric in ("rr_mje", "pa_mje", "oce"):
                            record(f"{fraction:g}/{variant}/{split}", metric, values[metric], seed)
                            record(f"{fraction:g}/constant/{split}", metric, const["mean_pose"].compute()[metric],
                                   seed)
                done.append((seed, variant))
                save()
    elapsed = time.perf_counter() - start
    print(f"\nPre-training ablation ({args.preset}): pool {args.pool}, labelled {args.labelled} x "
          f"{args.label_fractions}, {args.pretrain_steps} pre-training + {args.finetune_steps} fine-tuning steps of "
          f"{args.batch_size}, {args.test_per_bin} test scenes per occlusion bin, seeds {args.seeds}, "
          f"{'whole frames' if crop is None else f'cropped at padding {crop:g}'}, fine-tuning "
          f"{finetune_config(args, 0).precision} with {args.augment_views} views per scene, "
          f"device {args.device}; {elapsed / 60:.1f} min")
    print("Root-relative MJE (mm) per hand-occlusion bin, mean ± std over seeds; ratio = variant / none.\n")
    splits = list(tests)
    results = by_key(per_seed)
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
    return 0


if __name__ == "__main__":
    sys.exit(exit_with_usage_errors(main))
