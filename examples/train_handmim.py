#!/usr/bin/env python
"""Pre-train HandMIM (HandMIM §2, §3.1): a masked ViT student distilled from its EMA teacher on two views.

Runs as-is on the built-in synthetic hand-object scenes on a CPU::

    python examples/train_handmim.py                       # preset "tiny", writes runs/handmim-tiny
    python examples/train_handmim.py --resume              # continue that run after an interruption
    python examples/train_handmim.py --no-pose --output-dir runs/handmim-no-pose   # Table 5 ablation
    torchrun --nproc_per_node=2 examples/train_handmim.py --steps 20 --output-dir runs/ddp

and the paper's recipe (ViT-S / ViT-B / ViT-L, batch 1,024 = 8 processes x 128) on GPUs::

    torchrun --nproc_per_node=8 examples/train_handmim.py --preset base --dataset freihand \
        --data-root $FREIHAND_DIR --mano-dir mano/models

It writes checkpoints (atomic, resumable: student, teacher, the teacher's
centres and EMA step count), ``log.jsonl``/``train.log`` (and TensorBoard
when installed), a labelled picture of the views, masks and reconstructions
(``views.png``), the loss curves (``loss_curves.png``, at the end) and the
student's encoder for fine-tuning (``encoder.pt``, the format of
``train_maskhoi.py``'s: ``python examples/finetune.py --encoder runs/handmim-tiny/encoder.pt``).
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

from hoimask.engine import (
    TrainConfig,
    Trainer,
    capture_rng_state,
    restore_rng_state,
    save_checkpoint,
    save_png,
    seed_everything,
    to_device,
    train_preset,
    unwrap_model,
)
from hoimask.engine.cli import (
    check_data_flags,
    exit_with_usage_errors,
    loss_trend,
    main_printer,
    prepare_run_dir,
    require_loaded_weights,
    run_distributed,
    short_run_warmup,
    write_loss_curves,
)
from hoimask.engine.datasets import DATASETS, build_dataset
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

PRESETS = ("tiny", "small", "base", "large")
#: Synthetic-data settings: scenes in the pool (no SDF points and few object points: HandMIM reads images only).
SYNTHETIC = {"tiny": dict(num_samples=64), "paper": dict(num_samples=100_000)}
#: The encoder settings ``encoder.pt`` records (what ``finetune.py`` builds ``PoseRegressionModel`` from).
ENCODER_KEYS = ("img_size", "patch_size", "embed_dim", "depth", "num_heads")


def recipe(preset: str) -> TrainConfig:
    """The training recipe of a preset.

    ``tiny``: the engine's CPU demo (300 steps of 8, AdamW 1e-3). ``small`` /
    ``base`` / ``large``: §3.1 — AdamW, lr 2e-3, global batch 1,024 (128 per
    process on 8 processes), 400 epochs (ViT-L: 250) of the paper's 221,602
    images; warm-up, weight decay, betas and clipping are iBOT's, which the
    paper does not restate (10 warm-up epochs, 0.04, (0.9, 0.999), 3.0).
    """
    from hoimask.models import HANDMIM_STEPS_PER_EPOCH

    if preset == "tiny":
        return train_preset("tiny")
    epochs = 250 if preset == "large" else 400
    return train_preset("paper", steps=epochs * HANDMIM_STEPS_PER_EPOCH, batch_size=128, lr=2e-3,
                        warmup_steps=10 * HANDMIM_STEPS_PER_EPOCH, decay_start=0.0, min_lr_ratio=0.0,
                        weight_decay=0.04, betas=(0.9, 0.999), clip_grad_norm=3.0)


def mask_ratio(text: str) -> tuple[float, float]:
    """``--mask-ratio``: ``R`` or ``LOW,HIGH``, each in ``[0, 1)``, ``LOW <= HIGH``."""
    parts = text.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or not all(0.0 <= v < 1.0 for v in values) or values[0] > values[1]:
        raise argparse.ArgumentTypeError(f"expected R or LOW,HIGH with 0 <= LOW <= HIGH < 1, got {text!r}")
    return values[0], values[1]


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags (``--help`` documents each; values are checked as they are parsed)."""
    p = argparse.ArgumentParser(
        description="Pre-train HandMIM. With no arguments: the 'tiny' preset on built-in synthetic data (CPU, minutes).",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--preset", choices=PRESETS, default="tiny",
                   help="model + training recipe: 'tiny' = CPU demo (128 px, 4-block ViT); 'small' / 'base' / "
                        "'large' = HandMIM §3.1 with ViT-S/16, ViT-B/16, ViT-L/16 at 224 px (AdamW 2e-3, batch "
                        "128 per process, 400 epochs; ViT-L 250)")
    p.add_argument("--dataset", choices=DATASETS, default="synthetic",
                   help="training data (images only are used); dexycb/ho3d/freihand need --data-root and --mano-dir")
    p.add_argument("--data-root", type=existing_dir, help="DexYCB, HO3D or FreiHAND root directory")
    p.add_argument("--mano-dir", type=existing_dir, help="folder with MANO_RIGHT.pkl (the real-data loaders need it)")
    p.add_argument("--init", type=existing_file,
                   help="MAE / MultiMAE / timm ViT weights file to initialise the student (and the teacher) with")
    p.add_argument("--output-dir", type=output_folder, help="run directory (default: runs/handmim-<preset>)")
    p.add_argument("--steps", type=integer(low=1),
                   help="optimisation steps (default: the preset's; tiny 300, small/base 86800, large 54250)")
    p.add_argument("--batch-size", type=integer(low=1), help="per-process batch size (default: tiny 8, else 128)")
    p.add_argument("--lr", type=real(low=0, low_open=True), help="peak learning rate (default: tiny 1e-3, else 2e-3)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), help="autocast precision (default: tiny fp32, else bf16)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue the run in --output-dir from its newest checkpoint")
    again.add_argument("--overwrite", action="store_true", help="delete an existing run in --output-dir and start afresh")
    p.add_argument("--mask-ratio", type=mask_ratio,
                   help="student mask ratio R, or a range LOW,HIGH each view of each sample draws from (default: 0.1,0.5)")
    losses = p.add_argument_group("losses (eq. 10; Table 5 ablations)")
    losses.add_argument("--no-pose", action="store_true", help="drop L_pose (pose-aware class-token alignment)")
    losses.add_argument("--no-patch", action="store_true", help="drop L_patch (masked patch-token self-distillation)")
    losses.add_argument("--no-recon", action="store_true", help="drop L_recon (multi-level pixel reconstruction)")
    losses.add_argument("--pose-weight", type=real(low=0), help="weight of L_pose (default: 1)")
    losses.add_argument("--patch-weight", type=real(low=0), help="weight of L_patch (default: 1)")
    losses.add_argument("--recon-weight", type=real(low=0), help="weight of L_recon (default: 1)")
    losses.add_argument("--teacher-momentum", type=real(0, 1),
                        help="EMA momentum m0 of the teacher at step 0, rising to 1 on a cosine (default: 0.996)")
    p.add_argument("--num-samples", type=integer(low=1),
                   help="synthetic scenes in the training pool (default: tiny 64, else 100000)")
    p.add_argument("--seed", type=integer(low=0), default=0, help="seed of the model init, data order, views and masks")
    p.add_argument("--num-workers", type=integer(low=0), help="DataLoader workers per process (default: tiny 0, else 8)")
    p.add_argument("--log-every", type=integer(low=1), help="steps between log records (default: tiny 10, else 50)")
    p.add_argument("--checkpoint-every", type=integer(low=1),
                   help="steps between checkpoints; one is always written at the end (default: tiny 50, else 1000)")
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
    if args.no_pose and args.no_patch and args.no_recon:
        p.error("argument --no-recon: --no-pose, --no-patch and --no-recon together leave no loss to train")
    for name in ("pose", "patch", "recon"):
        if getattr(args, f"no_{name}") and getattr(args, f"{name}_weight") is not None:
            p.error(f"argument --{name}-weight: L_{name} is switched off by --no-{name}")
    check_data_flags(p, args)
    problem = missing_tensorboard(args.tensorboard)
    if problem:
        p.error(f"argument --tensorboard: {problem}")
    if args.output_dir is None:
        args.output_dir = Path("runs") / f"handmim-{args.preset}"
    return args


def build_model(args: argparse.Namespace, steps: int):
    """The HandMIM model of the preset with the loss switches, for a run of ``steps``; and the ``--init`` report.

    The teacher's momentum schedule spans ``steps``; its temperature warm-up is
    the preset's, at most an eighth of the run.
    """
    from hoimask.models import HANDMIM_PRESETS, HandMIM, HandMIMConfig

    preset_warmup = HANDMIM_PRESETS[args.preset].get("temperature_warmup_steps",
                                                     HandMIMConfig.temperature_warmup_steps)
    overrides: dict = dict(use_pose=not args.no_pose, use_patch=not args.no_patch, use_recon=not args.no_recon,
                           total_steps=steps, temperature_warmup_steps=min(preset_warmup, math.ceil(steps / 8)))
    weights = {k: getattr(args, f"{k}_weight") for k in ("pose", "patch", "recon")}
    overrides["weights"] = {k: v for k, v in weights.items() if v is not None}
    if args.mask_ratio is not None:
        overrides["mask_ratio"] = args.mask_ratio
    if args.teacher_momentum is not None:
        overrides["teacher_momentum"] = args.teacher_momentum
    model = HandMIM.from_preset(args.preset, **overrides)
    report = None
    if args.init is not None:
        from hoimask.nn import load_vit_checkpoint

        with errors_name_flag("--init"):
            report = require_loaded_weights(load_vit_checkpoint(args.init, model.encoder), model.encoder, args.init)
        model.reset_teacher()  # DINO / iBOT: the teacher starts as the student
    return model, report


class HandMIMTrainer(Trainer):
    """The engine's :class:`~hoimask.engine.Trainer`, moving the EMA teacher after every optimiser step.

    The teacher moves inside :meth:`train_step`, before the step is logged and
    checkpointed: ``Trainer(callbacks=...)`` run after the checkpoint is
    written, so a checkpoint would hold a teacher one update behind its
    student and a resumed run would differ from an uninterrupted one.
    """

    def train_step(self, batch) -> dict:
        output = super().train_step(batch)
        unwrap_model(self.model).update_teacher(self.step - 1)  # the optimiser step just taken, from 0
        return output


def views_picture(model, dataset, *, seed: int, count: int = 4, step: int | None = None) -> torch.Tensor:
    """A ``(3, H, W)`` labelled picture of ``count`` training samples (columns): for each of the two views, the
    view, the student's masked input and (with ``L_recon``) its reconstruction of the pixels (hoimask.engine.figures).
    """
    from hoimask.data import collate
    from hoimask.engine.figures import MASKED_COLOUR, label_grid, picture_from_image
    from hoimask.masking.draw import draw_mask

    batch = collate([dataset[i] for i in range(min(count, len(dataset)))])
    was_training = model.training
    model.eval()  # the teacher's centres move in training mode only
    with torch.no_grad():
        batch = to_device(batch, next(model.parameters()).device)
        preds = model(batch, generator=torch.Generator().manual_seed(seed))["predictions"]
    model.train(was_training)
    cfg = model.config
    views, masks = preds["views"].cpu(), preds["masks"].cpu()  # (2, B, 3, S, S), (2, B, N)
    rows, titles = [], []
    for v, name in enumerate(("a", "b")):
        rows.append(list(picture_from_image(views[v])))
        rows.append(list(draw_mask(views[v], masks[v], cfg.patch_size, fill=MASKED_COLOUR)))
        titles += [f"view {name} (teacher's input)", f"view {name} masked (student's input)"]
        if "reconstruction" in preds:
            rows.append(list(picture_from_image(preds["reconstruction"][v].cpu(), mean=cfg.pixel_mean,
                                                std=cfg.pixel_std)))
            titles.append(f"view {name} reconstructed (L_recon scores the masked patches)")
    ratios = masks.float().mean(-1)  # (2, B)
    figure = label_grid(
        rows, row_titles=titles,
        column_titles=[f"sample {i}\n{100 * a:.0f} % / {100 * b:.0f} % masked" for i, (a, b) in
                       enumerate(zip(ratios[0].tolist(), ratios[1].tolist()))],
        title="HandMIM views and masks" + ("" if step is None else f" at step {step}"),
        legend=[("masked patch", MASKED_COLOUR)],
    )  # (H', W', 3)
    return figure.permute(2, 0, 1).contiguous()  # (3, H', W') for save_png / TensorBoard


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parser = build_parser()
    # errors name the flag the user typed; Ctrl-C says where the last checkpoint is and how to resume
    with explain_interrupt(args.output_dir, script=__file__, argv=argv, parser=parser), errors_name_flags(parser):
        return run_distributed(_run, args, device=args.device)


def _run(args: argparse.Namespace, ctx) -> int:
    torch.set_num_threads(max(1, torch.get_num_threads() // max(1, ctx.world_size if ctx.device.type == "cpu" else 1)))
    say = main_printer(ctx)
    base = recipe(args.preset)
    steps = args.steps if args.steps is not None else base.steps
    config = base.replace(
        steps=steps, batch_size=args.batch_size, lr=args.lr, precision=args.precision, seed=args.seed,
        num_workers=args.num_workers, log_every=args.log_every, checkpoint_every=args.checkpoint_every,
        warmup_steps=short_run_warmup(base, steps),
    )
    seed_everything(args.seed)
    model, report = build_model(args, steps)  # a bad --init fails before the run dir is claimed
    syn = SYNTHETIC["tiny" if args.preset == "tiny" else "paper"]
    with errors_name_flag("--data-root"):
        dataset = build_dataset(
            args.dataset, image_size=model.config.img_size, train=True, root=args.data_root, mano_dir=args.mano_dir,
            num_samples=args.num_samples or syn["num_samples"], seed=args.seed, num_sdf_points=0, num_object_points=16,
            cache_in_memory=args.dataset == "synthetic" and args.preset == "tiny",
        )
    mode = prepare_run_dir(args, config, ctx)
    if report is not None:
        say(f"initialised the student and teacher encoders from {args.init}: {report}")
    note = tensorboard_note(args.tensorboard)
    if note:
        say(note)
    from hoimask.data import collate

    picture_path = args.output_dir / "views.png"

    def pictures(trainer: Trainer, step: int, batch, output) -> None:
        if ctx.is_main and (step == 1 or step % trainer.config.checkpoint_every == 0 or step == trainer.config.steps):
            rng = capture_rng_state()  # drawing must not move the training's random streams (resume equality)
            picture = views_picture(unwrap_model(trainer.model), dataset, seed=args.seed, step=step)
            restore_rng_state(rng)
            save_png(picture_path, picture)
            trainer.logger.log_image("views", picture, step)

    trainer = HandMIMTrainer(model, config, dataset=dataset, output_dir=args.output_dir, collate_fn=collate, ctx=ctx,
                             num_layers=model.config.depth, progress=not args.no_progress,
                             tensorboard=args.tensorboard, callbacks=[pictures])
    if mode == "resume":
        with errors_name_flag("--resume"):  # a corrupt checkpoint is an error naming the file, never a fresh start
            say(f"resumed from step {trainer.resume()} of {config.steps}")
        for line in trainer.resume_notes:  # what a killed run had left behind, and what was repaired
            say(f"note: {line}")
    cfg = model.config
    losses = [k for k in ("pose", "patch", "recon") if getattr(cfg, f"use_{k}")]
    n_params = sum(p.numel() for p in unwrap_model(trainer.model).student.parameters()) / 1e6
    say(f"HandMIM '{args.preset}' ({n_params:.1f}M student parameters, losses {'+'.join(losses)}, mask ratio "
        f"{cfg.mask_ratio[0]:g}-{cfg.mask_ratio[1]:g}) on {args.dataset} data; {config.steps} steps of batch "
        f"{config.batch_size} x {ctx.world_size} process(es) on {ctx.device}")
    start = time.perf_counter()
    history = trainer.fit()
    elapsed = time.perf_counter() - start
    if ctx.is_main:
        inner = unwrap_model(trainer.model)
        encoder_path = save_checkpoint(args.output_dir / "encoder.pt", {
            "encoder": inner.encoder_state_dict(),
            "encoder_config": {k: getattr(cfg, k) for k in ENCODER_KEYS},
            "step": trainer.step,
        })
        if not picture_path.exists():  # e.g. resumed at the last step: draw it now
            save_png(picture_path, views_picture(inner, dataset, seed=args.seed, step=trainer.step))
        records = trainer.logger.read_records()
        curves = write_loss_curves(records, args.output_dir / "loss_curves.png",
                                   title=f"HandMIM '{args.preset}' pre-training loss ({'+'.join(losses)})")
        logged = [r["loss"] for r in records if isinstance(r.get("loss"), float)]
        trend = loss_trend(logged, most=3, label="logged loss", empty="no loss logged")
        ran = len(history)
        say(f"\ndone: {ran} steps in {elapsed:.0f} s ({elapsed / max(ran, 1):.2f} s/step); {trend}; "
            f"{trainer.guard.skipped_total} non-finite steps skipped")
        say(f"  checkpoints : {trainer.checkpoints.directory}  (newest: {trainer.checkpoints.latest()})")
        say(f"  encoder     : {encoder_path}  (python examples/finetune.py --encoder {encoder_path})")
        say(f"  logs        : {trainer.logger.jsonl_path}, {trainer.logger.text_path}")
        if trainer.logger.tensorboard_dir is not None:
            say(f"  tensorboard : tensorboard --logdir {trainer.logger.tensorboard_dir}")
        say(f"  views       : {picture_path}")
        if curves is not None:
            say(f"  loss curves : {curves}")
    trainer.logger.close()
    return 0


if __name__ == "__main__":
    sys.exit(exit_with_usage_errors(main))
