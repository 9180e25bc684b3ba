"""Loss functions: known values, masking of invalid targets, invariants, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.geometry import axis_angle_to_matrix, matrix_to_rotation_6d
from hoimask.hand import ProceduralHand
from hoimask.losses import (
    HandMeshLoss,
    HeatmapLoss,
    SDFLoss,
    WeightedLoss,
    hand_from_rotation_6d,
    heatmap_loss,
    mano_parameter_loss,
    object_pose_loss,
    patchify,
    pixel_reconstruction_loss,
    render_gaussian_heatmaps,
    sdf_l1_loss,
    segmentation_loss,
    unpatchify,
    weighted_sum,
)


def test_sdf_l1_known_values_clamp_and_nan_masking():
    pred = torch.tensor([[0.01, 0.2, 0.0, 0.03]])
    target = torch.tensor([[0.02, 0.5, float("nan"), -0.01]])
    # |0.01-0.02| + |0.05-0.05| (both clamped) + skip NaN + |0.03+0.01| -> mean over 3
    torch.testing.assert_close(sdf_l1_loss(pred, target, clamp_distance=0.05), torch.tensor(0.05 / 3))
    valid = torch.tensor([[True, True, True, False]])
    torch.testing.assert_close(sdf_l1_loss(pred, target, valid=valid), torch.tensor(0.01 / 2))
    torch.testing.assert_close(SDFLoss(0.05)(pred, target), sdf_l1_loss(pred, target))


def test_sdf_l1_all_invalid_is_zero_with_finite_gradient():
    pred = torch.randn(2, 3, requires_grad=True)
    loss = sdf_l1_loss(pred, torch.full((2, 3), float("nan")))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(pred.grad, torch.zeros(2, 3))


def test_sdf_errors():
    with pytest.raises(ShapeError, match="target"):
        sdf_l1_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueRangeError, match="clamp_distance"):
        sdf_l1_loss(torch.zeros(2, 3), torch.zeros(2, 3), clamp_distance=0.0)


def test_segmentation_loss_matches_cross_entropy_and_resizes():
    logits = torch.randn(2, 3, 4, 4)
    labels = torch.randint(0, 3, (2, 4, 4))
    torch.testing.assert_close(segmentation_loss(logits, labels), torch.nn.functional.cross_entropy(logits, labels))
    perfect = torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).float() * 50
    assert segmentation_loss(perfect, labels) < 1e-6
    assert segmentation_loss(torch.randn(2, 3, 2, 2), torch.randint(0, 3, (2, 8, 8))).shape == ()
    with pytest.raises(DTypeError, match="labels"):
        segmentation_loss(logits, labels.float())


@given(u=st.floats(0.5, 63.5), v=st.floats(0.5, 47.5), h=st.sampled_from([12, 24]))
def test_gaussian_heatmap_peak_at_the_joint(u, v, h):
    joints = torch.tensor([[[u, v]]], dtype=torch.float64)
    hm = render_gaussian_heatmaps(joints, (h, 2 * h * 4 // 3), (48, 64), sigma=1.0)[0, 0]
    w = hm.shape[1]
    i, j = divmod(int(hm.argmax()), w)
    x = u * w / 64 - 0.5  # continuous pixel coordinates, centres at +0.5
    y = v * h / 48 - 0.5
    assert abs(j - x) <= 0.5 + 1e-9 and abs(i - y) <= 0.5 + 1e-9
    assert hm.max() <= 1.0


def test_heatmap_loss_zero_on_rendered_target_and_visibility():
    joints = torch.rand(2, 21, 2) * 64
    target = render_gaussian_heatmaps(joints, (16, 16), (64, 64), sigma=1.5)
    assert heatmap_loss(target, joints, (64, 64)) < 1e-12
    assert HeatmapLoss(1.5)(target, joints, (64, 64)) < 1e-12
    pred = target.clone()
    pred[:, 3] += 1.0
    visible = torch.ones(2, 21, dtype=torch.bool)
    visible[:, 3] = False
    assert heatmap_loss(pred, joints, (64, 64)) > 0.01
    assert heatmap_loss(pred, joints, (64, 64), visible=visible) < 1e-12
    assert HeatmapLoss(1.5)(pred, joints, (64, 64), visible=visible) < 1e-12  # module == function


def test_mano_parameter_loss_zero_at_target_and_ignores_6d_scale():
    g = torch.Generator().manual_seed(0)
    pose = torch.randn(3, 16, 3, generator=g)
    shape = torch.randn(3, 10, generator=g)
    d6 = matrix_to_rotation_6d(axis_angle_to_matrix(pose))
    assert mano_parameter_loss(d6, shape, pose, shape) < 1e-10
    assert mano_parameter_loss(2.0 * d6, shape, pose, shape) < 1e-10  # Gram-Schmidt removes scale
    assert mano_parameter_loss(d6, shape + 1.0, pose, shape) == pytest.approx(1.0, abs=1e-5)


def test_object_pose_loss_known_value():
    R = axis_angle_to_matrix(torch.tensor([[0.3, -0.2, 0.5]]))
    t = torch.tensor([[0.1, 0.0, 0.5]])
    d6 = matrix_to_rotation_6d(R)
    assert object_pose_loss(d6, t, R, t) < 1e-6
    torch.testing.assert_close(object_pose_loss(d6, t + 0.03, R, t), torch.tensor(0.03), atol=1e-6, rtol=0)


def test_hand_losses_through_the_procedural_hand():
    hand = ProceduralHand()
    g = torch.Generator().manual_seed(1)
    pose = 0.3 * torch.randn(2, 16, 3, generator=g)
    shape = 0.5 * torch.randn(2, 10, generator=g)
    d6 = matrix_to_rotation_6d(axis_angle_to_matrix(pose))
    out = hand(pose, shape, torch.tensor([[0.0, 0.1, 0.5]]).expand(2, 3))
    mesh = hand_from_rotation_6d(hand, d6, shape)
    torch.testing.assert_close(mesh.joints, out.joints - out.joints[:, :1], atol=1e-5, rtol=0)
    loss = HandMeshLoss(hand)
    terms = loss(d6, shape, target_pose=pose, target_shape=shape, target_joints=out.joints)
    assert set(terms) == {"mano_params", "hand_joints", "hand_vertices"}
    assert all(v < 1e-4 for v in terms.values())
    wrong = loss(d6, shape + 2.0, target_pose=pose, target_shape=shape, target_joints=out.joints)
    assert wrong["hand_joints"] > 1e-3 and wrong["hand_vertices"] > 1e-3
    only_joints = loss(d6, shape, target_joints=out.joints)
    assert set(only_joints) == {"hand_joints"}
    assert loss(d6, shape) == {}


def test_hand_loss_gradients_reach_the_prediction():
    hand = ProceduralHand()
    d6 = matrix_to_rotation_6d(axis_angle_to_matrix(0.2 * torch.randn(1, 16, 3))).requires_grad_(True)
    shape = torch.zeros(1, 10, requires_grad=True)
    target = hand(torch.zeros(1, 16, 3), torch.zeros(1, 10)).joints
    terms = HandMeshLoss(hand)(d6, shape, target_joints=target)
    terms["hand_joints"].backward()
    assert torch.isfinite(d6.grad).all() and d6.grad.abs().sum() > 0


def test_weighted_sum_and_module():
    terms = {"a": torch.tensor(2.0), "b": torch.tensor(3.0), "c": None}
    out = weighted_sum(terms, {"a": 0.5, "b": 2.0, "c": 10.0})
    assert out.total.item() == pytest.approx(7.0)
    assert set(out.terms) == {"a", "b"}
    assert WeightedLoss({"a": 1.0, "b": 0.0})({"a": torch.tensor(1.0), "b": torch.tensor(5.0)}).total.item() == 1.0
    default = WeightedLoss()
    assert set(default.weights) == {"loss_2d", "loss_3d", "loss_hand", "loss_object"}
    with pytest.raises(ValueRangeError, match="without a weight"):
        weighted_sum({"z": torch.tensor(1.0)}, {"a": 1.0})
    with pytest.raises(ValueRangeError, match="no present term"):
        weighted_sum({"a": None}, {"a": 1.0})
    with pytest.raises(ValueRangeError, match="weights"):
        WeightedLoss({"a": -1.0})
    with pytest.raises(ValueRangeError, match=r"weights\['a'\]"):
        weighted_sum({"a": torch.tensor(1.0)}, {"a": -1.0})


def test_pixel_loss_patchify_round_trip_and_masking():
    image = torch.randn(2, 3, 32, 48)
    patches = patchify(image, 16)
    assert patches.shape == (2, 6, 768)
    torch.testing.assert_close(unpatchify(patches, 16, (2, 3)), image)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[:, :2] = True
    assert pixel_reconstruction_loss(patches, image, mask, 16, norm_pix_loss=False) < 1e-12
    wrong = patches.clone()
    wrong[:, 4:] += 1.0  # only visible patches are wrong -> no loss
    assert pixel_reconstruction_loss(wrong, image, mask, 16, norm_pix_loss=False) < 1e-12
    wrong[:, 0] += 1.0
    assert pixel_reconstruction_loss(wrong, image, mask, 16, norm_pix_loss=False) == pytest.approx(0.5)
    with pytest.raises(ShapeError, match="patch_size"):
        patchify(torch.randn(1, 3, 30, 32), 16)
    with pytest.raises(ValueRangeError, match="patch_size"):
        patchify(image, 0)  # was a ZeroDivisionError
    with pytest.raises(ValueRangeError, match="patch_size"):
        unpatchify(patches, 0, (2, 3))


def test_gaussian_heatmap_known_value_at_a_pixel_centre():
    # heatmap pixel (row 2, col 5) of a 8x16 map over a 32x64 image is centred at image (22, 10)
    hm = render_gaussian_heatmaps(torch.tensor([[[22.0, 10.0]]]), (8, 16), (32, 64), sigma=1.0)[0, 0]
    assert hm[2, 5] == pytest.approx(1.0)
    assert hm[2, 6] == pytest.approx(float(torch.exp(torch.tensor(-0.5))))
