"""Every command-line script speaks in flags (issue 16, item 5).

Given a flag value out of range, a missing file or a file of the wrong kind,
each script prints one ``error:`` line naming the flag (after argparse's usage,
for values checked as they are parsed) and exits with status 2, without a
traceback; ``--help`` shows each default once and documents every flag; Ctrl-C
during training says where the last checkpoint is and which command resumes.
The scripts run in-process (``main(argv)`` under ``exit_with_usage_errors``,
as ``python script.py`` runs them); two cases also run as real processes.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hoimask.engine import save_checkpoint
from hoimask.engine.cli import exit_with_usage_errors
from hoimask.engine.flags import HelpFormatter, RunInterrupted
from hoimask.engine.logging import tensorboard_available

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = {
    "train_maskhoi": ROOT / "examples" / "train_maskhoi.py",
    "finetune": ROOT / "examples" / "finetune.py",
    "evaluate": ROOT / "examples" / "evaluate.py",
    "show_synthetic": ROOT / "examples" / "show_synthetic.py",
    "visualize_masks": ROOT / "examples" / "visualize_masks.py",
    "pretraining_ablation": ROOT / "benchmarks" / "pretraining_ablation.py",
}
QUIET = ["--no-progress", "--no-tensorboard"]
SMALL = ["--steps", "2", "--batch-size", "2", "--num-samples", "4", "--log-every", "1", "--checkpoint-every", "2"]
_modules: dict[str, object] = {}


def script(name: str):
    """The script as a module (loaded once)."""
    if name not in _modules:
        spec = importlib.util.spec_from_file_location(f"cli_{name}", SCRIPTS[name])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _modules[name] = module
    return _modules[name]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Paths of each wrong kind: missing, a directory, a text file, a file that is no checkpoint, a damaged
    hoimask checkpoint, and a valid hoimask file that is not what the flag takes."""
    root = tmp_path_factory.mktemp("inputs")
    (root / "folder").mkdir()
    (root / "notes.txt").write_text("not a checkpoint\n")
    (root / "random.pt").write_bytes(bytes(range(256)) * 8)
    good = save_checkpoint(root / "encoder.pt", {"encoder": {"w": torch.zeros(3)}, "encoder_config": {}, "step": 1})
    damaged = bytearray(good.read_bytes())
    damaged[300] ^= 0xFF
    (root / "damaged.pt").write_bytes(bytes(damaged))
    torch.save({"head.weight": torch.zeros(2, 3), "head.bias": torch.zeros(2)}, root / "tensors.pt")  # no encoder
    training = save_checkpoint(root / "step_00000003.pt", {"model": {"encoder.blocks.0.norm1.weight": torch.ones(3)},
                                                           "optimizer": {}, "step": 3})  # a training checkpoint
    return {"missing": str(root / "missing.pt"), "folder": str(root / "folder"), "text": str(root / "notes.txt"),
            "random": str(root / "random.pt"), "damaged": str(root / "damaged.pt"), "encoder": str(good),
            "tensors": str(root / "tensors.pt"), "training": str(training), "root": str(root)}


def run(name: str, argv: list[str], capsys) -> tuple[int, str, str]:
    """``python <script> argv`` in-process: (exit status, stdout, stderr).

    ``sys.argv[0]`` is the script's path meanwhile, as it is for ``python <script>``: argparse names the
    program after it (under pytest-xdist the worker's own ``sys.argv[0]`` is ``-c``)."""
    capsys.readouterr()
    saved = sys.argv
    sys.argv = [str(SCRIPTS[name]), *argv]
    try:
        code = exit_with_usage_errors(lambda: script(name).main(argv))
    except SystemExit as stop:  # argparse's usage errors
        code = stop.code
    finally:
        sys.argv = saved
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_error_line(err: str, flag: str, *words: str) -> str:
    """stderr is argparse's usage (optional) and one ``error:`` line naming ``flag``; returns that line."""
    assert "Traceback" not in err
    lines = err.rstrip("\n").splitlines()
    errors = [line for line in lines if re.match(r"^([\w.]+: )?error: ", line)]
    assert len(errors) == 1, err
    usage = lines[: lines.index(errors[0])]
    assert lines[-1] == errors[0], err  # nothing after it
    assert not usage or (usage[0].startswith("usage: ") and all(line.startswith(" ") for line in usage[1:])), err
    assert f"argument {flag}" in errors[0], errors[0]
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


# (script, flags, the flag the error must name, words the line must contain); "{name}" -> files[name]
BAD_INPUT = [
    ("train_maskhoi", ["--steps", "0"], "--steps", ">= 1"),
    ("train_maskhoi", ["--batch-size", "-2"], "--batch-size", ">= 1"),
    ("train_maskhoi", ["--lr", "-1"], "--lr", "> 0"),
    ("train_maskhoi", ["--num-samples", "0"], "--num-samples", ">= 1"),
    ("train_maskhoi", ["--seed", "-1"], "--seed", ">= 0"),
    ("train_maskhoi", ["--num-workers", "-1"], "--num-workers", ">= 0"),
    ("train_maskhoi", ["--log-every", "0"], "--log-every", ">= 1"),
    ("train_maskhoi", ["--mask-ratio", "1.5"], "--mask-ratio", "[0, 1)"),
    ("train_maskhoi", ["--skeleton-prob", "2"], "--skeleton-prob", "[0.0, 1.0]"),
    ("train_maskhoi", ["--init", "{missing}"], "--init", "does not exist"),
    ("train_maskhoi", ["--init", "{folder}"], "--init", "directory"),
    ("train_maskhoi", ["--init", "{text}"], "--init", "cannot read"),
    ("train_maskhoi", ["--init", "{random}"], "--init", "cannot read"),
    ("train_maskhoi", ["--init", "{tensors}"], "--init", "holds no weights"),  # issue 15 item 8: was a random init
    ("train_maskhoi", ["--output-dir", "{text}"], "--output-dir", "which is a file"),
    ("train_maskhoi", ["--resume", "--output-dir", "{folder}"], "--output-dir", "no checkpoint"),
    ("train_maskhoi", ["--resume", "--overwrite"], "--overwrite", "not allowed with argument --resume"),
    ("train_maskhoi", ["--dataset", "dexycb"], "--data-root", "needs"),
    ("train_maskhoi", ["--dataset", "ho3d", "--data-root", "{folder}", "--mano-dir", "{folder}"], "--mano-dir",
     "MANO_RIGHT.pkl"),
    ("train_maskhoi", ["--dataset", "ho3d", "--data-root", "{missing}"], "--data-root", "does not exist"),
    ("finetune", ["--no-pretrain", "--layer-decay", "2"], "--layer-decay", "(0, 1]"),
    ("finetune", ["--no-pretrain", "--lr", "0"], "--lr", "> 0"),
    ("finetune", ["--no-pretrain", "--steps", "0"], "--steps", ">= 1"),
    ("finetune", ["--no-pretrain", "--baseline-samples", "0"], "--baseline-samples", ">= 1"),
    ("finetune", ["--no-pretrain", "--augment-views", "0"], "--augment-views", ">= 1"),
    ("finetune", ["--no-pretrain", "--point-cloud-fusion"], "--point-cloud-fusion", "--model hoisdf"),
    ("evaluate", ["--checkpoint", "{text}", "--dexycb-results", "{folder}/r"], "--dexycb-results", "--dataset dexycb"),
    ("finetune", ["--encoder", "{missing}"], "--encoder", "does not exist"),
    ("finetune", ["--encoder", "{folder}"], "--encoder", "directory"),
    ("finetune", ["--encoder", "{text}"], "--encoder", "cannot read"),
    ("finetune", ["--encoder", "{damaged}"], "--encoder", "corrupt"),  # a damaged hoimask file stays an error
    # issue 15 item 8: a file that is not an encoder is an error, never training from random weights
    ("finetune", ["--encoder", "{tensors}"], "--encoder", "holds no weights"),
    ("finetune", ["--encoder", "{training}"], "--encoder", "without encoder weights"),
    ("finetune", ["--model", "hoisdf", "--encoder", "{tensors}"], "--encoder", "holds no weights"),
    ("finetune", ["--model", "hoisdf", "--encoder", "{training}"], "--encoder", "without encoder weights"),
    ("finetune", ["--model", "hoisdf", "--backbone", "resnet50", "--encoder", "{tensors}"], "--encoder",
     "holds no weights"),
    ("finetune", ["--model", "hoisdf", "--encoder", "{damaged}"], "--encoder", "corrupt"),
    ("evaluate", ["--checkpoint", "{missing}"], "--checkpoint", "does not exist"),
    ("evaluate", ["--checkpoint", "{folder}"], "--checkpoint", "directory"),
    ("evaluate", ["--checkpoint", "{text}"], "--checkpoint", "no integrity record"),
    ("evaluate", ["--checkpoint", "{damaged}"], "--checkpoint", "corrupt"),
    ("evaluate", ["--checkpoint", "{encoder}"], "--checkpoint", "'model' entry"),
    ("evaluate", ["--checkpoint", "{encoder}", "--batch-size", "0"], "--batch-size", ">= 1"),
    ("evaluate", ["--checkpoint", "{encoder}", "--output", "{folder}"], "--output", "directory"),
    ("evaluate", ["--checkpoint", "{encoder}", "--exclude-objects", "019_pitcher"], "--exclude-objects",
     "expected YCB object names"),
    ("evaluate", ["--checkpoint", "{encoder}", "--exclude-objects", "none", "025_mug"], "--exclude-objects",
     "excludes nothing"),
    ("evaluate", ["--checkpoint", "{encoder}", "--exclude-objects", "025_mug"], "--exclude-objects",
     "synthetic samples carry no object names"),
    ("show_synthetic", ["--num", "0"], "--num", "[1, 64]"),
    ("show_synthetic", ["--size", "4"], "--size", "[8, 1024]"),
    ("show_synthetic", ["--seed", "-1"], "--seed", ">= 0"),
    ("show_synthetic", ["--out", "{text}"], "--out", "which is a file"),
    ("visualize_masks", ["--patch", "0"], "--patch", ">= 1"),
    ("visualize_masks", ["--size", "64", "--patch", "7"], "--patch", "divisor of --size 64"),
    ("visualize_masks", ["--rows", "0"], "--rows", "[1, 32]"),
    ("visualize_masks", ["--out", "{folder}"], "--out", "directory"),
    ("pretraining_ablation", ["--pool", "0"], "--pool", ">= 1"),
    ("pretraining_ablation", ["--label-fractions", "1.5"], "--label-fractions", "(0, 1]"),
    ("pretraining_ablation", ["--pretrain-lr", "0"], "--pretrain-lr", "> 0"),
    ("pretraining_ablation", ["--device", "tpu"], "--device", "invalid choice"),
    ("pretraining_ablation", ["--json", "{folder}"], "--json", "directory"),
    ("pretraining_ablation", ["--crop-padding", "0.9"], "--crop-padding", ">= 1"),
    ("pretraining_ablation", ["--augment-views", "0"], "--augment-views", ">= 1"),
    ("pretraining_ablation", ["--no-crop", "--crop-padding", "1.2"], "--crop-padding", "not allowed"),
]


@pytest.mark.parametrize("name, argv, flag, words", BAD_INPUT,
                         ids=[f"{c[0]}:{' '.join(c[1])}" for c in BAD_INPUT])
def test_bad_input_is_one_line_naming_the_flag_and_exit_2(tmp_path, capsys, files, name, argv, flag, words):
    argv = [a.format(**files) for a in argv]
    if name in ("train_maskhoi", "finetune") and "--output-dir" not in argv:
        argv += ["--output-dir", str(tmp_path / "run")]
    if name in ("train_maskhoi", "finetune"):
        argv += [*QUIET, *SMALL] if "--steps" not in argv else QUIET
    if name in ("show_synthetic", "visualize_masks") and "--out" not in argv:
        argv += ["--out", str(tmp_path / "pictures" / "masks.png")]
    code, _, err = run(name, argv, capsys)
    assert code == 2, err
    assert_one_error_line(err, flag, words)
    assert not (tmp_path / "run").exists()  # a bad input never claims the run directory


@pytest.mark.skipif(tensorboard_available(), reason="the tensorboard package is installed here")
@pytest.mark.parametrize("name", ["train_maskhoi", "finetune"])
def test_tensorboard_flag_without_the_package_names_the_install_command(capsys, name):
    code, _, err = run(name, ["--no-pretrain", "--tensorboard"] if name == "finetune" else ["--tensorboard"], capsys)
    assert code == 2
    assert_one_error_line(err, "--tensorboard", 'pip install "hoimask[tensorboard]"')


@pytest.mark.parametrize("argv, flag", [
    (["examples/visualize_masks.py", "--patch", "0"], "--patch"),  # was a ZeroDivisionError traceback
    (["examples/finetune.py", "--encoder", "{text}", "--no-progress"], "--encoder"),  # raised deep in a loader
])
def test_as_a_process_without_traceback(tmp_path, files, argv, flag):
    argv = [a.format(**files) for a in argv]
    result = subprocess.run([sys.executable, str(ROOT / argv[0]), *argv[1:], *(
        ["--output-dir", str(tmp_path / "run")] if "finetune" in argv[0] else ["--out", str(tmp_path / "m.png")])],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert_one_error_line(result.stderr, flag)


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_help_documents_every_flag_and_shows_each_default_once(capsys, name):
    module = script(name)
    parser = module.build_parser()
    assert parser.formatter_class is HelpFormatter
    formatter = HelpFormatter(parser.prog)
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        assert action.help and action.help.strip(), f"{action.option_strings} has no help text"
        shown = formatter._get_help_string(action)  # the help as printed, before "%(default)s" is filled in
        assert len(re.findall(r"(?<!%)\(default", shown)) <= 1, action.option_strings
    code, out, _ = run(name, ["--help"], capsys)
    assert code == 0
    text = " ".join(out.split())
    assert "(default: None)" not in text and "(default: False)" not in text
    assert not re.search(r"\(default[^()]*\)\s*\(default", text)


def test_ctrl_c_during_pretraining_says_where_the_checkpoint_is_and_how_to_resume(tmp_path, capsys, monkeypatch):
    """Ctrl-C: two lines on stderr (the last checkpoint, the command), exit 130; that command then resumes."""
    import hoimask.engine.logging as logging
    from hoimask.engine import Trainer

    monkeypatch.setattr(logging, "tensorboard_available", lambda: False)  # as without the extra: one note
    real_fit = Trainer.fit

    def interrupted_fit(self, *, stop_at=None):
        self.step = 2  # as if two steps had run: write their checkpoint, then the user presses Ctrl-C
        self.save_checkpoint()
        raise KeyboardInterrupt

    out = tmp_path / "run"
    argv = ["--no-progress", *SMALL, "--output-dir", str(out), "--overwrite"]
    monkeypatch.setattr(Trainer, "fit", interrupted_fit)
    with pytest.raises(RunInterrupted):  # called from Python it is still a KeyboardInterrupt
        script("train_maskhoi").main(argv)
    code, printed, err = run("train_maskhoi", [*argv[:-1], "--resume"], capsys)
    assert code == 130
    assert "Traceback" not in err
    assert printed.count('pip install "hoimask[tensorboard]"') == 1  # the missing extra, mentioned once
    checkpoint, command = err.strip("\n").splitlines()
    assert checkpoint == f"interrupted: the last checkpoint is {out / 'checkpoints' / 'step_00000002.pt'} (step 2); " \
                         "resume with:"
    words = shlex.split(command)
    assert words[:2] == ["python", "examples/train_maskhoi.py"] or words[1].endswith("train_maskhoi.py")
    assert words[-1] == "--resume" and "--overwrite" not in words and words.count("--resume") == 1
    assert words[2:-1] == argv[:-1]
    monkeypatch.setattr(Trainer, "fit", real_fit)
    code, printed, err = run("train_maskhoi", words[2:], capsys)  # the command it printed, run as given
    assert code == 0, err
    assert "resumed from step 2 of 2" in printed


def test_ctrl_c_before_the_first_checkpoint_gives_the_command_that_starts_again(tmp_path, capsys, monkeypatch):
    from hoimask.engine import Trainer

    def interrupted_fit(self, *, stop_at=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "fit", interrupted_fit)
    out = tmp_path / "ft"
    code, _, err = run("finetune", ["--no-pretrain", *QUIET, *SMALL, "--output-dir", str(out)], capsys)
    assert code == 130 and "Traceback" not in err
    first, command = err.strip("\n").splitlines()
    assert first == f"interrupted before the first checkpoint (none in {out / 'checkpoints'}); start again with:"
    assert command.endswith("--overwrite") and "--resume" not in command and "finetune.py" in command


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file below ``folder``: its modification time and contents."""
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name, argv", [
    ("train_maskhoi", ["--init", "{tensors}"]),
    ("finetune", ["--encoder", "{training}"]),
])
def test_a_failed_start_leaves_an_existing_run_untouched(tmp_path, capsys, files, name, argv):
    """Issue 15 item 8: what is found wrong after parsing (here: a weights file that holds no encoder) fails before
    the run directory is claimed; with --overwrite, the run that was there is still there, byte for byte."""
    from hoimask.engine import prepare_output_dir

    out = tmp_path / "run"
    prepare_output_dir(out, settings={"argv": ["earlier run"]})
    (out / "log.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    before = _snapshot(out)
    code, _, err = run(name, [*(a.format(**files) for a in argv), *QUIET, *SMALL, "--output-dir", str(out),
                              "--overwrite"], capsys)
    assert code == 2
    assert_one_error_line(err, argv[0])
    assert _snapshot(out) == before


def _first_run(out: Path, capsys, monkeypatch) -> list[str]:
    """A train_maskhoi run with SMALL flags whose training is replaced by writing the step-2 checkpoint."""
    from hoimask.engine import Trainer

    def two_steps(self, *, stop_at=None):
        self.step = 2
        self.save_checkpoint()
        return self.history

    monkeypatch.setattr(Trainer, "fit", two_steps)
    argv = [*QUIET, *SMALL, "--output-dir", str(out)]
    code, _, err = run("train_maskhoi", argv, capsys)
    assert code == 0, err
    return argv


def test_resume_with_other_settings_is_refused_naming_each_setting(tmp_path, capsys, monkeypatch):
    """Issue 15 item 8: --resume continues the same computation; a setting that changes it is refused with its
    flag and both values, before anything is written. --steps given explicitly may extend the run."""
    out = tmp_path / "run"
    argv = _first_run(out, capsys, monkeypatch)
    before = _snapshot(out)
    code, _, err = run("train_maskhoi", [*argv, "--resume", "--lr", "0.01", "--batch-size", "4", "--masking",
                                         "random", "--num-workers", "0", "--log-every", "2"], capsys)
    assert code == 2
    line = assert_one_error_line(err, "--resume", "3 setting(s) differ", "hoimask_run.json")
    assert "--batch-size 4 (run: 2); --lr 0.01 (run: 0.001); --masking random (run: hybrid)." in line
    assert "--num-workers" not in line and "--log-every" not in line  # they do not change what is computed
    code, _, err = run("train_maskhoi", ["--no-progress", "--output-dir", str(out), "--resume"], capsys)
    assert code == 2  # the flags of the first run left out: the preset's 300 steps are not the run's 2
    assert_one_error_line(err, "--resume", "--steps 300 (run: 2)")
    assert _snapshot(out) == before  # refused before anything was written
    code, printed, err = run("train_maskhoi", [*argv, "--resume", "--steps", "3"], capsys)
    assert code == 0, err
    assert printed.count("note: --steps 3 (run: 2)") == 1 and "resumed from step 2 of 3" in printed
    assert json.loads((out / "hoimask_run.resumed.json").read_text())["train_config"]["steps"] == 3  # recorded
    code, _, err = run("train_maskhoi", [*argv, "--resume", "--steps", "1"], capsys)
    assert code == 2
    assert_one_error_line(err, "--resume", "--steps 1 (run: 3), below the checkpoint's step 2")


def test_a_full_disk_during_training_is_one_line_naming_the_file(tmp_path, capsys, monkeypatch):
    """Issue 15 item 8: ENOSPC while a checkpoint is written: one line, exit 2, no traceback, no temporary file."""
    import torch as torch_module

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half an archive")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch_module, "save", full_disk)
    out = tmp_path / "run"
    code, _, err = run("train_maskhoi", [*QUIET, *SMALL, "--output-dir", str(out)], capsys)
    assert code == 2
    assert err.strip() == f"error: cannot write {str(out / 'checkpoints' / 'step_00000002.pt')!r}: No space left on device"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == []  # no temporary file left behind


def test_a_read_only_output_dir_is_one_line_naming_the_flag_and_the_file(tmp_path, capsys, monkeypatch):
    import hoimask._io as io_module

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    out = tmp_path / "run"
    out.mkdir()  # exists, but nothing can be created in it
    monkeypatch.setattr(io_module.tempfile, "mkstemp", read_only)
    code, _, err = run("finetune", ["--no-pretrain", *QUIET, *SMALL, "--output-dir", str(out)], capsys)
    assert code == 2
    line = assert_one_error_line(err, "--output-dir", "Read-only file system")
    assert line == (f"error: argument --output-dir: cannot write {str(out / 'hoimask_run.json')!r}: "
                    "Read-only file system")
    assert list(out.iterdir()) == []
