"""examples/train_unihope.py: a two-step run writes a model.pt that rebuilds; bad flags are one-line usage errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from hoimask.engine import load_checkpoint
from hoimask.engine.cli import exit_with_usage_errors
from hoimask.models import UniHOPE

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "train_unihope.py"
QUIET = ["--no-progress", "--no-tensorboard"]
SMALL = ["--steps", "2", "--batch-size", "2", "--num-samples", "4", "--log-every", "1", "--baseline-samples", "4"]


def _script():
    spec = importlib.util.spec_from_file_location("example_train_unihope", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_steps_write_a_model_that_rebuilds(tmp_path, capsys):
    out = tmp_path / "run"
    assert _script().main([*QUIET, *SMALL, "--hand-only-prob", "0.0", "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "training UniHOPE 'tiny'" in printed and "enhancement:" in printed
    state = load_checkpoint(out / "model.pt")
    assert state["model_type"] == "unihope" and state["step"] == 2 and state["enhancement"]["steps"] == 2
    model = UniHOPE.from_checkpoint_state(state)
    with torch.no_grad():
        pred = model.predict(torch.rand(1, 3, model.config.img_size, model.config.img_size))
    assert pred["joints"].shape == (1, 21, 3) and torch.isfinite(pred["joints"]).all()
    assert (out / "checkpoints").is_dir() and (out / "log.jsonl").is_file()


def test_resume_continues_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    script = _script()
    assert script.main([*QUIET, *SMALL, "--output-dir", str(out)]) == 0
    more = ["--steps", "3", *SMALL[2:]]
    assert script.main([*QUIET, *more, "--output-dir", str(out), "--resume"]) == 0
    assert "resumed from step 2" in capsys.readouterr().out
    assert load_checkpoint(out / "model.pt")["step"] == 3


@pytest.mark.parametrize("argv, flag", [
    (["--steps", "0"], "--steps"),
    (["--lr", "-1"], "--lr"),
    (["--hand-only-prob", "2"], "--hand-only-prob"),
    (["--dataset", "dexycb"], "--data-root"),
    (["--encoder", "no/such/file.pt"], "--encoder"),
])
def test_a_bad_flag_is_a_one_line_usage_error(tmp_path, capsys, argv, flag):
    script = _script()
    code = exit_with_usage_errors(lambda: _exit_code(script.main, [*QUIET, *argv, "--output-dir", str(tmp_path)]))
    assert code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and flag in errors[0], errors


def _exit_code(main, argv):
    try:
        return main(argv)
    except SystemExit as stop:  # argparse's usage errors
        return stop.code
