"""examples/train_unihope.py: a two-step run writes a model.pt that rebuilds; bad flags are one-line usage errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from hoimask.engine import load_checkpoint, save_checkpoint, warmup_cosine_factor
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
    assert state["crop_padding"] == 1.3  # the tiny recipe frames synthetic scenes as DexYCB's; evaluate.py reads it
    model = UniHOPE.from_checkpoint_state(state)
    with torch.no_grad():
        pred = model.predict(torch.rand(1, 3, model.config.img_size, model.config.img_size))
    assert pred["joints"].shape == (1, 21, 3) and torch.isfinite(pred["joints"]).all()
    assert (out / "checkpoints").is_dir() and (out / "log.jsonl").is_file()


def test_step_decay_warms_up_linearly_then_decays_in_steps():
    """lr = base · min(1, (step + 1) / warm-up) · 0.7^⌊step / step_size⌋, stepped once per optimisation step."""
    module = _script()
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=2e-3)
    schedule = module.StepDecaySchedule(optimizer, step_size=10, gamma=0.7, warmup_steps=4)
    seen = []
    for _ in range(25):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    expected = [2e-3 * min(1.0, (k + 1) / 4) * 0.7 ** (k // 10) for k in range(25)]
    assert seen == pytest.approx(expected, rel=1e-12)
    flat = module.StepDecaySchedule(torch.optim.Adam([param], lr=1e-4), step_size=3, gamma=0.7)  # §4: no warm-up
    assert flat.get_last_lr() == pytest.approx([1e-4])


def test_the_tiny_recipe_decays_on_a_cosine(tmp_path, capsys):
    out = tmp_path / "run"
    assert _script().main([*QUIET, *SMALL, "--steps", "3", "--lr", "1e-3", "--output-dir", str(out)]) == 0
    assert "lr 0.001 on a cosine to 0 over 3 steps" in capsys.readouterr().out
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    rates = [r["lr"] for r in records if "lr" in r and "step" in r]
    assert rates == pytest.approx([1e-3, 7.5e-4, 2.5e-4], rel=1e-9)


def test_the_cosine_is_the_engines_warm_up_and_cosine_to_zero(tmp_path):
    """--schedule cosine --warmup-steps N: the engine's warmup_cosine_factor with no floor (min_lr_ratio 0)."""
    out = tmp_path / "run"
    assert _script().main([*QUIET, *SMALL, "--steps", "4", "--lr", "1e-3", "--warmup-steps", "2",
                           "--output-dir", str(out)]) == 0
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    rates = [r["lr"] for r in records if "lr" in r and "step" in r]
    assert rates == pytest.approx([1e-3 * warmup_cosine_factor(k, total_steps=4, warmup_steps=2) for k in range(4)],
                                  rel=1e-9, abs=1e-15)


def test_no_crop_trains_on_whole_frames_and_says_so_in_the_model(tmp_path):
    out = tmp_path / "run"
    assert _script().main([*QUIET, *SMALL, "--no-crop", "--augment-views", "1", "--output-dir", str(out)]) == 0
    assert load_checkpoint(out / "model.pt")["crop_padding"] is None  # evaluate.py then scores whole frames

def _evaluate():
    spec = importlib.util.spec_from_file_location("example_evaluate_unihope", SCRIPT.with_name("evaluate.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_evaluate_scores_a_unihope_run_by_grasp_status(tmp_path, capsys):
    """train_unihope.py -> evaluate.py: the grasp groups and the switcher's accuracy; the object pose is scored
    only where the switcher reports one, and the samples without one are counted."""
    run = tmp_path / "run"
    assert _script().main([*QUIET, *SMALL, "--output-dir", str(run)]) == 0
    evaluate = _evaluate()
    out_json = tmp_path / "eval.json"
    argv = ["--checkpoint", str(run / "model.pt"), "--num-samples", "8", "--batch-size", "4", "--output", str(out_json)]
    assert evaluate.main([*argv, "--pictures", str(tmp_path / "pics")]) == 0
    printed = capsys.readouterr().out
    assert "By grasp status" in printed and "Switcher acc." in printed and "object pose not reported" in printed
    results = json.loads(out_json.read_text())
    assert results["num_samples"] == 8 and 0 <= results["switcher_accuracy"] <= 100
    groups = results["grasping/num_samples"], results["not_grasping/num_samples"]
    assert sum(groups) == 8 and min(groups) >= 1  # the held-out split has both (seeded)
    assert "grasping/switcher_accuracy" in results and "not_grasping/rr_mje" in results
    missing = results["object_not_reported"]
    assert missing["samples"] == missing["grasping"] + missing["not_grasping"]
    assert ("oce" in results) == (missing["samples"] < 7)  # 7 of the 8 test scenes hold an object
    assert (tmp_path / "pics" / "predictions.png").is_file()
    assert results["boxes"] == "ground-truth" and "ground-truth RoI boxes" in printed  # UniHOPE's test protocol
    assert evaluate.main([*argv, "--no-pictures", "--boxes", "predicted"]) == 0
    own = json.loads(out_json.read_text())
    assert own["boxes"] == "predicted" and own["rr_mje"] != results["rr_mje"]
    # the same weights with a switcher that always reports: every object is scored, with ADD-0.5D
    state = load_checkpoint(run / "model.pt")
    state["model"]["switcher.fc2.weight"].zero_()
    state["model"]["switcher.fc2.bias"].fill_(50.0)
    save_checkpoint(run / "always.pt", state)
    argv[1] = str(run / "always.pt")
    assert evaluate.main([*argv, "--no-pictures"]) == 0
    results = json.loads(out_json.read_text())
    assert results["object_not_reported"] == {"samples": 0, "grasping": 0, "not_grasping": 0}
    assert results["oce"] > 0 and 0 <= results["add_0.5d"] <= 100 and "grasping/oce" in results
    assert results["not_grasping/switcher_accuracy"] == 0.0 and results["grasping/switcher_accuracy"] == 100.0


def test_resume_continues_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    script = _script()
    assert script.main([*QUIET, *SMALL, "--output-dir", str(out)]) == 0
    more = ["--steps", "3", *SMALL[2:]]
    assert script.main([*QUIET, *more, "--output-dir", str(out), "--resume"]) == 0
    assert "resumed from step 2" in capsys.readouterr().out
    assert load_checkpoint(out / "model.pt")["step"] == 3


@pytest.fixture(scope="module")
def dexycb_with_twins(tmp_path_factory):
    """A DexYCB fixture whose sequences 0 and 1 have de-occluded twins, the twins' folder and the MANO folder."""
    from hoimask.data.testing import write_dexycb_fixture, write_mano_fixture

    tmp = tmp_path_factory.mktemp("dexycb-twins")
    mano = write_mano_fixture(tmp / "mano")
    root = write_dexycb_fixture(tmp / "dex", mano, deoccluded_root=tmp / "deoccluded")
    return root, tmp / "deoccluded", mano


def test_deoccluded_root_pairs_real_frames(tmp_path, capsys, dexycb_with_twins):
    """--dataset dexycb --deoccluded-root: the run says how many training frames have a twin and logs each log
    step's enhancement/pairs and enhancement/unpaired; model.pt keeps the totals."""
    import warnings

    root, twins, mano = dexycb_with_twins
    run = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixture is smaller than the release; frames without a twin
        assert _script().main([*QUIET, "--steps", "2", "--batch-size", "4", "--log-every", "1", "--baseline-samples",
                               "4", "--dataset", "dexycb", "--data-root", str(root), "--mano-dir", str(mano),
                               "--deoccluded-root", str(twins), "--output-dir", str(run)]) == 0
    printed = capsys.readouterr().out
    state = load_checkpoint(run / "model.pt")
    enhancement = state["enhancement"]
    frames = [line for line in printed.splitlines() if line.startswith("de-occluded twins:")]
    assert len(frames) == 1 and f"{enhancement['twins']} of " in frames[0] and str(twins) in frames[0]
    assert 0 < enhancement["twins"]  # sequence 0 (right-handed) has twins; the others have none
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    counts = [r for r in records if "enhancement/unpaired" in r]
    assert [r["step"] for r in counts] == [1, 2] and all("enhancement/pairs" in r for r in counts)
    assert sum(r["enhancement/unpaired"] for r in counts) == enhancement["unpaired"]
    assert enhancement["unpaired"] + sum(r["enhancement/pairs"] for r in counts) <= 2 * 4
    assert f"{enhancement['unpaired']} samples had no twin" in printed and "no --deoccluded-root" not in printed


@pytest.mark.parametrize("argv, flag", [
    (["--steps", "0"], "--steps"),
    (["--lr", "-1"], "--lr"),
    (["--hand-only-prob", "2"], "--hand-only-prob"),
    (["--dataset", "dexycb"], "--data-root"),
    (["--encoder", "no/such/file.pt"], "--encoder"),
    (["--deoccluded-root", "."], "--deoccluded-root"),  # synthetic scenes render their own twins
    (["--deoccluded-root", "no/such/folder"], "--deoccluded-root"),
    (["--augment-views", "0"], "--augment-views"),
    (["--decay-steps", "0"], "--decay-steps"),
    (["--schedule", "step", "--decay-steps", "100", "--decay-epochs", "2"], "--decay-steps"),  # one decay period
    (["--decay-steps", "100"], "--decay-steps"),  # the tiny recipe's cosine has no period
    (["--schedule", "cosine", "--decay-epochs", "2"], "--decay-epochs"),
    (["--schedule", "linear"], "--schedule"),
    (["--crop-padding", "0.5"], "--crop-padding"),
    (["--crop-padding", "1.2", "--no-crop"], "--no-crop"),
    (["--dataset", "dexycb", "--data-root", ".", "--crop-padding", "1.2"], "--crop-padding"),  # real frames: always
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


def test_decay_steps_decays_the_rate_every_n_steps(tmp_path, capsys):
    """--decay-steps N: lr x0.7 after every N optimisation steps (runs shorter than the epochs of --decay-epochs)."""
    out = tmp_path / "run"
    assert _script().main([*QUIET, *SMALL, "--steps", "3", "--lr", "1e-3", "--schedule", "step", "--decay-steps", "1",
                           "--output-dir", str(out)]) == 0
    assert "lr 0.001 x0.7 every 1 steps" in capsys.readouterr().out
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    rates = [r["lr"] for r in records if "lr" in r and "step" in r]
    assert rates == pytest.approx([1e-3, 7e-4, 4.9e-4], rel=1e-9)
