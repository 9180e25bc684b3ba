"""2D heads, parameter heads and transformer blocks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import ShapeError, ValueRangeError
from hoimask.geometry import rotation_6d_to_matrix
from hoimask.nn import (
    IDENTITY_6D,
    Attention,
    Block,
    CrossAttention,
    CrossAttentionBlock,
    HeatmapHead,
    MANOTransformerHead,
    ObjectPoseHead,
    SegmentationHead,
)


@given(batch=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9))
def test_map_heads_shapes(batch, h, w):
    torch.manual_seed(0)
    x = torch.randn(batch, 6, h, w)
    seg, hm = SegmentationHead(6, 3), HeatmapHead(6, 21)
    assert seg(x).shape == (batch, 3, h, w)
    assert seg(x, size=(2 * h, 3 * w)).shape == (batch, 3, 2 * h, 3 * w)
    assert hm(x).shape == (batch, 21, h, w)


def test_heads_start_at_identity_and_mean_shape():
    torch.manual_seed(0)
    tokens = torch.randn(2, 7, 16)
    mano = MANOTransformerHead(16, dim=16, depth=1, num_heads=2)(tokens)
    assert mano.rotation_6d.shape == (2, 16, 6) and mano.shape.shape == (2, 10)
    eye = torch.eye(3).expand(2, 16, 3, 3)
    torch.testing.assert_close(rotation_6d_to_matrix(mano.rotation_6d), eye, atol=0.1, rtol=0)
    assert mano.shape.abs().max() < 0.1
    pose = ObjectPoseHead(16, hidden=8, init_translation=(0.0, 0.1, 0.6))(tokens)
    assert pose.rotation_6d.shape == (2, 6) and pose.translation.shape == (2, 3)
    torch.testing.assert_close(pose.rotation_6d, torch.tensor(IDENTITY_6D).expand(2, 6), atol=0.1, rtol=0)
    torch.testing.assert_close(pose.translation, torch.tensor([0.0, 0.1, 0.6]).expand(2, 3), atol=0.05, rtol=0)


def test_heads_learn_from_tokens_and_follow_dtype():
    head = MANOTransformerHead(8, dim=8, depth=1, num_heads=2).double()  # .to() must reach every parameter
    tokens = torch.randn(1, 5, 8, dtype=torch.float64, requires_grad=True)
    out = head(tokens)
    assert out.rotation_6d.dtype == torch.float64
    out.rotation_6d.sum().backward()
    assert tokens.grad.abs().sum() > 0
    seg = SegmentationHead(4).double()
    assert seg(torch.randn(1, 4, 3, 3, dtype=torch.float64)).dtype == torch.float64


def test_head_errors():
    with pytest.raises(ShapeError, match="features"):
        SegmentationHead(4)(torch.randn(1, 5, 3, 3))
    with pytest.raises(ShapeError, match="tokens"):
        ObjectPoseHead(4)(torch.randn(1, 3, 5))
    with pytest.raises(ShapeError, match="tokens"):
        MANOTransformerHead(4, dim=8, num_heads=2)(torch.randn(3, 5))
    with pytest.raises(ValueError, match="divisible"):
        Attention(10, num_heads=3)


def test_head_count_errors_are_typed_and_name_the_argument():
    with pytest.raises(ValueRangeError, match=r"Attention\(\): argument 'num_heads'"):
        Attention(10, num_heads=3)
    with pytest.raises(ValueRangeError, match=r"CrossAttention\(\): argument 'num_heads'"):
        CrossAttention(8, num_heads=0)


def test_block_attention_mask_matches_dropping_tokens():
    torch.manual_seed(0)
    block = Block(8, 2).double()
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    keep = torch.tensor([True, False, True, True, False, True])
    full = block(x, attn_mask=keep[None, None, None, :].expand(2, 1, 1, 6))
    torch.testing.assert_close(full[:, keep], block(x[:, keep]))


def test_cross_attention_block_shapes_and_context_dependence():
    torch.manual_seed(0)
    block = CrossAttentionBlock(8, context_dim=12, num_heads=2)
    x, ctx = torch.randn(2, 3, 8), torch.randn(2, 5, 12)
    out = block(x, ctx)
    assert out.shape == (2, 3, 8)
    assert not torch.allclose(out, block(x, torch.randn(2, 5, 12)))
    with pytest.raises(ShapeError, match="context"):
        block(x, torch.randn(3, 5, 12))


@given(batch=st.integers(1, 3), n=st.integers(1, 12), depth=st.integers(0, 2))
def test_parameter_heads_shapes(batch, n, depth):
    torch.manual_seed(0)
    tokens = torch.randn(batch, n, 8)
    mano = MANOTransformerHead(8, dim=8, depth=depth, num_heads=2, num_betas=7)(tokens)
    assert mano.rotation_6d.shape == (batch, 16, 6) and mano.shape.shape == (batch, 7)
    pose = ObjectPoseHead(8, hidden=4)(tokens)
    assert pose.rotation_6d.shape == (batch, 6) and pose.translation.shape == (batch, 3)
