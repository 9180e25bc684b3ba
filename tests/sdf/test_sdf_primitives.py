"""Analytic SDFs: known values, eikonal property, rigid placement, unions, errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import ShapeError, ValueRangeError
from hoimask.geometry import axis_angle_to_matrix
from hoimask.sdf import (
    box_sdf,
    capsule_sdf,
    cylinder_sdf,
    smooth_union,
    sphere_sdf,
    to_local,
    transformed_sdf,
    union,
)

H = torch.tensor([0.3, 0.2, 0.1], dtype=torch.float64)
SHAPES = {
    "sphere": lambda p: sphere_sdf(p, torch.tensor([0.1, 0.0, -0.1], dtype=p.dtype), 0.25),
    "box": lambda p: box_sdf(p, H.to(p.dtype)),
    "capsule": lambda p: capsule_sdf(p, torch.zeros(3, dtype=p.dtype), torch.tensor([0.3, 0.1, 0.0], dtype=p.dtype), 0.1),
    "cylinder": lambda p: cylinder_sdf(p, 0.15, 0.25),
}


def test_known_values(dtype):
    p = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.5, 0.0]], dtype=dtype)
    assert torch.allclose(sphere_sdf(p, torch.zeros(3, dtype=dtype), 0.5), torch.tensor([-0.5, 0.5, math.sqrt(0.5) - 0.5], dtype=dtype))
    hb = torch.tensor([0.25, 0.25, 0.25], dtype=dtype)
    assert torch.allclose(box_sdf(p, hb), torch.tensor([-0.25, 0.75, math.sqrt(2) * 0.25], dtype=dtype))
    # Capsule along x from 0 to 1: end cap and side.
    a, b = torch.zeros(3, dtype=dtype), torch.tensor([1.0, 0, 0], dtype=dtype)
    q = torch.tensor([[2.0, 0.0, 0.0], [0.5, 0.3, 0.0], [0.5, 0.0, 0.0]], dtype=dtype)
    assert torch.allclose(capsule_sdf(q, a, b, 0.1), torch.tensor([0.9, 0.2, -0.1], dtype=dtype))
    # Cylinder: side, cap, rim corner, inside nearer the cap.
    c = torch.tensor([[2.0, 0, 0], [0, 0, 3.0], [2.0, 0, 3.0], [0, 0, 1.8]], dtype=dtype)
    assert torch.allclose(cylinder_sdf(c, 1.0, 2.0), torch.tensor([1.0, 1.0, math.sqrt(2), -0.2], dtype=dtype))


def test_leading_dims_and_parameter_broadcast():
    p = torch.randn(4, 5, 3, generator=torch.Generator().manual_seed(0))
    centers = torch.randn(4, 1, 3, generator=torch.Generator().manual_seed(1))
    radii = torch.rand(4, 1) + 0.1
    d = sphere_sdf(p, centers, radii)
    assert d.shape == (4, 5)
    assert torch.allclose(d[2], sphere_sdf(p[2], centers[2, 0], float(radii[2, 0])))
    assert cylinder_sdf(p, torch.full((4, 5), 0.2), 0.3).shape == (4, 5)


@pytest.mark.parametrize("name", sorted(SHAPES))
@given(seed=st.integers(0, 2**31 - 1))
def test_eikonal_and_surface(name, seed):
    """|grad sdf| = 1 away from edges and the medial axis; stepping back along the gradient hits the surface."""
    g = torch.Generator().manual_seed(seed)
    p = (torch.rand(64, 3, generator=g, dtype=torch.float64) - 0.5).requires_grad_()
    d = SHAPES[name](p)
    (grad,) = torch.autograd.grad(d.sum(), p)
    norm = grad.norm(dim=-1)
    # Points on a medial axis (ties) have undefined gradients; they are measure-zero for random points.
    assert torch.allclose(norm, torch.ones_like(norm), atol=1e-9)
    on_surface = p.detach() - d.detach().unsqueeze(-1) * grad
    assert SHAPES[name](on_surface).abs().max() < 1e-9


def test_capsule_degenerate_segment_is_sphere():
    p = torch.randn(20, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    c = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    assert torch.allclose(capsule_sdf(p, c, c, 0.4), sphere_sdf(p, c, 0.4))


def test_rigid_transform():
    g = torch.Generator().manual_seed(3)
    p = torch.randn(6, 50, 3, generator=g, dtype=torch.float64)
    R = axis_angle_to_matrix(torch.randn(6, 1, 3, generator=g, dtype=torch.float64))
    t = torch.randn(6, 1, 3, generator=g, dtype=torch.float64)
    # Local coordinates invert the pose; distances are invariant under moving points and shape together.
    world = (R @ p.unsqueeze(-1)).squeeze(-1) + t
    assert torch.allclose(to_local(world, R, t), p)
    assert torch.allclose(transformed_sdf(box_sdf, world, R, t, H), box_sdf(p, H))
    # A rotated sphere is the same sphere.
    assert torch.allclose(transformed_sdf(sphere_sdf, world, R, t, torch.zeros(3, dtype=torch.float64), 0.3),
                          sphere_sdf(world, t, 0.3))
    # 90 degrees about z swaps the x and y extents of a box.
    Rz = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2], dtype=torch.float64))
    swapped = box_sdf(p, H[[1, 0, 2]])
    assert torch.allclose(transformed_sdf(box_sdf, p, Rz, torch.zeros(3, dtype=torch.float64), H), swapped)


def test_union_and_smooth_union():
    a = torch.tensor([0.0, 1.0, -1.0, 0.3])
    b = torch.tensor([0.0, 0.0, 2.0, 0.35])
    assert torch.equal(union(a, b), torch.minimum(a, b))
    assert torch.equal(union(a), a)
    s = smooth_union(a, b, 0.2)
    assert bool((s <= torch.minimum(a, b) + 1e-7).all())
    far = (a - b).abs() >= 0.2
    assert torch.allclose(s[far], torch.minimum(a, b)[far])
    assert torch.isclose(s[0], torch.tensor(-0.05))  # k/4 below the tie


def test_bad_inputs():
    p = torch.zeros(4, 3)
    with pytest.raises(ValueRangeError, match="radius"):
        sphere_sdf(p, torch.zeros(3), -1.0)
    with pytest.raises(ValueRangeError, match="half_extents"):
        box_sdf(p, torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ShapeError, match="points"):
        box_sdf(torch.zeros(4, 2), torch.ones(3))
    with pytest.raises(ShapeError, match="center"):
        sphere_sdf(p, torch.zeros(2), 1.0)
    with pytest.raises(ValueRangeError, match="half_height"):
        cylinder_sdf(p, 1.0, 0.0)
    with pytest.raises(ValueRangeError, match="'k'"):
        smooth_union(p[:, 0], p[:, 1], 0.0)
    with pytest.raises(ShapeError):
        union()
