"""Swing rotations and swing inverse kinematics (hoimask.hand.kinematics)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hoimask._checks import ShapeError
from hoimask.geometry import axis_angle_to_matrix
from hoimask.hand import (
    MANOLayer,
    ProceduralHand,
    layer_pose_from_rotations,
    swing_inverse_kinematics,
    swing_rotation,
)

F64 = torch.float64
vectors = st.lists(st.floats(-10, 10, allow_nan=False), min_size=3, max_size=3).filter(
    lambda v: sum(x * x for x in v) > 1e-4)


@settings(deadline=None, max_examples=60)
@given(vectors, vectors)
def test_swing_is_a_rotation_taking_source_onto_target_about_their_common_normal(a, b):
    a, b = torch.tensor(a, dtype=F64), torch.tensor(b, dtype=F64)
    R = swing_rotation(a, b)
    torch.testing.assert_close(R @ R.T, torch.eye(3, dtype=F64), atol=1e-9, rtol=0)
    assert abs(float(torch.linalg.det(R)) - 1.0) < 1e-9
    torch.testing.assert_close(R @ (a / a.norm()), b / b.norm(), atol=1e-7, rtol=0)
    normal = torch.linalg.cross(a, b)
    if normal.norm() > 1e-3 * a.norm() * b.norm():  # the smallest rotation leaves the common normal in place
        torch.testing.assert_close(R @ normal, normal, atol=1e-7 * float(normal.norm()) + 1e-9, rtol=0)


def test_swing_of_opposite_and_zero_directions():
    a = torch.tensor([[0.0, 0.0, 1.0], [1.0, 2.0, 3.0]], dtype=F64)
    R = swing_rotation(a, -a)  # a half turn about an axis perpendicular to a
    torch.testing.assert_close(R @ a.unsqueeze(-1), -a.unsqueeze(-1))
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3, dtype=F64).expand(2, 3, 3))
    assert torch.allclose(torch.linalg.det(R), torch.ones(2, dtype=F64))
    torch.testing.assert_close(swing_rotation(torch.zeros(3, dtype=F64), a[0]), torch.eye(3, dtype=F64))


def _posed(layer, seed, batch=6):
    g = torch.Generator().manual_seed(seed)
    rotations = axis_angle_to_matrix(0.5 * torch.randn(batch, 16, 3, generator=g, dtype=F64))
    rotations[:, 0] = axis_angle_to_matrix(3.0 * torch.rand(batch, 3, generator=g, dtype=F64) - 1.5)
    shape = 0.8 * torch.randn(batch, 10, generator=g, dtype=F64)
    identity = torch.eye(3, dtype=F64).expand(batch, 16, 3, 3)
    rest = layer(layer_pose_from_rotations(layer, identity), shape).joints
    return layer(layer_pose_from_rotations(layer, rotations), shape).joints, rest, shape, rotations


@pytest.mark.parametrize("kind", ["procedural", "mano-flat", "mano-mean"])
def test_posing_the_rest_hand_with_the_ik_rotations_gives_back_the_joints(kind, right_pkl):
    """Twist is not observable, but every joint position is: FK(IK(joints)) = joints (same shape)."""
    layer = {"procedural": lambda: ProceduralHand().double(),
             "mano-flat": lambda: MANOLayer(right_pkl, dtype=F64),
             "mano-mean": lambda: MANOLayer(right_pkl, flat_hand_mean=False, dtype=F64)}[kind]()
    joints, rest, shape, rotations = _posed(layer, seed=1)
    ik = swing_inverse_kinematics(joints - joints[:, :1] + 0.3, rest)  # any origin
    again = layer(layer_pose_from_rotations(layer, ik), shape).joints
    # MANO's tips are skinned vertices (pose blend shapes, several bones): only the procedural tips are rigid
    kept = list(range(21)) if kind == "procedural" else [j for j in range(21) if j % 4 != 0 or j == 0]
    torch.testing.assert_close((again - again[:, :1])[:, kept], (joints - joints[:, :1])[:, kept], atol=1e-9, rtol=0)
    torch.testing.assert_close(ik[:, 0], rotations[:, 0], atol=1e-9, rtol=0)  # the palm gives the global rotation


def test_layer_pose_from_rotations_subtracts_manos_mean_pose(right_pkl):
    flat, mean = MANOLayer(right_pkl, dtype=F64), MANOLayer(right_pkl, flat_hand_mean=False, dtype=F64)
    rotations = axis_angle_to_matrix(0.3 * torch.randn(2, 16, 3, dtype=F64))
    shape = torch.zeros(2, 10, dtype=F64)
    a = flat(layer_pose_from_rotations(flat, rotations), shape).vertices
    b = mean(layer_pose_from_rotations(mean, rotations), shape).vertices
    torch.testing.assert_close(a, b)
    assert not torch.allclose(layer_pose_from_rotations(flat, rotations), layer_pose_from_rotations(mean, rotations))


def test_bad_shapes_name_the_argument():
    with pytest.raises(ShapeError, match="'joints'"):
        swing_inverse_kinematics(torch.zeros(2, 16, 3), torch.zeros(2, 21, 3))
    with pytest.raises(ShapeError, match="'rest_joints'"):
        swing_inverse_kinematics(torch.zeros(2, 21, 3), torch.zeros(3, 21, 3))
    with pytest.raises(ShapeError, match="'rotations'"):
        layer_pose_from_rotations(ProceduralHand(), torch.zeros(2, 15, 3, 3))


@pytest.mark.parametrize("kind", ["procedural", "mano-mean"])
def test_rotations_from_joints_are_in_the_layers_input_convention(kind, right_pkl):
    from hoimask.geometry import matrix_to_axis_angle
    from hoimask.hand import rotations_from_joints

    layer = (ProceduralHand() if kind == "procedural"
             else MANOLayer(right_pkl, flat_hand_mean=False))
    joints, _, _, _ = _posed(layer.double(), seed=2)
    R = rotations_from_joints(layer.float(), joints.float())  # (B, 16, 3, 3), float32, no gradient
    assert R.dtype == torch.float32 and not R.requires_grad
    again = layer(matrix_to_axis_angle(R), torch.zeros(6, 10)).joints  # the mean shape, posed
    for parent, child in ((1, 2), (5, 6), (6, 7), (9, 10), (13, 14), (17, 18)):  # finger bones: exact directions
        a, b = again[:, child] - again[:, parent], (joints[:, child] - joints[:, parent]).float()
        torch.testing.assert_close(torch.nn.functional.cosine_similarity(a, b, dim=-1), torch.ones(6),
                                   atol=1e-5, rtol=0)
