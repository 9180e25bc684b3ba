"""Scaffolding shared by the command-line scripts in ``examples/``.

Each script parses its own flags and prints its own report; what they have in
common lives here: running under :func:`init_distributed` with a guaranteed
cleanup, printing on rank 0 only, the run-directory settings, the warm-up of
short runs, the loss trend of the final summary and the MANO layer of real data.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hoimask._checks import HoimaskError
from hoimask.engine.config import TrainConfig
from hoimask.engine.distributed import DistributedContext, cleanup_distributed, init_distributed
from hoimask.engine.flags import RunInterrupted, errors_name_flag, one_line
from hoimask.engine.run_dir import prepare_output_dir

__all__ = ["exit_with_usage_errors", "run_distributed", "main_printer", "prepare_run_dir", "short_run_warmup", "loss_trend",
           "mano_layer", "check_data_flags", "write_loss_curves"]


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
    corrupt file, an invalid option value) raises a subclass of
    :class:`hoimask._checks.HoimaskError` whose message already says what was
    wrong and what to do (and, from the scripts, which flag;
    :mod:`hoimask.engine.flags`); a command-line user needs that line, not a
    traceback. Ctrl-C prints what :class:`hoimask.engine.flags.RunInterrupted`
    says (where the last checkpoint is, the command that resumes), or
    ``interrupted``; under ``torchrun`` only rank 0 prints.

    Returns:
        The exit code: ``main()``'s (``None`` is 0), 2 for such an error, 130
        for Ctrl-C. Other exceptions propagate unchanged.
    """
    try:
        return main() or 0
    except HoimaskError as err:
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
    with errors_name_flag("--output-dir"):  # OutputDirError stays OutputDirError, naming the flag
        return prepare_output_dir(args.output_dir, resume=args.resume, overwrite=args.overwrite, settings=settings,
                                  ctx=ctx)


def short_run_warmup(base: TrainConfig, steps: int) -> int:
    """Warm-up steps for a run of ``steps``: the preset's, but at most a tenth of the run (rounded up).

    Args:
        base: the preset's configuration (its ``warmup_steps``).
        steps: optimisation steps of this run.

    Returns:
        The number of warm-up steps.
    """
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
