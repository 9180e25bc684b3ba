#!/usr/bin/env python
"""Pre-train MaskHOI (MaskHOI §III, §IV-B).

Runs as-is on the built-in synthetic hand-object scenes on a CPU::

    python examples/train_maskhoi.py                       # preset "tiny", writes runs/maskhoi-tiny
    python examples/train_maskhoi.py --resume              # continue that run after an interruption
    torchrun --nproc_per_node=2 examples/train_maskhoi.py --steps 20 --output-dir runs/ddp

and runs the paper's recipe on real data and GPUs::

    torchrun --nproc_per_node=8 examples/train_maskhoi.py --preset paper --dataset dexycb \
        --data-root $DEX_YCB_DIR --mano-dir mano/models --init mae_pretrain_vit_base.pth

It writes checkpoints (atomic, resumable), ``log.jsonl``/``train.log`` (and
TensorBoard scalars/pictures when ``tensorboard`` is installed), a labelled
picture of the masks (``masks.png``), the loss curves (``loss_curves.png``, at
the end) and the encoder weights for fine-tuning (``encoder.pt``), and prints
where they are. See docs/training.md ("Pictures").
"""

from __future__ import annotations

import os

from hoimask._omp import omp_wait_policy

# OpenMP waits passively when other jobs hold the CPUs as the script starts, and spins briefly before sleeping
# when they are idle (1.2x faster steps there): hoimask/_omp.py. Before torch loads.
os.environ.update(omp_wait_policy())

import argparse
import sys
import time
from pathlib import Path

import torch

from hoimask.engine import (
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

#: Synthetic-data settings per preset: scenes in the pool, SDF query points, object model points.
SYNTHETIC = {"tiny": dict(num_samples=64, num_sdf_points=512, num_object_points=256),
             "paper": dict(num_samples=100_000, num_sdf_points=2048, num_object_points=1000)}


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags (``--help`` documents each; values are checked as they are parsed)."""
    p = argparse.ArgumentParser(
        description="Pre-train MaskHOI. With no arguments: the 'tiny' preset on built-in synthetic data (CPU, minutes).",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--preset", choices=("tiny", "paper"), default="tiny",
                   help="model + training recipe: 'tiny' = CPU demo (128 px, 4-block ViT); "
                        "'paper' = MaskHOI §IV-B (ViT-B/16, 224 px, AdamW 5e-5, batch 22, 50k steps)")
    p.add_argument("--dataset", choices=DATASETS, default="synthetic",
                   help="training data; dexycb/ho3d need --data-root and --mano-dir")
    p.add_argument("--data-root", type=existing_dir, help="DexYCB or HO3D root directory")
    p.add_argument("--mano-dir", type=existing_dir,
                   help="folder with MANO_RIGHT.pkl (real data; synthetic uses the procedural hand)")
    p.add_argument("--init", type=existing_file, help="MAE / MultiMAE / timm ViT weights file to initialise the encoder")
    p.add_argument("--output-dir", type=output_folder, help="run directory (default: runs/maskhoi-<preset>)")
    p.add_argument("--steps", type=integer(low=1), help="optimisation steps (default: the preset's; tiny 300, paper 50000)")
    p.add_argument("--batch-size", type=integer(low=1), help="per-process batch size (default: tiny 8, paper 22)")
    p.add_argument("--lr", type=real(low=0, low_open=True), help="peak learning rate (default: tiny 1e-3, paper 5e-5)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), help="autocast precision (default: tiny fp32, paper bf16)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue the run in --output-dir from its newest checkpoint")
    again.add_argument("--overwrite", action="store_true", help="delete an existing run in --output-dir and start afresh")
    p.add_argument("--masking", choices=("random", "region", "hybrid", "target"), default="hybrid",
                   help="masking strategy: MAE random, region ratios (RMRA), RMRA + skeleton guidance (MaskHOI), "
                        "or HOMAE's target-focused masking")
    p.add_argument("--mask-ratio", type=float, help="overall mask ratio, in [0, 1) (default: 0.75)")
    m = p.add_argument_group("masking ablations (MaskHOI Tables V-VI; docs/masking.md)")
    m.add_argument("--background-ratio", type=float, help="region/hybrid: background mask ratio, in [0, 1) (default: 0.75)")
    m.add_argument("--hand-ratio", type=float, help="region/hybrid: hand mask ratio, in [0, 1) (default: 0.5)")
    m.add_argument("--object-ratio", type=float, help="region/hybrid: object mask ratio, in [0, 1) (default: 0.9)")
    m.add_argument("--skeleton-prob", type=float,
                   help="hybrid: proportion of skeleton-guided hand masking at the start, in [0, 1] (default: 0.5; Table VI)")
    m.add_argument("--skeleton-prob-end", type=float,
                   help="hybrid: proportion at the end, in [0, 1], linear in between (e.g. 0 -> 1 with --skeleton-prob 0) "
                        "(default: constant)")
    m.add_argument("--pattern-probs", type=str,
                   help="hybrid: skeleton pattern weights as name=weight pairs, e.g. "
                        "'finger=0.3,fingertips=0.3,level=0.1,region=0.3' (default: these weights)")
    m.add_argument("--focus-ratio", type=float, help="target: fraction of the hand-object box masked, in [0, 1] (default: 0.5)")
    p.add_argument("--no-geometric", action="store_true", help="ablation: drop the SDF branch (GML off, Table IV)")
    p.add_argument("--no-direct-regression", action="store_true",
                   help="ablation: drop the MANO/object parameter heads (DPR off, Table IV)")
    p.add_argument("--num-samples", type=integer(low=1),
                   help="synthetic scenes in the training pool (default: tiny 64, paper 100000)")
    p.add_argument("--seed", type=integer(low=0), default=0, help="seed of the model init, data order and masks")
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
    with quiet_on_other_processes():  # under torchrun, one usage error per node instead of one per process
        return _checked_args(p, p.parse_args(argv))


def _checked_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """The checks that look at several flags together, and the defaults that depend on others."""
    args.masker_kwargs = masker_kwargs(p, args)
    check_data_flags(p, args)
    problem = missing_tensorboard(args.tensorboard)
    if problem:
        p.error(f"argument --tensorboard: {problem}")
    if args.output_dir is None:
        args.output_dir = Path("runs") / f"maskhoi-{args.preset}"
    return args


#: Masking flags -> (masker keyword, the --masking values that take it, low, high (exclusive: '<')).
MASKING_FLAGS = {
    "background_ratio": ("background_ratio", ("region", "hybrid"), 0.0, "<1"),
    "hand_ratio": ("hand_ratio", ("region", "hybrid"), 0.0, "<1"),
    "object_ratio": ("object_ratio", ("region", "hybrid"), 0.0, "<1"),
    "skeleton_prob": ("skeleton_prob", ("hybrid",), 0.0, 1.0),
    "skeleton_prob_end": ("skeleton_prob_end", ("hybrid",), 0.0, 1.0),
    "focus_ratio": ("focus_ratio", ("target",), 0.0, 1.0),
}


def masker_kwargs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict:
    """The masker keywords of the masking flags, checked (one-line usage errors naming the flag)."""
    from hoimask.masking import PATTERNS

    def flag(name: str) -> str:
        return "--" + name.replace("_", "-")

    out: dict = {}
    if args.mask_ratio is not None and not 0.0 <= args.mask_ratio < 1.0:
        parser.error(f"argument --mask-ratio: expected a value in [0, 1), got {args.mask_ratio}")
    for name, (key, kinds, low, high) in MASKING_FLAGS.items():
        value = getattr(args, name)
        if value is None:
            continue
        if args.masking not in kinds:
            parser.error(f"argument {flag(name)}: applies to --masking {' or '.join(kinds)}, not {args.masking!r}")
        ok = low <= value < 1.0 if high == "<1" else low <= value <= high
        if not ok:
            bound = "[0, 1)" if high == "<1" else f"[{low}, {high}]"
            parser.error(f"argument {flag(name)}: expected a value in {bound}, got {value}")
        out[key] = value
    if args.pattern_probs is not None:
        if args.masking != "hybrid":
            parser.error(f"argument --pattern-probs: applies to --masking hybrid, not {args.masking!r}")
        probs = {}
        for item in args.pattern_probs.split(","):
            name, sep, weight = item.partition("=")
            name = name.strip()
            try:
                value = float(weight)
            except ValueError:
                value = float("nan")
            if not sep or name not in PATTERNS or not value >= 0:
                parser.error(f"argument --pattern-probs: expected name=weight pairs with names in {list(PATTERNS)} "
                             f"and weights >= 0, got {item!r}")
            probs[name] = value
        if not sum(probs.values()) > 0:
            parser.error(f"argument --pattern-probs: the weights must not all be 0, got {args.pattern_probs!r}")
        out["pattern_probs"] = probs
    return out


def build_model(args: argparse.Namespace):
    """The MaskHOI model for the preset, with the ablation switches and optional encoder initialisation."""
    from hoimask.models import MaskHOI

    overrides = dict(masking=args.masking, geometric=not args.no_geometric,
                     direct_regression=not args.no_direct_regression, masker_kwargs=dict(args.masker_kwargs))
    if args.mask_ratio is not None:
        overrides["mask_ratio"] = args.mask_ratio
    if args.dataset != "synthetic" and args.mano_dir is not None:
        overrides["mano_path"] = str(args.mano_dir / "MANO_RIGHT.pkl")
        with errors_name_flag("--mano-dir"):  # the hand layer reads MANO_RIGHT.pkl
            model = MaskHOI.from_preset(args.preset, **overrides)
    else:
        model = MaskHOI.from_preset(args.preset, **overrides)
    report = None
    if args.init is not None:
        from hoimask.nn import load_vit_checkpoint

        with errors_name_flag("--init"):
            report = require_loaded_weights(load_vit_checkpoint(args.init, model.encoder), model.encoder, args.init)
    return model, report


def mask_picture(model, dataset, *, seed: int, count: int = 4, step: int | None = None) -> torch.Tensor:
    """A ``(3, H, W)`` labelled picture of ``count`` training samples (columns) and four rows: the images, their
    masks as the model's masker draws them, the segmentation the masker used, and the segmentation the model
    predicts from the visible patches; with row and column titles and a legend (hoimask.engine.figures)."""
    from hoimask.data import collate
    from hoimask.engine.figures import (
        MASKED_COLOUR,
        SEGMENTATION_LEGEND,
        colour_segmentation,
        label_grid,
        picture_from_image,
    )
    from hoimask.masking.draw import draw_mask

    samples = [dataset[i] for i in range(min(count, len(dataset)))]
    batch = collate(samples)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        mask = model.mask(batch, generator=torch.Generator().manual_seed(seed))
        batch_dev = to_device(batch, next(model.parameters()).device)
        logits = model(batch_dev, mask=mask)["predictions"]["segmentation"]  # (B, 3, h, w)
    model.train(was_training)
    H, W = batch["image"].shape[-2:]
    predicted = torch.nn.functional.interpolate(logits.float(), size=(H, W), mode="bilinear").argmax(1).cpu()
    patch = model.config.patch_size
    masked = draw_mask(batch["image"], mask.mask.cpu(), patch, fill=MASKED_COLOUR)  # (B,H,W,3); RGB in [0, 1]
    plain = picture_from_image(batch["image"])  # (B, H, W, 3)
    seg = colour_segmentation(torch.stack([s["segmentation"].long().clamp(0, 2) for s in samples]))
    pred = colour_segmentation(predicted)  # (B, H, W, 3)
    ratios = mask.mask.float().mean(1).tolist()
    figure = label_grid(
        [list(row) for row in (plain, masked, seg, pred)],
        row_titles=["training image", "masked input (grey patches removed)",
                    "ground-truth segmentation (guides the masking)", "predicted segmentation (from visible patches)"],
        column_titles=[f"sample {i}\n{100 * r:.0f} % masked" for i, r in enumerate(ratios)],
        title=f"MaskHOI masking ({model.config.masking})" + ("" if step is None else f" at step {step}"),
        legend=[*SEGMENTATION_LEGEND, ("masked patch", MASKED_COLOUR)],
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
    base = train_preset(args.preset)
    steps = args.steps if args.steps is not None else base.steps
    config = train_preset(
        args.preset, steps=steps, batch_size=args.batch_size, lr=args.lr, precision=args.precision,
        seed=args.seed, num_workers=args.num_workers, log_every=args.log_every,
        checkpoint_every=args.checkpoint_every,
        warmup_steps=short_run_warmup(base, steps),
    )
    seed_everything(args.seed)
    model, report = build_model(args)  # a bad --init / --mano-dir / --data-root fails before the run dir is claimed
    syn = SYNTHETIC[args.preset]
    with errors_name_flag("--data-root"):
        dataset = build_dataset(
            args.dataset, image_size=model.config.img_size, train=True, root=args.data_root, mano_dir=args.mano_dir,
            num_samples=args.num_samples or syn["num_samples"], seed=args.seed,
            num_sdf_points=syn["num_sdf_points"], num_object_points=syn["num_object_points"],
            cache_in_memory=args.dataset == "synthetic" and args.preset == "tiny",
        )
    mode = prepare_run_dir(args, config, ctx)
    if report is not None:
        say(f"initialised the encoder from {args.init}: {report}")
    elif args.preset == "paper" and mode != "resume":
        say("warning: --preset paper without --init: MaskHOI starts from MAE ImageNet weights "
            "(mae_pretrain_vit_base.pth); this run starts from a random encoder")
    note = tensorboard_note(args.tensorboard)
    if note:
        say(note)
    from hoimask.data import collate

    picture_path = args.output_dir / "masks.png"

    def pictures(trainer: Trainer, step: int, batch, output) -> None:
        if ctx.is_main and (step == 1 or step % trainer.config.checkpoint_every == 0 or step == trainer.config.steps):
            rng = capture_rng_state()  # drawing must not move the training's random streams (resume equality)
            picture = mask_picture(unwrap_model(trainer.model), dataset, seed=args.seed, step=step)
            restore_rng_state(rng)
            save_png(picture_path, picture)
            trainer.logger.log_image("masks", picture, step)

    trainer = Trainer(model, config, dataset=dataset, output_dir=args.output_dir, collate_fn=collate, ctx=ctx,
                      num_layers=model.config.depth, progress=not args.no_progress, tensorboard=args.tensorboard,
                      callbacks=[pictures])
    if mode == "resume":
        with errors_name_flag("--resume"):  # a corrupt checkpoint is an error naming the file, never a fresh start
            say(f"resumed from step {trainer.resume()} of {config.steps}")
        for note in trainer.resume_notes:  # what a killed run had left behind, and what was repaired
            say(f"note: {note}")
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    say(f"MaskHOI '{args.preset}' ({n_params:.1f}M parameters, masking={args.masking}, "
        f"geometric={not args.no_geometric}, direct_regression={not args.no_direct_regression}) on {args.dataset} "
        f"data; {config.steps} steps of batch {config.batch_size} x {ctx.world_size} process(es) on {ctx.device}")
    start = time.perf_counter()
    history = trainer.fit()
    elapsed = time.perf_counter() - start
    if ctx.is_main:
        encoder_path = save_checkpoint(args.output_dir / "encoder.pt", {
            "encoder": unwrap_model(trainer.model).encoder_state_dict(),
            "encoder_config": {k: getattr(model.config, k) for k in ("img_size", "patch_size", "embed_dim", "depth",
                                                                      "num_heads")},
            "step": trainer.step,
        })
        if not picture_path.exists():  # e.g. resumed at the last step: draw it now
            save_png(picture_path, mask_picture(unwrap_model(trainer.model), dataset, seed=args.seed, step=trainer.step))
        records = trainer.logger.read_records()
        curves = write_loss_curves(records, args.output_dir / "loss_curves.png",
                                   title=f"MaskHOI '{args.preset}' pre-training loss ({args.masking} masking)")
        losses = [r["loss"] for r in records if isinstance(r.get("loss"), float)]
        trend = loss_trend(losses, most=3, label="logged loss", empty="no loss logged")
        ran = len(history)
        say(f"\ndone: {ran} steps in {elapsed:.0f} s ({elapsed / max(ran, 1):.2f} s/step); {trend}; "
            f"{trainer.guard.skipped_total} non-finite steps skipped")
        say(f"  checkpoints : {trainer.checkpoints.directory}  (newest: {trainer.checkpoints.latest()})")
        say(f"  encoder     : {encoder_path}  (python examples/finetune.py --encoder {encoder_path})")
        say(f"  logs        : {trainer.logger.jsonl_path}, {trainer.logger.text_path}")
        if trainer.logger.tensorboard_dir is not None:
            say(f"  tensorboard : tensorboard --logdir {trainer.logger.tensorboard_dir}")
        say(f"  mask picture: {picture_path}")
        if curves is not None:
            say(f"  loss curves : {curves}")
    trainer.logger.close()
    return 0


if __name__ == "__main__":
    sys.exit(exit_with_usage_errors(main))
