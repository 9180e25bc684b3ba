"""HandMIMPoseModel: HandMIM's fine-tuning model (§2.5) — ViT + keypoint feedback loop -> MANO (θ, β, t)."""

import importlib.util
from pathlib import Path

import pytest
import torch
from learnability_checks import assert_varies_like_targets

from hoimask._checks import FileFormatError, ShapeError, ValueRangeError
from hoimask.geometry import project
from hoimask.hand import ProceduralHand
from hoimask.models import HANDMIM_HEAD_LOSS_WEIGHTS, HandMIMPoseModel

SMALL = dict(img_size=32, patch_size=16, embed_dim=32, depth=1, num_heads=2, channels=8, hidden=32)
LOOP_TERMS = {"mano_params", "hand_joints", "hand_vertices", "hand_root", "keypoint_2d"}
KEYPOINT_TERMS = {"keypoint_heatmap", "keypoint_depth", "keypoint_joints"}
TERMS = LOOP_TERMS | KEYPOINT_TERMS  # the default init="keypoints"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _batch(B=3):
    g = torch.Generator().manual_seed(0)
    pose = 0.2 * torch.randn(B, 16, 3, generator=g)
    shape = 0.5 * torch.randn(B, 10, generator=g)
    hand = ProceduralHand()(pose, shape, torch.tensor([[0.0, 0.0, 0.5]]).expand(B, 3))
    K = torch.tensor([[40.0, 0, 16], [0, 40.0, 16], [0, 0, 1]]).expand(B, 3, 3).clone()
    return {"image": torch.rand(B, 3, 32, 32, generator=g), "K": K, "joints_3d": hand.joints,
            "joints_2d": project(hand.joints, K), "hand_pose": pose, "hand_shape": shape}


def _model(**kw) -> HandMIMPoseModel:
    torch.manual_seed(0)
    return HandMIMPoseModel(**{**SMALL, **kw})


@pytest.mark.parametrize("init", ["keypoints", "pooled"])
def test_forward_contract_hand_only_predictions_and_terms(init):
    model = _model(init=init)
    batch = _batch()
    out = model(batch)
    assert set(out) == {"loss", "terms", "predictions"}
    assert set(out["terms"]) == (TERMS if init == "keypoints" else LOOP_TERMS)
    p = out["predictions"]
    assert p["joints"].shape == (3, 21, 3) and p["root"].shape == (3, 3) and p["keypoints_2d"].shape == (3, 21, 2)
    assert p["vertices"].shape[0] == 3 and p["vertices"].shape[2] == 3
    assert p["rotation_6d"].shape == (3, 16, 6) and p["shape"].shape == (3, 10)
    assert p["joints_per_iteration"].shape == (3, 4, 21, 3)  # the initial estimate and 3 rectifications
    torch.testing.assert_close(p["joints_per_iteration"][:, -1], p["joints"])
    torch.testing.assert_close(p["joints"][:, 0], p["root"])  # camera frame: the wrist sits at t
    torch.testing.assert_close(p["keypoints_2d"], project(p["joints"], batch["K"]))
    assert not any(k.startswith("object") for k in p)  # hand-only: evaluate.py reports no object metric
    if init == "keypoints":
        assert p["keypoint_joints"].shape == (3, 21, 3) and p["heatmaps"].shape == (3, 21, 8, 8)
        assert p["keypoint_rotations"].shape == (3, 16, 3, 3)
    else:
        assert "keypoint_joints" not in p and model.keypoint_head is None
    expected = sum(HANDMIM_HEAD_LOSS_WEIGHTS[k] * v for k, v in out["terms"].items())
    torch.testing.assert_close(out["loss"], expected)
    out["loss"].backward()
    assert model.encoder.patch_embed.proj.weight.grad.abs().sum() > 0


def test_terms_are_summed_over_every_estimate_of_the_loop():
    """Intermediate supervision (PyMAF): each term is the sum of the term of every estimate."""
    model = _model().eval()
    batch = _batch()
    with torch.no_grad():
        terms = model(batch)["terms"]
        estimates = model.estimates(batch["image"], batch["K"], batch["joints_3d"][:, 0, 2])  # lift_depth
    gt = batch["joints_3d"]
    root = sum((e.translation - gt[:, 0]).abs().mean() for e in estimates)
    uv = sum((e.keypoints_2d - batch["joints_2d"]).abs().sum(-1).mean() / 32 for e in estimates)
    rel = sum(((e.joints - e.joints[:, :1]) - (gt - gt[:, :1])).abs().mean() for e in estimates)
    torch.testing.assert_close(terms["hand_root"], root)
    torch.testing.assert_close(terms["keypoint_2d"], uv)
    torch.testing.assert_close(terms["hand_joints"], rel)
    # joints_2d defaults to the ground-truth 3D joints projected with K
    with torch.no_grad():
        without = model({k: v for k, v in batch.items() if k != "joints_2d"})["terms"]
    torch.testing.assert_close(without["keypoint_2d"], terms["keypoint_2d"])


def test_given_root_depth_slides_the_hand_along_the_wrist_ray():
    """init="pooled": the hand keeps its shape and slides along its wrist's ray to the given depth."""
    model = _model(init="pooled").eval()
    batch = _batch(2)
    with torch.no_grad():
        own = model.predict(batch["image"], batch["K"])
        given = model.predict(batch["image"], batch["K"], root_depth=torch.tensor([0.4, 0.9]))
    torch.testing.assert_close(given["root"][:, 2], torch.tensor([0.4, 0.9]))
    torch.testing.assert_close(given["root"] / given["root"][:, 2:], own["root"] / own["root"][:, 2:])  # same ray
    torch.testing.assert_close(given["joints"] - given["root"][:, None], own["joints"] - own["root"][:, None])
    torch.testing.assert_close(given["vertices"] - given["root"][:, None], own["vertices"] - own["root"][:, None])
    torch.testing.assert_close(given["keypoints_2d"], project(given["joints"], batch["K"]))
    torch.testing.assert_close(given["translation"], own["translation"])  # the loop's own estimate
    with pytest.raises(ShapeError, match="root_depth"):
        model.predict(batch["image"], batch["K"], root_depth=torch.ones(3))


def test_given_root_depth_lifts_the_keypoints_where_the_loop_starts():
    """init="keypoints": the 2.5D keypoints are lifted at the given wrist depth (as PoseRegressionModel's), so
    the rotations the loop starts from are those of the keypoints at that depth; the final hand sits there."""
    from hoimask.hand import rotations_from_joints
    from hoimask.nn import lift_keypoints

    model = _model().eval()
    batch = _batch(2)
    depth = torch.tensor([0.4, 0.9])
    with torch.no_grad():
        own = model.predict(batch["image"], batch["K"])
        given = model.predict(batch["image"], batch["K"], root_depth=depth)
    lifted = given["keypoint_joints"]
    torch.testing.assert_close(lifted[:, 0, 2], depth)
    torch.testing.assert_close(project(lifted, batch["K"]), project(own["keypoint_joints"], batch["K"]))  # same uv
    torch.testing.assert_close(lifted[..., 2] - lifted[:, :1, 2], given["joint_depth"] - given["joint_depth"][:, :1])
    uv = project(own["keypoint_joints"], batch["K"])
    expected = lift_keypoints(uv, own["joint_depth"] - own["joint_depth"][:, :1], depth, batch["K"])
    torch.testing.assert_close(lifted, expected)
    # (the IK of random keypoints is ill-conditioned: compare it on the very joints, not their recomputation)
    torch.testing.assert_close(given["keypoint_rotations"], rotations_from_joints(model.hand_layer, lifted))
    assert not torch.allclose(given["keypoint_rotations"], own["keypoint_rotations"])  # another depth, another start
    torch.testing.assert_close(given["root"][:, 2], depth)


def test_unannotated_hand_is_left_out_of_every_term():
    batch = _batch()
    for key in ("joints_3d", "joints_2d", "hand_pose", "hand_shape"):
        batch[key] = batch[key].clone()
        batch[key][1] = float("nan")
    model = _model()
    out = model(batch)
    assert torch.isfinite(out["loss"]) and set(out["terms"]) == TERMS
    out["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()  # batch norm from running statistics: per-sample predictions, comparable with the subset
    with torch.no_grad():
        full, alone = model(batch)["terms"], model({k: v[[0, 2]] for k, v in batch.items()})["terms"]
    for name in TERMS:
        torch.testing.assert_close(full[name], alone[name], msg=name)


@pytest.mark.parametrize("lift_depth", ["ground-truth", "predicted"])
def test_training_lifts_the_keypoints_at_the_chosen_wrist_depth(lift_depth):
    """lift_depth="ground-truth": the annotated wrist depth lifts the training keypoints (the depth the evaluation
    gives predict()); an unannotated hand, and lift_depth="predicted", lift at the loop's own initial depth."""
    batch = _batch()
    batch["joints_3d"] = batch["joints_3d"].clone()
    batch["joints_3d"][1] = float("nan")  # unannotated
    batch["joints_3d"][2] += torch.tensor([0.0, 0.0, 0.3])  # a wrist deeper than any the untrained loop guesses
    batch["joints_2d"] = project(batch["joints_3d"], batch["K"])
    model = _model(lift_depth=lift_depth)
    assert model.head_config["lift_depth"] == lift_depth  # stored with the checkpoint's head_config
    model.eval()
    with torch.no_grad():
        lifted = model(batch)["predictions"]["keypoint_joints"]
        own = model.predict(batch["image"], batch["K"])["keypoint_joints"]
    gt = batch["joints_3d"][:, 0, 2]
    with torch.no_grad():
        given = model.predict(batch["image"], batch["K"], root_depth=gt.nan_to_num(0.5))["keypoint_joints"]
    if lift_depth == "ground-truth":
        torch.testing.assert_close(lifted[[0, 2], 0, 2], gt[[0, 2]])
        assert not torch.allclose(lifted[2], own[2])
        torch.testing.assert_close(given[[0, 2]], lifted[[0, 2]])  # predict(root_depth=) lifts where training did
        torch.testing.assert_close(given[1, 0, 2], torch.tensor(0.5))
    else:
        torch.testing.assert_close(lifted[2], own[2])
        torch.testing.assert_close(given, own)  # "predicted": a given depth only places the hand
    torch.testing.assert_close(lifted[1], own[1])  # no annotation: the loop's own depth either way


def test_bad_inputs_raise_typed_errors():
    model = _model()
    with pytest.raises(ShapeError, match="image"):
        model({"joints_3d": torch.zeros(1, 21, 3)})
    with pytest.raises(ValueRangeError, match="no hand target"):
        model({"image": torch.rand(1, 3, 32, 32), "object_translation": torch.zeros(1, 3)})
    with pytest.raises(ValueRangeError, match=r"RGB in \[0, 1\]"):
        model({**_batch(), "image": _batch()["image"] - 0.5})
    with pytest.raises(ShapeError, match="'K'"):
        model.predict(torch.rand(2, 3, 32, 32), torch.eye(3))
    with pytest.raises(ValueRangeError, match="loss_weights.*nope"):
        HandMIMPoseModel(**SMALL, loss_weights={"nope": 1.0})
    with pytest.raises(ValueRangeError, match="loss_weights"):
        HandMIMPoseModel(**SMALL, loss_weights={"hand_root": -1.0})
    with pytest.raises(ValueRangeError, match="'iterations'"):
        HandMIMPoseModel(**SMALL, iterations=0)
    with pytest.raises(ValueRangeError, match="'init'.*keypoints"):
        HandMIMPoseModel(**SMALL, init="mean")
    with pytest.raises(ValueRangeError, match="'heatmap_sigma'"):
        HandMIMPoseModel(**SMALL, heatmap_sigma=0.0)
    with pytest.raises(ValueRangeError, match="'lift_depth'.*ground-truth"):
        HandMIMPoseModel(**SMALL, lift_depth="gt")


def test_the_loop_starts_from_the_swing_ik_of_the_keypoints():
    """init="keypoints": the initial rotations are the IK of the lifted 2.5D keypoints (the pooled regression gives
    β only); the IK is detached, so the keypoint branch learns from its own terms only."""
    from hoimask.geometry import matrix_to_rotation_6d
    from hoimask.hand import layer_pose_from_rotations, swing_inverse_kinematics

    model = _model().eval()
    with torch.no_grad():
        model.regressor.init_params.weight.normal_()  # whatever the pooled rotations are, they are not used
        model.regressor.init_params.weight[96:].zero_()  # β = 0: the initial hand has the rest hand's shape
    batch = _batch()
    estimates, keypoints = model._run(batch["image"], batch["K"])
    lifted = keypoints["keypoint_joints"].detach()
    identity = torch.eye(3).expand(1, 16, 3, 3)
    rest_pose = layer_pose_from_rotations(model.hand_layer, identity)
    rest = model.hand_layer(rest_pose, torch.zeros(1, 10)).joints.expand(3, -1, -1)
    expected = swing_inverse_kinematics(lifted - lifted[:, :1], rest)
    torch.testing.assert_close(estimates[0].rotation_6d, matrix_to_rotation_6d(expected), atol=1e-5, rtol=0)
    # with β = 0 the initial hand's finger bones point along the keypoints' (the palm is a least-squares fit)
    first = estimates[0].joints - estimates[0].joints[:, :1]
    target = lifted - lifted[:, :1]
    for parent, child in ((5, 6), (6, 7), (7, 8), (9, 10), (1, 2), (19, 20)):
        a, b = first[:, child] - first[:, parent], target[:, child] - target[:, parent]
        torch.testing.assert_close(torch.nn.functional.cosine_similarity(a, b, dim=-1), torch.ones(3),
                                   atol=1e-4, rtol=0)
    model.train()
    out = model(batch)
    out["terms"]["hand_joints"].backward()  # a loop term: no gradient reaches the keypoint branch
    assert all(p.grad is None or not p.grad.any() for p in model.keypoint_head.parameters())


@pytest.mark.parametrize("source", ["handmim", "maskhoi", "mae"])
def test_loads_the_pre_trained_encoders(source):
    """Any encoder the pose model takes: HandMIM's student, MaskHOI's and MAE's encoders."""
    from hoimask.models import MAE, HandMIM, MaskHOI

    torch.manual_seed(0)
    pre = {"handmim": HandMIM, "maskhoi": MaskHOI, "mae": MAE}[source].from_preset("tiny")
    config = getattr(pre, "config", None) or type("C", (), dict(img_size=128, patch_size=16, embed_dim=192,
                                                                  depth=4, num_heads=3))
    model = HandMIMPoseModel.from_encoder_config(config, channels=8, hidden=32)
    state = pre.encoder_state_dict()
    model.load_encoder(state)
    assert all(torch.equal(model.encoder.state_dict()[k], v) for k, v in state.items())
    with pytest.raises(FileFormatError, match="missing"):
        model.load_encoder({})


def _evaluate_module():
    spec = importlib.util.spec_from_file_location("example_evaluate_for_handmim_head", EXAMPLES / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checkpoint_round_trip_through_evaluates_loader_and_no_object_metrics(tmp_path):
    from hoimask.data import SyntheticHOI
    from hoimask.engine import save_checkpoint

    model = _model(iterations=2, max_upsample=2).eval()
    for m in model.modules():  # running statistics that differ from the fresh defaults
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
    path = save_checkpoint(tmp_path / "model.pt", {"model": model.state_dict(), "model_type": "handmim-head",
                                                   "encoder_config": model.encoder_config,
                                                   "head_config": model.head_config})
    evaluate = _evaluate_module()
    loaded = evaluate.load_model(path)
    assert isinstance(loaded, HandMIMPoseModel) and loaded.head_config == model.head_config
    batch = _batch(2)
    with torch.no_grad():
        torch.testing.assert_close(loaded.predict(batch["image"], batch["K"])["vertices"],
                                   model.predict(batch["image"], batch["K"])["vertices"])
    # the evaluator scores the hand and leaves the object metrics out (absent, not zeros), also for the constants
    ds = SyntheticHOI(num_samples=2, image_size=32, seed=5, num_sdf_points=0, num_object_points=16,
                      hand_only_prob=0.0)
    from hoimask.engine.datasets import fit_constant_baselines

    evaluator, constants = evaluate.evaluate(loaded, ds, batch_size=2, baselines=fit_constant_baselines(ds),
                                             root_depth="ground-truth")
    results = evaluator.compute()
    assert results["num_samples"] == 2 and results["rr_mje"] > 0 and results["mme"] > 0
    assert not {"oce", "mce", "add_s", "ome"} & set(results)
    table_1 = evaluator.format_tables().split("\n\n")[1]  # Table I: MJE, RR-MJE, PAMJE, OCE, MCE, ADD-S
    assert [c.strip() for c in table_1.splitlines()[-1].strip("|").split("|")][3:] == ["-", "-", "-"]
    assert all("oce" not in c.compute() for c in constants.values())
    picture = evaluate.prediction_picture(loaded, ds, count=2)
    assert picture.ndim == 3 and picture.shape[-1] == 3
    # a file written before init="keypoints" existed: a pooled-start model whose head_config lacks the new keys
    old = _model(init="pooled").eval()
    head = {k: v for k, v in old.head_config.items()
            if k not in ("init", "keypoint_channels", "heatmap_sigma", "stem_depth")}
    path = save_checkpoint(tmp_path / "old.pt", {"model": old.state_dict(), "model_type": "handmim-head",
                                                 "encoder_config": old.encoder_config, "head_config": head})
    assert evaluate.load_model(path).init == "pooled"
    broken = save_checkpoint(tmp_path / "broken.pt", {"model": {}, "model_type": "handmim-head",
                                                      "encoder_config": model.encoder_config})
    with pytest.raises(FileFormatError, match="handmim-head model"):
        evaluate.load_model(broken)


# --------------------------------------------------------------------------- learnability
@pytest.fixture(scope="module")
def samples() -> dict[str, torch.Tensor]:
    """4 fixed SyntheticHOI(seed=3) scenes as the dataset returns them (RGB in [0, 1]), as in test_learnability.py."""
    from hoimask.data import SyntheticHOI

    ds = SyntheticHOI(num_samples=4, image_size=128, seed=3, num_sdf_points=0, num_object_points=16,
                      hand_only_prob=0.0, not_grasped_prob=0.0)
    return torch.utils.data.default_collate([ds[i] for i in range(4)])


@pytest.mark.slow
def test_learns_every_term_on_four_fixed_samples(samples):
    """The tiny model (MaskHOI's tiny encoder, 128 px) overfits 4 scenes: every term falls 10x or more.

    Measured (init="keypoints", seed 0, 300 steps of AdamW lr 5e-4, one thread): mano_params 7.37 -> 0.044,
    hand_joints 0.256 -> 0.0055, hand_vertices 0.229 -> 0.0051, hand_root 0.74 -> 0.014, keypoint_2d 0.98 ->
    0.040 (each the sum over the 4 estimates of the loop), keypoint_heatmap 4.10 -> 0.031, keypoint_depth
    0.040 -> 0.0023, keypoint_joints 0.051 -> 0.0021 (keypoint_depth 17x is the slowest)."""
    from hoimask.geometry import axis_angle_to_matrix, matrix_to_rotation_6d, rotation_6d_to_matrix

    torch.manual_seed(0)
    model = HandMIMPoseModel()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, betas=(0.9, 0.95), weight_decay=0.0)
    first = None
    for _ in range(300):
        out = model(samples)
        first = first or {k: float(v.detach()) for k, v in out["terms"].items()}
        opt.zero_grad()
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()
    with torch.no_grad():
        out = model(samples)
    last = {k: float(v) for k, v in out["terms"].items()}
    assert set(first) == TERMS
    slow = {k: (round(first[k], 4), round(last[k], 4)) for k in first if not last[k] * 10 <= first[k]}
    assert not slow, f"terms that fell less than 10x (first, last): {slow}"
    pred, joints = out["predictions"], samples["joints_3d"]
    assert_varies_like_targets(pred["joints"] - pred["joints"][:, :1], joints - joints[:, :1], "root-relative joints")
    assert_varies_like_targets(pred["root"], joints[:, 0], "wrist position")
    global_6d = matrix_to_rotation_6d(axis_angle_to_matrix(samples["hand_pose"][:, 0]))
    pred_global = matrix_to_rotation_6d(rotation_6d_to_matrix(pred["rotation_6d"][:, 0]))
    assert_varies_like_targets(pred_global, global_6d, "global hand rotation")


def test_model_runs_on_every_device(device):
    model = _model().to(device)
    batch = {k: v.to(device) for k, v in _batch(2).items()}
    out = model(batch)
    out["loss"].backward()
    assert out["predictions"]["joints"].device.type == device.type
    without_k = model.predict(batch["image"])  # the default camera is built on the image's device
    assert without_k["vertices"].device.type == device.type
