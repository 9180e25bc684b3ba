"""project_to_surface: exact on analytic SDFs, the near mask, detached outputs, no_grad, bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.sdf import box_sdf, project_to_surface, sphere_sdf


@given(seed=st.integers(0, 1000), n=st.integers(1, 30), radius=st.floats(0.05, 2.0))
def test_sphere_points_land_on_the_sphere(seed, n, radius):
    g = torch.Generator().manual_seed(seed)
    center = torch.randn(3, generator=g, dtype=torch.float64)
    direction = torch.nn.functional.normalize(torch.randn(2, n, 3, generator=g, dtype=torch.float64), dim=-1)
    distance = radius * (0.1 + 1.8 * torch.rand(2, n, 1, generator=g, dtype=torch.float64))  # inside and outside
    points = center + direction * distance
    out = project_to_surface(lambda p: sphere_sdf(p, center, radius), points)
    assert out.points.shape == (2, n, 3) and out.sdf.shape == out.near.shape == (2, n) and out.near.all()
    torch.testing.assert_close((out.points - center).norm(dim=-1), torch.full((2, n), radius, dtype=torch.float64))
    torch.testing.assert_close(out.normals, direction)  # outward, unit
    torch.testing.assert_close(out.sdf, distance[..., 0] - radius)


def test_box_face_points_project_along_the_face_normal():
    half = torch.tensor([0.2, 0.3, 0.4], dtype=torch.float64)
    points = torch.tensor([[0.25, 0.0, 0.1], [0.0, -0.28, 0.0], [0.05, 0.1, 0.45]], dtype=torch.float64)
    out = project_to_surface(lambda p: box_sdf(p, half), points)
    expected = torch.tensor([[0.2, 0.0, 0.1], [0.0, -0.3, 0.0], [0.05, 0.1, 0.4]], dtype=torch.float64)
    torch.testing.assert_close(out.points, expected)
    torch.testing.assert_close(out.normals, torch.tensor([[1.0, 0, 0], [0, -1.0, 0], [0, 0, 1.0]], dtype=torch.float64))


def test_far_points_and_flat_fields_are_not_moved():
    points = torch.tensor([[[1.5, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.9, 0.0]]])
    out = project_to_surface(lambda p: sphere_sdf(p, torch.zeros(3), 1.0), points, max_distance=1.0)
    assert out.near.tolist() == [[True, False, True]]
    torch.testing.assert_close(out.points[0, 1], points[0, 1])  # |d| = 2 >= 1: left where it was
    torch.testing.assert_close(out.points[0, 0], torch.tensor([1.0, 0.0, 0.0]))
    flat = project_to_surface(lambda p: p.new_full(p.shape[:-1], 0.3), points)  # constant: no gradient
    assert not flat.near.any() and torch.equal(flat.points, points) and (flat.normals == 0).all()
    zero = project_to_surface(lambda p: 0.0 * p.sum(-1) + 0.1, points)  # zero gradient through the graph
    assert not zero.near.any() and torch.equal(zero.points, points)


def test_outputs_are_detached_and_no_grad_is_fine():
    radius = torch.tensor(1.0, requires_grad=True)
    points = torch.tensor([[2.0, 0.0, 0.0]], requires_grad=True)
    with torch.no_grad():
        out = project_to_surface(lambda p: sphere_sdf(p, torch.zeros(3), radius), points)
    assert not any(t.requires_grad for t in out)
    torch.testing.assert_close(out.points, torch.tensor([[1.0, 0.0, 0.0]]))
    assert points.grad is None and radius.grad is None  # only the points' gradient was taken, and not stored


def test_bad_input_raises_typed_errors():
    sphere = lambda p: sphere_sdf(p, torch.zeros(3), 1.0)  # noqa: E731
    with pytest.raises(ShapeError, match="points"):
        project_to_surface(sphere, torch.zeros(4, 2))
    with pytest.raises(DTypeError, match="points"):
        project_to_surface(sphere, torch.zeros(4, 3, dtype=torch.long))
    with pytest.raises(ValueRangeError, match="points"):
        project_to_surface(sphere, torch.full((4, 3), float("nan")))
    with pytest.raises(ValueRangeError, match="max_distance"):
        project_to_surface(sphere, torch.zeros(4, 3), max_distance=0.0)
    with pytest.raises(ShapeError, match="sdf_fn"):
        project_to_surface(lambda p: p, torch.ones(4, 3))
    with torch.inference_mode(), pytest.raises(ValueRangeError, match="inference_mode"):
        project_to_surface(sphere, torch.ones(4, 3))
