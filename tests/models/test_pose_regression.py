import pytest
import torch

from hoimask._checks import FileFormatError, ShapeError, ValueRangeError
from hoimask.hand import ProceduralHand
from hoimask.models import PoseRegressionModel

SMALL = dict(img_size=32, patch_size=16, embed_dim=32, depth=2, num_heads=2, head_dim=32)


def _batch(B=3, with_object=(True, False, True)):
    g = torch.Generator().manual_seed(0)
    pose = 0.2 * torch.randn(B, 16, 3, generator=g)
    shape = 0.5 * torch.randn(B, 10, generator=g)
    hand = ProceduralHand()(pose, shape, torch.tensor([[0.0, 0.0, 0.5]]).expand(B, 3))
    return {
        "image": torch.rand(B, 3, 32, 32, generator=g),
        "joints_3d": hand.joints,
        "hand_pose": pose,
        "hand_shape": shape,
        "object_rotation": torch.eye(3).expand(B, 3, 3).clone(),
        "object_translation": torch.tensor([[0.0, 0.05, 0.5]]).expand(B, 3).clone(),
        "has_object": torch.tensor(with_object),
    }


def test_shapes_terms_and_camera_frame():
    torch.manual_seed(0)
    model = PoseRegressionModel(**SMALL)
    out = model(_batch())
    p = out["predictions"]
    assert p["joints"].shape == (3, 21, 3) and p["object_rotation"].shape == (3, 3, 3)
    assert torch.allclose(p["joints"][:, 0], p["root"], atol=1e-6)  # the wrist sits at the predicted root
    assert set(out["terms"]) == {"mano_params", "global_rotation", "hand_joints", "hand_vertices", "hand_root",
                                 "object_pose", "keypoint_heatmap", "keypoint_depth", "keypoint_joints"}
    assert p["keypoints_2d"].shape == (3, 21, 2) and p["heatmaps"].shape == (3, 22, 8, 8)
    assert p["object_center_2d"].shape == (3, 2) and p["object_translation"].shape == (3, 3)
    # the MANO mesh hangs at the same wrist as the keypoints
    torch.testing.assert_close(p["mano_joints"][:, 0], p["root"])
    R = p["object_rotation"]
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand(3, 3, 3), atol=1e-5)


def test_given_root_depth_lifts_joints_and_object_centre():
    # HOISDF's evaluation anchor: the keypoints and the object centre are lifted with the given wrist depth,
    # their image positions and depths relative to the wrist stay the model's.
    torch.manual_seed(0)
    model = PoseRegressionModel(**SMALL).eval()
    image = torch.rand(2, 3, 32, 32)
    K = torch.tensor([[40.0, 0, 16], [0, 40.0, 16], [0, 0, 1]]).expand(2, 3, 3)
    own = model.predict(image, K)
    given = model.predict(image, K, root_depth=torch.tensor([0.4, 0.9]))
    torch.testing.assert_close(given["root"][:, 2], torch.tensor([0.4, 0.9]))
    torch.testing.assert_close(given["keypoints_2d"], own["keypoints_2d"])
    torch.testing.assert_close(given["object_translation"][:, 2] - given["root"][:, 2],
                               own["object_translation"][:, 2] - own["root"][:, 2])
    from hoimask.geometry import project
    torch.testing.assert_close(project(given["object_translation"][:, None], K)[:, 0], given["object_center_2d"])
    with pytest.raises(ShapeError, match="root_depth"):
        model.predict(image, K, root_depth=torch.ones(3))


def test_absent_object_does_not_supervise_the_object_keypoint():
    # The 22nd heatmap (object centre) only counts for samples with an object: changing the object target of a
    # hand-only sample changes no term.
    torch.manual_seed(0)
    model = PoseRegressionModel(**SMALL)
    a = _batch(with_object=(True, False, True))
    b = _batch(with_object=(True, False, True))
    b["object_translation"][1] = torch.tensor([0.1, -0.1, 0.8])
    ta, tb = model(a)["terms"], model(b)["terms"]
    for k in ta:
        torch.testing.assert_close(ta[k], tb[k])


def test_object_term_skipped_without_objects_and_gradients_flow():
    torch.manual_seed(0)
    model = PoseRegressionModel(**SMALL)
    out = model(_batch(with_object=(False, False, False)))
    assert "object_pose" not in out["terms"]
    out["loss"].backward()
    assert model.encoder.patch_embed.proj.weight.grad.abs().sum() > 0


def test_object_term_ignores_non_finite_targets_even_when_flagged():
    # A sample flagged has_object=True whose pose is NaN must not turn the loss into NaN
    # (same rule as MaskHOI: finite targets and the flag).
    torch.manual_seed(0)
    model = PoseRegressionModel(**SMALL)
    batch = _batch(with_object=(True, True, True))
    batch["object_translation"][1] = float("nan")
    out = model(batch)
    assert "object_pose" in out["terms"]
    assert torch.isfinite(out["terms"]["object_pose"]) and torch.isfinite(out["loss"])


@pytest.mark.slow
def test_loss_falls_when_overfitting():
    torch.manual_seed(0)
    model = PoseRegressionModel(**SMALL)
    batch = _batch()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(20):
        terms = model(batch)["terms"]
        terms.pop("keypoint_heatmap")  # bounded below by the target Gaussians' entropy
        loss = torch.stack([model.loss_weights[k] * v for k, v in terms.items()]).sum()
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first


def test_load_encoder_checks_keys_and_shapes():
    a = PoseRegressionModel(**SMALL)
    b = PoseRegressionModel(**SMALL)
    b.load_encoder(a.encoder.state_dict())
    assert all(torch.equal(x, y) for x, y in zip(a.encoder.state_dict().values(), b.encoder.state_dict().values()))
    wide = PoseRegressionModel(**{**SMALL, "embed_dim": 64})
    with pytest.raises(FileFormatError, match="shape mismatch"):
        b.load_encoder(wide.encoder.state_dict())
    with pytest.raises(FileFormatError, match="missing"):
        b.load_encoder({})
    with pytest.raises(ValueRangeError, match="loss_weights.*nope"):
        PoseRegressionModel(**SMALL, loss_weights={"nope": 1.0})
    with pytest.raises(ValueRangeError, match="loss_weights"):
        PoseRegressionModel(**SMALL, loss_weights={"hand_root": -1.0})


def test_forward_input_errors_are_typed():
    model = PoseRegressionModel(**SMALL)
    with pytest.raises(ShapeError, match="image"):
        model({"joints_3d": torch.zeros(1, 21, 3)})
    with pytest.raises(ValueRangeError, match="no pose target"):
        model({"image": torch.zeros(1, 3, 32, 32)})


def test_unannotated_hand_is_left_out_of_every_loss():
    """NaN hand targets (a frame without hand annotation) leave the loss and the gradients finite."""
    batch = _batch()
    for key in ("joints_3d", "hand_pose", "hand_shape"):
        batch[key] = batch[key].clone()
        batch[key][1] = float("nan")
    torch.manual_seed(0)
    model = PoseRegressionModel(**SMALL)
    out = model(batch)
    assert torch.isfinite(out["loss"]) and {"keypoint_heatmap", "hand_joints", "mano_params"} <= set(out["terms"])
    out["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()  # per-sample predictions (batch norm from running statistics), then compare with the subset
    with torch.no_grad():
        out, alone = model(batch), model({k: v[[0, 2]] for k, v in batch.items()})
    for name in ("keypoint_heatmap", "keypoint_depth", "keypoint_joints", "hand_root", "hand_joints", "mano_params",
                 "global_rotation"):
        assert torch.allclose(out["terms"][name], alone["terms"][name], atol=1e-6), name


def test_a_learned_position_embedding_survives_the_checkpoint_round_trip():
    """A timm-style learned pos_embed kept by load_vit_checkpoint is rebuilt as learned from encoder_config."""
    torch.manual_seed(0)
    model = PoseRegressionModel(**SMALL)
    assert model.encoder_config["pos_embed"] == "sincos"
    learned = torch.randn(1, 1 + (32 // 16) ** 2, SMALL["embed_dim"])
    model.encoder.use_learned_pos_embed(learned)
    config = model.encoder_config
    assert config["pos_embed"] == "learned"
    rebuilt = PoseRegressionModel(**{k: v for k, v in config.items()}, head_dim=SMALL["head_dim"])
    rebuilt.load_state_dict(model.state_dict())
    assert any(n == "encoder.pos_embed" for n, _ in rebuilt.named_parameters())  # trainable again
    assert torch.equal(rebuilt.encoder.pos_embed, model.encoder.pos_embed)


def test_dense_maps_are_trained_on_seen_pixels_only():
    torch.manual_seed(0)
    model = PoseRegressionModel(**SMALL, dense_maps=True)
    batch = _batch()
    seg = torch.zeros(3, 32, 32, dtype=torch.int64)
    seg[:, 8:16, 8:16] = 1  # hand: cells (2..3, 2..3) at stride 4
    seg[:, 20:24, 20:24] = 2  # object: cell (5, 5)
    depth = torch.where(seg > 0, 0.55, 0.0)
    batch.update(segmentation=seg, depth=depth)
    out = model(batch)
    p = out["predictions"]
    assert p["depth_map"].shape == p["hand_mask_logits"].shape == (3, 1, 8, 8)
    cells = torch.zeros(8, 8, dtype=torch.bool)
    cells[2:4, 2:4] = True
    cells[5, 5] = True
    wrist = batch["joints_3d"][:, 0, 2]
    expected = (p["depth_map"][:, 0] - (0.55 - wrist)[:, None, None]).abs()[:, cells].mean()
    torch.testing.assert_close(out["terms"]["dense_depth"], expected)
    target = torch.nn.functional.avg_pool2d((seg == 1).float()[:, None], 4)
    torch.testing.assert_close(out["terms"]["hand_mask"], torch.nn.functional.binary_cross_entropy_with_logits(
        p["hand_mask_logits"], target))
    # background depth values (here: garbage) do not count
    batch["depth"] = torch.where(seg > 0, depth, 9.0)
    torch.testing.assert_close(model(batch)["terms"]["dense_depth"], out["terms"]["dense_depth"])
    # without the dense targets the terms are absent; without dense_maps they never appear
    del batch["depth"], batch["segmentation"]
    assert not {"dense_depth", "hand_mask"} & set(model(batch)["terms"])
    assert "dense_maps" in model.encoder_config and model.encoder_config["dense_maps"] is True
