#!/usr/bin/env python
"""Fine-tune a pre-trained encoder for 3D hand and object pose estimation.

Loads the encoder written by ``examples/train_maskhoi.py`` (``encoder.pt``), or
MAE / MultiMAE / timm ViT weights, into one of three models and trains it:

* ``--model pose`` (default): :class:`hoimask.models.PoseRegressionModel`, the
  ViT encoder with a 2.5D keypoint head, MaskHOI's MANO / object heads and a
  camera-aware wrist head — small and fast, the library's CPU reference;
* ``--model hoisdf``: :class:`hoimask.models.HOISDF`, the model MaskHOI is
  evaluated in (its Table IV), on ``--backbone vit`` (takes the ViT weights) or
  ``--backbone resnet50`` (HOISDF's baseline; ``--encoder`` takes torchvision
  ImageNet weights). It also trains on the SDF samples of the scenes;
* ``--model handmim-head``: :class:`hoimask.models.HandMIMPoseModel`, HandMIM's
  fine-tuning model (§2.5): the ViT encoder with a PyMAF-style keypoint
  feedback loop regressing MANO (θ, β, t); hand-only, trained with the pose
  model's recipe.

::

    python examples/finetune.py --encoder runs/maskhoi-tiny/encoder.pt     # writes runs/finetune-tiny
    python examples/finetune.py --no-pretrain --output-dir runs/scratch    # baseline from random init
    python examples/evaluate.py --checkpoint runs/finetune-tiny/model.pt
    python examples/finetune.py --model hoisdf --encoder runs/maskhoi-tiny/encoder.pt   # runs/finetune-hoisdf-tiny
    python examples/finetune.py --model handmim-head --encoder runs/handmim-tiny/encoder.pt  # runs/finetune-handmim-head-tiny

Checkpoints, logs, ``--resume``/``--overwrite`` and ``torchrun`` behave as in
``train_maskhoi.py`` (see docs/training.md); at the end it also draws the
logged losses into ``loss_curves.png`` in the run directory.
"""

from __future__ import annotations

import os

from hoimask._omp import omp_wait_policy

# OpenMP waits passively when other jobs hold the CPUs as the script starts, and spins briefly before sleeping
# when they are idle (1.2x faster steps there): hoimask/_omp.py. Before torch loads.
os.environ.update(omp_wait_policy())

import argparse
import functools
import sys
import time
from pathlib import Path

from hoimask._checks import FileFormatError
from hoimask.engine import (
    AugmentedViews,
    Trainer,
    load_checkpoint,
    resolve_precision,
    save_checkpoint,
    seed_everything,
    train_preset,
    unwrap_model,
    vit_layer_id,
)
from hoimask.engine.checkpoint import is_sealed_checkpoint
from hoimask.engine.cli import (
    add_framing_flags,
    check_data_flags,
    check_framing_flags,
    exit_with_usage_errors,
    loss_trend,
    main_printer,
    mano_layer,
    prepare_run_dir,
    require_loaded_weights,
    run_distributed,
    short_run_warmup,
    write_loss_curves,
)
from hoimask.engine.datasets import DATASETS, build_dataset, fit_constant_baselines
from hoimask.engine.flags import (
    HelpFormatter,
    errors_name_flag,
    errors_name_flags,
    existing_dir,
    existing_file,
    explain_interrupt,
    integer,
    missing_tensorboard,
    output_folder,
    quiet_on_other_processes,
    real,
    tensorboard_note,
)
from hoimask.models import HOISDF, HandMIMPoseModel, PoseRegressionModel

#: Encoder sizes of the presets (those of MaskHOI's presets) and fine-tuning recipes.
ENCODERS = {"tiny": dict(img_size=128, patch_size=16, embed_dim=192, depth=4, num_heads=3),
            "paper": dict(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12)}
#: ``augment_views``: views per cached scene (AugmentedViews: the scene, then rotated / zoomed / shifted,
#: colour-jittered copies); the tiny pose recipe gained 8 % RR-MJE from it (docs/results.md §3, third round).
#: tiny pose: 1250 steps of 16 at lr 2e-3, bf16 autocast where the CPU computes it natively ("auto"; fp32
#: elsewhere), no DataLoader worker (with the cheaper view warps a worker only slows the model's two threads:
#: 250 steps 161 s with one, 135 s without) -- docs/results.md §3, fifth round, for the probes and the time on an
#: idle 2-core machine. ``crop_padding``: synthetic scenes framed as DexYCB / HO3D frames are, cropped around
#: hand ∪ object with that margin (the hand covers ~1.5x more pixels; docs/results.md §3, sixth round).
RECIPES = {"tiny": dict(steps=1250, batch_size=16, lr=2e-3, layer_decay=0.75, num_samples=1024, augment_views=16,
                        precision="auto", num_workers=0, crop_padding=1.3),
           "paper": dict(steps=50_000, batch_size=22, lr=1e-4, layer_decay=0.75, num_samples=100_000,
                         augment_views=1)}
#: HOISDF presets per (--preset, --backbone), and its recipes: no layer decay (HOISDF fine-tunes every layer
#: at one rate; its step decay is replaced by the engine's warm-up + cosine), SDF samples in the scenes.
#: tiny: lr 1e-3 after a warm-up of a tenth of the run (``warmup``; with the preset's 20 steps about half of the
#: MaskHOI-initialised runs lost the global hand rotation within 200 steps, so the recipe was 3e-4, 0.58x),
#: 2400 steps (3000 reached 0.48x but took 17-18 min on a slower day's 2-core machine, 2400 0.49x in 12 min 46 s),
#: 8 augmented views per scene (the SDF samples turn with the view), bf16 where native (docs/results.md §5,
#: "A recipe that reaches 0.5x" and "2,400 steps").
HOISDF_PRESETS = {("tiny", "vit"): "tiny", ("tiny", "resnet50"): "tiny_resnet",
                  ("paper", "vit"): "vit", ("paper", "resnet50"): "hoisdf"}
HOISDF_RECIPES = {"tiny": dict(steps=2400, batch_size=8, lr=1e-3, layer_decay=None, num_samples=1024,
                               num_sdf_points=512, augment_views=8, precision="auto", warmup=0.1),
                  "paper": dict(steps=50_000, batch_size=22, lr=1e-4, layer_decay=None, num_samples=100_000,
                                num_sdf_points=2000, augment_views=1)}


#: Loss settings of ``--model pose`` and ``handmim-head`` per preset (keywords of both models, whose 2.5D keypoint
#: terms are the same; not part of ``encoder_config``, since evaluation computes no loss): tiny: sharper heatmap
#: targets (sigma 0.75, was 1) and half the relative-depth weight (5, was 10), each ~2 mm RR-MJE better at 700
#: steps for the pose model (docs/results.md §3, sixth round).
POSE_LOSS_SETTINGS = {"tiny": dict(heatmap_sigma=0.75, loss_weights={"keypoint_depth": 5.0}), "paper": {}}

#: ``--model`` choices; ``handmim-head`` trains with the pose model's recipe (RECIPES).
MODELS = ("pose", "hoisdf", "handmim-head")
#: The models built around one ViT encoder whose sizes ``ENCODERS`` / an ``encoder.pt`` give (``build_vit_model``).
VIT_MODELS = {"pose": PoseRegressionModel, "handmim-head": HandMIMPoseModel}


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags (``--help`` documents each; values are checked as they are parsed)."""
    p = argparse.ArgumentParser(description="Fine-tune a pre-trained encoder for hand-object pose estimation.",
                                formatter_class=HelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--encoder", type=existing_file,
                     help="encoder.pt from train_maskhoi.py, or a MAE/MultiMAE/timm ViT weights file")
    src.add_argument("--no-pretrain", action="store_true", help="start from a randomly initialised encoder")
    p.add_argument("--model", choices=MODELS, default="pose",
                   help="PoseRegressionModel (2.5D keypoints), HOISDF (SDF-guided; MaskHOI's downstream model) or "
                        "HandMIMPoseModel (HandMIM's keypoint feedback loop; hand only, the pose model's recipe)")
    p.add_argument("--backbone", choices=("vit", "resnet50"),
                   help="HOISDF's image backbone: a ViT + DPT (takes ViT weights) or HOISDF's ResNet U-Net (takes "
                        "torchvision ResNet weights); --model hoisdf only (default: vit)")
    p.add_argument("--preset", choices=tuple(ENCODERS), default="tiny", help="encoder size and recipe")
    p.add_argument("--dataset", choices=DATASETS, default="synthetic", help="training data")
    p.add_argument("--data-root", type=existing_dir, help="DexYCB or HO3D root directory")
    p.add_argument("--mano-dir", type=existing_dir, help="folder with MANO_RIGHT.pkl (real data)")
    p.add_argument("--output-dir", type=output_folder,
                   help="run directory (default: runs/finetune-<preset>; with --model hoisdf "
                        "runs/finetune-hoisdf-<preset>, -resnet appended for --backbone resnet50)")
    p.add_argument("--steps", type=integer(low=1), help="optimisation steps (default: tiny 1250 for the pose model, 2400 for HOISDF; paper 50000)")
    p.add_argument("--batch-size", type=integer(low=1),
                   help="per-process batch size (default: tiny 16, 8 with --model hoisdf; paper 22)")
    p.add_argument("--lr", type=real(low=0, low_open=True),
                   help="peak learning rate (default: tiny 2e-3, 1e-3 with --model hoisdf; paper 1e-4)")
    p.add_argument("--layer-decay", type=real(0, 1, low_open=True),
                   help="layer-wise lr decay of the encoder, in (0, 1] (default: 0.75; none with --model hoisdf)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"),
                   help="autocast precision; auto: bf16 where the device computes it natively (CUDA with bf16, "
                        "a CPU with AVX512-BF16 or AMX), else fp32 (default: tiny auto, paper bf16)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue the run in --output-dir")
    again.add_argument("--overwrite", action="store_true", help="replace an existing run in --output-dir")
    p.add_argument("--num-samples", type=integer(low=1),
                   help="synthetic training scenes (default: tiny 1024, cached in memory; paper 100000)")
    p.add_argument("--point-cloud-fusion", action="store_true",
                   help="HOISDF with HOMAE's fusion of the SDF fields and the explicit point cloud on their "
                        "zero level (docs/models.md); --model hoisdf only")
    p.add_argument("--augment-views", type=integer(low=1),
                   help="views per training scene: the scene, then randomly rotated (about the image centre), "
                        "zoomed, shifted and colour-jittered copies; 1 = none (default: tiny 16, 8 with --model hoisdf; paper 1)")
    add_framing_flags(p, default="pose and handmim-head tiny 1.3; otherwise the whole frame")
    p.add_argument("--seed", type=integer(low=0), default=0, help="seed of the heads' init and the data order")
    p.add_argument("--baseline-samples", type=integer(low=1), default=2048,
                   help="training samples the constant baselines stored in model.pt are fitted on (see evaluate.py)")
    p.add_argument("--num-workers", type=integer(low=0), help="DataLoader workers per process (default: 0; paper 8)")
    p.add_argument("--log-every", type=integer(low=1), help="steps between log records (default: tiny 10, paper 50)")
    p.add_argument("--checkpoint-every", type=integer(low=1),
                   help="steps between checkpoints; one is always written at the end (default: tiny 50, paper 1000)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="where to train (default: cuda when available)")
    p.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=None,
                   help="TensorBoard logging (default: on when the tensorboard package is installed)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check the flags; a bad value exits with a usage error naming the flag (status 2)."""
    p = build_parser()
    with quiet_on_other_processes():  # under torchrun, one usage error per node instead of one per process
        return _checked_args(p, p.parse_args(argv))


def _checked_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """The checks that look at several flags together, and the defaults that depend on others."""
    if args.encoder is None and not args.no_pretrain:
        p.error("give --encoder PATH (pre-trained weights) or --no-pretrain")
    check_framing_flags(p, args)
    check_data_flags(p, args)
    problem = missing_tensorboard(args.tensorboard)
    if problem:
        p.error(f"argument --tensorboard: {problem}")
    if args.backbone is not None and args.model != "hoisdf":
        p.error(f"argument --backbone: only with --model hoisdf (got --model {args.model})")
    if args.layer_decay is not None and args.backbone == "resnet50":
        p.error("argument --layer-decay: layer-wise decay counts ViT blocks; it does not apply to --backbone resnet50")
    if args.point_cloud_fusion and args.model != "hoisdf":
        p.error(f"argument --point-cloud-fusion: only with --model hoisdf (got --model {args.model})")
    if args.model == "hoisdf" and args.backbone is None:
        args.backbone = "vit"
    if args.output_dir is None:
        name = args.preset if args.model == "pose" else f"{args.model}-{args.preset}"
        if args.backbone == "resnet50":
            name += "-resnet"
        args.output_dir = Path("runs") / f"finetune-{name}"
    return args


def read_hoimask_checkpoint(path: Path) -> dict | None:
    """The hoimask encoder checkpoint at ``path``, or ``None`` when it is not a hoimask file (MAE / MultiMAE / timm).

    A damaged hoimask checkpoint raises :class:`FileFormatError`; it is never handed to the foreign-weights loader.
    Nor is a hoimask checkpoint without encoder weights (a training checkpoint, a fine-tuned ``model.pt``): it
    raises too, where it would have loaded nothing and trained from random weights.
    """
    try:
        state = load_checkpoint(path)
    except FileFormatError:
        if is_sealed_checkpoint(path):
            raise
        return None
    if "encoder" not in state:
        keys = ", ".join(sorted(k for k in state if k != "hoimask_checkpoint")[:6])
        raise FileFormatError(f"{str(path)!r} is a hoimask checkpoint without encoder weights (it holds {keys}): "
                              "give the encoder.pt that train_maskhoi.py writes, or MAE / MultiMAE / timm weights")
    return state


def build_model(args: argparse.Namespace) -> tuple[PoseRegressionModel | HOISDF | HandMIMPoseModel, str]:
    """The pose model with the pre-trained encoder loaded; also a line describing the initialisation.

    Errors about the weights file name ``--encoder``; those about the MANO files ``--mano-dir``.
    """
    hand_layer = mano_layer(args.dataset, args.mano_dir)
    with errors_name_flag("--encoder"):
        if args.model == "hoisdf":
            return build_hoisdf(args, hand_layer)
        return build_vit_model(args, hand_layer)


def build_vit_model(args: argparse.Namespace, hand_layer) -> tuple[PoseRegressionModel | HandMIMPoseModel, str]:
    """``--model``'s ViT model (``VIT_MODELS``: the pose model or HandMIM's head) of ``--preset`` with the
    ``--encoder`` weights (hoimask encoder.pt or ViT weights)."""
    model_class = VIT_MODELS[args.model]
    extra = dict(hand_layer=hand_layer, **POSE_LOSS_SETTINGS[args.preset])
    if args.encoder is None:
        return model_class(**ENCODERS[args.preset], **extra), "random initialisation"
    state = read_hoimask_checkpoint(args.encoder)
    if state is not None:
        model = model_class(**state["encoder_config"], **extra)
        model.load_encoder(state["encoder"])
        return model, f"encoder from {args.encoder} (pre-trained {state.get('step', '?')} steps)"
    from hoimask.nn import load_vit_checkpoint

    model = model_class(**ENCODERS[args.preset], **extra)
    report = require_loaded_weights(load_vit_checkpoint(args.encoder, model.encoder), model.encoder, args.encoder)
    return model, f"encoder from {args.encoder}: {report}"


def build_hoisdf(args: argparse.Namespace, hand_layer) -> tuple[HOISDF, str]:
    """HOISDF of ``--preset`` / ``--backbone`` with the ``--encoder`` weights (ViT or torchvision ResNet)."""
    model = HOISDF.from_preset(HOISDF_PRESETS[args.preset, args.backbone], hand_layer=hand_layer,
                               point_cloud_fusion=args.point_cloud_fusion)
    if args.encoder is None:
        return model, "random initialisation"
    if args.backbone == "resnet50":
        from hoimask.nn import load_resnet_checkpoint

        report = load_resnet_checkpoint(args.encoder, model.encoder)
        return model, f"backbone from {args.encoder}: {require_loaded_weights(report, model.encoder, args.encoder)}"
    state = read_hoimask_checkpoint(args.encoder)
    if state is not None:
        model.load_encoder(state["encoder"])  # raises FileFormatError naming mismatched keys / shapes
        return model, f"encoder from {args.encoder} (pre-trained {state.get('step', '?')} steps)"
    from hoimask.nn import load_vit_checkpoint

    report = require_loaded_weights(load_vit_checkpoint(args.encoder, model.encoder), model.encoder, args.encoder)
    return model, f"encoder from {args.encoder}: {report}"


def layer_decay_layers(model: PoseRegressionModel | HOISDF | HandMIMPoseModel) -> dict:
    """``num_layers`` and ``layer_id_fn`` of the Trainer: the ViT blocks that ``--layer-decay`` counts over."""
    if isinstance(model, HOISDF):  # the ViT sits in the backbone (a ResNet backbone is refused by the flag checks)
        return {"num_layers": model.config.depth,
                "layer_id_fn": functools.partial(vit_layer_id, encoder_prefix="backbone.encoder.")}
    return {"num_layers": model.encoder_config["depth"]}


def model_image_size(model: PoseRegressionModel | HOISDF | HandMIMPoseModel) -> int:
    """The side of the square images the model takes."""
    return model.config.img_size if isinstance(model, HOISDF) else model.img_size


def hoisdf_config_state(model: HOISDF) -> dict:
    """``model.config`` as plain checkpoint data (``HOISDFConfig(**state)`` rebuilds it)."""
    from dataclasses import asdict

    state = asdict(model.config)
    state["loss_weights"] = dict(state["loss_weights"])
    return state


def model_description(kind: str, model: PoseRegressionModel | HOISDF | HandMIMPoseModel) -> dict:
    """What ``model.pt`` records beside the weights so that ``evaluate.py`` rebuilds the model: ``model_type`` and
    its configuration (``hoisdf_config``; ``encoder_config``, plus ``head_config`` for ``handmim-head``)."""
    if kind == "hoisdf":
        return {"model_type": "hoisdf", "hoisdf_config": hoisdf_config_state(model)}
    if kind == "handmim-head":
        return {"model_type": "handmim-head", "encoder_config": model.encoder_config,
                "head_config": dict(model.head_config)}
    return {"model_type": "pose", "encoder_config": model.encoder_config}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parser = build_parser()
    # errors name the flag the user typed; Ctrl-C says where the last checkpoint is and how to resume
    with explain_interrupt(args.output_dir, script=__file__, argv=argv, parser=parser), errors_name_flags(parser):
        return run_distributed(_run, args, device=args.device)


def _run(args: argparse.Namespace, ctx) -> int:
    say = main_printer(ctx)
    recipe = (HOISDF_RECIPES if args.model == "hoisdf" else RECIPES)[args.preset]  # handmim-head: the pose recipe
    steps = args.steps or recipe["steps"]
    base = train_preset(args.preset)
    config = train_preset(
        args.preset, steps=steps, batch_size=args.batch_size or recipe["batch_size"], lr=args.lr or recipe["lr"],
        layer_decay=args.layer_decay or recipe["layer_decay"], seed=args.seed,
        precision=resolve_precision(args.precision or recipe.get("precision", base.precision), ctx.device),
        num_workers=args.num_workers if args.num_workers is not None else recipe.get("num_workers"),
        log_every=args.log_every, checkpoint_every=args.checkpoint_every,
        warmup_steps=short_run_warmup(base, steps, fraction=recipe.get("warmup")),
    )
    crop_padding = None
    if args.dataset == "synthetic" and not args.no_crop:
        crop_padding = args.crop_padding or recipe.get("crop_padding")
    seed_everything(args.seed)
    model, origin = build_model(args)  # a bad --encoder / --mano-dir / --data-root fails before the run dir is claimed
    from hoimask.data import ColorJitter, Compose, RandomRotateScale, collate

    with errors_name_flag("--data-root"):
        dataset = build_dataset(
            args.dataset, image_size=model_image_size(model), train=True, root=args.data_root, mano_dir=args.mano_dir,
            num_samples=args.num_samples or recipe["num_samples"], seed=args.seed,
            # PoseRegressionModel uses no SDF targets; HOISDF learns its fields from them
            num_sdf_points=recipe.get("num_sdf_points", 16) if args.dataset == "synthetic" else 0,
            num_object_points=256, cache_in_memory=args.dataset == "synthetic" and args.preset == "tiny",
            require_hand=True,  # DexYCB frames without a hand annotation hold no pose target to fine-tune on
            crop_padding=crop_padding,
        )
    scenes = dataset  # the un-augmented pool: the constant baselines are fitted on it
    views = args.augment_views or recipe["augment_views"]
    if views > 1:
        dataset = AugmentedViews(scenes, Compose([RandomRotateScale(), ColorJitter()]), repeats=views, seed=args.seed)
    mode = prepare_run_dir(args, config, ctx)
    note = tensorboard_note(args.tensorboard)
    if note:
        say(note)
    trainer = Trainer(model, config, dataset=dataset, output_dir=args.output_dir, collate_fn=collate, ctx=ctx,
                      **layer_decay_layers(model), progress=not args.no_progress, tensorboard=args.tensorboard)
    if mode == "resume":
        with errors_name_flag("--resume"):  # a corrupt checkpoint is an error naming the file, never a fresh start
            say(f"resumed from step {trainer.resume()} of {config.steps}")
        for note in trainer.resume_notes:  # what a killed run had left behind, and what was repaired
            say(f"note: {note}")
    say(f"fine-tuning {type(model).__name__} '{args.preset}' ({origin}) on {args.dataset} data; "
        f"{config.steps} steps of batch {config.batch_size} x {ctx.world_size} process(es) on {ctx.device}, "
        f"{config.precision}")
    start = time.perf_counter()
    history = trainer.fit()
    if ctx.is_main:
        # with workers the training scenes were cached in them, not here: read them again in parallel
        baselines = fit_constant_baselines(scenes, max_samples=args.baseline_samples,
                                           num_workers=max(2, config.num_workers) if config.num_workers else 0)
        description = model_description(args.model, model)
        path = save_checkpoint(args.output_dir / "model.pt", {
            "model": unwrap_model(trainer.model).state_dict(),
            **description,
            "dataset": args.dataset,
            "step": trainer.step,
            "baselines": baselines.state_dict(),  # constant predictors of the training split, for evaluate.py
            "crop_padding": crop_padding,  # synthetic framing; evaluate.py frames its test scenes alike
        })
        curves = write_loss_curves(trainer.logger.read_records(), args.output_dir / "loss_curves.png",
                                   title=f"fine-tuning {type(model).__name__} '{args.preset}' loss (encoder: "
                                         f"{'random init' if args.encoder is None else args.encoder.name})")
        trend = loss_trend([h["loss"] for h in history], most=5, label="loss", empty="nothing to do")
        say(f"\ndone: {len(history)} steps in {time.perf_counter() - start:.0f} s; {trend}")
        say(f"  model      : {path}  (python examples/evaluate.py --checkpoint {path})")
        say(f"  checkpoints: {trainer.checkpoints.directory}")
        say(f"  logs       : {trainer.logger.jsonl_path}, {trainer.logger.text_path}")
        if curves is not None:
            say(f"  loss curves: {curves}")
    trainer.logger.close()
    return 0


if __name__ == "__main__":
    sys.exit(exit_with_usage_errors(main))
