"""benchmarks/gpu_checks.py: its commands, its refusals, and its run loop (with stand-in steps: no GPU here)."""

from __future__ import annotations

import sys

import pytest
import torch
from bench_scripts import load_script


def test_dry_run_lists_every_check_in_order(capsys):
    script = load_script("gpu_checks")
    assert script.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    names = [line.split()[1] for line in out.splitlines() if line.startswith("# ")]
    assert names == ["triton", "mesh_sdf", "maskhoi", "hoisdf", "compile"]
    assert "-m gpu" in out and "--peak-tflops 989" in out and "--device cuda" in out
    assert sum(s.limit_s for s in script.steps(989.0)) > 540  # the budget, not the sum of the limits, bounds a run


@pytest.mark.parametrize(
    "argv, message",
    [(["--budget", "0", "--dry-run"], "--budget"), (["--peak-tflops", "-1", "--dry-run"], "--peak-tflops"),
     ([], "--out"), (["--only", "nope", "--dry-run"], "invalid choice")],
)
def test_bad_arguments_are_one_line_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        load_script("gpu_checks").main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_without_a_gpu_it_stops_before_running_anything(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as e:
        load_script("gpu_checks").main(["--out", str(tmp_path / "run")])
    assert e.value.code == 2 and "no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_refuses_a_folder_that_holds_files(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    (tmp_path / "old.txt").write_text("earlier results")
    with pytest.raises(SystemExit):
        load_script("gpu_checks").main(["--out", str(tmp_path)])
    assert "not an empty folder" in capsys.readouterr().err


def test_the_loop_records_every_step_and_survives_failures_and_timeouts(tmp_path, monkeypatch):
    script = load_script("gpu_checks")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Stand-in GPU")
    py = sys.executable
    monkeypatch.setattr(script, "steps", lambda peak: [
        script.Step("ok", 30, (py, "-c", "print('measured 1.0')"), "a check that passes"),
        script.Step("fails", 30, (py, "-c", "import sys; print('boom'); sys.exit(3)"), "a check that fails"),
        script.Step("slow", 1, (py, "-c", "import time; time.sleep(30)"), "a check that runs out of time"),
        script.Step("last", 30, (py, "-c", "print('still runs')"), "the next check"),
    ])
    out = tmp_path / "run"
    assert script.main(["--out", str(out), "--budget", "100"]) == 1
    assert (out / "ok.txt").read_text() == "measured 1.0\n" and (out / "last.txt").read_text() == "still runs\n"
    summary = (out / "summary.md").read_text()
    assert "Stand-in GPU" in summary
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1] for line in summary.splitlines()
            if line.startswith("| ") and not line.startswith("| step")}
    assert rows == {"ok": "0", "fails": "3", "slow": "timeout", "last": "0"}
