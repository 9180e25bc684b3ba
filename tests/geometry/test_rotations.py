import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import DTypeError, ShapeError
from hoimask.geometry import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    matrix_to_rotation_6d,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
    rotation_6d_to_matrix,
    skew,
)

seeds = st.integers(0, 2**31 - 1)
batch_shapes = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)


def random_axis_angle(shape, seed, dtype=torch.float64, max_angle=math.pi):
    g = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(*shape, 3, generator=g, dtype=dtype), dim=-1)
    angle = torch.rand(*shape, 1, generator=g, dtype=dtype) * max_angle
    return axis * angle


def assert_rotation(R, atol=1e-9):
    eye = torch.eye(3, dtype=R.dtype).expand_as(R)
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye, atol=atol, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(R.shape[:-2], dtype=R.dtype), atol=atol, rtol=0)


@given(shape=batch_shapes, seed=seeds)
def test_axis_angle_round_trip(shape, seed):
    aa = random_axis_angle(shape, seed, max_angle=math.pi - 1e-3)
    R = axis_angle_to_matrix(aa)
    assert R.shape == (*shape, 3, 3)
    assert_rotation(R)
    torch.testing.assert_close(matrix_to_axis_angle(R), aa, atol=1e-9, rtol=0)


@pytest.mark.parametrize("angle", [0.0, 1e-12, 1e-7, 1e-4, math.pi - 1e-6, math.pi])
def test_axis_angle_stable_near_zero_and_pi(angle):
    axis = torch.nn.functional.normalize(torch.randn(64, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)), dim=-1)
    R = axis_angle_to_matrix(axis * angle)
    assert torch.isfinite(R).all()
    back = matrix_to_axis_angle(R)
    torch.testing.assert_close(axis_angle_to_matrix(back), R, atol=1e-10, rtol=0)
    torch.testing.assert_close(back.norm(dim=-1), torch.full((64,), angle, dtype=torch.float64), atol=1e-6, rtol=0)


def test_axis_angle_known_value():
    R = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2]))
    expected = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    torch.testing.assert_close(R, expected, atol=1e-6, rtol=0)


@given(shape=batch_shapes, seed=seeds)
def test_quaternion_round_trip(shape, seed):
    R = axis_angle_to_matrix(random_axis_angle(shape, seed))
    q = matrix_to_quaternion(R)
    assert (q[..., 0] >= 0).all()
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(shape, dtype=q.dtype))
    torch.testing.assert_close(quaternion_to_matrix(q), R, atol=1e-10, rtol=0)


@given(shape=batch_shapes, seed=seeds)
def test_6d_round_trip_and_gram_schmidt(shape, seed):
    R = axis_angle_to_matrix(random_axis_angle(shape, seed))
    torch.testing.assert_close(rotation_6d_to_matrix(matrix_to_rotation_6d(R)), R, atol=1e-10, rtol=0)
    g = torch.Generator().manual_seed(seed)
    any6 = torch.randn(*shape, 6, generator=g, dtype=torch.float64)
    assert_rotation(rotation_6d_to_matrix(any6))


def test_6d_is_first_two_columns():
    R = axis_angle_to_matrix(torch.tensor([0.3, -0.2, 0.9]))
    d6 = matrix_to_rotation_6d(R)
    torch.testing.assert_close(d6[:3], R[:, 0])
    torch.testing.assert_close(d6[3:], R[:, 1])


def test_skew_is_cross_product():
    v, u = torch.randn(5, 3), torch.randn(5, 3)
    torch.testing.assert_close((skew(v) @ u.unsqueeze(-1)).squeeze(-1), torch.linalg.cross(v, u))


def test_gradcheck_float64():
    aa = random_axis_angle((4,), 3).requires_grad_()
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (aa,))
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (torch.zeros(2, 3, dtype=torch.float64, requires_grad=True),))
    R = axis_angle_to_matrix(random_axis_angle((4,), 4, max_angle=2.5)).requires_grad_()
    assert torch.autograd.gradcheck(matrix_to_axis_angle, (R,))
    assert torch.autograd.gradcheck(matrix_to_quaternion, (R,))
    d6 = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rotation_6d_to_matrix, (d6,))
    q = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(quaternion_to_matrix, (q,))


def test_dtype_and_device_follow_input(device, dtype):
    aa = torch.randn(2, 3, dtype=dtype, device=device)
    R = axis_angle_to_matrix(aa)
    assert R.dtype == dtype and R.device.type == device.type
    assert matrix_to_rotation_6d(R).dtype == dtype


@pytest.mark.parametrize(
    ("fn", "bad"),
    [
        (axis_angle_to_matrix, torch.zeros(2, 4)),
        (rotation_6d_to_matrix, torch.zeros(2, 5)),
        (matrix_to_axis_angle, torch.zeros(2, 3, 2)),
        (quaternion_to_matrix, torch.zeros(3)),
    ],
)
def test_bad_shapes_raise(fn, bad):
    with pytest.raises(ShapeError, match=fn.__name__):
        fn(bad)


def test_quaternion_to_axis_angle_rejects_integer_input():
    with pytest.raises(DTypeError, match="quaternion_to_axis_angle"):
        quaternion_to_axis_angle(torch.tensor([1, 0, 0, 0]))
