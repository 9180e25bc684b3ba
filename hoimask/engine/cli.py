"""Scaffolding shared by the command-line scripts in ``examples/``.

Each script parses its own flags and prints its own report; what they have in
common lives here: running under :func:`init_distributed` with a guaranteed
cleanup, printing on rank 0 only, the run-directory settings, the warm-up of
short runs, the loss trend of the final summary and the MANO layer of real data.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hoimask._checks import HoimaskError
from hoimask.engine.config import TrainConfig
from hoimask.engine.distributed import DistributedContext, cleanup_distributed, init_distributed
from hoimask.engine.run_dir import prepare_output_dir

__all__ = ["exit_with_usage_errors", "run_distributed", "main_printer", "prepare_run_dir", "short_run_warmup", "loss_trend", "mano_layer"]


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


def exit_with_usage_errors(main: Callable[[], int]) -> int:
    """Run a script's ``main()``; report hoimask input errors as one line on stderr.

    Bad input (an output directory that must not be overwritten, a missing or
    corrupt file, an invalid option value) raises a subclass of
    :class:`hoimask._checks.HoimaskError` whose message already says what was
    wrong and what to do; a command-line user needs that line, not a traceback.
    Returns the exit code: ``main()``'s, or 2 for such an error. Other
    exceptions propagate unchanged.
    """
    try:
        return main()
    except HoimaskError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


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

    return MANOLayer(str(mano_dir / "MANO_RIGHT.pkl"))
