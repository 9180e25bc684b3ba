import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import ShapeError, ValueRangeError
from hoimask.encoding import (
    FourierEncoder,
    fourier_encode,
    fourier_frequencies,
    sincos_pos_embed_1d,
    sincos_pos_embed_2d,
)


@given(
    in_dim=st.integers(1, 4),
    num_bands=st.integers(1, 10),
    include_input=st.booleans(),
    spacing=st.sampled_from(["log", "linear"]),
)
def test_fourier_encoder_out_dim_and_values(in_dim, num_bands, include_input, spacing):
    enc = FourierEncoder(in_dim, num_bands=num_bands, include_input=include_input, spacing=spacing)
    x = torch.rand(2, 7, in_dim)
    y = enc(x)
    assert y.shape == (2, 7, enc.out_dim)
    assert enc.out_dim == in_dim * (2 * num_bands + int(include_input))
    off = in_dim if include_input else 0
    if include_input:
        torch.testing.assert_close(y[..., :in_dim], x)
    # The first sin entry is sin(pi * f_1 * x_1).
    torch.testing.assert_close(y[..., off], torch.sin(math.pi * enc.freqs[0] * x[..., 0]))
    torch.testing.assert_close(y[..., off + in_dim * num_bands], torch.cos(math.pi * enc.freqs[0] * x[..., 0]))


def test_frequencies():
    torch.testing.assert_close(fourier_frequencies(4), torch.tensor([1.0, 2.0, 4.0, 8.0]))
    torch.testing.assert_close(fourier_frequencies(3, max_freq=5.0, spacing="linear"), torch.tensor([1.0, 3.0, 5.0]))
    torch.testing.assert_close(fourier_frequencies(3, max_freq=16.0), torch.tensor([1.0, 4.0, 16.0]))
    with pytest.raises(ValueRangeError, match="num_bands"):
        fourier_frequencies(0)
    with pytest.raises(ValueRangeError, match="spacing"):
        fourier_frequencies(3, spacing="cubic")


def test_module_equals_function_and_dtype(dtype):
    enc = FourierEncoder(3, num_bands=5)
    x = torch.randn(10, 3, dtype=dtype)
    y = enc(x)
    assert y.dtype == dtype
    torch.testing.assert_close(y, fourier_encode(x, enc.freqs))
    with pytest.raises(ShapeError, match="'x'"):
        enc(torch.randn(10, 2))


def test_sincos_pos_embed_2d_layout():
    emb = sincos_pos_embed_2d(3, 5, 16)
    assert emb.shape == (15, 16)
    # token (row 1, col 2) is index 1*5+2; first half depends on the column only
    t = emb.view(3, 5, 16)
    torch.testing.assert_close(t[0, 2, :8], t[2, 2, :8])
    torch.testing.assert_close(t[1, 0, 8:], t[1, 4, 8:])
    # position 0 gives sin=0, cos=1
    torch.testing.assert_close(emb[0, :4], torch.zeros(4))
    torch.testing.assert_close(emb[0, 4:8], torch.ones(4))
    # matches MAE's formula for one entry: omega_k = 1 / 10000^(k / 4) on a half of size 8
    torch.testing.assert_close(t[0, 3, 1], torch.tensor(math.sin(3 / 10000 ** (1 / 4))))
    with pytest.raises(ValueRangeError, match="dim"):
        sincos_pos_embed_2d(3, 5, 18)
    with pytest.raises(ValueRangeError, match="grid_h"):
        sincos_pos_embed_2d(0, 5, 16)


def test_bad_in_dim_and_positions_raise_instead_of_truncating():
    with pytest.raises(ValueRangeError, match="in_dim"):
        FourierEncoder(2.5)
    with pytest.raises(ShapeError, match="'positions'"):
        sincos_pos_embed_1d(torch.zeros(2, 3), 8)
    with pytest.raises(ValueRangeError, match="dim"):
        sincos_pos_embed_1d(torch.zeros(3), 7.0)
