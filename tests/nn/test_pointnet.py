"""PointNet encoder: masked pooling known values, permutation invariance, module == function, bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.nn import POOL_MODES, PointNetEncoder, pool_points


def naive_pool(features: torch.Tensor, valid: torch.Tensor, mode: str) -> torch.Tensor:
    """Loop form over the valid points of one set ``(N, C)``; zeros for an empty set."""
    kept = [features[i] for i in range(features.shape[0]) if valid[i]]
    C = features.shape[1]
    top = torch.stack(kept).max(0).values if kept else features.new_zeros(C)
    mean = torch.stack(kept).mean(0) if kept else features.new_zeros(C)
    return {"max": top, "mean": mean, "max_mean": torch.cat([top, mean])}[mode]


@pytest.mark.parametrize("mode", POOL_MODES)
@given(n=st.integers(1, 12), c=st.integers(1, 5), seed=st.integers(0, 1000))
def test_pool_points_equals_loop_and_ignores_invalid(mode, n, c, seed):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(2, n, c, generator=g, dtype=torch.float64)
    valid = torch.rand(2, n, generator=g) < 0.6
    valid[1] = False  # one empty set: zeros
    out = pool_points(features, valid, mode=mode)
    expected = torch.stack([naive_pool(features[b], valid[b], mode) for b in range(2)])
    torch.testing.assert_close(out, expected)
    moved = torch.where(valid[..., None], features, features + 1e3)  # invalid points change: nothing does
    torch.testing.assert_close(pool_points(moved, valid, mode=mode), out)
    torch.testing.assert_close(pool_points(features, mode=mode), pool_points(features, torch.ones_like(valid), mode=mode))


def test_pool_points_gradcheck_and_leading_dims():
    features = torch.randn(3, 2, 6, 4, dtype=torch.float64, requires_grad=True)  # (L, B, N, C)
    valid = torch.tensor([[True, False, True, True, False, True], [False] * 6])
    assert pool_points(features, valid).shape == (3, 2, 8)  # valid broadcasts over the leading L
    assert torch.autograd.gradcheck(lambda f: pool_points(f, valid), [features])
    out = pool_points(features, valid, mode="max")
    out.sum().backward()
    assert torch.isfinite(features.grad).all() and (features.grad[:, 1] == 0).all()  # the empty set: no gradient


def test_pool_points_errors():
    f = torch.zeros(2, 5, 3)
    with pytest.raises(ValueRangeError, match="mode"):
        pool_points(f, mode="sum")
    with pytest.raises(DTypeError, match="valid"):
        pool_points(f, torch.ones(2, 5))
    with pytest.raises(ShapeError, match="valid"):
        pool_points(f, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ShapeError, match="features"):
        pool_points(torch.zeros(5))


def _encoder(**kw) -> PointNetEncoder:
    torch.manual_seed(0)
    return PointNetEncoder(**{"feature_channels": 3, "hidden": (16, 8), "dim": 5, **kw}).double()


@given(n=st.integers(1, 20), seed=st.integers(0, 1000), pool=st.sampled_from(POOL_MODES))
def test_encoder_is_permutation_invariant(n, seed, pool):
    enc = _encoder(pool=pool)
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(2, n, 3, generator=g, dtype=torch.float64)
    normals = torch.randn(2, n, 3, generator=g, dtype=torch.float64)
    valid = torch.rand(2, n, generator=g) < 0.7
    center = torch.randn(2, 3, generator=g, dtype=torch.float64)
    perm = torch.randperm(n, generator=g)
    out = enc(points, center, normals, valid)
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    torch.testing.assert_close(enc(points[:, perm], center, normals[:, perm], valid[:, perm]), out)


def test_encoder_equals_mlp_then_pool_then_projection():
    enc = _encoder(point_scale=3.1)
    points, normals = torch.rand(2, 9, 3, dtype=torch.float64), torch.randn(2, 9, 3, dtype=torch.float64)
    center, valid = points[:, 0], torch.rand(2, 9) < 0.5
    x = torch.cat([(points - center[:, None]) * 3.1, normals], dim=-1)
    expected = enc.projection(pool_points(enc.mlp(x), valid, mode="max_mean"))
    torch.testing.assert_close(enc(points, center, normals, valid), expected)
    # translation: moving the points and the centre together changes nothing
    torch.testing.assert_close(enc(points + 5.0, center + 5.0, normals, valid), expected)
    # the MLP ends in a ReLU (PointNet): pooled features are >= 0 before the projection
    assert (pool_points(enc.mlp(x), valid) >= 0).all()


def test_encoder_widths_and_gradients():
    plain = PointNetEncoder(hidden=(8, 12))
    assert plain.out_dim == 24 and isinstance(plain.projection, torch.nn.Identity)
    assert PointNetEncoder(hidden=(8, 12), pool="max").out_dim == 12
    points = torch.rand(3, 7, 3, requires_grad=True)
    out = plain(points)
    assert out.shape == (3, 24)
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in plain.parameters())
    assert points.grad is not None and torch.isfinite(points.grad).all()


def test_encoder_errors():
    enc = PointNetEncoder(3, hidden=(8,))
    points = torch.rand(2, 4, 3)
    with pytest.raises(ShapeError, match="at least one point"):
        enc(torch.zeros(2, 0, 3), None, torch.zeros(2, 0, 3))
    with pytest.raises(ShapeError, match="points"):
        enc(torch.zeros(2, 4, 2), None, torch.zeros(2, 4, 3))
    with pytest.raises(ValueRangeError, match="points"):
        enc(torch.full((2, 4, 3), float("nan")), None, torch.zeros(2, 4, 3))
    with pytest.raises(ValueRangeError, match="features"):
        enc(points)
    with pytest.raises(ShapeError, match="features"):
        enc(points, None, torch.zeros(2, 4, 2))
    with pytest.raises(ShapeError, match="center"):
        enc(points, torch.zeros(3, 3), torch.zeros(2, 4, 3))
    with pytest.raises(DTypeError, match="valid"):
        enc(points, None, torch.zeros(2, 4, 3), torch.ones(2, 4))
    with pytest.raises(ValueRangeError, match="features"):
        PointNetEncoder(hidden=(8,))(points, None, torch.zeros(2, 4, 3))
    with pytest.raises(ValueRangeError, match="hidden"):
        PointNetEncoder(hidden=())
    with pytest.raises(ValueRangeError, match="pool"):
        PointNetEncoder(pool="sum")
    with pytest.raises(ValueRangeError, match="point_scale"):
        PointNetEncoder(point_scale=0.0)
    with pytest.raises(DTypeError, match="dim"):
        PointNetEncoder(dim=2.5)
