"""Object pose metrics: known values, ADD-S directions, official-code agreement."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import ShapeError, ValueRangeError
from hoimask.geometry import axis_angle_to_matrix
from hoimask.metrics import (
    add,
    add_s,
    add_within,
    box_corners,
    center_error,
    corner_error,
    object_mesh_error,
)

I3 = torch.eye(3, dtype=torch.float64)


def _rz(deg: float) -> torch.Tensor:
    return axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.radians(deg)], dtype=torch.float64))


def _cube(half: float = 0.5) -> torch.Tensor:
    return torch.tensor(
        [[x, y, z] for x in (-half, half) for y in (-half, half) for z in (-half, half)], dtype=torch.float64
    )


@given(seed=st.integers(0, 10_000), P=st.integers(1, 60))
def test_zero_on_identical_pose(seed, P):
    g = torch.Generator().manual_seed(seed)
    R = axis_angle_to_matrix(torch.randn(2, 3, generator=g, dtype=torch.float64))
    t = torch.randn(2, 3, generator=g, dtype=torch.float64)
    pts = torch.randn(P, 3, generator=g, dtype=torch.float64)
    z = torch.zeros(2, dtype=torch.float64)
    assert torch.allclose(center_error(t, t), z)
    for fn in (corner_error, add, add_s, object_mesh_error):
        assert torch.allclose(fn(R, t, R, t, pts), z, atol=1e-12), fn.__name__
    assert torch.allclose(add_s(R, t, R, t, pts, direction="pred_to_gt"), z, atol=1e-12)
    assert torch.equal(add_within(R, t, R, t, pts, diameter=0.1), torch.ones(2, dtype=torch.float64))


def test_translation_offset_known_values():
    R = I3.expand(1, 3, 3)
    t_gt = torch.tensor([[0.0, 0.0, 0.5]], dtype=torch.float64)
    t_pred = t_gt + torch.tensor([0.03, 0.04, 0.0], dtype=torch.float64)
    pts = _cube(0.05)
    for fn in (corner_error, add, object_mesh_error):
        assert float(fn(R, t_pred, R, t_gt, pts)) == pytest.approx(0.05)
    assert float(center_error(t_pred, t_gt)) == pytest.approx(0.05)


def test_corner_error_uses_camera_frame_box():
    # gt cube rotated 45 deg about z: its camera-frame box grows to +-sqrt(2)/2 in x, y.
    pts = _cube(0.5)
    t = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    e = corner_error(I3[None], t, _rz(45.0)[None], t, pts)
    expected = math.hypot(math.sqrt(0.5) - 0.5, math.sqrt(0.5) - 0.5)
    assert float(e) == pytest.approx(expected)
    # a 90-degree turn maps the cube's box onto itself: MCE 0 although ADD is not
    assert float(corner_error(I3[None], t, _rz(90.0)[None], t, pts)) == pytest.approx(0.0, abs=1e-12)
    assert float(add(I3[None], t, _rz(90.0)[None], t, pts)) > 0.5


def test_box_corners_order():
    pts = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]])
    c = box_corners(pts)[0]
    assert torch.equal(c[0], torch.tensor([0.0, 0.0, 0.0]))
    assert torch.equal(c[7], torch.tensor([1.0, 2.0, 3.0]))
    assert torch.equal(c[4], torch.tensor([1.0, 0.0, 0.0]))  # bit 2 -> x max


def test_add_s_symmetric_object():
    # a square in the xy plane turned by 90 degrees: ADD-S is 0, ADD is not
    sq = torch.tensor([[1.0, 1, 0], [-1, 1, 0], [-1, -1, 0], [1, -1, 0]], dtype=torch.float64)
    t = torch.zeros(1, 3, dtype=torch.float64)
    R = _rz(90.0)[None]
    assert float(add_s(R, t, I3[None], t, sq)) == pytest.approx(0.0, abs=1e-12)
    assert float(add(R, t, I3[None], t, sq)) == pytest.approx(2.0)


def test_add_s_directions_hand_worked():
    # model points on the x axis at 0, 1, 1.2; prediction shifted by +0.9
    pts = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [1.2, 0, 0]], dtype=torch.float64)
    R = I3[None]
    t_gt = torch.zeros(1, 3, dtype=torch.float64)
    t_pred = torch.tensor([[0.9, 0.0, 0.0]], dtype=torch.float64)
    # gt {0, 1, 1.2} -> pred {0.9, 1.9, 2.1}: 0.9, 0.1, 0.3
    assert float(add_s(R, t_pred, R, t_gt, pts)) == pytest.approx(1.3 / 3)
    # pred -> gt: 0.1, 0.7, 0.9
    assert float(add_s(R, t_pred, R, t_gt, pts, direction="pred_to_gt")) == pytest.approx(1.7 / 3)


def test_add_s_matches_bop_and_hoisdf_definitions():
    spatial = pytest.importorskip("scipy.spatial")
    rng = np.random.default_rng(0)
    pts = rng.standard_normal((200, 3)) * 0.05
    R_p = axis_angle_to_matrix(torch.from_numpy(rng.standard_normal((3, 3)) * 0.3)).numpy()
    R_g = axis_angle_to_matrix(torch.from_numpy(rng.standard_normal((3, 3)) * 0.3)).numpy()
    t_p, t_g = rng.standard_normal((3, 3)) * 0.01, rng.standard_normal((3, 3)) * 0.01
    ours_bop = add_s(R_p, t_p, R_g, t_g, pts)
    ours_hoisdf = add_s(R_p, t_p, R_g, t_g, pts, direction="pred_to_gt", max_elements=1000)
    assert isinstance(ours_bop, np.ndarray)
    for i in range(3):
        est, gt = pts @ R_p[i].T + t_p[i], pts @ R_g[i].T + t_g[i]
        bop = spatial.cKDTree(est).query(gt, k=1)[0].mean()  # BOP adi: gt queried in est
        dense = np.linalg.norm(gt[None, :, :] - est[:, None, :], axis=-1).min(axis=1).mean()  # HOISDF
        assert ours_bop[i] == pytest.approx(bop, rel=1e-10)
        assert ours_hoisdf[i] == pytest.approx(dense, rel=1e-10)


def test_batched_model_points_equal_shared():
    g = torch.Generator().manual_seed(3)
    R = axis_angle_to_matrix(torch.randn(4, 3, generator=g, dtype=torch.float64))
    Rg = axis_angle_to_matrix(torch.randn(4, 3, generator=g, dtype=torch.float64))
    t, tg = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    pts = torch.randn(30, 3, generator=g, dtype=torch.float64)
    for fn in (corner_error, add, add_s, object_mesh_error):
        assert torch.allclose(fn(R, t, Rg, tg, pts), fn(R, t, Rg, tg, pts.expand(4, 30, 3))), fn.__name__


def test_add_within():
    pts = _cube(0.5)  # diameter sqrt(3)
    R = I3.expand(3, 3, 3)
    t_gt = torch.zeros(3, 3, dtype=torch.float64)
    d = math.sqrt(3)
    offsets = torch.tensor([0.2 * d, 0.5 * d, 0.7 * d], dtype=torch.float64)
    t_pred = t_gt + offsets[:, None] * torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    expected = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)  # strict "<": 0.5 d is a miss
    assert torch.equal(add_within(R, t_pred, R, t_gt, pts), expected)  # diameter from the points
    assert torch.equal(add_within(R, t_pred, R, t_gt, pts, diameter=d), expected)
    assert torch.equal(add_within(R, t_pred, R, t_gt, pts, diameter=torch.full((3,), 10.0, dtype=torch.float64)),
                       torch.ones(3, dtype=torch.float64))
    # fraction 0.1 of 10 = 1.0: offsets 0.35 and 0.87 pass, 1.21 fails
    assert torch.equal(add_within(R, t_pred, R, t_gt, pts, fraction=0.1, diameter=10.0),
                       torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64))


def test_device_dtype(device, dtype):
    R = torch.eye(3, dtype=dtype, device=device).expand(2, 3, 3)
    t = torch.zeros(2, 3, dtype=dtype, device=device)
    pts = torch.rand(10, 3, dtype=dtype, device=device)
    for fn in (corner_error, add, add_s, object_mesh_error, add_within):
        out = fn(R, t + 0.01, R, t, pts)
        assert out.dtype == dtype and out.device.type == device.type and out.shape == (2,)


def test_errors():
    R, t, pts = torch.eye(3).expand(2, 3, 3), torch.zeros(2, 3), torch.zeros(5, 3)
    with pytest.raises(ShapeError, match="R_gt"):
        add(R, t, torch.eye(3).expand(3, 3, 3), t, pts)
    with pytest.raises(ShapeError, match="model_points"):
        add(R, t, R, t, torch.zeros(3, 5, 3))
    with pytest.raises(ShapeError, match="t_pred"):
        center_error(torch.zeros(2, 2), t)
    with pytest.raises(ValueRangeError, match="direction"):
        add_s(R, t, R, t, pts, direction="both")
    with pytest.raises(ValueRangeError, match="model_points"):
        add(R, t, R, t, torch.zeros(0, 3))
    with pytest.raises(ValueRangeError, match="diameter"):
        add_within(R, t, R, t, pts, diameter=0.0)
    with pytest.raises(ValueRangeError, match="fraction"):
        add_within(R, t, R, t, pts, fraction=-1.0, diameter=1.0)
