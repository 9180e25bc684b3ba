"""Mask-token input path (BEiT / iBOT, HandMIM §2.1): equivalences, independence from masked pixels, checkpoints, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hoimask._checks import DTypeError, ShapeError
from hoimask.masking.base import mask_output_from_scores
from hoimask.models._batch import load_encoder_weights
from hoimask.nn import MaskTokenEncoder, ViTEncoder, load_vit_checkpoint, replace_masked_tokens


def small(**kw) -> ViTEncoder:
    torch.manual_seed(0)
    return ViTEncoder(**{"img_size": 32, "patch_size": 8, "embed_dim": 16, "depth": 2, "num_heads": 2, **kw})


def wrapped(**kw) -> MaskTokenEncoder:
    net = MaskTokenEncoder(small(**kw)).double()
    return net


def random_bool_mask(batch: int, n: int, seed: int, p: float = 0.4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, n, generator=g) < p


@pytest.mark.parametrize("cls", [True, False])
def test_all_zero_mask_equals_plain_full_grid_forward(cls):
    net = wrapped(class_token=cls)
    image = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    plain = net.encoder(image, return_layers=[0, 1])
    for mask in (torch.zeros(2, 16, dtype=torch.bool), None):
        out = net(image, mask, return_layers=[0, 1])
        assert torch.equal(out.tokens, plain.tokens)
        assert all(torch.equal(a, b) for a, b in zip(out.layers, plain.layers))
        assert (out.cls_token is None) == (not cls)
        if cls:
            assert torch.equal(out.cls_token, plain.cls_token)


def _naive(net: MaskTokenEncoder, image: torch.Tensor, mask: torch.Tensor):
    """BEiT's written form: z·(1 − w) + p_mask·w, then positions, class token, blocks, norm."""
    enc = net.encoder
    z = enc.patch_embed(image)
    w = mask[..., None].to(z.dtype)
    x = z * (1 - w) + net.mask_token * w + enc.pos_embed[:, 1:]
    cls = (enc.cls_token + enc.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], dim=1)
    for block in enc.blocks:
        x = block(x)
    return enc.norm(x)


@settings(max_examples=10)
@given(seed=st.integers(0, 2**16), p=st.floats(0.0, 1.0))
def test_equals_the_written_formula(seed, p):
    net = wrapped()
    image = torch.randn(3, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    mask = random_bool_mask(3, 16, seed, p)  # samples mask different numbers of patches
    out = net(image, mask)
    ref = _naive(net, image, mask)
    torch.testing.assert_close(out.tokens, ref[:, 1:])
    torch.testing.assert_close(out.cls_token, ref[:, 0])


def test_output_does_not_depend_on_masked_pixels():
    net = wrapped()
    image = torch.randn(2, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    mask = random_bool_mask(2, 16, seed=3)
    assert mask.any() and (~mask).any()
    out = net(image, mask, return_layers=[0])
    (out.tokens.square().sum() + out.cls_token.sum() + out.layers[0].sum()).backward()
    pixel_mask = mask.view(2, 1, 4, 1, 4, 1).expand(2, 3, 4, 8, 4, 8).reshape(2, 3, 32, 32)
    assert torch.count_nonzero(image.grad[pixel_mask]) == 0  # no gradient reaches a masked patch
    assert torch.count_nonzero(image.grad[~pixel_mask]) > 0.9 * (~pixel_mask).sum()  # visible pixels matter
    assert net.mask_token.grad is not None and net.mask_token.grad.abs().sum() > 0
    # and so, changing the masked pixels (even to NaN) changes nothing
    changed = image.detach().clone()
    changed[pixel_mask] = float("nan")
    torch.testing.assert_close(net(changed, mask).tokens, out.tokens.detach())


def test_mask_output_accepted_and_matches_bool_mask():
    net = wrapped()
    image = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    mask = mask_output_from_scores(torch.rand(2, 16, generator=torch.Generator().manual_seed(0)), 6)
    torch.testing.assert_close(net(image, mask).tokens, net(image, mask.mask).tokens)
    assert net(image, mask).tokens.shape == (2, 16, 16)


def test_replace_masked_tokens_is_a_selection():
    z = torch.randn(2, 5, 4)
    z[0, 1] = float("nan")
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[0, 1] = mask[1, 3] = True
    token = torch.arange(4.0)
    out = replace_masked_tokens(z, mask, token.view(1, 1, 4))
    assert torch.equal(out[0, 1], token) and torch.equal(out[1, 3], token)
    assert torch.equal(out[~mask], z[~mask])


def test_checkpoint_keys_unchanged_and_old_checkpoints_load(tmp_path):
    net = MaskTokenEncoder(small())
    plain = small()
    assert set(net.encoder.state_dict()) == set(plain.state_dict())  # no mask token inside the encoder
    assert set(net.state_dict()) == {f"encoder.{k}" for k in plain.state_dict()} | {"mask_token"}
    # an encoder checkpoint written before (no mask token) loads into the student's encoder
    torch.manual_seed(1)
    old = ViTEncoder(img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2)
    path = tmp_path / "encoder.pt"
    torch.save(old.state_dict(), path)
    report = load_vit_checkpoint(path, net.encoder, strict=True)
    assert report.missing_keys == [] and report.unexpected_keys == []
    load_encoder_weights(net.encoder, old.state_dict(), "test")  # the fine-tuning models' exact-key loader
    torch.testing.assert_close(net.encoder.blocks[0].attn.qkv.weight, old.blocks[0].attn.qkv.weight)
    # and the HandMIM encoder loads into a fine-tuning encoder
    fresh = small()
    load_encoder_weights(fresh, net.encoder.state_dict(), "test")


def test_errors_name_the_argument():
    net = MaskTokenEncoder(small())
    image = torch.randn(2, 3, 32, 32)
    with pytest.raises(ShapeError, match="'mask'"):
        net(image, torch.zeros(2, 9, dtype=torch.bool))  # wrong grid
    with pytest.raises(ShapeError, match="'mask'"):
        net(image, torch.zeros(3, 16, dtype=torch.bool))  # wrong batch
    with pytest.raises(DTypeError, match="'mask'"):
        net(image, torch.zeros(2, 16))  # float, not bool
    with pytest.raises(DTypeError, match="'mask'"):
        net(image, [[False] * 16] * 2)
    with pytest.raises(ShapeError, match="ViTEncoder.forward_mask_tokens"):
        net(image, torch.zeros(2, 9, dtype=torch.bool))
    with pytest.raises(ShapeError, match="'mask_token'"):
        net.encoder.forward_mask_tokens(image, torch.ones(2, 16, dtype=torch.bool), torch.zeros(8))
    with pytest.raises(DTypeError, match="'encoder'"):
        MaskTokenEncoder(torch.nn.Linear(2, 2))
