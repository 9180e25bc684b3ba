"""TokenDecoder and DPTHead: restoring the grid, shapes on any grid, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import ShapeError
from hoimask.encoding import sincos_pos_embed_2d
from hoimask.masking.base import mask_output_from_scores
from hoimask.nn import DPTHead, TokenDecoder


def decoder(**kw) -> TokenDecoder:
    torch.manual_seed(0)
    return TokenDecoder(**{"encoder_dim": 12, "dim": 8, "depth": 1, "num_heads": 2, "grid_size": (3, 4), **kw})


def test_mask_tokens_and_unshuffle_put_tokens_back_in_place():
    dec = decoder(depth=0).double()
    g = torch.Generator().manual_seed(0)
    mask = mask_output_from_scores(torch.rand(2, 12, generator=g), 5)
    kept = torch.randn(2, 5, 12, dtype=torch.float64)
    out = dec(kept, mask.ids_restore, return_layers=[-1])
    restored = out.layers[0]  # (B, N, D) before any block
    pos = sincos_pos_embed_2d(3, 4, 8).double()
    embedded = dec.embed(kept)
    for b in range(2):
        for slot, token in enumerate(mask.ids_keep[b].tolist()):
            torch.testing.assert_close(restored[b, token], embedded[b, slot] + pos[token])
        for token in torch.nonzero(mask.mask[b]).flatten().tolist():
            torch.testing.assert_close(restored[b, token], dec.mask_token + pos[token])
    torch.testing.assert_close(out.tokens, dec.norm(restored))


@given(batch=st.integers(1, 3), gh=st.integers(1, 5), gw=st.integers(1, 5), data=st.data())
def test_decoder_shapes_any_grid(batch, gh, gw, data):
    n = gh * gw
    keep = data.draw(st.integers(0, n))
    dec = decoder(depth=2)
    mask = mask_output_from_scores(torch.rand(batch, n), keep)
    out = dec(torch.randn(batch, keep, 12), mask.ids_restore, grid_size=(gh, gw), return_layers=[-1, 0, 1])
    assert out.tokens.shape == (batch, n, 8)
    assert [t.shape for t in out.layers] == [(batch, n, 8)] * 3


def test_decoder_errors():
    dec = decoder()
    ids = torch.arange(12).expand(1, 12)
    with pytest.raises(ShapeError, match="grid_size"):
        dec(torch.randn(1, 3, 12), ids, grid_size=(2, 5))
    with pytest.raises(ShapeError, match="return_layers"):
        dec(torch.randn(1, 3, 12), ids, return_layers=[1])
    with pytest.raises(ShapeError, match="ids_restore"):
        dec(torch.randn(2, 3, 12), ids)


@given(batch=st.integers(1, 2), gh=st.integers(1, 5), gw=st.integers(1, 5))
def test_dpt_maps_at_strides_4_to_32(batch, gh, gw):
    torch.manual_seed(0)
    head = DPTHead([8, 8, 6, 6], feature_dim=4, reassemble_dims=(4, 4, 4, 4), patch_size=16)
    taps = [torch.randn(batch, gh * gw, d) for d in (8, 8, 6, 6)]
    maps = head(taps, grid_size=(gh, gw))
    assert len(maps) == 4
    H, W = gh * 16, gw * 16
    assert maps[0].shape == (batch, 4, H // 4, W // 4)
    assert maps[1].shape == (batch, 4, H // 8, W // 8)
    assert maps[2].shape == (batch, 4, gh, gw)
    assert maps[3].shape == (batch, 4, (gh + 1) // 2, (gw + 1) // 2)


def test_dpt_is_local_enough_and_differentiable():
    torch.manual_seed(0)
    head = DPTHead(8, feature_dim=4, reassemble_dims=(4, 4, 4, 4), patch_size=16).double()
    taps = [torch.randn(1, 16, 8, dtype=torch.float64, requires_grad=True) for _ in range(4)]
    maps = head(taps, grid_size=(4, 4))
    maps[0][0, :, 0, 0].sum().backward()
    # the finest map's corner depends on the nearby tokens of every tap
    assert all(t.grad is not None and t.grad[0, 0].abs().sum() > 0 for t in taps)


def test_dpt_errors():
    with pytest.raises(ShapeError, match="4 entries"):
        DPTHead([8, 8, 8])
    with pytest.raises(ShapeError, match="patch_size"):
        DPTHead(8, patch_size=12)
    head = DPTHead(8, feature_dim=4, reassemble_dims=(4, 4, 4, 4))
    with pytest.raises(ShapeError, match="taps"):
        head([torch.randn(1, 4, 8)] * 3, grid_size=(2, 2))
    with pytest.raises(ShapeError, match=r"taps\[2\]"):
        head([torch.randn(1, 4, 8)] * 2 + [torch.randn(1, 4, 7), torch.randn(1, 4, 8)], grid_size=(2, 2))
