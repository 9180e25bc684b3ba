"""examples/finetune.py and examples/evaluate.py end to end, chained after a tiny pre-training run."""

import importlib.util
import json
from pathlib import Path

import pytest

from hoimask._checks import FileFormatError
from hoimask.engine import load_checkpoint, save_checkpoint

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUIET = ["--no-progress", "--no-tensorboard"]


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_finetune_requires_a_weight_source(capsys):
    finetune = _load("finetune")
    with pytest.raises(SystemExit) as info:
        finetune.main(["--output-dir", "unused"])
    assert info.value.code == 2
    assert "--encoder PATH" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        finetune.main(["--encoder", "x.pt", "--no-pretrain"])


def test_evaluate_help(capsys):
    with pytest.raises(SystemExit) as info:
        _load("evaluate").main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "--checkpoint" in text and "--protocol" in text and "--hand-only" in text


def test_evaluate_rejects_a_file_that_is_not_a_finetuned_model(tmp_path):
    path = save_checkpoint(tmp_path / "encoder.pt", {"encoder": {}, "encoder_config": {}, "step": 0})
    with pytest.raises(FileFormatError, match="'model' entry"):
        _load("evaluate").load_model(path)


@pytest.mark.slow
def test_pretrain_finetune_evaluate_chain(tmp_path, capsys):
    small = ["--batch-size", "2", "--num-samples", "4", "--log-every", "1"]
    assert _load("train_maskhoi").main([*QUIET, *small, "--steps", "2", "--output-dir", str(tmp_path / "pre")]) == 0
    encoder = tmp_path / "pre" / "encoder.pt"
    finetune = _load("finetune")
    assert finetune.main([*QUIET, *small, "--steps", "2", "--encoder", str(encoder),
                          "--output-dir", str(tmp_path / "ft")]) == 0
    printed = capsys.readouterr().out
    assert "encoder from" in printed and "pre-trained 2 steps" in printed
    state = load_checkpoint(tmp_path / "ft" / "model.pt")
    pre = load_checkpoint(encoder)["encoder"]
    # fine-tuning started from the pre-trained encoder: after 2 small steps it is still close to it
    key = "patch_embed.proj.weight"
    drift = (state["model"][f"encoder.{key}"] - pre[key]).abs().max()
    assert drift < 0.05
    evaluate = _load("evaluate")
    out_json = tmp_path / "eval.json"
    assert evaluate.main(["--checkpoint", str(tmp_path / "ft" / "model.pt"), "--num-samples", "4",
                          "--batch-size", "2", "--output", str(out_json)]) == 0
    printed = capsys.readouterr().out
    assert "Table I" in printed and "PAMJE" in printed
    assert "constant predictors" in printed and "model / mean_pose" in printed
    results = json.loads(out_json.read_text())
    assert results["num_samples"] == 4 and results["pa_mje"] > 0
    assert results["root_depth"] == "ground-truth"  # HOISDF's anchor by default
    # the constants fitted on the training split, evaluated on the same samples, with the ratios
    assert set(results["baselines"]) == {"mean_pose", "wrist"}
    assert results["baselines"]["mean_pose"]["num_samples"] == 4
    ratio = results["ratios"]["mean_pose"]["rr_mje"]
    assert ratio == pytest.approx(results["rr_mje"] / results["baselines"]["mean_pose"]["rr_mje"])
    assert "baselines" in load_checkpoint(tmp_path / "ft" / "model.pt")
