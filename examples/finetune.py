#!/usr/bin/env python
"""Fine-tune a pre-trained encoder for 3D hand and object pose estimation.

Loads the encoder written by ``examples/train_maskhoi.py`` (``encoder.pt``), or
MAE / MultiMAE / timm ViT weights, into one of two models and trains it:

* ``--model pose`` (default): :class:`hoimask.models.PoseRegressionModel`, the
  ViT encoder with a 2.5D keypoint head, MaskHOI's MANO / object heads and a
  camera-aware wrist head — small and fast, the library's CPU reference;
* ``--model hoisdf``: :class:`hoimask.models.HOISDF`, the model MaskHOI is
  evaluated in (its Table IV), on ``--backbone vit`` (takes the ViT weights) or
  ``--backbone resnet50`` (HOISDF's baseline; ``--encoder`` takes torchvision
  ImageNet weights). It also trains on the SDF samples of the scenes.

::

    python examples/finetune.py --encoder runs/maskhoi-tiny/encoder.pt     # writes runs/finetune-tiny
    python examples/finetune.py --no-pretrain --output-dir runs/scratch    # baseline from random init
    python examples/evaluate.py --checkpoint runs/finetune-tiny/model.pt
    python examples/finetune.py --model hoisdf --encoder runs/maskhoi-tiny/encoder.pt   # runs/finetune-hoisdf-tiny

Checkpoints, logs, ``--resume``/``--overwrite`` and ``torchrun`` behave as in
``train_maskhoi.py`` (see docs/training.md).
"""

from __future__ import annotations

import os

# Passive OpenMP waiting: on a busy CPU, spinning worker threads made training ~15x slower
# (measured: 13.8 s/step spinning vs 0.58 s/step passive, 2 threads, load average 7). Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import sys
import time
from pathlib import Path

from hoimask._checks import FileFormatError
from hoimask.engine import (
    Trainer,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    train_preset,
    unwrap_model,
)
from hoimask.engine.cli import (
    exit_with_usage_errors,
    loss_trend,
    main_printer,
    mano_layer,
    prepare_run_dir,
    run_distributed,
    short_run_warmup,
)
from hoimask.engine.datasets import DATASETS, build_dataset, fit_constant_baselines
from hoimask.models import HOISDF, PoseRegressionModel

#: Encoder sizes of the presets (those of MaskHOI's presets) and fine-tuning recipes.
ENCODERS = {"tiny": dict(img_size=128, patch_size=16, embed_dim=192, depth=4, num_heads=3),
            "paper": dict(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12)}
RECIPES = {"tiny": dict(steps=1200, batch_size=16, lr=1e-3, layer_decay=0.75, num_samples=1024),
           "paper": dict(steps=50_000, batch_size=22, lr=1e-4, layer_decay=0.75, num_samples=100_000)}
#: HOISDF presets per (--preset, --backbone), and its recipes: no layer decay (HOISDF fine-tunes every layer
#: at one rate; its step decay is replaced by the engine's warm-up + cosine), SDF samples in the scenes.
#: tiny lr 3e-4: at 1e-3 the MaskHOI-initialised run lost the global hand rotation (docs/results.md §5).
HOISDF_PRESETS = {("tiny", "vit"): "tiny", ("tiny", "resnet50"): "tiny_resnet",
                  ("paper", "vit"): "vit", ("paper", "resnet50"): "hoisdf"}
HOISDF_RECIPES = {"tiny": dict(steps=1200, batch_size=8, lr=3e-4, layer_decay=None, num_samples=1024,
                               num_sdf_points=512),
                  "paper": dict(steps=50_000, batch_size=22, lr=1e-4, layer_decay=None, num_samples=100_000,
                                num_sdf_points=2000)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (``--help`` documents each)."""
    p = argparse.ArgumentParser(description="Fine-tune a pre-trained encoder for hand-object pose estimation.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--encoder", type=Path,
                     help="encoder.pt from train_maskhoi.py, or a MAE/MultiMAE/timm ViT weights file")
    src.add_argument("--no-pretrain", action="store_true", help="start from a randomly initialised encoder")
    p.add_argument("--model", choices=("pose", "hoisdf"), default="pose",
                   help="PoseRegressionModel (2.5D keypoints) or HOISDF (SDF-guided; MaskHOI's downstream model)")
    p.add_argument("--backbone", choices=("vit", "resnet50"),
                   help="HOISDF's image backbone: a ViT + DPT (takes ViT weights) or HOISDF's ResNet U-Net (takes "
                        "torchvision ResNet weights); --model hoisdf only (default: vit)")
    p.add_argument("--preset", choices=tuple(ENCODERS), default="tiny", help="encoder size and recipe")
    p.add_argument("--dataset", choices=DATASETS, default="synthetic", help="training data")
    p.add_argument("--data-root", type=Path, help="DexYCB or HO3D root directory")
    p.add_argument("--mano-dir", type=Path, help="folder with MANO_RIGHT.pkl (real data)")
    p.add_argument("--output-dir", type=Path, help="run directory (default: runs/finetune-<preset>)")
    p.add_argument("--steps", type=int, help="optimisation steps (default: tiny 1200, paper 50000)")
    p.add_argument("--batch-size", type=int, help="per-process batch size")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--layer-decay", type=float, help="layer-wise lr decay of the encoder (default 0.75)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), help="autocast precision")
    p.add_argument("--resume", action="store_true", help="continue the run in --output-dir")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --output-dir")
    p.add_argument("--num-samples", type=int, help="synthetic training scenes (default: tiny 1024, cached in memory)")
    p.add_argument("--seed", type=int, default=0, help="seed of the heads' init and the data order")
    p.add_argument("--baseline-samples", type=int, default=2048,
                   help="training samples the constant baselines stored in model.pt are fitted on (see evaluate.py)")
    p.add_argument("--num-workers", type=int, help="DataLoader workers per process")
    p.add_argument("--log-every", type=int, help="steps between log records")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    p.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=None, help="TensorBoard logging")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = p.parse_args(argv)
    if args.encoder is None and not args.no_pretrain:
        p.error("give --encoder PATH (pre-trained weights) or --no-pretrain")
    for flag in ("steps", "batch_size", "num_samples", "baseline_samples"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            p.error(f"argument --{flag.replace('_', '-')}: expected an integer >= 1, got {value}")
    if args.backbone is not None and args.model != "hoisdf":
        p.error(f"argument --backbone: only with --model hoisdf (got --model {args.model})")
    if args.model == "hoisdf" and args.backbone is None:
        args.backbone = "vit"
    if args.output_dir is None:
        name = args.preset if args.model == "pose" else f"hoisdf-{args.preset}"
        if args.backbone == "resnet50":
            name += "-resnet"
        args.output_dir = Path("runs") / f"finetune-{name}"
    return args


def build_model(args: argparse.Namespace) -> tuple[PoseRegressionModel | HOISDF, str]:
    """The pose model with the pre-trained encoder loaded; also a line describing the initialisation."""
    hand_layer = mano_layer(args.dataset, args.mano_dir)
    if args.model == "hoisdf":
        return build_hoisdf(args, hand_layer)
    if args.encoder is None:
        return PoseRegressionModel(**ENCODERS[args.preset], hand_layer=hand_layer), "random initialisation"
    try:
        state = load_checkpoint(args.encoder)
    except FileFormatError:  # not a hoimask file: MAE / MultiMAE / timm weights
        state = None
    if state is not None and "encoder" in state:
        model = PoseRegressionModel(**state["encoder_config"], hand_layer=hand_layer)
        model.load_encoder(state["encoder"])
        return model, f"encoder from {args.encoder} (pre-trained {state.get('step', '?')} steps)"
    from hoimask.nn import load_vit_checkpoint

    model = PoseRegressionModel(**ENCODERS[args.preset], hand_layer=hand_layer)
    return model, f"encoder from {args.encoder}: {load_vit_checkpoint(args.encoder, model.encoder)}"


def build_hoisdf(args: argparse.Namespace, hand_layer) -> tuple[HOISDF, str]:
    """HOISDF of ``--preset`` / ``--backbone`` with the ``--encoder`` weights (ViT or torchvision ResNet)."""
    model = HOISDF.from_preset(HOISDF_PRESETS[args.preset, args.backbone], hand_layer=hand_layer)
    if args.encoder is None:
        return model, "random initialisation"
    if args.backbone == "resnet50":
        from hoimask.nn import load_resnet_checkpoint

        return model, f"backbone from {args.encoder}: {load_resnet_checkpoint(args.encoder, model.encoder)}"
    try:
        state = load_checkpoint(args.encoder)
    except FileFormatError:  # not a hoimask file: MAE / MultiMAE / timm weights
        state = None
    if state is not None and "encoder" in state:
        model.load_encoder(state["encoder"])  # raises FileFormatError naming mismatched keys / shapes
        return model, f"encoder from {args.encoder} (pre-trained {state.get('step', '?')} steps)"
    from hoimask.nn import load_vit_checkpoint

    return model, f"encoder from {args.encoder}: {load_vit_checkpoint(args.encoder, model.encoder)}"


def model_image_size(model: PoseRegressionModel | HOISDF) -> int:
    """The side of the square images the model takes."""
    return model.config.img_size if isinstance(model, HOISDF) else model.img_size


def hoisdf_config_state(model: HOISDF) -> dict:
    """``model.config`` as plain checkpoint data (``HOISDFConfig(**state)`` rebuilds it)."""
    from dataclasses import asdict

    state = asdict(model.config)
    state["loss_weights"] = dict(state["loss_weights"])
    return state


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_distributed(_run, args, device=args.device)


def _run(args: argparse.Namespace, ctx) -> int:
    say = main_printer(ctx)
    recipe = (RECIPES if args.model == "pose" else HOISDF_RECIPES)[args.preset]
    steps = args.steps or recipe["steps"]
    base = train_preset(args.preset)
    config = train_preset(
        args.preset, steps=steps, batch_size=args.batch_size or recipe["batch_size"], lr=args.lr or recipe["lr"],
        layer_decay=args.layer_decay or recipe["layer_decay"], precision=args.precision, seed=args.seed,
        num_workers=args.num_workers, log_every=args.log_every, checkpoint_every=args.checkpoint_every,
        warmup_steps=short_run_warmup(base, steps),
    )
    mode = prepare_run_dir(args, config, ctx)
    seed_everything(args.seed)
    model, origin = build_model(args)
    from hoimask.data import collate

    dataset = build_dataset(
        args.dataset, image_size=model_image_size(model), train=True, root=args.data_root, mano_dir=args.mano_dir,
        num_samples=args.num_samples or recipe["num_samples"], seed=args.seed,
        # PoseRegressionModel uses no SDF targets; HOISDF learns its fields from them
        num_sdf_points=recipe.get("num_sdf_points", 16) if args.dataset == "synthetic" else 0,
        num_object_points=256, cache_in_memory=args.dataset == "synthetic" and args.preset == "tiny",
    )
    trainer = Trainer(model, config, dataset=dataset, output_dir=args.output_dir, collate_fn=collate, ctx=ctx,
                      num_layers=getattr(model, "encoder_config", {}).get("depth"),
                      progress=not args.no_progress, tensorboard=args.tensorboard)
    if mode == "resume":
        say(f"resumed from step {trainer.resume()} of {config.steps}")
    say(f"fine-tuning {type(model).__name__} '{args.preset}' ({origin}) on {args.dataset} data; "
        f"{config.steps} steps of batch {config.batch_size} x {ctx.world_size} process(es) on {ctx.device}")
    start = time.perf_counter()
    history = trainer.fit()
    if ctx.is_main:
        baselines = fit_constant_baselines(dataset, max_samples=args.baseline_samples)
        description = ({"model_type": "hoisdf", "hoisdf_config": hoisdf_config_state(model)}
                       if args.model == "hoisdf" else {"model_type": "pose", "encoder_config": model.encoder_config})
        path = save_checkpoint(args.output_dir / "model.pt", {
            "model": unwrap_model(trainer.model).state_dict(),
            **description,
            "dataset": args.dataset,
            "step": trainer.step,
            "baselines": baselines.state_dict(),  # constant predictors of the training split, for evaluate.py
        })
        trend = loss_trend([h["loss"] for h in history], most=5, label="loss", empty="nothing to do")
        say(f"\ndone: {len(history)} steps in {time.perf_counter() - start:.0f} s; {trend}")
        say(f"  model      : {path}  (python examples/evaluate.py --checkpoint {path})")
        say(f"  checkpoints: {trainer.checkpoints.directory}")
        say(f"  logs       : {trainer.logger.jsonl_path}, {trainer.logger.text_path}")
    trainer.logger.close()
    return 0


if __name__ == "__main__":
    sys.exit(exit_with_usage_errors(main))
