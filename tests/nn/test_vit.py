"""ViTEncoder: shapes, visible-token == attention-masked equivalence, positions, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.encoding import sincos_pos_embed_2d
from hoimask.masking.base import mask_output_from_scores
from hoimask.nn import VIT_CONFIGS, PatchEmbed, ViTEncoder, vit_tiny


def small(**kw) -> ViTEncoder:
    torch.manual_seed(0)
    return ViTEncoder(**{"img_size": 32, "patch_size": 8, "embed_dim": 16, "depth": 2, "num_heads": 2, **kw})


def random_mask(batch: int, n: int, keep: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return mask_output_from_scores(torch.rand(batch, n, generator=g), keep)


@given(
    batch=st.integers(1, 3),
    gh=st.integers(1, 4),
    gw=st.integers(1, 4),
    keep_frac=st.floats(0.0, 1.0),
    cls=st.booleans(),
)
def test_shapes_any_grid_and_keep(batch, gh, gw, keep_frac, cls):
    enc = small(class_token=cls)
    n = gh * gw
    keep = max(1, round(keep_frac * n))
    mask = random_mask(batch, n, keep)
    out = enc(torch.randn(batch, 3, gh * 8, gw * 8), mask, return_layers=[0, -1])
    assert out.tokens.shape == (batch, keep, 16)
    assert len(out.layers) == 2 and all(t.shape == (batch, keep, 16) for t in out.layers)
    assert (out.cls_token is not None) == cls
    if cls:
        assert out.cls_token.shape == (batch, 16)


@pytest.mark.parametrize("cls", [True, False])
@pytest.mark.parametrize("pos", ["sincos", "learned"])
def test_visible_tokens_equal_attention_masked_full_encoder(cls, pos):
    enc = small(class_token=cls, pos_embed=pos).double()
    image = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    mask = random_mask(3, 16, 5, seed=1)
    fast = enc(image, mask, return_layers=[0, 1])
    ref = enc.forward_attention_masked(image, mask, return_layers=[0, 1])
    torch.testing.assert_close(fast.tokens, ref.tokens)
    for a, b in zip(fast.layers, ref.layers):
        torch.testing.assert_close(a, b)
    if cls:
        torch.testing.assert_close(fast.cls_token, ref.cls_token)
    # and the masked tokens really are excluded: changing masked pixels changes nothing
    masked_patch = int(torch.nonzero(mask.mask[0])[0])
    r, c = divmod(masked_patch, 4)
    changed = image.clone()
    changed[0, :, r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8] += 5.0
    torch.testing.assert_close(enc(changed, mask).tokens, fast.tokens)


def test_no_mask_keeps_all_tokens_in_grid_order():
    enc = small().double()
    image = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    identity = mask_output_from_scores(torch.arange(16.0).expand(2, 16), 16)
    torch.testing.assert_close(enc(image).tokens, enc(image, identity).tokens)


def test_compute_grows_with_kept_tokens():
    enc = small(img_size=64)
    image = torch.randn(2, 3, 64, 64)
    flops = []
    for keep in (16, 32, 64):
        with FlopCounterMode(display=False) as counter:
            enc(image, random_mask(2, 64, keep))
        flops.append(counter.get_total_flops())
    with FlopCounterMode(display=False) as counter:
        enc.patch_embed(image)
    embed = counter.get_total_flops()  # patchifying is the only cost independent of L
    blocks = [f - embed for f in flops]
    assert blocks[0] < blocks[1] < blocks[2]
    assert blocks[2] >= 0.99 * (64 + 1) / (16 + 1) * blocks[0]  # at least linear in L + class token


def test_positions_other_grid_sincos_and_learned():
    enc = small()
    torch.testing.assert_close(enc.patch_positions(2, 3)[0], sincos_pos_embed_2d(2, 3, 16))
    torch.testing.assert_close(enc.patch_positions(4, 4), enc.pos_embed[:, 1:])
    learned = small(pos_embed="learned")
    assert learned.pos_embed.requires_grad and not enc.pos_embed.requires_grad
    assert learned.patch_positions(6, 2).shape == (1, 12, 16)
    out = learned(torch.randn(1, 3, 48, 16))
    assert out.tokens.shape == (1, 12, 16)


def test_float64_and_gradients():
    enc = small().double()
    image = torch.randn(2, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    out = enc(image, random_mask(2, 16, 4))
    assert out.tokens.dtype == torch.float64
    out.tokens.sum().backward()
    assert image.grad is not None and torch.isfinite(image.grad).all()
    assert enc.blocks[0].attn.qkv.weight.grad is not None


def test_configs_and_factories():
    assert set(VIT_CONFIGS) == {"vit_tiny", "vit_small", "vit_base", "vit_large"}
    enc = vit_tiny(img_size=32, depth=1)
    assert enc.embed_dim == 192 and len(enc.blocks) == 1 and enc.grid_size == (2, 2)
    large = VIT_CONFIGS["vit_large"]
    assert (large.embed_dim, large.depth, large.num_heads, large.patch_size) == (1024, 24, 16, 16)
    with pytest.raises(ValueRangeError, match="name"):
        ViTEncoder.from_config("vit_huge")


def test_errors_name_the_argument():
    enc = small()
    with pytest.raises(ShapeError, match="image"):
        enc(torch.randn(1, 4, 32, 32))
    with pytest.raises(ShapeError, match="patch_size"):
        enc(torch.randn(1, 3, 30, 32))
    with pytest.raises(ShapeError, match="return_layers"):
        enc(torch.randn(1, 3, 32, 32), return_layers=[2])
    with pytest.raises(ShapeError, match="ids_keep"):
        enc(torch.randn(2, 3, 32, 32), random_mask(3, 16, 4))
    with pytest.raises(ShapeError, match="ids_restore"):
        enc(torch.randn(2, 3, 32, 32), random_mask(2, 9, 4))
    with pytest.raises(DTypeError, match="image"):
        enc([1, 2, 3])
    with pytest.raises(ValueRangeError, match="pos_embed"):
        small(pos_embed="rope")


def test_patch_embed_row_major_order():
    embed = PatchEmbed(patch_size=2, in_chans=1, embed_dim=1)
    with torch.no_grad():
        embed.proj.weight.fill_(0.25)
        embed.proj.bias.zero_()
    image = torch.zeros(1, 1, 4, 6)
    image[0, 0, 2:4, 0:2] = 1.0  # second row of patches, first column -> token 3
    tokens = embed(image)[0, :, 0]
    assert tokens.shape == (6,)
    assert torch.nonzero(tokens).flatten().tolist() == [3]
