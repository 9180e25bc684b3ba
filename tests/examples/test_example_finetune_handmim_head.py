"""examples/finetune.py --model handmim-head (HandMIM's fine-tuning model) and examples/evaluate.py on its model.pt."""

import importlib.util
import json
from pathlib import Path

import torch

from hoimask.engine import load_checkpoint, save_checkpoint

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUIET = ["--no-progress", "--no-tensorboard"]


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}_handmim_head", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_handmim_head_is_a_model_choice_with_its_own_run_directory():
    finetune = _load("finetune")
    args = finetune.parse_args(["--no-pretrain", "--model", "handmim-head"])
    assert args.output_dir == Path("runs") / "finetune-handmim-head-tiny"
    assert "handmim-head" in finetune.build_parser().format_help()


def test_handmim_encoder_finetune_evaluate_chain(tmp_path, capsys):
    """A HandMIM encoder.pt (as train_handmim.py writes it) -> 2 fine-tuning steps -> evaluation: hand metrics
    and ratios to the constants, no object metric (the model is hand-only)."""
    from hoimask.models import HandMIM

    torch.manual_seed(0)
    pre = HandMIM.from_preset("tiny")
    encoder = save_checkpoint(tmp_path / "encoder.pt", {
        "encoder": pre.encoder_state_dict(),
        "encoder_config": {k: getattr(pre.config, k) for k in ("img_size", "patch_size", "embed_dim", "depth",
                                                              "num_heads")},
        "step": 3,
    })
    small = ["--batch-size", "2", "--num-samples", "4", "--log-every", "1", "--baseline-samples", "4"]
    run = tmp_path / "ft"
    assert _load("finetune").main([*QUIET, *small, "--steps", "2", "--model", "handmim-head", "--encoder",
                                   str(encoder), "--output-dir", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "fine-tuning HandMIMPoseModel" in printed and "pre-trained 3 steps" in printed
    state = load_checkpoint(run / "model.pt")
    assert state["model_type"] == "handmim-head" and state["head_config"]["iterations"] == 3
    drift = (state["model"]["encoder.patch_embed.proj.weight"]
             - pre.encoder_state_dict()["patch_embed.proj.weight"]).abs().max()
    assert drift < 0.05  # started from the HandMIM encoder
    out_json = tmp_path / "eval.json"
    assert _load("evaluate").main(["--checkpoint", str(run / "model.pt"), "--num-samples", "4", "--batch-size", "2",
                                   "--output", str(out_json), "--pictures", str(tmp_path / "pics")]) == 0
    printed = capsys.readouterr().out
    assert "Table I" in printed and "model / mean_pose" in printed
    results = json.loads(out_json.read_text())
    assert results["num_samples"] == 4 and results["rr_mje"] > 0 and results["pa_mme"] > 0
    assert not {"oce", "mce", "add_s", "ome", "excluded_objects"} & set(results)  # absent, not zeros
    assert "rr_mje" in results["ratios"]["mean_pose"] and "oce" not in results["ratios"]["mean_pose"]
    assert "oce" not in results["baselines"]["mean_pose"]  # the constants are scored on the hand alone too
    assert (tmp_path / "pics" / "predictions.png").is_file()
    assert (tmp_path / "pics" / "error_by_occlusion.png").is_file()


def test_dexycb_results_of_a_hand_only_model_are_the_hpe_file_alone(tmp_path, monkeypatch):
    """``evaluate.py --dexycb-results`` with a model that predicts no object pose: no BOP file, said so."""
    import numpy as np

    import hoimask.data.dexycb_ids as dexycb_ids

    ids = {"image_id": np.arange(3), "mirrored": np.zeros(3, dtype=bool), "scene_id": np.ones(3, dtype=np.int64),
           "im_id": np.arange(3), "obj_id": np.ones(3, dtype=np.int64), "is_bop_target": np.ones(3, dtype=bool)}
    monkeypatch.setattr(dexycb_ids, "dexycb_toolkit_ids", lambda dataset: ids)  # a complete S0 split needs 100 sequences
    lines = _load("evaluate").write_dexycb_results(tmp_path, None, {"joints": [torch.rand(2, 21, 3), torch.rand(1, 21, 3)]})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hpe_s0_test.txt"]
    assert len((tmp_path / "hpe_s0_test.txt").read_text().splitlines()) == 3
    assert "no BOP results" in lines[0] and "evaluate_hpe.py" in lines[1] and len(lines) == 2
