import pytest
import torch

from hoimask._checks import ShapeError
from hoimask.geometry import axis_angle_to_matrix, matrix_to_rotation_6d
from hoimask.hand import ProceduralHand
from hoimask.losses import hoisdf_mano_loss


def _targets(B=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(B, 16, 3, generator=g), 0.5 * torch.randn(B, 10, generator=g)


def test_zero_at_the_target_on_every_layer_and_known_values():
    hand = ProceduralHand()
    pose, beta = _targets()
    d6 = matrix_to_rotation_6d(axis_angle_to_matrix(pose))
    terms = hoisdf_mano_loss(hand, d6.expand(3, 2, 16, 6), beta.expand(3, 2, 10), target_pose=pose, target_shape=beta)
    assert set(terms) == {"mano_vertices", "mano_joints", "mano_pose", "mano_shape"}
    assert all(float(v) < 1e-10 for v in terms.values())
    # one layer off by 1 in every shape coefficient: MSE 1 on that layer, mean over 2 layers = 0.5
    shape = torch.stack([beta, beta + 1])
    d6_2 = d6.expand(2, 2, 16, 6)
    assert float(hoisdf_mano_loss(hand, d6_2, shape, target_shape=beta)["mano_shape"]) == pytest.approx(0.5)


def test_joints_and_vertices_are_root_relative_mse_against_the_hand_layer():
    hand = ProceduralHand()
    pose, beta = _targets()
    d6 = matrix_to_rotation_6d(axis_angle_to_matrix(torch.zeros(2, 16, 3)))
    terms = hoisdf_mano_loss(hand, d6, torch.zeros(2, 10), target_pose=pose, target_shape=beta)
    pred = hand(torch.zeros(2, 16, 3), torch.zeros(2, 10), torch.zeros(2, 3))
    gt = hand(pose, beta, torch.zeros(2, 3))
    expected = ((pred.joints - pred.joints[:, :1]) - (gt.joints - gt.joints[:, :1])).pow(2).mean()
    torch.testing.assert_close(terms["mano_joints"], expected)
    # without parameters the joints come from target_joints (any translation)
    only = hoisdf_mano_loss(hand, d6, torch.zeros(2, 10), target_joints=gt.joints + 0.5)
    assert set(only) == {"mano_joints"}
    torch.testing.assert_close(only["mano_joints"], expected)


def test_non_finite_targets_are_masked_and_gradients_flow():
    hand = ProceduralHand()
    pose, beta = _targets()
    pose[1, 3, 0] = float("nan")
    d6 = torch.randn(2, 16, 6, requires_grad=True)
    shape = torch.zeros(2, 10, requires_grad=True)
    terms = hoisdf_mano_loss(hand, d6, shape, target_pose=pose, target_shape=beta)
    total = sum(terms.values())
    assert torch.isfinite(total)
    total.backward()
    assert torch.isfinite(d6.grad).all() and d6.grad[0].abs().sum() > 0


def test_shape_errors():
    with pytest.raises(ShapeError, match="rotation_6d"):
        hoisdf_mano_loss(ProceduralHand(), torch.zeros(2, 15, 6), torch.zeros(2, 10))
    with pytest.raises(ShapeError, match="leading"):
        hoisdf_mano_loss(ProceduralHand(), torch.zeros(3, 2, 16, 6), torch.zeros(2, 2, 10))
