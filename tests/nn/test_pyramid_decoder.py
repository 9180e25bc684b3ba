"""HandMIM's multi-level pixel decoder (eq. 8): tap layers, shapes, a naive twin, locality, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hoimask._checks import ShapeError, ValueRangeError
from hoimask.nn import MaskTokenEncoder, PyramidPixelDecoder, ViTEncoder, pyramid_tap_layers


def test_tap_layers_scale_with_depth():
    assert pyramid_tap_layers(12) == [2, 5, 8, 11]  # blocks 3, 6, 9, 12 (HandMIM §3.1)
    assert pyramid_tap_layers(4) == [0, 1, 2, 3]
    assert pyramid_tap_layers(24) == [5, 11, 17, 23]
    assert pyramid_tap_layers(6, 2) == [2, 5]
    with pytest.raises(ValueRangeError, match="'depth'"):
        pyramid_tap_layers(3)


@settings(max_examples=10)
@given(gh=st.integers(1, 3), gw=st.integers(1, 3), log_p=st.integers(0, 5), taps=st.integers(1, 4))
def test_output_covers_the_image(gh, gw, log_p, taps):
    P = 2**log_p
    dec = PyramidPixelDecoder(8, patch_size=P, num_taps=taps, channels=[6] * taps, out_chans=3)
    strides = dec.strides
    assert len(strides) == taps and torch.tensor(strides).prod() == P and strides == sorted(strides)
    out = dec([torch.randn(2, gh * gw, 8) for _ in range(taps)], (gh, gw))
    assert out.shape == (2, 3, gh * P, gw * P)


def test_paper_layout_four_doublings():
    dec = PyramidPixelDecoder(32, patch_size=16)
    assert dec.strides == [2, 2, 2, 2]
    assert [m.in_features for m in dec.fuse] == [32, 128 + 32, 64 + 32, 32 + 32]
    assert [m.out_channels for m in dec.upsample] == [128, 64, 32, 3]


def _naive(dec: PyramidPixelDecoder, taps, grid):
    """Eq. (8) written out: repeat tokens, concatenate, per-pixel Linear, kernel = stride transposed convolution."""
    gh, gw = grid
    out = None
    for i, tap in enumerate(taps):
        L = tap.transpose(1, 2).reshape(tap.shape[0], -1, gh, gw)  # (B, D, gh, gw)
        if out is not None:
            s = out.shape[-1] // gw
            L = L.repeat_interleave(s, dim=-2).repeat_interleave(s, dim=-1)
            L = torch.cat([out, L], dim=1)
        x = torch.einsum("bchw,oc->bohw", L, dec.fuse[i].weight) + dec.fuse[i].bias[:, None, None]
        conv = dec.upsample[i]
        k = conv.stride[0]
        B, C, h, w = x.shape
        y = torch.einsum("bchw,cokl->bohkwl", x, conv.weight).reshape(B, -1, h * k, w * k)
        out = y + conv.bias[:, None, None]
    return out


def test_equals_the_written_equation():
    torch.manual_seed(0)
    dec = PyramidPixelDecoder(8, patch_size=8, channels=(12, 10, 6, 4)).double()
    taps = [torch.randn(2, 6, 8, dtype=torch.float64) for _ in range(4)]
    torch.testing.assert_close(dec(taps, (2, 3)), _naive(dec, taps, (2, 3)))


def test_each_output_patch_depends_on_its_own_token_only():
    torch.manual_seed(0)
    dec = PyramidPixelDecoder(8, patch_size=4, num_taps=2, channels=(6, 5)).double()
    taps = [torch.randn(1, 6, 8, dtype=torch.float64) for _ in range(2)]
    base = dec(taps, (2, 3))
    changed = [t.clone() for t in taps]
    changed[1][0, 4] += 1.0  # token (row 1, column 1)
    diff = (dec(changed, (2, 3)) - base).abs().sum(1)[0]  # (8, 12)
    touched = diff.view(2, 4, 3, 4).sum((1, 3)) > 0
    assert touched.tolist() == [[False, False, False], [False, True, False]]


def test_reads_the_mask_token_encoder_taps():
    torch.manual_seed(0)
    enc = MaskTokenEncoder(ViTEncoder(img_size=32, patch_size=8, embed_dim=16, depth=4, num_heads=2))
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, ::3] = True
    out = enc(torch.rand(2, 3, 32, 32), mask, return_layers=pyramid_tap_layers(4))
    image = PyramidPixelDecoder(16, patch_size=8, channels=(16, 16, 8, 8))(out.layers, (4, 4))
    assert image.shape == (2, 3, 32, 32)


def test_errors_name_the_argument():
    dec = PyramidPixelDecoder(8, patch_size=8, channels=(4, 4, 4, 4))
    taps = [torch.randn(2, 4, 8) for _ in range(4)]
    with pytest.raises(ShapeError, match="'taps'"):
        dec(taps[:3], (2, 2))
    with pytest.raises(ShapeError, match="'taps'"):
        dec(torch.stack(taps), (2, 2))
    with pytest.raises(ShapeError, match=r"'taps\[2\]'"):
        dec(taps[:2] + [torch.randn(2, 4, 9)] + taps[3:], (2, 2))
    with pytest.raises(ShapeError, match=r"'taps\[0\]'"):
        dec(taps, (2, 3))  # grid of 6 tokens, taps hold 4
    with pytest.raises(ValueRangeError, match="'patch_size'"):
        PyramidPixelDecoder(8, patch_size=12)
    with pytest.raises(ShapeError, match="'channels'"):
        PyramidPixelDecoder(8, patch_size=8, channels=(4, 4))
