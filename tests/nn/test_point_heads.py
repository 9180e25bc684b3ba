"""HOISDF point-wise read-outs: joint voting, per-point object pose, and their losses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import ShapeError, ValueRangeError
from hoimask.geometry import axis_angle_to_matrix
from hoimask.losses import joint_vote_loss, point_object_pose_loss
from hoimask.nn import JointVotingHead, PointObjectPoseHead, average_object_pose, vote_joints


def naive_vote(points, offsets, logits):
    """Loop form of the weighted mean: joint_j = sum_n exp(l_nj) (p_n + o_nj) / sum_n exp(l_nj)."""
    n, j = logits.shape
    out = torch.zeros(j, 3, dtype=points.dtype)
    for jj in range(j):
        w = torch.exp(logits[:, jj] - logits[:, jj].max())
        out[jj] = sum(w[i] * (points[i] + offsets[i, jj]) for i in range(n)) / w.sum()
    return out


@given(n=st.integers(1, 9), j=st.integers(1, 5), seed=st.integers(0, 100))
def test_vote_joints_equals_weighted_mean(n, j, seed):
    g = torch.Generator().manual_seed(seed)
    points = torch.randn(n, 3, generator=g, dtype=torch.float64)
    offsets = torch.randn(n, j, 3, generator=g, dtype=torch.float64)
    logits = torch.randn(n, j, generator=g, dtype=torch.float64) * 3
    assert torch.allclose(vote_joints(points, offsets, logits), naive_vote(points, offsets, logits))


def test_vote_joints_limits_and_gradcheck():
    points = torch.tensor([[0.0, 0, 0], [1.0, 2, 3]], dtype=torch.float64)
    offsets = torch.zeros(2, 1, 3, dtype=torch.float64)
    dominant = torch.tensor([[50.0], [0.0]], dtype=torch.float64)
    assert torch.allclose(vote_joints(points, offsets, dominant), points[:1])
    args = [torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 2, 3, dtype=torch.float64),
            torch.randn(4, 2, dtype=torch.float64)]
    assert torch.autograd.gradcheck(vote_joints, [a.requires_grad_(True) for a in args])


def test_voting_head_module_equals_function_and_broadcasts_layers():
    torch.manual_seed(0)
    head = JointVotingHead(16, hidden=8).double()
    points = torch.randn(2, 11, 3, dtype=torch.float64)
    features = torch.randn(3, 2, 11, 16, dtype=torch.float64)  # (L, B, N, D)
    out = head(points, features)
    assert out.joints.shape == (3, 2, 21, 3) and out.votes.shape == (3, 2, 11, 21, 3)
    assert out.offsets.shape == (3, 2, 11, 21, 3) and out.logits.shape == (3, 2, 11, 21)
    assert torch.allclose(out.votes, points[:, :, None] + out.offsets)
    assert torch.allclose(out.joints, vote_joints(points, out.offsets, out.logits))
    assert torch.allclose(out.joints[1], head(points, features[1]).joints)
    assert JointVotingHead(16, 20, hidden=8)(points.float(), features[0].float()).joints.shape == (2, 20, 3)


def test_voting_head_errors():
    head = JointVotingHead(16, hidden=8)
    with pytest.raises(ShapeError, match="at least one"):
        head(torch.zeros(2, 0, 3), torch.zeros(2, 0, 16))
    with pytest.raises(ShapeError, match="points"):
        head(torch.zeros(3, 5, 3), torch.zeros(2, 5, 16))  # batch 3 vs 2 does not broadcast
    with pytest.raises(ShapeError, match="features"):
        head(torch.zeros(2, 5, 3), torch.zeros(2, 5, 15))
    with pytest.raises(ValueRangeError, match="points"):
        head(torch.full((2, 5, 3), float("nan")), torch.zeros(2, 5, 16))


def test_joint_vote_loss_known_values():
    # two points at the origin, joint 0 at 1 cm (near), joint 1 at 10 cm (far)
    points = torch.zeros(1, 2, 3, dtype=torch.float64)
    target = torch.tensor([[[0.01, 0.0, 0.0], [0.1, 0.0, 0.0]]], dtype=torch.float64)
    votes = target.unsqueeze(1).expand(1, 2, 2, 3) + 0.002  # every vote 2 mm off in every coordinate
    logits = torch.zeros(1, 2, 2, dtype=torch.float64)
    joints = target + 0.003
    loss = joint_vote_loss(points, votes, logits, joints, target)
    # mm, SmoothL1 beta 1: 2 mm -> 1.5 per coordinate; 3 coordinates per near pair; 2 near pairs
    assert math.isclose(float(loss.offset), 3 * 1.5 * 2 / 2)
    assert math.isclose(float(loss.joints), 2.5)
    near = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]], dtype=torch.float64)
    assert torch.isclose(loss.classification, F.binary_cross_entropy_with_logits(logits, near))
    metric = joint_vote_loss(points, votes, logits, joints, target, scale=1.0, beta=1e-3)
    assert math.isclose(float(metric.offset) * 1000, float(loss.offset))


def test_joint_vote_loss_layers_and_no_near_point():
    points = torch.full((2, 3, 3), 5.0)
    target = torch.zeros(2, 4, 3)
    votes = torch.randn(6, 2, 3, 4, 3)  # 6 layers
    loss = joint_vote_loss(points, votes, torch.zeros(6, 2, 3, 4), votes.mean(2), target)
    assert float(loss.offset) == 0.0  # nothing within 4 cm: zero, not NaN
    assert torch.isfinite(loss.classification) and torch.isfinite(loss.joints)
    with pytest.raises(ShapeError, match="votes"):
        joint_vote_loss(points, torch.zeros(6, 2, 3, 5, 3), torch.zeros(6, 2, 3, 4), target, target)
    with pytest.raises(ShapeError, match="at least one"):
        joint_vote_loss(torch.zeros(2, 0, 3), torch.zeros(2, 0, 4, 3), torch.zeros(2, 0, 4), target, target)


def test_average_object_pose_methods():
    r = torch.tensor([[0.0, 0.0, 0.1], [0.0, 0.0, 0.3], [0.0, 0.0, 0.2]], dtype=torch.float64)
    t = torch.arange(9, dtype=torch.float64).view(3, 3)
    rot, trans = average_object_pose(r, t)
    assert torch.allclose(rot, r.mean(0)) and torch.allclose(trans, t.mean(0))
    rot_m, _ = average_object_pose(r, t, method="matrix")
    assert torch.allclose(rot_m, torch.tensor([0.0, 0.0, 0.2], dtype=torch.float64))
    # near π, r and -r are almost the same rotation: the vector mean collapses, the matrix mean does not
    flip = torch.tensor([[0.0, 0.0, math.pi - 0.05], [0.0, 0.0, -(math.pi - 0.05)]], dtype=torch.float64)
    vec, _ = average_object_pose(flip, torch.zeros(2, 3, dtype=torch.float64))
    mat, _ = average_object_pose(flip, torch.zeros(2, 3, dtype=torch.float64), method="matrix")
    assert vec.norm() < 1e-9
    assert torch.allclose(axis_angle_to_matrix(mat), axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi],
                                                                                         dtype=torch.float64)))
    with pytest.raises(ShapeError, match="at least one"):
        average_object_pose(torch.zeros(0, 3), torch.zeros(0, 3))
    with pytest.raises(ValueRangeError, match="method"):
        average_object_pose(r, t, method="quaternion")


def test_object_pose_head_averages_its_points():
    torch.manual_seed(0)
    features = torch.randn(4, 2, 9, 16, dtype=torch.float64)  # (L, B, N, D)
    for method in ("axis_angle", "matrix"):
        head = PointObjectPoseHead(16, hidden=8, rotation_average=method).double()
        out = head(features)
        assert out.rotation.shape == out.translation.shape == (4, 2, 3)
        assert out.point_rotation.shape == out.point_translation.shape == (4, 2, 9, 3)
        assert torch.allclose(out.translation, out.point_translation.mean(-2))
        rot, _ = average_object_pose(out.point_rotation, out.point_translation, method=method)
        assert torch.allclose(out.rotation, rot)
    with pytest.raises(ShapeError, match="at least one"):
        head(torch.zeros(2, 0, 16, dtype=torch.float64))
    with pytest.raises(ValueRangeError, match="rotation_average"):
        PointObjectPoseHead(16, rotation_average="mean")


def test_point_object_pose_loss():
    rot = torch.zeros(3, 2, 5, 3)
    trans = torch.full((3, 2, 5, 3), 0.1)
    target_rot = torch.full((2, 3), 2.0)
    loss = point_object_pose_loss(rot, trans, target_rot, torch.zeros(2, 3))
    assert math.isclose(float(loss.rotation), 1.5)  # |2| - 0.5
    assert math.isclose(float(loss.translation), 0.5 * 0.1**2, rel_tol=1e-6)
    with pytest.raises(ShapeError, match="target_translation"):
        point_object_pose_loss(rot, trans, target_rot, torch.zeros(3, 3))


def test_joint_vote_loss_masks_unannotated_joints():
    """A joint with a NaN target counts in no term; the others give the same values as without it."""
    g = torch.Generator().manual_seed(0)
    points = torch.randn(2, 6, 3, generator=g, dtype=torch.float64) * 0.03
    target = torch.randn(2, 3, 3, generator=g, dtype=torch.float64) * 0.03
    votes = (target.unsqueeze(1) + 0.004 * torch.randn(2, 2, 6, 3, 3, generator=g, dtype=torch.float64)).requires_grad_()
    logits = torch.randn(2, 2, 6, 3, generator=g, dtype=torch.float64)
    joints = votes.mean(dim=2)
    missing = target.clone()
    missing[1, 2] = float("nan")
    got = joint_vote_loss(points, votes, logits, joints, missing)
    assert all(torch.isfinite(v) for v in got)
    # reference: drop joint 2 of sample 1 by hand
    near = (torch.linalg.vector_norm(points.unsqueeze(2) - target.unsqueeze(1), dim=-1) < 0.04).double()
    keep = torch.ones(2, 3, dtype=torch.bool)
    keep[1, 2] = False
    pair = near.bool() & keep[:, None]
    per = F.smooth_l1_loss(votes * 1000, target.unsqueeze(1).expand_as(votes) * 1000, reduction="none").sum(-1)
    assert torch.isclose(got.offset, per[pair.expand_as(per)].sum() / pair.expand_as(per).sum())
    bce = F.binary_cross_entropy_with_logits(logits, near.expand_as(logits), reduction="none")
    assert torch.isclose(got.classification, bce[keep[:, None].expand_as(bce)].mean())
    per_joint = F.smooth_l1_loss(joints * 1000, target.expand_as(joints) * 1000, reduction="none")
    assert torch.isclose(got.joints, per_joint[keep.unsqueeze(-1).expand_as(per_joint)].mean())
    sum(got).backward()
    assert torch.isfinite(votes.grad).all()
    # nothing annotated: exact zeros
    none = joint_vote_loss(points, votes, logits, joints, torch.full_like(target, float("nan")))
    assert all(float(v.detach()) == 0.0 for v in none)
    with pytest.raises(ValueRangeError, match="points"):
        joint_vote_loss(torch.full_like(points, float("nan")), votes, logits, joints, target)


def test_point_object_pose_loss_masks_samples_without_object():
    rot = torch.zeros(2, 3, 4, 3, requires_grad=True)  # (L, B, N, 3)
    trans = torch.zeros(2, 3, 4, 3)
    target_rot = torch.tensor([[2.0, 0, 0], [50.0, 0, 0], [float("nan"), 0, 0]])
    target_trans = torch.zeros(3, 3)
    got = point_object_pose_loss(rot, trans, target_rot, target_trans, has_object=torch.tensor([True, False, True]))
    # only sample 0 counts: |2| - 0.5 on one coordinate of three
    assert math.isclose(float(got.rotation.detach()), 1.5 / 3, rel_tol=1e-6) and float(got.translation) == 0.0
    got.rotation.backward()
    assert torch.isfinite(rot.grad).all() and rot.grad[:, 1:].abs().sum() == 0
    none = point_object_pose_loss(rot, trans, target_rot, target_trans, has_object=torch.zeros(3, dtype=torch.bool))
    assert float(none.rotation.detach()) == 0.0 and float(none.translation) == 0.0
    with pytest.raises(ShapeError, match="has_object"):
        point_object_pose_loss(rot, trans, target_rot, target_trans, has_object=torch.ones(2, dtype=torch.bool))
