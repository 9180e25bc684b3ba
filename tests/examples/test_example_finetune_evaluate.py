"""examples/finetune.py and examples/evaluate.py end to end, chained after a tiny pre-training run."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

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
    assert "--pictures" in text and "--no-pictures" in text
    assert "--exclude-objects" in text and "019_pitcher_base" in text  # HOISDF's HO3D default, documented


def _assert_picture(path: Path, *, min_size: tuple[int, int]) -> None:
    """``path`` is a PNG at least ``min_size`` (width, height) with more than a blank page in it."""
    image = Image.open(path)
    assert image.format == "PNG" and image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
    colours = np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0)
    assert len(colours) > 8  # pictures, text and a legend, not an empty canvas


def test_evaluate_rejects_a_file_that_is_not_a_finetuned_model(tmp_path):
    path = save_checkpoint(tmp_path / "encoder.pt", {"encoder": {}, "encoder_config": {}, "step": 0})
    with pytest.raises(FileFormatError, match="'model' entry"):
        _load("evaluate").load_model(path)


@pytest.mark.slow
@pytest.mark.parametrize("model", [None, "hoisdf"])  # None: the default, PoseRegressionModel
def test_pretrain_finetune_evaluate_chain(tmp_path, capsys, model):
    small = ["--batch-size", "2", "--num-samples", "4", "--log-every", "1"]
    assert _load("train_maskhoi").main([*QUIET, *small, "--steps", "2", "--output-dir", str(tmp_path / "pre")]) == 0
    encoder = tmp_path / "pre" / "encoder.pt"
    finetune = _load("finetune")
    choice = [] if model is None else ["--model", model]
    assert finetune.main([*QUIET, *small, *choice, "--steps", "2", "--encoder", str(encoder),
                          "--output-dir", str(tmp_path / "ft")]) == 0
    printed = capsys.readouterr().out
    assert "encoder from" in printed and "pre-trained 2 steps" in printed
    assert ("fine-tuning HOISDF" if model == "hoisdf" else "fine-tuning PoseRegressionModel") in printed
    # both training scripts draw their logged losses beside the logs; pre-training labels its mask picture
    for run in ("pre", "ft"):
        _assert_picture(tmp_path / run / "loss_curves.png", min_size=(600, 300))
    assert f"loss curves: {tmp_path / 'ft' / 'loss_curves.png'}" in printed
    _assert_picture(tmp_path / "pre" / "masks.png", min_size=(4 * 128 + 50, 4 * 128 + 50))  # + titles, legend
    state = load_checkpoint(tmp_path / "ft" / "model.pt")
    pre = load_checkpoint(encoder)["encoder"]
    # fine-tuning started from the pre-trained encoder: after 2 small steps it is still close to it
    key = "patch_embed.proj.weight"
    prefix = "backbone.encoder." if model == "hoisdf" else "encoder."
    drift = (state["model"][f"{prefix}{key}"] - pre[key]).abs().max()
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
    # the pictures, by default in a folder named after the results JSON, beside it
    pictures = tmp_path / "eval-pictures"
    assert sorted(p.name for p in pictures.iterdir()) == ["error_by_occlusion.png", "predictions.png"]
    assert f"picture: {pictures / 'predictions.png'}" in printed
    _assert_picture(pictures / "predictions.png", min_size=(3 * 256, 4 * 256))  # 4 samples x 3 columns, 2x enlarged
    _assert_picture(pictures / "error_by_occlusion.png", min_size=(400, 300))
    # the constants fitted on the training split, evaluated on the same samples, with the ratios
    assert set(results["baselines"]) == {"mean_pose", "wrist"}
    assert results["baselines"]["mean_pose"]["num_samples"] == 4
    ratio = results["ratios"]["mean_pose"]["rr_mje"]
    assert ratio == pytest.approx(results["rr_mje"] / results["baselines"]["mean_pose"]["rr_mje"])
    assert "baselines" in load_checkpoint(tmp_path / "ft" / "model.pt")
    # the pose recipe frames synthetic scenes like real frames; evaluate.py crops its test scenes alike
    padding = None if model == "hoisdf" else 1.3
    assert state["crop_padding"] == padding and results["crop_padding"] == padding


@pytest.mark.parametrize("flags, message", [
    (["--crop-padding", "0.9"], "argument --crop-padding: expected a number >= 1"),
    (["--crop-padding", "1.2", "--no-crop"], "not allowed with argument"),
    (["--no-crop", "--dataset", "dexycb"], "argument --no-crop: synthetic data only"),
])
def test_crop_flags_are_checked(capsys, flags, message):
    with pytest.raises(SystemExit) as info:
        _load("finetune").main(["--no-pretrain", "--output-dir", "unused", *flags])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_backbone_needs_the_hoisdf_model(capsys):
    with pytest.raises(SystemExit) as info:
        _load("finetune").main(["--no-pretrain", "--backbone", "resnet50", "--output-dir", "unused"])
    assert info.value.code == 2
    assert "--backbone: only with --model hoisdf" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["vit", "resnet50"])
def test_hoisdf_finetune_evaluate_chain(tmp_path, capsys, backbone):
    small = ["--batch-size", "2", "--num-samples", "4", "--log-every", "1", "--baseline-samples", "4"]
    run = tmp_path / "hoisdf"
    assert _load("finetune").main([*QUIET, *small, "--steps", "2", "--model", "hoisdf", "--backbone", backbone,
                                   "--no-pretrain", "--output-dir", str(run)]) == 0
    assert "fine-tuning HOISDF" in capsys.readouterr().out
    state = load_checkpoint(run / "model.pt")
    assert state["model_type"] == "hoisdf" and state["hoisdf_config"]["backbone"] == backbone
    # the tiny recipe: lr 1e-3 warmed up over a tenth of the run (rounded up), no dropout
    train = json.loads((run / "hoimask_run.json").read_text())["train_config"]
    assert (train["lr"], train["warmup_steps"]) == (1e-3, 1)
    assert state["hoisdf_config"]["dropout"] == state["hoisdf_config"]["sdf_dropout"] == 0.0
    evaluate = _load("evaluate")
    out_json = tmp_path / "eval.json"
    pictures = ["--pictures", str(tmp_path / "pics")] if backbone == "vit" else ["--no-pictures"]
    assert evaluate.main(["--checkpoint", str(run / "model.pt"), "--num-samples", "4", "--batch-size", "2",
                          "--output", str(out_json), *pictures]) == 0
    results = json.loads(out_json.read_text())
    assert results["num_samples"] == 4 and results["oce"] > 0 and "mean_pose" in results["ratios"]
    assert not (tmp_path / "eval-pictures").exists()  # a folder of one's choice, or none
    if backbone == "vit":
        _assert_picture(tmp_path / "pics" / "predictions.png", min_size=(3 * 256, 4 * 256))
        assert (tmp_path / "pics" / "error_by_occlusion.png").is_file()
    else:
        assert not (tmp_path / "pics").exists()
    # HOISDF's fields are centred on the ground-truth root: no prediction without it
    assert evaluate.main(["--checkpoint", str(run / "model.pt"), "--num-samples", "4",
                          "--root-depth", "predicted", "--output", str(out_json)]) == 2
    assert "--root-depth" in capsys.readouterr().err
    # only UniHOPE takes RoI boxes: the flag is refused for HOISDF, naming it
    assert evaluate.main(["--checkpoint", str(run / "model.pt"), "--num-samples", "4",
                          "--boxes", "predicted", "--output", str(out_json)]) == 2
    assert "--boxes" in capsys.readouterr().err


def test_hoisdf_layer_decay_counts_the_backbones_vit_blocks():
    from hoimask.engine import build_optimizer
    from hoimask.models import HOISDF

    finetune = _load("finetune")
    model = HOISDF.from_preset("tiny")
    opt = build_optimizer(model, lr=1.0, layer_decay=0.5, **finetune.layer_decay_layers(model))
    scale = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    depth = model.config.depth
    named = dict(model.named_parameters())
    assert scale[id(named["backbone.encoder.patch_embed.proj.weight"])] == 0.5 ** (depth + 1)
    assert scale[id(named["backbone.encoder.blocks.0.attn.qkv.weight"])] == 0.5 ** depth
    assert max(scale.values()) == 1.0  # decoders and heads at the full rate


def test_layer_decay_is_refused_for_the_resnet_backbone(capsys):
    with pytest.raises(SystemExit) as info:
        _load("finetune").main(["--no-pretrain", "--model", "hoisdf", "--backbone", "resnet50", "--layer-decay", "0.75",
                                "--output-dir", "unused"])
    assert info.value.code == 2
    assert "argument --layer-decay" in capsys.readouterr().err


def test_hoisdf_finetune_loads_the_maskhoi_encoder(tmp_path):
    from hoimask.models import MaskHOI

    encoder = MaskHOI.from_preset("tiny")
    path = save_checkpoint(tmp_path / "encoder.pt", {"encoder": encoder.encoder_state_dict(), "step": 7})
    args = _load("finetune").parse_args(["--model", "hoisdf", "--encoder", str(path), "--output-dir", "x"])
    model, origin = _load("finetune").build_model(args)
    assert "pre-trained 7 steps" in origin
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(v, encoder.encoder_state_dict()[k])


def test_tiny_pose_recipe_sets_its_loss_settings_from_scratch_and_from_an_encoder(tmp_path):
    from hoimask.models import MaskHOI

    finetune = _load("finetune")
    pre = MaskHOI.from_preset("tiny")
    sizes = {k: getattr(pre.config, k) for k in ("img_size", "patch_size", "embed_dim", "depth", "num_heads")}
    path = save_checkpoint(tmp_path / "encoder.pt", {"encoder": pre.encoder_state_dict(), "encoder_config": sizes})
    for source in (["--no-pretrain"], ["--encoder", str(path)]):
        model, _ = finetune.build_model(finetune.parse_args([*source, "--output-dir", "x"]))
        assert model.heatmap_sigma == 0.75 and model.loss_weights["keypoint_depth"] == 5.0
        assert model.loss_weights["keypoint_joints"] == 10.0  # the other weights keep their defaults
    head, _ = finetune.build_model(finetune.parse_args(["--no-pretrain", "--model", "handmim-head", "--output-dir", "x"]))
    assert not hasattr(head, "heatmap_sigma")  # HandMIM's head has no heatmaps: the settings are the pose model's


def test_ho3d_evaluation_split_scores_the_objects(tmp_path):
    """HO3D's evaluation split hides the hand joints but has object poses: evaluate() scores the objects."""
    import warnings

    from hoimask.data.testing import write_ho3d_fixture, write_mano_fixture
    from hoimask.engine.datasets import build_dataset
    from hoimask.hand import MANOLayer
    from hoimask.models import PoseRegressionModel

    evaluate = _load("evaluate")
    mano = write_mano_fixture(tmp_path / "mano")
    root = write_ho3d_fixture(tmp_path / "ho3d", mano, evaluation_object_pose=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        test = build_dataset("ho3d", image_size=32, train=False, root=root, mano_dir=mano, num_sdf_points=0,
                             num_object_points=16)
    torch.manual_seed(0)
    model = PoseRegressionModel(img_size=32, patch_size=16, embed_dim=32, depth=1, num_heads=2, head_dim=32,
                                hand_layer=MANOLayer(Path(mano) / "MANO_RIGHT.pkl"))
    results = evaluate.evaluate(model.eval(), test, batch_size=4).compute()
    assert results["num_samples"] == len(test)
    assert "oce" in results and "add_s" in results  # the objects are scored
    assert "mje" not in results and "rr_mje" not in results  # the hidden hands are not


@pytest.fixture
def ho3d_checkpoint(tmp_path):
    """An HO3D fixture whose evaluation frame (object pose given) holds 019_pitcher_base, and a tiny model.pt."""
    import pickle
    import shutil

    from hoimask.data.testing import write_ho3d_fixture, write_mano_fixture
    from hoimask.hand import MANOLayer
    from hoimask.models import PoseRegressionModel

    mano = write_mano_fixture(tmp_path / "mano")
    root = write_ho3d_fixture(tmp_path / "ho3d", mano, evaluation_object_pose=True)
    shutil.copytree(root / "models" / "003_cracker_box", root / "models" / "019_pitcher_base")
    meta_path = root / "evaluation" / "SEQB" / "meta" / "0000.pkl"
    meta = pickle.loads(meta_path.read_bytes())
    meta_path.write_bytes(pickle.dumps({**meta, "objName": "019_pitcher_base"}, protocol=2))
    torch.manual_seed(0)
    model = PoseRegressionModel(img_size=32, patch_size=16, embed_dim=32, depth=1, num_heads=2,
                                hand_layer=MANOLayer(Path(mano) / "MANO_RIGHT.pkl"))  # default head_dim, as finetune.py
    path = save_checkpoint(tmp_path / "model.pt", {"model": model.state_dict(), "model_type": "pose",
                                                   "encoder_config": model.encoder_config, "step": 0})
    return path, root, mano


@pytest.mark.parametrize("flags, excluded", [([], {"019_pitcher_base": 1}), (["--exclude-objects"], {}),
                                             (["--exclude-objects", "none"], {}),
                                             (["--exclude-objects", "003_cracker_box"], {"003_cracker_box": 0})])
def test_ho3d_evaluation_leaves_out_hoisdfs_pitcher_by_default(tmp_path, capsys, ho3d_checkpoint, flags, excluded):
    """HOISDF's HO3D protocol: 019_pitcher_base feeds no object metric unless --exclude-objects says otherwise."""
    checkpoint, root, mano = ho3d_checkpoint
    out_json = tmp_path / "eval.json"
    assert _load("evaluate").main(["--checkpoint", str(checkpoint), "--dataset", "ho3d", "--data-root", str(root),
                                   "--mano-dir", str(mano), "--batch-size", "1", "--output", str(out_json),
                                   "--no-pictures", "--submission", str(tmp_path / "pred.zip"), *flags]) == 0
    printed = capsys.readouterr().out
    results = json.loads(out_json.read_text())
    assert results["num_samples"] == 1 and results["exclude_objects"] == excluded
    if excluded == {"019_pitcher_base": 1}:  # the default: HOISDF's choice, said so
        assert "object metrics exclude 019_pitcher_base (HOISDF's HO3D protocol" in printed
        assert "affected: 019_pitcher_base: 1 sample" in printed
        assert results["excluded_objects_by_name"] == 1 and "oce" not in results and "add_s" not in results
    elif excluded:  # named on the command line: the pitcher is scored, the absent object affects nothing
        assert "object metrics exclude 003_cracker_box; affected: 003_cracker_box: 0 samples" in printed
        assert results["excluded_objects_by_name"] == 0 and "oce" in results
    else:  # turned off: the pitcher is scored
        assert "object metrics exclude" not in printed
        assert "excluded_objects_by_name" not in results and "oce" in results and "add_s" in results


def test_unihope_objects_are_scored_only_where_the_switcher_reports_them():
    """A UniHOPE whose switcher reports half the objects: evaluate() feeds the Evaluator the samples in dataset
    order, scores the model's and the constants' object poses on the reported samples only, counts the others,
    and passes the grasp labels and probabilities (switcher accuracy)."""
    from hoimask.data import collate
    from hoimask.engine.datasets import build_dataset, fit_constant_baselines
    from hoimask.models import UniHOPE

    evaluate = _load("evaluate")
    torch.manual_seed(0)
    model = UniHOPE.from_preset("tiny", img_size=64).eval()
    test = build_dataset("synthetic", image_size=64, train=False, num_samples=8, num_sdf_points=0,
                         num_object_points=64, hand_only_prob=0.0)
    train = build_dataset("synthetic", image_size=64, train=True, num_samples=8, num_sdf_points=0,
                          num_object_points=1, hand_only_prob=0.0)
    batch = collate([test[i] for i in range(len(test))])
    with torch.no_grad():  # centre the switcher's logits: about half of the samples report an object pose
        logit = model.predict(batch["image"], batch["K"])["grasp_logit"]
        model.switcher.fc2.bias -= logit.median()
    collected, counts = {}, {}
    ev, constants = evaluate.evaluate(model, test, batch_size=8, baselines=fit_constant_baselines(train),
                                      root_depth="ground-truth", collect=collected, not_reported=counts)
    pred_t = torch.cat(collected["object_translation"])
    posed = torch.isfinite(pred_t).all(dim=1)
    assert 0 < int(posed.sum()) < 8 and counts["samples"] == int((~posed).sum())
    assert counts["grasping"] + counts["not_grasping"] == counts["samples"]
    # the predictions reach the evaluator in dataset order, though the batch was fed in runs
    assert np.allclose(np.concatenate(ev._pred_joints), torch.cat(collected["joints"]).numpy(), atol=1e-6)
    results = ev.compute()
    gt_t = batch["object_translation"].double()
    expected = 1000 * (pred_t[posed] - gt_t[posed]).norm(dim=-1).mean()
    assert results["oce"] == pytest.approx(float(expected), rel=1e-6)  # OCE over the reported samples only
    const = fit_constant_baselines(train).predict(8, dtype=torch.float64, root=batch["joints_3d"][:, 0].double())
    const_t = const["mean_pose"]["object_translation"]
    expected = 1000 * (const_t[posed] - gt_t[posed]).norm(dim=-1).mean()
    assert constants["mean_pose"].compute()["oce"] == pytest.approx(float(expected), rel=1e-6)
    assert "switcher_accuracy" in results and results["num_samples"] == 8
    assert results["grasping/num_samples"] + results.get("not_grasping/num_samples", 0) == 8
    assert evaluate.runs(torch.tensor([True, True, False, True])) == [(0, 2, True), (2, 3, False), (3, 4, True)]


def test_unihope_is_evaluated_in_the_ground_truth_boxes_or_its_own():
    """predict_batch(boxes="ground-truth") crops UniHOPE's RoIs in the annotation boxes (its released test
    protocol): the 2D joints' box, else the dataset's hand box (HO3D's evaluation split), and the projected
    object box, each enlarged by box_scale; boxes="predicted" uses the box head's; anything else is refused."""
    from hoimask._checks import ValueRangeError
    from hoimask.data import collate
    from hoimask.engine.datasets import build_dataset
    from hoimask.models import UniHOPE
    from hoimask.models.unihope_targets import ground_truth_boxes

    evaluate = _load("evaluate")
    torch.manual_seed(0)
    model = UniHOPE.from_preset("tiny", img_size=64).eval()
    test = build_dataset("synthetic", image_size=64, train=False, num_samples=4, num_sdf_points=0,
                         num_object_points=64, hand_only_prob=0.0)
    batch = collate([test[i] for i in range(len(test))])
    hand, obj, _ = ground_truth_boxes(batch, batch["K"], (64, 64), model.config.box_scale)
    given = evaluate.predict_batch(model, batch, boxes="ground-truth")
    assert torch.equal(given["hand_box"], hand) and torch.equal(given["object_box"], obj)
    own = evaluate.predict_batch(model, batch, boxes="predicted")
    assert not torch.allclose(own["hand_box"], hand)
    # no 2D or 3D joints (HO3D's evaluation split): the dataset's hand box, enlarged alike
    box = torch.tensor([[10.0, 12.0, 30.0, 40.0]]).expand(4, 4)
    blind = {**batch, "joints_2d": torch.full_like(batch["joints_2d"], float("nan")),
             "joints_3d": torch.full_like(batch["joints_3d"], float("nan")), "box": box}
    s = model.config.box_scale
    expected = torch.tensor([20 - 10 * s, 26 - 14 * s, 20 + 10 * s, 26 + 14 * s]).expand(4, 4)
    assert torch.allclose(evaluate.unihope_boxes(model, blind)[0], expected)
    with pytest.raises(ValueRangeError, match="'boxes'"):
        evaluate.predict_batch(model, batch, boxes="gt")
