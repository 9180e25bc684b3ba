"""SDFDecoder: shapes, bounded output, dependence on the sampled features, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import ShapeError, ValueRangeError
from hoimask.nn import SDFDecoder

K = torch.tensor([[[80.0, 0.0, 32.0], [0.0, 80.0, 32.0], [0.0, 0.0, 1.0]]])


def maps(batch: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 4, 16, 16, generator=g), torch.randn(batch, 4, 8, 8, generator=g)]


@given(batch=st.integers(1, 3), q=st.integers(1, 20))
def test_shapes_and_bounded_output(batch, q):
    torch.manual_seed(0)
    dec = SDFDecoder(8, hidden=16, num_bands=4, output_scale=0.05)
    points = torch.randn(batch, q, 3) * 0.05 + torch.tensor([0.0, 0.0, 0.5])
    sdf = dec(points, K.expand(batch, 3, 3), maps(batch), (64, 64))
    assert sdf.shape == (batch, q)
    assert sdf.abs().max() <= 0.05


def test_output_depends_on_features_at_the_projection():
    torch.manual_seed(0)
    dec = SDFDecoder(8, hidden=16, num_bands=4).double()
    fm = [m.double() for m in maps(1)]
    points = torch.tensor([[[0.0, 0.0, 0.5], [0.1, 0.1, 0.5]]], dtype=torch.float64)  # pixels (32,32) and (48,48)
    base = dec(points, K.double(), fm, (64, 64))
    changed = [m.clone() for m in fm]
    for m in changed:  # change features around pixel (48, 48) only
        s = m.shape[-1] / 64
        m[..., int(44 * s) : int(52 * s) + 1, int(44 * s) : int(52 * s) + 1] += 3.0
    after = dec(points, K.double(), changed, (64, 64))
    assert torch.allclose(base[0, 0], after[0, 0])
    assert not torch.allclose(base[0, 1], after[0, 1])


def test_gradients_reach_points_and_features():
    dec = SDFDecoder(8, hidden=16, num_bands=4).double()
    fm = [m.double().requires_grad_(True) for m in maps(1)]
    points = (torch.tensor([[[0.01, -0.02, 0.5]]], dtype=torch.float64)).requires_grad_(True)
    dec(points, K.double(), fm, (64, 64)).sum().backward()
    assert points.grad.abs().sum() > 0 and all(m.grad.abs().sum() > 0 for m in fm)


def test_errors():
    dec = SDFDecoder(8)
    with pytest.raises(ShapeError, match="points"):
        dec(torch.zeros(1, 5, 2), K, maps(1), (64, 64))
    with pytest.raises(ShapeError, match="K"):
        dec(torch.zeros(2, 5, 3), K, maps(2), (64, 64))
    with pytest.raises(ShapeError, match="feature_maps"):
        dec(torch.zeros(1, 5, 3), K, [torch.zeros(1, 3, 8, 8)], (64, 64))


def test_num_layers_error_is_typed():
    with pytest.raises(ValueRangeError, match="num_layers"):
        SDFDecoder(8, num_layers=0)
