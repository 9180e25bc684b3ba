"""Command-line flags of the scripts in ``examples/`` and ``benchmarks/``: values, help, errors, Ctrl-C.

A user of a script types flags, not function arguments, so everything a
script reports speaks in flags:

* flag values are checked when they are parsed, by ``type=`` callables that
  state the accepted range (:func:`integer`, :func:`real`) or kind of path
  (:func:`existing_file`, :func:`existing_dir`, :func:`output_file`,
  :func:`output_folder`); argparse then prints the usage and one line
  ``error: argument --steps: expected an integer >= 1, got 0`` and exits with 2;
* an error that a library function raises while it works on a flag's file is
  re-raised naming the flag (:func:`errors_name_flag`), and one that names a
  configuration field or argument with a flag of the same name is re-phrased
  with the flag (:func:`errors_name_flags`): ``TrainConfig(): field 'steps'
  expected ...`` becomes ``argument --steps: expected ...``;
* ``--help`` shows every default once (:class:`HelpFormatter`);
* Ctrl-C during a run says where the last checkpoint is and which command
  resumes it (:func:`explain_interrupt`, :class:`RunInterrupted`);
* a missing optional extra is named with its install command
  (:func:`tensorboard_note`);
* under ``torchrun`` a usage error is printed by the first process of each
  node only (:func:`first_process_on_node`, :func:`quiet_on_other_processes`).

``hoimask.engine.cli.exit_with_usage_errors`` prints such errors as one
``error: ...`` line (exit status 2) and an interrupt as its explanation (exit
status 130).

Example:
    >>> import argparse
    >>> p = argparse.ArgumentParser(prog="demo", formatter_class=HelpFormatter)
    >>> _ = p.add_argument("--steps", type=integer(low=1), default=10, help="optimisation steps")
    >>> p.parse_args(["--steps", "3"]).steps
    3
    >>> "(default: 10)" in p.format_help()
    True
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

from hoimask._checks import FileFormatError, HoimaskError

__all__ = [
    "HelpFormatter",
    "integer",
    "real",
    "existing_file",
    "existing_dir",
    "output_file",
    "output_folder",
    "option_strings",
    "errors_name_flag",
    "errors_name_flags",
    "one_line",
    "RunInterrupted",
    "rerun_command",
    "interrupt_message",
    "explain_interrupt",
    "first_process_on_node",
    "quiet_on_other_processes",
    "TENSORBOARD_INSTALL",
    "tensorboard_note",
    "missing_tensorboard",
]

#: How to install the optional TensorBoard extra.
TENSORBOARD_INSTALL = 'pip install "hoimask[tensorboard]"'

# "load_vit_checkpoint(): " / "Trainer.resume(): " at the start of a library message.
_FUNCTION = re.compile(r"^[A-Za-z_][\w.]*\(\):\s*")
# "TrainConfig(): field 'steps'" / "MaskHOIConfig(): argument 'mask_ratio'" opening a library message.
_FIELD = re.compile(r"(?:\b[A-Za-z_][\w.]*\(\):\s*)?(?:argument|field) '([A-Za-z_]\w*)':?\s*")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each default shown once.

    A flag's default is appended as ``(default: ...)`` unless its help text
    already states one (``(default ...``), and never for ``None`` (no value:
    the help text says what happens) or ``False`` (an off switch).
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "(default" in text or "%(default)" in text or not action.option_strings:
            return text
        if default is None or default is False or default is argparse.SUPPRESS:
            return text
        return f"{text} (default: %(default)s)"


def _number(value: float) -> str:
    return f"{value:g}"


def _int_range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"an integer in [{low}, {high}]"
    if low is not None:
        return f"an integer >= {low}"
    if high is not None:
        return f"an integer <= {high}"
    return "an integer"


def _real_range(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"a number in {'(' if low_open else '['}{_number(low)}, {_number(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"a number {'>' if low_open else '>='} {_number(low)}"
    if high is not None:
        return f"a number {'<' if high_open else '<='} {_number(high)}"
    return "a finite number"


def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type=`` for integers in ``[low, high]`` (either bound optional).

    Args:
        low: smallest accepted value, or ``None``.
        high: largest accepted value, or ``None``.

    Returns:
        A callable that turns the flag's text into an ``int`` or raises
        ``argparse.ArgumentTypeError`` stating the accepted range.

    Example:
        >>> integer(low=1)("4")
        4
    """
    expected = _int_range(low, high)

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def real(low: float | None = None, high: float | None = None, *, low_open: bool = False,
         high_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type=`` for finite numbers between ``low`` and ``high``.

    Args:
        low: lower bound, or ``None``.
        high: upper bound, or ``None``.
        low_open: exclude ``low`` itself.
        high_open: exclude ``high`` itself.

    Returns:
        A callable that turns the flag's text into a ``float`` or raises
        ``argparse.ArgumentTypeError`` stating the accepted range (NaN and
        infinities are refused).

    Example:
        >>> real(0, 1, high_open=True)("0.75")
        0.75
    """
    expected = _real_range(low, high, low_open, high_open)

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        ok = math.isfinite(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if not ok:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def existing_file(text: str) -> Path:
    """An argparse ``type=``: the path of an existing regular file.

    Raises:
        argparse.ArgumentTypeError: the path does not exist or is not a file.
    """
    return _existing(text, "file", Path.is_file, "a directory")


def existing_dir(text: str) -> Path:
    """An argparse ``type=``: the path of an existing directory.

    Raises:
        argparse.ArgumentTypeError: the path does not exist or is not a directory.
    """
    return _existing(text, "folder", Path.is_dir, "a file")


def _existing(text: str, kind: str, is_kind, other: str) -> Path:
    """``Path(text)`` if it exists and ``is_kind``; else the argparse error naming ``kind`` and what it is instead."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"expected an existing {kind}, got {text!r}, which does not exist")
    if not is_kind(path):
        raise argparse.ArgumentTypeError(f"expected a {kind}, got {text!r}, which is {other}")
    return path


def _blocked_by_file(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` when it is not a directory (nothing can be created below it)."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def output_file(text: str) -> Path:
    """An argparse ``type=``: a file to write (it may exist; it must not be a directory or lie below a file).

    Raises:
        argparse.ArgumentTypeError: the path is a directory or cannot be created.
    """
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"expected a file to write, got {text!r}, which is a directory")
    blocker = _blocked_by_file(path)
    if blocker is not None:
        raise argparse.ArgumentTypeError(f"expected a file to write, got {text!r}, but {str(blocker)!r} is a file")
    return path


def output_folder(text: str) -> Path:
    """An argparse ``type=``: a folder to write into (created when missing; it must not be a file).

    Raises:
        argparse.ArgumentTypeError: the path is a file or cannot be created.
    """
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"expected a folder, got {text!r}, which is a file")
    blocker = _blocked_by_file(path)
    if blocker is not None:
        raise argparse.ArgumentTypeError(f"expected a folder, got {text!r}, but {str(blocker)!r} is a file")
    return path


def option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every ``--flag`` the parser accepts."""
    return [s for action in parser._actions for s in action.option_strings if s.startswith("--")]


def one_line(message: str, *, most: int = 3) -> str:
    """``message`` on one line: further lines (e.g. a list of mismatched keys) joined with ``;``, at most ``most``.

    Example:
        >>> one_line("3 keys differ:\\n  a\\n  b\\n  c", most=2)
        '3 keys differ: a; b; ... (1 more)'
    """
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else ""
    head, rest = lines[0].rstrip(":"), lines[1:]
    shown = "; ".join(rest[:most]) + (f"; ... ({len(rest) - most} more)" if len(rest) > most else "")
    return f"{head}: {shown}"


def _retyped(err: HoimaskError, message: str) -> HoimaskError:
    """An error of ``err``'s type with ``message`` (a :class:`HoimaskError` when the type takes other arguments)."""
    try:
        new = type(err)(message)
    except Exception:  # noqa: BLE001 - a subclass with another constructor
        new = HoimaskError(message)
    return new if isinstance(new, HoimaskError) else HoimaskError(message)


@contextmanager
def errors_name_flag(flag: str) -> Iterator[None]:
    """Re-raise errors of the enclosed work on ``flag``'s value as ``argument <flag>: ...``.

    A :class:`~hoimask._checks.HoimaskError` keeps its type (a corrupt
    checkpoint stays a ``FileFormatError``); its message loses the library
    function's name and gains the flag. An ``OSError`` (permission denied, a
    path that cannot be created) becomes a ``FileFormatError`` naming the flag.
    A message that already names a flag is left as it is.

    Args:
        flag: the flag as the user types it, e.g. ``"--encoder"``.

    Example:
        >>> from hoimask._checks import ValueRangeError
        >>> try:
        ...     with errors_name_flag("--init"):
        ...         raise ValueRangeError("load_vit_checkpoint(): cannot read 'x.pth'")
        ... except ValueRangeError as err:
        ...     print(err)
        argument --init: cannot read 'x.pth'
    """
    try:
        yield
    except HoimaskError as err:
        text = str(err)
        if text.startswith("argument --"):
            raise
        raise _retyped(err, f"argument {flag}: {_FUNCTION.sub('', text)}") from err
    except OSError as err:
        where = f": {err.filename!r}" if err.filename else ""
        raise FileFormatError(f"argument {flag}: {err.strerror or err}{where}") from err


@contextmanager
def errors_name_flags(parser: argparse.ArgumentParser) -> Iterator[None]:
    """Re-phrase errors that name a field or argument which is also a flag of ``parser``.

    ``TrainConfig(): field 'steps' expected an int >= 1, got 0`` becomes
    ``argument --steps: expected an int >= 1, got 0`` (same error type).
    Errors naming no such field pass unchanged.

    Args:
        parser: the script's parser (its ``--flags`` are the names looked for).
    """
    try:
        yield
    except HoimaskError as err:
        text = str(err)
        match = _FIELD.match(text)
        flag = None if match is None else "--" + match.group(1).replace("_", "-")
        if flag is None or flag not in option_strings(parser):
            raise
        raise _retyped(err, f"argument {flag}: {text[match.end():]}") from err


def first_process_on_node() -> bool:
    """Whether this process reports errors for its node: always without ``torchrun``, local rank 0 under it.

    Every process of a ``torchrun`` job parses the same flags and checks the same files, so a usage error
    would be printed once per GPU; each node's ``torchrun`` prints to its own console, so the first process
    of each node reports it.

    Returns:
        ``True`` unless the job has several processes (``WORLD_SIZE`` > 1, as
        :func:`~hoimask.engine.init_distributed` reads it) and ``LOCAL_RANK`` (or, without it, ``RANK``)
        is not ``0``.
    """
    if os.environ.get("WORLD_SIZE", "1").strip() in ("", "0", "1"):
        return True  # one process (variables a scheduler left behind must not silence it)
    return os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")) == "0"


@contextmanager
def quiet_on_other_processes() -> Iterator[None]:
    """Discard what the enclosed code prints (argparse's usage errors, ``--help``) unless :func:`first_process_on_node`.

    Meant for parsing the flags, which happens before the process group exists and prints only on error;
    exceptions still propagate (argparse's ``SystemExit(2)`` too), and a traceback is printed after the block.

    Example:
        >>> with quiet_on_other_processes():  # the first (or only) process prints as usual
        ...     print("usage: ...")
        usage: ...
    """
    if first_process_on_node():
        yield
        return
    with open(os.devnull, "w", encoding="utf-8") as sink, redirect_stdout(sink), redirect_stderr(sink):
        yield


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; the message says where the last checkpoint is and how to resume."""


def _launcher() -> str:
    """``python``, or the ``torchrun`` line of the current distributed job."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return "python"
    local = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    if local == world:
        return f"torchrun --standalone --nproc_per_node={local}"
    return "torchrun <the same torchrun options>"


def _shown_path(script: str | os.PathLike) -> str:
    """``script`` relative to the current folder when it lies below it, else absolute."""
    path = os.path.abspath(script)
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def rerun_command(script: str | os.PathLike, argv: Sequence[str], *, options: Sequence[str],
                  drop: Sequence[str] = (), add: Sequence[str] = ()) -> str:
    """The command line that runs ``script`` again with ``argv``, without the ``drop`` flags, plus ``add``.

    Abbreviated flags (argparse accepts unique prefixes) are recognised among ``options``.

    Args:
        script: the script's path.
        argv: the flags it was run with.
        options: every ``--flag`` of the script.
        drop: flags (without values) to remove, e.g. ``("--overwrite",)``.
        add: tokens to append, e.g. ``("--resume",)``.

    Returns:
        A shell-quoted command, ``python <script> ...`` (``torchrun ...`` under torchrun).

    Example:
        >>> rerun_command("train.py", ["--steps", "9", "--over"], options=["--steps", "--overwrite", "--output-dir"],
        ...               drop=["--overwrite"], add=["--resume"])
        'python train.py --steps 9 --resume'
    """
    kept = []
    for token in argv:
        name = token.split("=", 1)[0]
        if name.startswith("--"):
            matches = [name] if name in options else [o for o in options if o.startswith(name)]
            if len(matches) == 1 and matches[0] in drop:
                continue
        kept.append(token)
    return " ".join([_launcher(), shlex.quote(_shown_path(script)), *(shlex.quote(t) for t in [*kept, *add])])


def interrupt_message(output_dir: str | os.PathLike, *, script: str | os.PathLike, argv: Sequence[str],
                      options: Sequence[str]) -> str:
    """Two lines: where the run's last checkpoint is (or that there is none) and the command that continues.

    Args:
        output_dir: the run directory.
        script: the script's path.
        argv: the flags it was run with.
        options: every ``--flag`` of the script (see :func:`rerun_command`).

    Returns:
        ``"interrupted: the last checkpoint is ... (step N); resume with:\\n  python ... --resume"``, or,
        before the first checkpoint, the command that starts the run again.
    """
    from hoimask.engine.checkpoint import CheckpointManager
    from hoimask.engine.run_dir import RUN_MARKER

    output_dir = Path(output_dir)
    try:
        latest = CheckpointManager(output_dir / "checkpoints").latest()
    except HoimaskError:  # an unreadable latest.json: --resume will report it
        latest = None
    if latest is not None:
        found = re.search(r"step_(\d+)\.pt$", latest.name)
        step = f" (step {int(found.group(1))})" if found else ""
        command = rerun_command(script, argv, options=options, drop=("--overwrite", "--resume"), add=("--resume",))
        return f"interrupted: the last checkpoint is {latest}{step}; resume with:\n  {command}"
    if (output_dir / RUN_MARKER).is_file():
        command = rerun_command(script, argv, options=options, drop=("--overwrite", "--resume"), add=("--overwrite",))
        return (f"interrupted before the first checkpoint (none in {output_dir / 'checkpoints'}); "
                f"start again with:\n  {command}")
    command = rerun_command(script, argv, options=options)
    return f"interrupted before the run started; start again with:\n  {command}"


@contextmanager
def explain_interrupt(output_dir: str | os.PathLike, *, script: str | os.PathLike, argv: Sequence[str] | None,
                      parser: argparse.ArgumentParser) -> Iterator[None]:
    """Turn Ctrl-C (``KeyboardInterrupt``) inside the block into :class:`RunInterrupted` saying how to resume.

    Args:
        output_dir: the run directory.
        script: the script's path (``__file__``).
        argv: the flags the script was given (``None``: ``sys.argv[1:]``).
        parser: the script's parser (for abbreviated flags).
    """
    try:
        yield
    except RunInterrupted:
        raise
    except KeyboardInterrupt as err:
        import sys

        args = list(sys.argv[1:] if argv is None else argv)
        raise RunInterrupted(interrupt_message(output_dir, script=script, argv=args,
                                               options=option_strings(parser))) from err


def tensorboard_note(tensorboard: bool | None) -> str | None:
    """The one line to print when TensorBoard logging is off because the package is missing.

    Args:
        tensorboard: the ``--tensorboard`` / ``--no-tensorboard`` choice (``None``: not given).

    Returns:
        The note, or ``None`` when TensorBoard is installed or was turned off.
    """
    from hoimask.engine.logging import tensorboard_available

    if tensorboard is not None or tensorboard_available():
        return None
    return (f"note: TensorBoard logging is off: the tensorboard package is not installed ({TENSORBOARD_INSTALL}); "
            "--no-tensorboard hides this note")


def missing_tensorboard(tensorboard: bool | None) -> str | None:
    """The usage error of ``--tensorboard`` when the package is missing, else ``None``."""
    from hoimask.engine.logging import tensorboard_available

    if tensorboard and not tensorboard_available():
        return f"the tensorboard package is not installed; {TENSORBOARD_INSTALL} (or pip install tensorboard)"
    return None
