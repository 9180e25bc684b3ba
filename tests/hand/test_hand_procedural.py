"""ProceduralHand: kinematics, mesh, analytic SDF, limits, sampling, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.geometry import axis_angle_to_matrix, matrix_to_axis_angle
from hoimask.hand import NUM_CAPSULES, ProceduralHand, capsule_sdf
from hoimask.skeleton import JOINT_INDEX

F64 = torch.float64


@pytest.fixture(scope="module")
def hand():
    return ProceduralHand(dtype=F64)


def _poses(hand, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    pose = torch.cat([hand.grasp_pose(torch.tensor([0.0, 0.6, 1.0], dtype=F64), spread=0.5),
                      hand.sample_pose(n, generator=g)])  # fmt: skip
    shape = torch.cat([torch.zeros(3, 10, dtype=F64), hand.sample_shape(n, generator=g)])
    return pose, shape


def _winding_numbers(points: np.ndarray, verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Generalised winding number (Van Oosterom-Strackee solid angles / 4 pi)."""
    tri = verts[faces][None] - points[:, None, None, :]  # (Q, T, 3, 3)
    a, b, c = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]
    la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
    num = np.einsum("qtk,qtk->qt", a, np.cross(b, c))
    den = la * lb * lc + (a * b).sum(-1) * lc + (b * c).sum(-1) * la + (c * a).sum(-1) * lb
    return 2 * np.arctan2(num, den).sum(-1) / (4 * np.pi)


def test_shapes_sizes_and_faces(hand):
    pose, shape = _poses(hand)
    out = hand(pose, shape)
    b = pose.shape[0]
    assert out.joints.shape == (b, 21, 3) and out.mano_joints.shape == (b, 16, 3)
    assert hand.faces.dtype == torch.int64 and hand.faces.shape[0] <= 5000
    assert int(hand.faces.max()) == out.vertices.shape[1] - 1
    span = (out.joints[0, JOINT_INDEX["middle_tip"]] - out.joints[0, 0]).norm()
    assert 0.17 < float(span) < 0.20  # wrist -> middle tip of an open hand
    big = hand(pose[:1], torch.cat([torch.full((1, 1), 2.0, dtype=F64), torch.zeros(1, 9, dtype=F64)], 1))
    assert (big.joints[0, JOINT_INDEX["middle_tip"]] - big.joints[0, 0]).norm() > span


def test_mesh_is_watertight_and_contains_joints(hand):
    trimesh = pytest.importorskip("trimesh")
    pose, shape = _poses(hand)
    out = hand(pose, shape)
    faces = hand.faces.numpy()
    for i in range(pose.shape[0]):
        verts = out.vertices[i].numpy()
        mesh = trimesh.Trimesh(verts, faces, process=False)
        assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
        wn = _winding_numbers(out.joints[i].numpy(), verts, faces)
        assert (wn > 0.5).all(), f"hand {i}: joints outside the mesh: {np.nonzero(wn <= 0.5)[0]}"
    assert (hand.sdf(out.joints, pose, shape) < 0).all()


def test_mesh_vertices_lie_on_or_inside_the_solid(hand):
    pose, shape = _poses(hand)
    out = hand(pose, shape)
    d = hand.sdf(out.vertices, pose, shape)
    assert d.max() < 1e-12  # every vertex is on its own capsule, possibly inside another
    assert (d.abs() < 1e-12).float().mean() > 0.25  # ~1/3 are exposed; overlaps hide the rest


def test_surface_samples_are_on_the_outer_surface(hand):
    pose, shape = _poses(hand, n=1)
    trans = torch.full((pose.shape[0], 3), 0.1, dtype=F64)
    pts = hand.sample_surface(pose, shape, trans, num_points=300, generator=torch.Generator().manual_seed(0))
    assert pts.shape == (pose.shape[0], 300, 3)
    assert hand.sdf(pts, pose, shape, trans).abs().max() < 1e-9


def test_sdf_matches_mesh_sdf(hand):
    ops = pytest.importorskip("hoimask.ops", reason="hoimask.ops.mesh_sdf not available")
    pose, shape = _poses(hand, n=1, seed=3)
    pose, shape = pose[[1, 3]], shape[[1, 3]]  # a half grasp (zero shape) and a random hand
    out = hand(pose, shape)
    g = torch.Generator().manual_seed(1)
    lo, hi = out.vertices.amin(1, keepdim=True) - 0.02, out.vertices.amax(1, keepdim=True) + 0.02
    pts = lo + (hi - lo) * torch.rand(pose.shape[0], 2000, 3, generator=g, dtype=F64)
    analytic = hand.sdf(pts, pose, shape)
    meshed = ops.mesh_sdf(pts, out.vertices, hand.faces)
    # Tessellation error of an inscribed UV capsule (n around, c rings per cap): at most the
    # depth of a quad centre, r (1 - cos(pi / n) cos(pi / (4 c))); 0.87 mm for r = 13 mm, n = 12.
    n = hand.num_segments
    r_max = float(hand.capsules(pose, shape).radii.max())
    bound = r_max * (1 - np.cos(np.pi / n) * np.cos(np.pi / (4 * max(2, n // 4))))
    outside = analytic > 1e-3
    assert outside.sum() > 300
    err = (meshed - analytic)[outside]
    assert err.min() >= -1e-9 and err.max() <= bound, (float(err.max()), bound)  # mesh lies inside
    # Inside, the components overlap: the closest triangle can be a hidden inner face, so the
    # sign must come from the winding number (docs/ops.md, "Sign rule and its limits").
    inside = analytic < -1e-3
    winding_signed = ops.mesh_sdf(pts, out.vertices, hand.faces, sign="winding")
    torch.testing.assert_close(winding_signed.abs(), meshed.abs())
    assert inside.sum() > 10 and (winding_signed[inside] < 0).all()
    assert (winding_signed[outside] > 0).all()


@settings(max_examples=8)
@given(seed=st.integers(0, 10_000))
def test_global_rotation_rotates_everything_about_wrist(hand, seed):
    g = torch.Generator().manual_seed(seed)
    pose = hand.sample_pose(2, generator=g)
    shape = hand.sample_shape(2, generator=g)
    trans = 0.1 * torch.randn(2, 3, generator=g, dtype=F64)
    extra = axis_angle_to_matrix(torch.randn(2, 3, generator=g, dtype=F64))
    turned = pose.clone()
    turned[:, 0] = matrix_to_axis_angle(extra @ axis_angle_to_matrix(pose[:, 0]))
    base, moved = hand(pose, shape, trans), hand(turned, shape, trans)
    for field in ("vertices", "joints", "mano_joints"):
        expect = (getattr(base, field) - trans[:, None]) @ extra.transpose(1, 2) + trans[:, None]
        torch.testing.assert_close(getattr(moved, field), expect, rtol=0, atol=1e-9)
    pts = 0.1 * torch.randn(2, 20, 3, generator=g, dtype=F64) + trans[:, None]
    turned_pts = (pts - trans[:, None]) @ extra.transpose(1, 2) + trans[:, None]
    torch.testing.assert_close(hand.sdf(turned_pts, turned, shape, trans), hand.sdf(pts, pose, shape, trans))


def test_capsules_match_sdf_and_translation(hand):
    pose, shape = _poses(hand)
    trans = torch.full((pose.shape[0], 3), 0.05, dtype=F64)
    caps = hand.capsules(pose, shape, trans)
    assert caps.a.shape == (pose.shape[0], NUM_CAPSULES, 3) and caps.radii.shape == (pose.shape[0], NUM_CAPSULES)
    a, b, r = caps  # plain 3-tuple unpacking works
    pts = torch.randn(pose.shape[0], 50, 3, dtype=F64, generator=torch.Generator().manual_seed(2)) * 0.08
    torch.testing.assert_close(hand.sdf(pts, pose, shape, trans), capsule_sdf(pts, a, b, r))
    moved, still = hand(pose, shape, trans), hand(pose, shape)
    torch.testing.assert_close(moved.vertices, still.vertices + trans[:, None])
    # The first 15 capsules are the phalanges, ending at the canonical joints.
    torch.testing.assert_close(b[:, 2], moved.joints[:, JOINT_INDEX["thumb_tip"]])
    torch.testing.assert_close(a[:, 3], moved.joints[:, JOINT_INDEX["index_mcp"]])


def test_gradients_flow_to_pose_and_shape(hand):
    pose, shape = _poses(hand, n=1)
    pose.requires_grad_(True)
    shape.requires_grad_(True)
    out = hand(pose, shape)
    pts = out.vertices.detach()[:, ::7] * 1.1
    loss = out.vertices.square().sum() + out.joints.square().sum() + hand.sdf(pts, pose, shape).sum()
    loss.backward()
    assert pose.grad[:, 1:].abs().sum() > 0 and shape.grad.abs().sum(1).gt(0).all()
    assert torch.isfinite(pose.grad).all() and torch.isfinite(shape.grad).all()
    small = (pose[:1].detach().clone().requires_grad_(True), shape[:1].detach().clone().requires_grad_(True))
    q = pts[:1, :4]
    assert torch.autograd.gradcheck(lambda p, s: hand.sdf(q, p, s), small)


def test_grasp_pose_limits_and_closing(hand):
    lower, upper = hand.joint_limits()
    amount = torch.linspace(0, 1, 5, dtype=F64)
    pose = hand.grasp_pose(amount, spread=torch.linspace(-1, 1, 5, dtype=F64))
    angles = hand.pose_to_angles(pose)
    assert (angles >= lower - 1e-12).all() and (angles <= upper + 1e-12).all()
    assert torch.equal(hand.grasp_pose(torch.zeros(1, dtype=F64)), torch.zeros(1, 16, 3, dtype=F64))
    out = hand(hand.grasp_pose(amount), torch.zeros(5, 10, dtype=F64))
    tips = [JOINT_INDEX[f"{f}_tip"] for f in ("index", "middle", "ring", "little")]
    palm = out.joints[:, [JOINT_INDEX[f"{f}_mcp"] for f in ("index", "middle", "ring", "little")]].mean(1)
    reach = (out.joints[:, tips] - ((out.joints[:, :1] + palm[:, None]) / 2)).norm(dim=-1).mean(1)
    assert (reach.diff() < 0).all()  # fingertips approach the palm as the grasp closes
    with pytest.raises(ValueRangeError, match="'amount'"):
        hand.grasp_pose(torch.tensor([1.5], dtype=F64))
    with pytest.raises(ValueRangeError, match="'spread'"):
        hand.grasp_pose(torch.tensor([0.5], dtype=F64), spread=2.0)


def test_sampling_is_reproducible_and_within_limits(hand):
    lower, upper = hand.joint_limits()
    p1 = hand.sample_pose(64, generator=torch.Generator().manual_seed(5))
    p2 = hand.sample_pose(64, generator=torch.Generator().manual_seed(5))
    assert torch.equal(p1, p2) and p1.shape == (64, 16, 3) and p1.dtype == F64
    angles = hand.pose_to_angles(p1)
    assert (angles >= lower - 1e-9).all() and (angles <= upper + 1e-9).all()
    assert p1[:, 0].norm(dim=-1).std() > 0.1  # random global orientation
    fixed = hand.sample_pose(4, generator=torch.Generator().manual_seed(5), random_orient=False)
    assert torch.equal(fixed[:, 0], torch.zeros(4, 3, dtype=F64))
    s = hand.sample_shape(64, generator=torch.Generator().manual_seed(6))
    assert s.shape == (64, 10) and s.abs().max() <= 3.0 and s.std() > 0.5
    torch.testing.assert_close(hand.pose_to_angles(hand.angles_to_pose(angles)), angles)


def test_dtype_follows_inputs_and_errors(hand):
    pose, shape = _poses(hand, n=1)
    out = hand(pose.float(), shape.float())
    assert out.vertices.dtype == torch.float32 and out.joints.dtype == torch.float32
    with pytest.raises(ShapeError, match="'pose'"):
        hand(pose[:, :15], shape)
    with pytest.raises(ShapeError, match="'shape'"):
        hand(pose, shape[:, :9])
    with pytest.raises(DTypeError, match="'pose'"):
        hand(pose.long(), shape)
    with pytest.raises(ShapeError, match="'points'"):
        hand.sdf(torch.zeros(pose.shape[0], 5, 2, dtype=F64), pose, shape)
    with pytest.raises(ShapeError, match="'trans'"):
        hand.capsules(pose, shape, torch.zeros(pose.shape[0], 2, dtype=F64))
    with pytest.raises(ValueRangeError, match="'num_segments'"):
        ProceduralHand(num_segments=2)


def test_runs_on_every_device(device):
    hand = ProceduralHand(dtype=F64).to(device)
    pose = hand.grasp_pose(torch.tensor([0.3, 0.8], dtype=F64, device=device))
    shape = hand.sample_shape(2, generator=torch.Generator().manual_seed(0))
    assert shape.device.type == device.type and hand.sample_pose(2).device.type == device.type
    out = hand(pose, shape)
    assert out.vertices.device.type == device.type
    pts = hand.sample_surface(pose, shape, num_points=64, generator=torch.Generator().manual_seed(0))
    assert hand.sdf(pts, pose, shape).abs().max() < 1e-9
    cpu = ProceduralHand(dtype=F64)(pose.cpu(), shape.cpu())
    torch.testing.assert_close(out.joints.cpu(), cpu.joints)


def test_outputs_follow_the_input_device(hand):
    """The constant tables move to the inputs' device in every method (meta stands in for a GPU)."""
    pose, shape = torch.zeros(2, 16, 3, device="meta"), torch.zeros(2, 10, device="meta")
    out = hand(pose, shape)
    assert out.vertices.device.type == "meta" and out.vertices.shape == (2, int(hand.faces.max()) + 1, 3)
    assert hand.capsules(pose, shape).a.device.type == "meta"
    assert hand.sdf(torch.zeros(2, 5, 3, device="meta"), pose, shape).shape == (2, 5)


def test_rest_skeleton_keeps_the_shape_dtype_when_the_tables_promote(hand):
    """Under CUDA autocast ``exp`` runs in float32, so the bone chain came out float32 beside bfloat16 joints and
    ``index_copy`` raised (found by benchmarks/gpu_checks.py on an H200, 2026-12-04); float32 tables beside a
    bfloat16 shape reproduce the promotion on the CPU."""
    from hoimask.hand.procedural_skeleton import rest_skeleton

    tables = hand._tables(torch.zeros(1))  # float32
    rest = rest_skeleton(torch.zeros(2, 10, dtype=torch.bfloat16), tables)
    assert rest["joints"].dtype == torch.bfloat16 and rest["tips"].dtype == torch.bfloat16
    reference = rest_skeleton(torch.zeros(2, 10), tables)["joints"]
    torch.testing.assert_close(rest["joints"].float(), reference, atol=2e-3, rtol=1e-2)
