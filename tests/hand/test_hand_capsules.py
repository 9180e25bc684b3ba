"""Capsule SDF, capsule meshes and the shared kinematics."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.geometry import axis_angle_to_matrix
from hoimask.hand import (
    capsule_mesh_template,
    capsule_mesh_vertices,
    capsule_sdf,
    forward_kinematics,
    linear_blend_skinning,
    sample_capsule_surface,
)

F64 = torch.float64


def test_capsule_sdf_known_values():
    a = torch.tensor([[[0.0, 0.0, 0.0], [5.0, 5.0, 5.0]]], dtype=F64)
    b = torch.tensor([[[1.0, 0.0, 0.0], [5.0, 5.0, 5.0]]], dtype=F64)  # second is a sphere (a == b)
    r = torch.tensor([[0.5, 1.0]], dtype=F64)
    pts = torch.tensor([[[0.5, 2.0, 0.0], [-1.0, 0.0, 0.0], [0.5, 0.0, 0.0], [5.0, 5.0, 7.0]]], dtype=F64)
    expect = torch.tensor([[1.5, 0.5, -0.5, 1.0]], dtype=F64)
    torch.testing.assert_close(capsule_sdf(pts, a, b, r), expect)


def test_capsule_sdf_gradcheck():
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(2, 5, 3, generator=g, dtype=F64, requires_grad=True)
    a = torch.randn(2, 3, 3, generator=g, dtype=F64, requires_grad=True)
    b = torch.randn(2, 3, 3, generator=g, dtype=F64, requires_grad=True)
    r = (0.2 + torch.rand(2, 3, generator=g, dtype=F64)).requires_grad_(True)
    assert torch.autograd.gradcheck(capsule_sdf, (pts, a, b, r))


def test_capsule_sdf_errors():
    pts, a, r = torch.zeros(1, 4, 3), torch.zeros(1, 2, 3), torch.ones(1, 2)
    with pytest.raises(ShapeError, match="'b'"):
        capsule_sdf(pts, a, torch.zeros(1, 3, 3), r)
    with pytest.raises(ShapeError, match="'points'"):
        capsule_sdf(torch.zeros(4, 3), a, a, r)
    with pytest.raises(DTypeError, match="'radius'"):
        capsule_sdf(pts, a, a, torch.ones(1, 2, dtype=torch.int64))


@pytest.mark.parametrize("n", [3, 8, 16])
def test_capsule_mesh_is_closed_and_outward(n):
    trimesh = pytest.importorskip("trimesh")
    tpl = capsule_mesh_template(n)
    a = torch.tensor([[[0.0, 0.0, 0.0]]], dtype=F64)
    b = torch.tensor([[[0.0, 0.3, 0.4]]], dtype=F64)
    r = torch.tensor([[0.1]], dtype=F64)
    verts = capsule_mesh_vertices(a, b, r, torch.tensor([[[1.0, 0.0, 0.0]]], dtype=F64), tpl)[0, 0]
    mesh = trimesh.Trimesh(verts.numpy(), tpl.faces.numpy(), process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    exact = math.pi * 0.1**2 * 0.5 + 4 / 3 * math.pi * 0.1**3
    assert (0.95 if n >= 16 else 0.3) * exact < mesh.volume <= exact  # inscribed, positive = outward
    # Every vertex lies on the capsule surface.
    d = capsule_sdf(verts[None], a, b, r)
    assert d.abs().max() < 1e-12


def test_capsule_template_errors():
    with pytest.raises(ValueRangeError, match="'num_segments'"):
        capsule_mesh_template(2)
    with pytest.raises(DTypeError, match="'num_segments'"):
        capsule_mesh_template(8.0)


def test_forward_kinematics_rotates_descendants_about_joint():
    rest = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [0.0, 1, 0]]], dtype=F64)
    parents = (-1, 0, 1, 0)
    rot = torch.eye(3, dtype=F64).repeat(1, 4, 1, 1)
    _, posed = forward_kinematics(rot, rest, parents)
    torch.testing.assert_close(posed, rest)
    rot[0, 1] = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2], dtype=F64))
    glob, posed = forward_kinematics(rot, rest, parents)
    expect = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0], [1.0, 1.0, 0], [0.0, 1, 0]]], dtype=F64)
    torch.testing.assert_close(posed, expect)
    torch.testing.assert_close(glob[0, 2], rot[0, 1])


def test_forward_kinematics_rejects_bad_parents():
    rot, rest = torch.eye(3).repeat(1, 3, 1, 1), torch.zeros(1, 3, 3)
    with pytest.raises(ShapeError, match="'parents'"):
        forward_kinematics(rot, rest, (-1, 2, 0))
    with pytest.raises(ShapeError, match="'parents'"):
        forward_kinematics(rot, rest, (-1, 0))


@settings(max_examples=10)
@given(seed=st.integers(0, 1000))
def test_skinning_with_one_joint_is_rigid(seed):
    g = torch.Generator().manual_seed(seed)
    pts = torch.randn(1, 7, 3, generator=g, dtype=F64)
    rest = torch.randn(1, 2, 3, generator=g, dtype=F64)
    rot = axis_angle_to_matrix(torch.randn(1, 2, 3, generator=g, dtype=F64))
    glob, posed = forward_kinematics(rot, rest, (-1, 0))
    weights = torch.zeros(7, 2, dtype=F64)
    weights[:, 1] = 1.0  # everything follows joint 1
    out = linear_blend_skinning(pts, weights, rest, glob, posed)
    expect = (pts - rest[:, 1:2]) @ glob[0, 1].T + posed[:, 1:2]
    torch.testing.assert_close(out, expect)


def test_surface_samples_lie_on_the_union_boundary_uniformly():
    g = torch.Generator().manual_seed(0)
    # Two overlapping spheres (degenerate capsules) and a capsule poking into them.
    a = torch.tensor([[[0.0, 0, 0], [0.15, 0, 0], [0.0, 0.0, 0.0]]], dtype=F64)
    b = torch.tensor([[[0.0, 0, 0], [0.15, 0, 0], [0.0, 0.3, 0.0]]], dtype=F64)
    r = torch.tensor([[0.1, 0.1, 0.05]], dtype=F64)
    pts = sample_capsule_surface(a, b, r, 4000, generator=g)
    assert pts.shape == (1, 4000, 3)
    assert capsule_sdf(pts, a, b, r).abs().max() < 1e-9  # on the boundary, none inside another part
    again = sample_capsule_surface(a, b, r, 4000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(pts, again)
    # Uniform on a single capsule: the centroid is the capsule centre (up to sampling noise).
    one = sample_capsule_surface(a[:, 2:], b[:, 2:], r[:, 2:], 20000, generator=g)
    torch.testing.assert_close(one.mean(1), (a[:, 2] + b[:, 2]) / 2, rtol=0, atol=3e-3)
    side = (one[0, :, 1] > 0) & (one[0, :, 1] < 0.3)
    area_side, area_caps = 2 * math.pi * 0.05 * 0.3, 4 * math.pi * 0.05**2
    assert abs(float(side.double().mean()) - area_side / (area_side + area_caps)) < 0.02


def test_sample_counts_must_be_ints():
    """Float counts are refused rather than truncated."""
    from hoimask.hand import ProceduralHand

    a, b, r = torch.zeros(1, 1, 3), torch.tensor([[[1.0, 0.0, 0.0]]]), torch.tensor([[0.5]])
    assert sample_capsule_surface(a, b, r, 3, generator=torch.Generator().manual_seed(0)).shape == (1, 3, 3)
    with pytest.raises(DTypeError, match="'num_points'"):
        sample_capsule_surface(a, b, r, 2.5)
    with pytest.raises(DTypeError, match="'oversample'"):
        sample_capsule_surface(a, b, r, 3, oversample=2.0)
    with pytest.raises(ValueRangeError, match="'num_points'"):
        sample_capsule_surface(a, b, r, 0)
    hand = ProceduralHand()
    with pytest.raises(DTypeError, match="'batch_size'"):
        hand.sample_shape(2.5)
    with pytest.raises(DTypeError, match="'batch_size'"):
        hand.sample_pose(2.0)
