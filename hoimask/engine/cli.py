"""Scaffolding shared by the command-line scripts in ``examples/``.

Each script parses its own flags and prints its own report; what they have in
common lives here: running under :func:`init_distributed` with a guaranteed
cleanup, printing on rank 0 only, the run-directory settings, the warm-up of
short runs, the loss trend of the final summary and the MANO layer of real data.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hoimask._checks import FileFormatError, HoimaskError
from hoimask.engine.config import TrainConfig
from hoimask.engine.distributed import DistributedContext, cleanup_distributed, init_distributed
from hoimask.engine.flags import (
    RunInterrupted,
    errors_name_flag,
    first_process_on_node,
    one_line,
    real,
)
from hoimask.engine.run_dir import OutputDirError, prepare_output_dir

__all__ = ["add_framing_flags", "check_framing_flags", "exit_with_usage_errors", "run_distributed", "main_printer", "prepare_run_dir", "short_run_warmup", "loss_trend",
           "mano_layer", "check_data_flags", "write_loss_curves", "RESUME_MAY_CHANGE", "resume_differences", "require_loaded_weights"]

#: Settings that ``--resume`` may change, because they do not change what is computed: how the run is shown
#: and logged, how often it is saved, how many loader workers read the data (workers are seeded from the
#: data order, not the global RNG), where the data and the MANO files live, the device, and the starting
#: weights (``--init`` / ``--encoder`` / ``--no-pretrain``), which the checkpoint replaces. ``masker_kwargs``
#: is derived from the masking flags, which are compared themselves.
RESUME_MAY_CHANGE = frozenset({
    "argv", "output_dir", "resume", "overwrite", "num_workers", "log_every", "checkpoint_every", "keep_checkpoints",
    "no_progress", "tensorboard", "device", "data_root", "mano_dir", "init", "encoder", "no_pretrain",
    "baseline_samples", "masker_kwargs",
})


def run_distributed(run: Callable[[argparse.Namespace, DistributedContext], int], args: argparse.Namespace,
                    *, device: str | None = None) -> int:
    """Call ``run(args, ctx)`` inside a distributed context that is always cleaned up.

    Args:
        run: the script's body; returns the exit status.
        args: parsed command-line options, passed through.
        device: ``"cpu"``, ``"cuda"`` or ``None`` (cuda when available), as for :func:`init_distributed`.

    Returns:
        What ``run`` returns.
    """
    ctx = init_distributed(device=device)
    try:
        code = run(args, ctx)
    except BaseException:
        cleanup_distributed(ctx, wait=False)  # the other ranks may never reach a barrier
        raise
    cleanup_distributed(ctx)
    return code


def exit_with_usage_errors(main: Callable[[], int | None]) -> int:
    """Run a script's ``main()``; report hoimask input errors as one line on stderr, and Ctrl-C without a traceback.

    Bad input (an output directory that must not be overwritten, a missing or
    corrupt file, an invalid option value) and a file that cannot be written
    (:class:`hoimask._checks.FileWriteError`: disk full, read-only folder) raise a
    subclass of :class:`hoimask._checks.HoimaskError` whose message already says
    what was wrong and what to do (and, from the scripts, which flag or file;
    :mod:`hoimask.engine.flags`); a command-line user needs that line, not a
    traceback. Under ``torchrun`` every process meets the same error, and only
    the first process of each node prints it
    (:func:`~hoimask.engine.flags.first_process_on_node`). Ctrl-C prints what
    :class:`hoimask.engine.flags.RunInterrupted` says (where the last checkpoint
    is, the command that resumes), or ``interrupted``; under ``torchrun`` only
    rank 0 prints.

    Returns:
        The exit code: ``main()``'s (``None`` is 0), 2 for such an error, 130
        for Ctrl-C. Other exceptions propagate unchanged.
    """
    try:
        return main() or 0
    except HoimaskError as err:
        if first_process_on_node():  # under torchrun every process fails alike: one line per node, not per GPU
            print(f"error: {one_line(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        if os.environ.get("RANK", "0") == "0":
            print(f"\n{err}" if isinstance(err, RunInterrupted) else "\ninterrupted", file=sys.stderr)
        return 130


def main_printer(ctx: DistributedContext) -> Callable[..., None]:
    """``print`` on the main process, a no-op on the others.

    Args:
        ctx: the distributed context.

    Returns:
        A function with ``print``'s signature.
    """
    return print if ctx.is_main else (lambda *a, **k: None)


def prepare_run_dir(args: argparse.Namespace, config: TrainConfig, ctx: DistributedContext) -> str:
    """Check and claim ``args.output_dir``, recording the command line, the options and the training config.

    Args:
        args: parsed options with ``output_dir``, ``resume`` and ``overwrite``.
        config: the training configuration, stored as ``train_config``.
        ctx: the distributed context (rank 0 decides, the others follow).

    Returns:
        ``"fresh"``, ``"resume"`` or ``"overwrite"``, as :func:`prepare_output_dir` returns.
    """
    settings = {"argv": sys.argv, **vars(args), "train_config": config.to_dict()}

    def check_resume(recorded: Mapping[str, Any], source: Path, step: int | None) -> None:
        refused, accepted = resume_differences(recorded, settings, current_step=step)
        if refused:
            raise OutputDirError(
                f"argument --resume: {len(refused)} setting(s) differ from the run's, recorded in {str(source)!r}: "
                f"{'; '.join(refused)}. A resumed run continues the same computation: give the run's values, or "
                "start a new run (--overwrite, or another --output-dir)")
        for change in accepted:  # runs on rank 0 only
            print(f"note: {change}: the learning-rate and masking schedules now span the new number of steps")

    with errors_name_flag("--output-dir"):  # OutputDirError stays OutputDirError, naming the flag
        return prepare_output_dir(args.output_dir, resume=args.resume, overwrite=args.overwrite, settings=settings,
                                  ctx=ctx, check_resume=check_resume)


def _shown(value: Any) -> str:
    if value is None:
        return "not given"
    if isinstance(value, bool):
        return "on" if value else "off"
    return value if isinstance(value, str) else json.dumps(value)


def resume_differences(recorded: Mapping[str, Any], settings: Mapping[str, Any], *,
                       current_step: int | None) -> tuple[list[str], list[str]]:
    """How a resumed run's settings differ from those recorded for the run (``hoimask_run.json``).

    Both are :func:`prepare_run_dir`'s settings: the script's options (argparse ``dest`` names) and the
    effective training configuration under ``"train_config"``. Options in :data:`RESUME_MAY_CHANGE` may
    differ. A different number of steps is accepted only when ``--steps`` is given and not below the
    checkpoint's step (the run is extended or shortened: its schedules are stretched); every other
    difference changes what is computed and is refused. Keys missing on either side are not compared.

    Args:
        recorded: the settings recorded when the run started or was last resumed.
        settings: this command's settings.
        current_step: the step of the checkpoint the run resumes from (``None``: unknown).

    Returns:
        ``(refused, accepted)``: phrases ``"--flag NEW (run: OLD)"``, one per differing setting.

    Example:
        >>> run = {"masking": "hybrid", "steps": None, "train_config": {"steps": 300, "lr": 0.001}}
        >>> now = {"masking": "random", "steps": 600, "train_config": {"steps": 600, "lr": 0.001}}
        >>> resume_differences(run, now, current_step=100)
        (['--masking random (run: hybrid)'], ['--steps 600 (run: 300)'])
    """
    new = json.loads(json.dumps(dict(settings), default=str))  # as recorded: paths as text, tuples as lists
    old = dict(recorded)
    new_cfg = new.get("train_config") if isinstance(new.get("train_config"), dict) else {}
    old_cfg = old.get("train_config") if isinstance(old.get("train_config"), dict) else {}
    refused: list[str] = []
    accepted: list[str] = []

    def flag(name: str) -> str:
        return "--" + name.replace("_", "-")

    steps_differ = "steps" in new_cfg and "steps" in old_cfg and new_cfg["steps"] != old_cfg["steps"]
    if steps_differ:
        phrase = f"--steps {new_cfg['steps']} (run: {old_cfg['steps']})"
        if current_step is not None and new_cfg["steps"] < current_step:
            refused.append(f"{phrase}, below the checkpoint's step {current_step}")
        elif new.get("steps") is None:
            refused.append(phrase)
        else:
            accepted.append(phrase)
    for field, value in new_cfg.items():
        if field == "steps" or field in RESUME_MAY_CHANGE or (field == "warmup_steps" and steps_differ):
            continue  # warm-up follows --steps in the scripts
        if field in old_cfg and value != old_cfg[field]:
            name = flag(field) if field in new else f"training setting {field!r}"
            refused.append(f"{name} {_shown(value)} (run: {_shown(old_cfg[field])})")
    for key, value in new.items():
        if key in RESUME_MAY_CHANGE or key == "train_config" or key in new_cfg:
            continue  # options that are training settings were compared as their effective values above
        if key in old and value != old[key]:
            refused.append(f"{flag(key)} {_shown(value)} (run: {_shown(old[key])})")
    return refused, accepted


def short_run_warmup(base: TrainConfig, steps: int, fraction: float | None = None) -> int:
    """Warm-up steps for a run of ``steps``: the preset's, but at most a tenth of the run (rounded up).

    Args:
        base: the preset's configuration (its ``warmup_steps``).
        steps: optimisation steps of this run.
        fraction: a recipe's own warm-up, as a fraction of the run (rounded up), used instead of the
            preset's (``finetune.py``'s HOISDF ``tiny`` recipe: 0.1).

    Returns:
        The number of warm-up steps.
    """
    if fraction is not None:
        return math.ceil(fraction * steps)
    return min(base.warmup_steps, math.ceil(0.1 * steps))


def loss_trend(losses: Sequence[float], *, most: int, label: str, empty: str) -> str:
    """``"<label> <first> -> <last>"``: the mean of the first and of the last ``k`` losses.

    ``k`` is a third of the losses, at least 1 and at most ``most``.

    Args:
        losses: loss values in step order.
        most: the largest ``k``.
        label: the words before the numbers.
        empty: what to return when there are no losses.

    Returns:
        The trend line, with four decimals.
    """
    if not losses:
        return empty
    k = max(1, min(most, len(losses) // 3))
    return f"{label} {sum(losses[:k]) / k:.4f} -> {sum(losses[-k:]) / k:.4f}"


def write_loss_curves(records: Sequence[dict], path: str | Path, *, title: str) -> Path | None:
    """Draw the loss curves of a run's log records (``RunLogger.read_records()``) into a PNG, atomically.

    Args:
        records: the run's log records, in step order.
        path: the PNG to write (``loss_curves.png`` beside ``log.jsonl``).
        title: the figure's title.

    Returns:
        The path, or ``None`` when no record holds a loss (nothing was drawn).
    """
    from hoimask.engine.figures import loss_curves, save_figure

    if not any("loss" in r and "step" in r for r in records):
        return None
    return save_figure(path, loss_curves(records, title=title))


def require_loaded_weights(report: Any, module: Any, path: str | os.PathLike) -> Any:
    """Refuse a weights file from which nothing could be loaded into ``module`` (instead of training from random).

    ``load_vit_checkpoint`` and ``load_resnet_checkpoint`` load by key and report what was missing; a file of
    unrelated tensors (not an encoder at all) matches no key, is "loaded" with every key missing, and the
    run would silently start from the random initialisation.

    Args:
        report: the loader's :class:`~hoimask.nn.LoadReport`.
        module: the module the weights were loaded into.
        path: the weights file, for the message.

    Returns:
        ``report``, when at least one tensor of the module came from the file.

    Raises:
        FileFormatError: none did.
    """
    wanted = [k for k in module.state_dict() if not k.endswith("num_batches_tracked")]
    if wanted and set(wanted) <= set(report.missing_keys):
        unused = list(report.unexpected_keys)
        example = f" (e.g. {', '.join(unused[:3])})" if unused else ""
        raise FileFormatError(f"{os.fspath(path)!r} holds no weights for the {type(module).__name__}: none of its "
                              f"{len(unused)} tensors{example} matches a parameter, nothing would be loaded")
    return report


def mano_layer(dataset: str, mano_dir: Path | None) -> Any:
    """The MANO layer of ``mano_dir/MANO_RIGHT.pkl`` for real data; ``None`` for synthetic data or no folder.

    Args:
        dataset: the dataset name (``"synthetic"`` uses the procedural hand).
        mano_dir: the folder holding ``MANO_RIGHT.pkl``, or ``None``.

    Returns:
        A :class:`hoimask.hand.MANOLayer` or ``None``.
    """
    if dataset == "synthetic" or mano_dir is None:
        return None
    from hoimask.hand import MANOLayer

    with errors_name_flag("--mano-dir"):
        return MANOLayer(str(mano_dir / "MANO_RIGHT.pkl"))


def add_framing_flags(parser: argparse.ArgumentParser, *, default: str) -> None:
    """``--crop-padding`` / ``--no-crop`` (mutually exclusive): how synthetic scenes are framed; ``default`` is the
    help's description of the scripts' default; :func:`check_framing_flags` refuses them with real data."""
    framing = parser.add_mutually_exclusive_group()
    framing.add_argument("--crop-padding", type=real(low=1.0),
                         help="synthetic: crop each scene around hand ∪ object with this margin factor, as DexYCB "
                              f"and HO3D frames are (default: {default})")
    framing.add_argument("--no-crop", action="store_true", help="synthetic: train on the whole rendered frame")


def check_framing_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A usage error (exit 2) for ``--crop-padding`` / ``--no-crop`` with ``--dataset`` other than synthetic."""
    if args.dataset != "synthetic" and (args.crop_padding is not None or args.no_crop):
        flag = "--no-crop" if args.no_crop else "--crop-padding"
        parser.error(f"argument {flag}: synthetic data only (got --dataset {args.dataset}, always cropped around "
                     "hand ∪ object)")


def check_data_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors (exit 2) for ``--dataset`` / ``--data-root`` / ``--mano-dir`` that do not go together.

    Real data (DexYCB, HO3D) needs ``--data-root`` and ``--mano-dir``, and the
    latter must hold ``MANO_RIGHT.pkl``; synthetic data needs neither.

    Args:
        parser: the script's parser (reports the error).
        args: its parsed flags, with ``dataset``, ``data_root`` and ``mano_dir``.
    """
    if args.dataset == "synthetic":
        return
    if args.data_root is None:
        parser.error(f"argument --data-root: --dataset {args.dataset} needs the dataset's root folder")
    if args.mano_dir is None:
        parser.error(f"argument --mano-dir: --dataset {args.dataset} needs the folder with MANO_RIGHT.pkl")
    if not (args.mano_dir / "MANO_RIGHT.pkl").is_file():
        parser.error(f"argument --mano-dir: expected a folder holding MANO_RIGHT.pkl (https://mano.is.tue.mpg.de), "
                     f"got {str(args.mano_dir)!r}")
