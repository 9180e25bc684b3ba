import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import ShapeError, ValueRangeError
from hoimask.geometry import (
    axis_angle_to_matrix,
    crop_intrinsics,
    project,
    resize_intrinsics,
    rotate_intrinsics,
    unproject,
)

seeds = st.integers(0, 2**31 - 1)


def make_scene(seed, B=3, N=17, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    f = 200 + 800 * torch.rand(B, generator=g, dtype=dtype)
    pp = 50 + 150 * torch.rand(B, 2, generator=g, dtype=dtype)
    K = torch.zeros(B, 3, 3, dtype=dtype)
    K[:, 0, 0], K[:, 1, 1] = f, f
    K[:, :2, 2] = pp
    K[:, 2, 2] = 1
    pts = torch.randn(B, N, 3, generator=g, dtype=dtype) * 0.1
    pts[..., 2] += 0.5 + torch.rand(B, N, generator=g, dtype=dtype)
    return K, pts, g


def test_project_known_value():
    K = torch.tensor([[100.0, 0, 64], [0, 200.0, 32], [0, 0, 1]])
    uv = project(torch.tensor([[0.1, -0.2, 2.0]]), K)
    torch.testing.assert_close(uv, torch.tensor([[69.0, 12.0]]))


@given(seed=seeds)
def test_unproject_inverts_project(seed):
    K, pts, _ = make_scene(seed)
    uv = project(pts, K)
    torch.testing.assert_close(unproject(uv, pts[..., 2], K), pts, atol=1e-12, rtol=0)


@given(seed=seeds)
def test_crop_and_resize_intrinsics(seed):
    K, pts, g = make_scene(seed)
    uv = project(pts, K)
    box = torch.cat([torch.rand(3, 2, generator=g, dtype=K.dtype) * 40, torch.full((3, 2), 200.0, dtype=K.dtype)], -1)
    torch.testing.assert_close(project(pts, crop_intrinsics(K, box)), uv - box[:, None, :2], atol=1e-9, rtol=0)
    sx, sy = 0.5 + torch.rand(3, generator=g, dtype=K.dtype), 0.5 + torch.rand(3, generator=g, dtype=K.dtype)
    uv2 = project(pts, resize_intrinsics(K, sx, sy))
    torch.testing.assert_close(uv2, uv * torch.stack([sx, sy], -1)[:, None], atol=1e-9, rtol=0)


@given(seed=seeds, angle=st.floats(-math.pi, math.pi))
def test_rotate_intrinsics_matches_pixel_rotation(seed, angle):
    K, pts, g = make_scene(seed)
    center = torch.rand(3, 2, generator=g, dtype=K.dtype) * 200
    K_new, R_z = rotate_intrinsics(K, angle, center)
    uv = project(pts, K)
    R2 = R_z[..., :2, :2]
    expected = ((uv - center[:, None]) @ R2.transpose(-1, -2)) + center[:, None]
    rotated = pts @ R_z.transpose(-1, -2)
    torch.testing.assert_close(project(rotated, K_new), expected, atol=1e-8, rtol=0)
    # fx == fy, no skew: K_new stays a standard pinhole matrix.
    assert torch.allclose(K_new[:, 1, 0], torch.zeros(3, dtype=K.dtype), atol=1e-9)
    assert torch.allclose(K_new[:, 0, 1], torch.zeros(3, dtype=K.dtype), atol=1e-9)
    # rotating about the camera's optical axis is a rigid motion
    torch.testing.assert_close(rotated.norm(dim=-1), pts.norm(dim=-1))


def test_k_broadcasts_over_leading_dims():
    K, pts, _ = make_scene(0, B=2, N=5)
    uv = project(pts, K)
    for b in range(2):
        torch.testing.assert_close(uv[b], project(pts[b], K[b]))
    R = axis_angle_to_matrix(torch.zeros(3, dtype=K.dtype))
    assert project(pts[0], K[0] @ R).shape == (5, 2)


def test_bad_inputs():
    K, pts, _ = make_scene(0)
    with pytest.raises(ShapeError, match="'points'"):
        project(pts[..., :2], K)
    with pytest.raises(ShapeError, match="'K'"):
        project(pts, K[..., :2])
    with pytest.raises(ShapeError, match="'depth'"):
        unproject(project(pts, K), pts[..., 2][:, :3], K)
    with pytest.raises(ShapeError, match="batch dims"):
        project(pts[0, 0], K)


def test_resize_intrinsics_rejects_non_positive_scales_with_a_range_error():
    K, _, _ = make_scene(0)
    with pytest.raises(ValueRangeError, match="scale_x"):
        resize_intrinsics(K, 0.0)
    with pytest.raises(ValueRangeError, match="scale_y"):
        resize_intrinsics(K, 1.0, -2.0)
