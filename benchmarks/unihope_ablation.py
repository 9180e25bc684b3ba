#!/usr/bin/env python
"""UniHOPE ablation on synthetic data, in the structure of UniHOPE Table 7 (issue 14).

Each row is one :class:`hoimask.models.UniHOPE` configuration, cumulative as in
the paper; every row is trained with the same recipe, seed, initial weights
and data order, and evaluated on the same held-out synthetic scenes:

====  ==========================  =====================================================================
row   Table 7                     configuration (``UniHOPEConfig`` fields, docs/models.md "Ablation switches")
====  ==========================  =====================================================================
a     baseline (switcher only)    ``fusion_confidence="always"`` (HFL-Net fuses every sample's object features); no twins
b     + grasp-aware fusion        ``fusion_confidence="hard"`` (eq. 3, ``s = Argmax g``); no twins
c     + de-occluded pairs         the twins train the hand as extra samples (``deoccluded_samples=True``); no enhancement loss
d     + initial-level enh.        ``L_init`` (γ 0.1) on every pair (``case_filtering=False``)
e     + RoI-level enh.            + ``L_RoI`` (γ 0.1)
f     + MANO-level enh.           + ``L_MANO`` (γ 0.5, through ``h``)
g     + occlusion-aware filter    ``case_filtering=True`` (eq. 8: grasping pairs with ``Ô ≥ 0.1``) — the full model
====  ==========================  =====================================================================

The synthetic scenes' twins are rendered without the object (the generative
de-occluder is not reproduced). The recipe is ``examples/train_unihope.py``'s
``tiny`` one, shortened: the ``tiny`` preset (ResNet base width 16, where
``train_unihope.py`` now trains 24: the recorded tables used 16) at ``--image-size`` px (128),
``--train-scenes`` scenes (2,048; 30 % hand-only, 10 % with an object that is
not grasped) framed as DexYCB's (``--crop-padding`` 1.3), rendered once and
shared by every row, each seen in ``--augment-views`` augmented views (16:
rotation, zoom, shift, colour jitter, the twin warped alike); Adam (AdamW
without weight decay, betas 0.9 / 0.999) at ``--lr``, 5 % linear warm-up then
cosine decay (the decay makes a short run end at its best), ``--steps`` steps
of ``--batch-size``, ``--precision`` autocast (bf16 where the CPU computes it
natively). The test scenes are framed alike and scored in the ground-truth RoI
boxes (``--boxes``), as UniHOPE's released test loader does.

    python benchmarks/unihope_ablation.py                       # 38 min on one core of the 2-core CPU (docs/results.md §7)
    python benchmarks/unihope_ablation.py --seeds 0 1 2 --json unihope_ablation.json
    python benchmarks/unihope_ablation.py --quick               # seconds: checks the pipeline only

Prints a markdown table: root-relative and Procrustes-aligned joint and
vertex errors (J-PE, V-PE, mm), the switcher's accuracy, J-PE by ground-truth
grasp status (UniHOPE's hand-object / hand-only scenes), and each row's J-PE
ratio to row (a), measured in the same run; mean ± std over ``--seeds``.
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

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _examples import load_example  # noqa: E402

from hoimask.data import ColorJitter, Compose, RandomRotateScale, collate
from hoimask.engine import (
    AugmentedViews,
    TrainConfig,
    Trainer,
    atomic_write,
    resolve_precision,
    seed_everything,
)
from hoimask.engine.cli import exit_with_usage_errors
from hoimask.engine.datasets import build_dataset, fit_constant_baselines
from hoimask.engine.flags import HelpFormatter, integer, output_file, real
from hoimask.engine.precision import PRECISIONS
from hoimask.models import UniHOPE

#: ``examples/evaluate.py`` (its ``evaluate`` and ``BOX_SOURCES``) and ``train_unihope.py``'s ``tiny`` recipe.
EVALUATE = load_example("evaluate")
RECIPE = load_example("train_unihope").RECIPES["tiny"]

#: No enhancement loss: every level's weight 0.
_OFF = {"enhancement_init": 0.0, "enhancement_roi": 0.0, "enhancement_mano": 0.0}

#: Row -> (label, UniHOPE overrides, whether the batches keep their de-occluded twins). Cumulative, as Table 7.
ROWS: dict[str, tuple[str, dict, bool]] = {
    "a": ("switcher only (HFL-Net fusion)", dict(fusion_confidence="always", loss_weights=_OFF), False),
    "b": ("+ grasp-aware fusion", dict(fusion_confidence="hard", loss_weights=_OFF), False),
    "c": ("+ de-occluded pairs", dict(deoccluded_samples=True, case_filtering=False, loss_weights=_OFF), True),
    "d": ("+ initial-level enhancement", dict(deoccluded_samples=True, case_filtering=False,
                                              loss_weights={**_OFF, "enhancement_init": 0.1}), True),
    "e": ("+ RoI-level enhancement", dict(deoccluded_samples=True, case_filtering=False,
                                          loss_weights={**_OFF, "enhancement_init": 0.1, "enhancement_roi": 0.1}), True),
    "f": ("+ MANO-level enhancement", dict(deoccluded_samples=True, case_filtering=False), True),
    "g": ("+ occlusion-aware filtering", dict(deoccluded_samples=True, case_filtering=True), True),
}

#: Settings of ``--quick`` (a pipeline check, every row).
QUICK = dict(steps=2, batch_size=4, train_scenes=8, test_scenes=8, image_size=64, augment_views=2)

#: (column, Evaluator key) of the table, in mm except the switcher's accuracy (%).
COLUMNS = (("RR J-PE", "rr_mje"), ("RR V-PE", "rr_mme"), ("PA J-PE", "pa_mje"), ("PA V-PE", "pa_mme"),
           ("switcher acc. %", "switcher_accuracy"), ("RR J-PE grasping", "grasping/rr_mje"),
           ("RR J-PE not grasping", "not_grasping/rr_mje"))


def build_model(row: str, image_size: int, seed: int) -> UniHOPE:
    """Row ``row``'s UniHOPE (the ``tiny`` preset); every row starts from the same weights for a seed."""
    seed_everything(seed + 17)
    return UniHOPE.from_preset("tiny", img_size=image_size, **ROWS[row][1])


class RowLoss:
    """The Trainer's loss function of a row: drops the de-occluded twins where the row has none; counts pairs."""

    def __init__(self, keep_twins: bool) -> None:
        self.keep_twins = keep_twins
        self.pairs = 0

    def __call__(self, model, batch, generator):
        if not self.keep_twins:
            batch = {k: v for k, v in batch.items() if k != "deoccluded_image"}
        output = model(batch, generator=generator)
        self.pairs += int(output["enhancement_pairs"])
        return output


def train(row: str, data, args, seed: int, workdir: Path) -> tuple[UniHOPE, dict]:
    """Train row ``row`` with the shared recipe; returns the model (eval mode) and a few training numbers."""
    model = build_model(row, args.image_size, seed)
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, weight_decay=0.0,
                         betas=(0.9, 0.999), warmup_steps=max(1, math.ceil(0.05 * args.steps)),
                         log_every=max(1, args.steps // 10), checkpoint_every=args.steps, seed=seed,
                         precision=args.precision)
    loss = RowLoss(ROWS[row][2])
    trainer = Trainer(model, config, dataset=data, output_dir=workdir / f"{row}-{seed}", collate_fn=collate,
                      loss_fn=loss, progress=args.progress, tensorboard=False, ctx=_ctx(args))
    start = time.perf_counter()
    history = trainer.fit()
    trainer.logger.close()
    seconds = time.perf_counter() - start
    print(f"  row {row} seed {seed}: loss {history[0]['loss']:.3f} -> {history[-1]['loss']:.3f}, "
          f"{loss.pairs} enhancement pairs, {seconds:.0f} s", flush=True)
    return model.eval(), {"first_loss": history[0]["loss"], "last_loss": history[-1]["loss"],
                          "enhancement_pairs": loss.pairs, "seconds": seconds}


def _ctx(args):
    from hoimask.engine import DistributedContext

    return DistributedContext(device=torch.device(args.device))


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags (``--help`` documents each; values are checked as they are parsed)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--rows", nargs="+", choices=tuple(ROWS), default=list(ROWS),
                   help="Table 7 rows to train (a: switcher only ... g: the full model); ratios are to the first")
    p.add_argument("--steps", type=integer(low=1), default=1000, help="training steps per row")
    p.add_argument("--batch-size", type=integer(low=1), default=RECIPE["batch_size"], help="training batch size")
    p.add_argument("--lr", type=real(low=0, low_open=True), default=RECIPE["lr"], help="peak learning rate (Adam)")
    p.add_argument("--train-scenes", type=integer(low=1), default=RECIPE["num_samples"],
                   help="synthetic training scenes (rendered once, shared by every row)")
    p.add_argument("--test-scenes", type=integer(low=1), default=256, help="held-out synthetic test scenes")
    p.add_argument("--image-size", type=integer(low=32), default=128, help="input side (px), a multiple of 32")
    p.add_argument("--augment-views", type=integer(low=1), default=RECIPE["augment_views"],
                   help="views per training scene: the scene, then randomly rotated, zoomed, shifted and "
                        "colour-jittered copies (its twin warped alike); 1 = none")
    crop = p.add_mutually_exclusive_group()
    crop.add_argument("--crop-padding", type=real(low=1), default=RECIPE["crop_padding"],
                      help="crop every scene (training and test) around hand ∪ object with this margin factor, "
                           "as DexYCB / HO3D frames are")
    crop.add_argument("--no-crop", action="store_true", help="train and test on the whole rendered frame")
    p.add_argument("--precision", choices=("auto", *PRECISIONS), default=RECIPE["precision"],
                   help="autocast precision (auto: bf16 where the CPU computes it natively, else fp32)")
    p.add_argument("--boxes", choices=EVALUATE.BOX_SOURCES, default="ground-truth",
                   help="RoI boxes at test time: the ground truth's (UniHOPE's released test loader) or the box head's")
    p.add_argument("--seeds", type=integer(low=0), nargs="+", default=[0],
                   help="seeds (initial weights and data order) to repeat every row with")
    p.add_argument("--quick", action="store_true",
                   help=f"a pipeline check in seconds: every row, {QUICK['steps']} steps, "
                        f"{QUICK['train_scenes']} training and {QUICK['test_scenes']} test scenes (overrides those flags)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train and evaluate")
    p.add_argument("--progress", action="store_true", help="show tqdm bars")
    p.add_argument("--json", type=output_file, help="also write the settings and every result here (atomically)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check the flags; a bad value exits with a usage error naming the flag (status 2)."""
    p = build_parser()
    args = p.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if args.image_size % 32:
        p.error(f"argument --image-size: expected a multiple of 32 (the ResNet FPN's stride), got {args.image_size}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("argument --device: cuda is not available on this machine")
    args.rows = list(dict.fromkeys(args.rows))
    args.precision = resolve_precision(args.precision, torch.device(args.device))  # "auto" -> what runs
    return args


def _cell(values: list[float]) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "-"
    sd = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):.1f}{sd}"


def format_table(results: dict[str, dict[str, list[float]]], rows: list[str],
                 constant: dict[str, float] | None = None) -> str:
    """The markdown table of :func:`main`'s results (row -> Evaluator key -> one value per seed).

    With ``constant`` (Evaluator key -> value of the mean-pose constant on the
    same test scenes), a last line gives it and a column each row's J-PE ratio to it.
    """
    to_constant = constant is not None and constant.get("rr_mje", 0) > 0
    head = "| row | configuration | " + " | ".join(c for c, _ in COLUMNS) + f" | RR J-PE / ({rows[0]}) |"
    head += " RR J-PE / mean pose |" if to_constant else ""
    lines = [head, "|---|---|" + "---:|" * (len(COLUMNS) + 1 + to_constant)]
    base = statistics.fmean(results[rows[0]]["rr_mje"])
    for row in rows:
        cells = [_cell(results[row].get(key, [])) for _, key in COLUMNS]
        mean = statistics.fmean(results[row]["rr_mje"])
        lines.append(f"| ({row}) | {ROWS[row][0]} | " + " | ".join(cells) + f" | {mean / base:.3f} |"
                     + (f" {mean / constant['rr_mje']:.2f} |" if to_constant else ""))
    if to_constant:
        cells = ["-" if key.startswith("switcher") or key not in constant else f"{constant[key]:.1f}"
                 for _, key in COLUMNS]
        lines.append("| — | mean-pose constant (training scenes) | " + " | ".join(cells)
                     + f" | {constant['rr_mje'] / base:.3f} | 1.00 |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    # 30 % hand-only scenes, 10 % with an object that is not grasped; the test split's seed differs (held out)
    common = dict(image_size=args.image_size, seed=21, num_sdf_points=0, num_object_points=256, hand_only_prob=0.3,
                  cache_in_memory=True, require_hand=True, crop_padding=None if args.no_crop else args.crop_padding)
    scenes = build_dataset("synthetic", train=True, num_samples=args.train_scenes, deoccluded=True, **common)
    baselines = fit_constant_baselines(scenes, max_samples=args.train_scenes)  # the mean pose of the training scenes
    train_data = scenes if args.augment_views == 1 else AugmentedViews(
        scenes, Compose([RandomRotateScale(), ColorJitter()]), repeats=args.augment_views, seed=21)
    test_data = build_dataset("synthetic", train=False, num_samples=args.test_scenes, **common)
    results: dict[str, dict[str, list[float]]] = {row: {} for row in args.rows}
    training: dict[str, list[dict]] = {row: [] for row in args.rows}
    constant: dict[str, float] = {}  # the mean-pose constant's metrics: the same for every row
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for row in args.rows:
                model, numbers = train(row, train_data, args, seed, Path(tmp))
                training[row].append(numbers)
                evaluator, constants = EVALUATE.evaluate(
                    model, test_data, batch_size=32, protocol="hoisdf", device=args.device, root_depth="ground-truth",
                    boxes=args.boxes, baselines=baselines)
                constant = {k: float(v) for k, v in constants["mean_pose"].compute().items()
                            if isinstance(v, (int, float))}
                values = evaluator.compute()
                for key, value in values.items():
                    results[row].setdefault(key, []).append(float(value))
    minutes = (time.perf_counter() - start) / 60
    print(f"\nUniHOPE ablation (Table 7 structure) on synthetic scenes: tiny preset at {args.image_size} px, "
          f"{args.steps} steps of {args.batch_size} (Adam, lr {args.lr:g}, warm-up + cosine, "
          f"{args.precision}), {args.train_scenes} training scenes x "
          f"{args.augment_views} views / {args.test_scenes} test scenes "
          f"({'whole frames' if args.no_crop else f'cropped with padding {args.crop_padding:g}'}, {args.boxes} boxes), "
          f"seeds {args.seeds}, device {args.device}; {minutes:.1f} min")
    print("Errors in mm at the ground-truth wrist depth (RR: root-relative, PA: Procrustes-aligned), "
          "mean ± std over seeds; grasping / not grasping: by the ground-truth grasp label.\n")
    print(format_table(results, args.rows, constant))
    if args.json:
        atomic_write(args.json, json.dumps({
            "args": {k: v if isinstance(v, (int, float, str, list, bool)) or v is None else str(v)
                     for k, v in vars(args).items()},
            "rows": {row: {"configuration": ROWS[row][0], "overrides": ROWS[row][1], "twins": ROWS[row][2]}
                     for row in args.rows},
            "results": results, "mean_pose": constant, "training": training, "minutes": minutes}, indent=2) + "\n")
        print(f"\nresults: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(exit_with_usage_errors(main))
