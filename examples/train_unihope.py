#!/usr/bin/env python
"""Train UniHOPE (hand pose always, object pose when grasped, de-occluded pairs) on synthetic, DexYCB or HO3D data.

:class:`hoimask.models.UniHOPE` on a ResNet FPN (``--backbone resnet``,
``--encoder`` takes torchvision ResNet weights) or a ViT + DPT (``--backbone
vit``, ``--encoder`` takes MaskHOI / HandMIM ``encoder.pt`` or MAE / timm ViT
weights). Synthetic data (the default) mixes hand-only, not-grasped and
grasping scenes and carries each scene's de-occluded twin, so the
multi-level enhancement losses train. ``--dataset dexycb`` / ``ho3d`` take
their twins from ``--deoccluded-root DIR`` (a folder mirroring the colour
images, docs/data.md "De-occluded pairs"); the run prints how many training
frames have one, frames without one train without the enhancement losses, and
without the flag none has (the run counts the steps that had pairs). Every
log record step also gets one with the step's ``enhancement/pairs`` (pairs
that passed eq. 8's filter) and ``enhancement/unpaired`` (samples without a
twin) of this process's batch.

::

    python examples/train_unihope.py                          # tiny, CPU, writes runs/unihope-tiny
    python examples/train_unihope.py --preset paper --dataset dexycb --data-root DEXYCB --mano-dir MANO \
        --deoccluded-root DEXYCB_DEOCCLUDED

The ``paper`` recipe is §4's: Adam, lr 1e-4 decayed ×0.7 every 10 epochs,
batch 64, 128 px, 70 epochs, the enhancement losses from epoch 30 on.
Checkpoints, logs, ``--resume`` / ``--overwrite`` and ``torchrun`` behave as
in ``finetune.py`` (docs/training.md). The run writes ``model.pt``
(``model_type = "unihope"``; rebuild it with
``UniHOPE.from_checkpoint_state(load_checkpoint(path))``).
"""

from __future__ import annotations

import os

from hoimask._omp import omp_wait_policy

# OpenMP waits passively when other jobs hold the CPUs as the script starts, and spins briefly before sleeping
# when they are idle (1.2x faster steps there): hoimask/_omp.py. Before torch loads.
os.environ.update(omp_wait_policy())

import argparse
import math
import sys
import time
from pathlib import Path

import torch
from torch.optim.lr_scheduler import LRScheduler

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
    write_loss_curves,
)
from hoimask.engine.datasets import build_dataset, fit_constant_baselines
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
from hoimask.models import UniHOPE

#: Model presets per (--preset, --backbone).
MODEL_PRESETS = {("tiny", "resnet"): "tiny", ("tiny", "vit"): "tiny_vit", ("paper", "resnet"): "paper",
                 ("paper", "vit"): "vit"}
#: What the recipes change in those presets: the tiny recipe trains a ResNet-18 of base width 24 (the ``tiny``
#: preset's 16 reached 0.52-0.57x the mean-pose constant in 3,000 steps, 24 0.49x, in ~1.25x the step time;
#: docs/results.md §7, "Finer RoIs, a wider hand branch, a wider backbone, and the lifting depth").
MODEL_OVERRIDES = {("tiny", "resnet"): dict(resnet_base_channels=24)}
#: Recipes. paper: §4 (Adam 1e-4, x0.7 every 10 epochs, batch 64, 70 epochs, enhancement after 30 of them);
#: ``steps=None``: from the epochs and the dataset's length. tiny: the CPU recipe that learns within 15 minutes on
#: 2 cores (docs/results.md §7, "A recipe that learns"): 16 augmented views per cached scene (``augment_views``; the
#: de-occluded twin is warped with its scene) and the scenes framed as DexYCB / HO3D frames are (``crop_padding``);
#: without the views the RoI heatmaps memorised the 2,048 scenes and stayed flat on new ones. lr 2e-3 after a
#: 150-step warm-up (``--lr 2e-3 --warmup-steps 150``), better in that section's probe, was worse in the full run.
#: Its rate falls to 0 on a cosine over the run (``schedule="cosine"``): at a constant rate the held-out error of the
#: weights moved by up to 0.08x of the constant between checkpoints 300 steps apart, and the run ended wherever they
#: were (0.49-0.55x); with the decay two seeds ended at 0.485 and 0.492x (docs/results.md §7, "A cosine decay").
RECIPES = {"tiny": dict(steps=3000, epochs=None, batch_size=16, lr=1e-3, warmup_steps=0, schedule="cosine",
                        decay_epochs=10, decay_steps=None,
                        enhancement_from=0.0, num_samples=2048, precision="auto", augment_views=16, crop_padding=1.3),
           "paper": dict(steps=None, epochs=70, batch_size=64, lr=1e-4, warmup_steps=0, schedule="step",
                         decay_epochs=10, decay_steps=None,
                         enhancement_from=30 / 70, num_samples=100_000, precision="fp32", augment_views=1,
                         crop_padding=None)}
DATASETS = ("synthetic", "dexycb", "ho3d")
#: Datasets whose frames ``--deoccluded-root`` pairs with twins (synthetic scenes render their own).
PAIRED_DATASETS = ("dexycb", "ho3d")


#: ``--schedule`` choices: §4's step decay, or a cosine decay to 0 over the run (the ``tiny`` recipe's).
SCHEDULES = ("step", "cosine")


class StepDecaySchedule(LRScheduler):
    """``lr = base · w(step) · gamma^⌊step / step_size⌋`` (§4: ×0.7 every 10 epochs) with a linear warm-up
    ``w(step) = min(1, (step + 1) / warmup_steps)`` (``warmup_steps = 0``: none, §4's recipe); closed form,
    numbers-only state. (``--schedule cosine`` keeps the engine's :class:`~hoimask.engine.WarmupCosineSchedule`.)"""

    def __init__(self, optimizer: torch.optim.Optimizer, *, step_size: int, gamma: float, warmup_steps: int = 0,
                 last_epoch: int = -1) -> None:
        self.step_size = max(1, int(step_size))
        self.gamma = float(gamma)
        self.warmup_steps = max(0, int(warmup_steps))
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        step = max(self.last_epoch, 0)
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        return [base * warm * self.gamma ** (step // self.step_size) for base in self.base_lrs]


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags (``--help`` documents each; values are checked as they are parsed)."""
    p = argparse.ArgumentParser(description="Train UniHOPE for unified hand(-object) pose estimation.",
                                formatter_class=HelpFormatter)
    p.add_argument("--preset", choices=("tiny", "paper"), default="tiny", help="model size and recipe")
    p.add_argument("--backbone", choices=("resnet", "vit"), default="resnet",
                   help="ResNet FPN (UniHOPE's; --encoder takes torchvision ResNet weights) or ViT + DPT "
                        "(--encoder takes MaskHOI / HandMIM encoder.pt or MAE / timm ViT weights)")
    p.add_argument("--encoder", type=existing_file, help="pre-trained backbone weights (default: random init)")
    p.add_argument("--dataset", choices=DATASETS, default="synthetic",
                   help="training data; synthetic scenes carry de-occluded twins, DexYCB / HO3D take them from "
                        "--deoccluded-root")
    p.add_argument("--data-root", type=existing_dir, help="DexYCB or HO3D root directory")
    p.add_argument("--deoccluded-root", type=existing_dir, metavar="DIR",
                   help="DexYCB / HO3D: folder of the frames' de-occluded twins, mirroring the colour images' paths "
                        "(docs/data.md, 'De-occluded pairs'); frames without one train without the enhancement losses")
    p.add_argument("--mano-dir", type=existing_dir, help="folder with MANO_RIGHT.pkl (real data)")
    p.add_argument("--output-dir", type=output_folder, help="run directory (default: runs/unihope-<preset>)")
    p.add_argument("--steps", type=integer(low=1),
                   help="optimisation steps (default: tiny 3000; paper 70 epochs of the dataset)")
    p.add_argument("--batch-size", type=integer(low=1), help="per-process batch size (default: tiny 16, paper 64)")
    p.add_argument("--lr", type=real(low=0, low_open=True), help="initial learning rate (default: tiny 1e-3, paper 1e-4)")
    p.add_argument("--warmup-steps", type=integer(low=0),
                   help="steps of linear learning-rate warm-up before the decay (cosine: the engine's, the cosine then runs "
                        "over the remaining steps) (default: 0, as in §4)")
    p.add_argument("--schedule", choices=SCHEDULES,
                   help="learning-rate decay: step (x0.7 every --decay-epochs / --decay-steps, §4) or cosine (to 0 "
                        "at the last step) (default: tiny cosine, paper step)")
    p.add_argument("--decay-epochs", type=integer(low=1),
                   help="epochs between learning-rate decays by 0.7 (default: 10, §4)")
    p.add_argument("--decay-steps", type=integer(low=1),
                   help="steps between learning-rate decays by 0.7, instead of --decay-epochs (for runs shorter "
                        "than an epoch)")
    p.add_argument("--enhancement-from", type=real(0, 1),
                   help="fraction of training after which the enhancement losses start (default: tiny 0, paper 30/70)")
    p.add_argument("--hand-only-prob", type=real(0, 1), default=0.3,
                   help="synthetic data: fraction of hand-only scenes")
    p.add_argument("--augment-views", type=integer(low=1),
                   help="views per training scene: the scene, then randomly rotated (about the image centre), "
                        "zoomed, shifted and colour-jittered copies, its de-occluded twin warped alike; 1 = none "
                        "(default: tiny 16, paper 1)")
    add_framing_flags(p, default="tiny 1.3; paper the whole frame")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), help="autocast precision (default: tiny auto = bf16 where the CPU computes it natively, else fp32; paper fp32)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue the run in --output-dir")
    again.add_argument("--overwrite", action="store_true", help="replace an existing run in --output-dir")
    p.add_argument("--num-samples", type=integer(low=1),
                   help="synthetic training scenes (default: tiny 2048, cached in memory; paper 100000)")
    p.add_argument("--seed", type=integer(low=0), default=0, help="seed of the initialisation and the data order")
    p.add_argument("--baseline-samples", type=integer(low=1), default=2048,
                   help="training samples the constant baselines stored in model.pt are fitted on")
    p.add_argument("--num-workers", type=integer(low=0), help="DataLoader workers per process (default: tiny 0, paper 8)")
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
    with quiet_on_other_processes():
        args = p.parse_args(argv)
        check_framing_flags(p, args)
        check_data_flags(p, args)
        if args.deoccluded_root is not None and args.dataset not in PAIRED_DATASETS:
            p.error(f"argument --deoccluded-root: only with --dataset {' or '.join(PAIRED_DATASETS)} (got --dataset "
                    f"{args.dataset}; synthetic scenes render their own twins)")
        if args.deoccluded_root is not None and args.deoccluded_root.resolve() == args.data_root.resolve():
            p.error(f"argument --deoccluded-root: {str(args.deoccluded_root)!r} is the --data-root folder; give the "
                    "folder of the de-occluded twins")
        problem = missing_tensorboard(args.tensorboard)
        if problem:
            p.error(f"argument --tensorboard: {problem}")
        if args.decay_steps is not None and args.decay_epochs is not None:
            p.error(f"argument --decay-steps: not with --decay-epochs (got --decay-steps {args.decay_steps} and "
                    f"--decay-epochs {args.decay_epochs}); give one decay period")
        schedule = args.schedule or RECIPES[args.preset]["schedule"]
        if schedule == "cosine" and (args.decay_steps is not None or args.decay_epochs is not None):
            flag = "--decay-steps" if args.decay_steps is not None else "--decay-epochs"
            p.error(f"argument {flag}: sets the step decay's period, but the schedule is cosine (the {args.preset} "
                    f"recipe's{'' if args.schedule is None else ', from --schedule'}); add --schedule step")
    if args.output_dir is None:
        args.output_dir = Path("runs") / f"unihope-{args.preset}{'-vit' if args.backbone == 'vit' else ''}"
    return args


def build_model(args: argparse.Namespace) -> tuple[UniHOPE, str]:
    """UniHOPE of ``--preset`` / ``--backbone`` with the ``--encoder`` weights; also a line saying where they came from."""
    model = UniHOPE.from_preset(MODEL_PRESETS[args.preset, args.backbone],
                                hand_layer=mano_layer(args.dataset, args.mano_dir),
                                **MODEL_OVERRIDES.get((args.preset, args.backbone), {}))
    if args.encoder is None:
        return model, "random initialisation"
    with errors_name_flag("--encoder"):
        if args.backbone == "resnet":
            from hoimask.nn import load_resnet_checkpoint

            report = load_resnet_checkpoint(args.encoder, model.encoder)
            return model, f"backbone from {args.encoder}: {require_loaded_weights(report, model.encoder, args.encoder)}"
        try:
            state = load_checkpoint(args.encoder)
        except FileFormatError:
            if is_sealed_checkpoint(args.encoder):
                raise
            state = None  # not a hoimask file: MAE / MultiMAE / timm weights
        if state is not None:
            if "encoder" not in state:
                raise FileFormatError(f"{str(args.encoder)!r} is a hoimask checkpoint without encoder weights: give "
                                      "the encoder.pt that train_maskhoi.py (or HandMIM) writes")
            model.load_encoder(state["encoder"])
            return model, f"encoder from {args.encoder} (pre-trained {state.get('step', '?')} steps)"
        from hoimask.nn import load_vit_checkpoint

        report = require_loaded_weights(load_vit_checkpoint(args.encoder, model.encoder), model.encoder, args.encoder)
        return model, f"encoder from {args.encoder}: {report}"


class EnhancementSchedule:
    """The Trainer's loss function: drops the de-occluded twins before ``start`` steps, counts the pairs used
    and the samples without a twin (``enhancement_unpaired``); :meth:`log` is the Trainer callback that logs
    both counts of the step's batch at every log step."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.trainer: Trainer | None = None
        self.steps = self.steps_with_pairs = self.pairs = self.unpaired = 0

    def __call__(self, model, batch, generator):
        step = 0 if self.trainer is None else self.trainer.step
        if step < self.start:
            batch = {k: v for k, v in batch.items() if k != "deoccluded_image"}
        output = model(batch, generator=generator)
        self.steps += 1
        self.steps_with_pairs += int(output["enhancement_pairs"] > 0)
        self.pairs += int(output["enhancement_pairs"])
        self.unpaired += int(output["enhancement_unpaired"])
        return output

    def log(self, trainer: Trainer, step: int, batch, output) -> None:
        """Trainer callback: ``enhancement/pairs`` and ``enhancement/unpaired`` of the step's batch, in a log
        record of their own at every log step (the loss record of the step is written just before)."""
        if step % trainer.config.log_every == 0 or step == trainer.config.steps:
            trainer.logger.log_scalars(step, {"enhancement/pairs": int(output["enhancement_pairs"]),
                                              "enhancement/unpaired": int(output["enhancement_unpaired"])})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parser = build_parser()
    with explain_interrupt(args.output_dir, script=__file__, argv=argv, parser=parser), errors_name_flags(parser):
        return run_distributed(_run, args, device=args.device)


def _run(args: argparse.Namespace, ctx) -> int:
    say = main_printer(ctx)
    recipe = RECIPES[args.preset]
    seed_everything(args.seed)
    model, origin = build_model(args)  # a bad --encoder / --mano-dir fails before the run dir is claimed
    from hoimask.data import ColorJitter, Compose, RandomRotateScale, collate

    synthetic = args.dataset == "synthetic"
    crop_padding = None
    if synthetic and not args.no_crop:
        crop_padding = args.crop_padding or recipe["crop_padding"]
    with errors_name_flag("--data-root"):
        dataset = build_dataset(
            args.dataset, image_size=model.config.img_size, train=True, root=args.data_root, mano_dir=args.mano_dir,
            num_samples=args.num_samples or recipe["num_samples"], seed=args.seed, num_sdf_points=0,
            num_object_points=256, hand_only_prob=args.hand_only_prob,
            cache_in_memory=synthetic and args.preset == "tiny", require_hand=True, deoccluded=synthetic,
            deoccluded_root=args.deoccluded_root, crop_padding=crop_padding,
        )
    scenes = dataset  # the un-augmented pool: the constant baselines are fitted on it
    views = args.augment_views or recipe["augment_views"]
    if views > 1:
        dataset = AugmentedViews(scenes, Compose([RandomRotateScale(), ColorJitter()]), repeats=views, seed=args.seed)
    batch_size = args.batch_size or recipe["batch_size"]
    steps_per_epoch = max(1, math.ceil(len(dataset) / (batch_size * ctx.world_size)))
    steps = args.steps or recipe["steps"] or recipe["epochs"] * steps_per_epoch
    # Adam (AdamW without weight decay); --schedule cosine: the engine's warm-up + cosine to 0 over the run; step:
    # the step decay below (with its own warm-up) replaces the engine's schedule
    cosine = (args.schedule or recipe["schedule"]) == "cosine"
    warmup = recipe["warmup_steps"] if args.warmup_steps is None else args.warmup_steps
    config = train_preset(
        args.preset, steps=steps, batch_size=batch_size, lr=args.lr or recipe["lr"], weight_decay=0.0,
        betas=(0.9, 0.999), warmup_steps=warmup if cosine else 0, decay_start=0.0, min_lr_ratio=0.0, seed=args.seed,
        precision=resolve_precision(args.precision or recipe["precision"], ctx.device),
        num_workers=args.num_workers, log_every=args.log_every, checkpoint_every=args.checkpoint_every,
    )
    mode = prepare_run_dir(args, config, ctx)
    note = tensorboard_note(args.tensorboard)
    if note:
        say(note)
    frac = recipe["enhancement_from"] if args.enhancement_from is None else args.enhancement_from
    schedule = EnhancementSchedule(start=int(round(frac * steps)))
    trainer = Trainer(model, config, dataset=dataset, output_dir=args.output_dir, collate_fn=collate, ctx=ctx,
                      loss_fn=schedule, progress=not args.no_progress, tensorboard=args.tensorboard,
                      callbacks=[schedule.log])
    schedule.trainer = trainer
    if cosine:
        decay_note = f"on a cosine to 0 over {config.steps} steps"
    else:
        for group in trainer.optimizer.param_groups:  # undo the engine schedule's first factor, then decay in steps
            group["lr"] = group["initial_lr"]
        if args.decay_epochs is not None or (args.decay_steps is None and recipe["decay_steps"] is None):
            decay_steps = (args.decay_epochs or recipe["decay_epochs"]) * steps_per_epoch
            decay_note = f"x0.7 every {args.decay_epochs or recipe['decay_epochs']} epochs ({decay_steps} steps)"
        else:
            decay_steps = args.decay_steps or recipe["decay_steps"]
            decay_note = f"x0.7 every {decay_steps} steps"
        trainer.scheduler = StepDecaySchedule(trainer.optimizer, step_size=decay_steps, gamma=0.7, warmup_steps=warmup)
    if mode == "resume":
        with errors_name_flag("--resume"):
            say(f"resumed from step {trainer.resume()} of {config.steps}")
        for line in trainer.resume_notes:
            say(f"note: {line}")
    twins = getattr(scenes, "deoccluded", None)  # the loader's DeoccludedPairs (with --deoccluded-root)
    if twins is not None:
        say(f"de-occluded twins: {twins.count} of {len(twins)} training frames have one under {args.deoccluded_root} "
            f"(the other {len(twins) - twins.count} train without the enhancement losses)")
    say(f"training UniHOPE '{args.preset}' ({args.backbone}, {origin}) on {args.dataset} data; {config.steps} steps "
        f"of batch {config.batch_size} x {ctx.world_size} process(es) on {ctx.device}, {config.precision}; "
        f"lr {config.lr:g} {decay_note}"
        f"{f' after {warmup} warm-up steps' if warmup else ''}")
    start = time.perf_counter()
    history = trainer.fit()
    if ctx.is_main:
        baselines = fit_constant_baselines(scenes, max_samples=args.baseline_samples)
        enhancement = {"steps": schedule.steps, "steps_with_pairs": schedule.steps_with_pairs, "pairs": schedule.pairs,
                       "unpaired": schedule.unpaired, "start_step": schedule.start,
                       "twins": None if twins is None else twins.count}
        path = save_checkpoint(args.output_dir / "model.pt", {
            "model": unwrap_model(trainer.model).state_dict(),
            "model_type": "unihope",
            "unihope_config": unwrap_model(trainer.model).config_state(),
            "dataset": args.dataset,
            "crop_padding": crop_padding,  # synthetic framing; evaluate.py frames its test scenes alike
            "step": trainer.step,
            "baselines": baselines.state_dict(),
            "enhancement": enhancement,
        })
        curves = write_loss_curves(trainer.logger.read_records(), args.output_dir / "loss_curves.png",
                                   title=f"UniHOPE '{args.preset}' loss ({args.dataset})")
        trend = loss_trend([h["loss"] for h in history], most=5, label="loss", empty="nothing to do")
        say(f"\ndone: {len(history)} steps in {time.perf_counter() - start:.0f} s; {trend}")
        off = "" if synthetic or twins is not None else \
            f" (no --deoccluded-root: {args.dataset} has no de-occluded twins, the enhancement losses were off)"
        unpaired = f"; {schedule.unpaired} samples had no twin" if twins is not None else ""
        say(f"  enhancement: {schedule.steps_with_pairs} of {schedule.steps} steps had filtered pairs "
            f"({schedule.pairs} pairs{unpaired}){off}")
        say(f"  model      : {path}")
        say(f"  checkpoints: {trainer.checkpoints.directory}")
        say(f"  logs       : {trainer.logger.jsonl_path}, {trainer.logger.text_path}")
        if curves is not None:
            say(f"  loss curves: {curves}")
    trainer.logger.close()
    return 0


if __name__ == "__main__":
    sys.exit(exit_with_usage_errors(main))
