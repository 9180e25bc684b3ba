"""HOISDF SDF-side parts: DeepSDFDecoder, PointTokenEmbedding, the point transformer and its masks."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.nn.utils import parametrize

from hoimask._checks import ShapeError, ValueRangeError
from hoimask.nn import (
    DeepSDFDecoder,
    HOISDFImageHeads,
    JointVotingHead,
    PointObjectPoseHead,
    PointPoseTransformer,
    PointTokenEmbedding,
    PointTransformerEncoder,
    ResNetUNet,
    SDFDecoder,
    mano_query_mask,
    point_memory_mask,
    resnet18,
)

K = torch.tensor([[[80.0, 0.0, 32.0], [0.0, 80.0, 32.0], [0.0, 0.0, 1.0]]])
CENTER = torch.tensor([[0.0, 0.0, 0.5]])


def maps(batch: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 4, 16, 16, generator=g), torch.randn(batch, 4, 8, 8, generator=g)]


def small_decoder(**kw) -> DeepSDFDecoder:
    torch.manual_seed(0)
    return DeepSDFDecoder(8, **{"feature_dim": 16, "feature_hidden": (16,), "hidden": 64, **kw})


def points(batch: int, q: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, q, 3, generator=g) * 0.05 + CENTER


def reference_encoding(x: torch.Tensor, num_bands: int, pi: bool) -> torch.Tensor:
    """sin/cos of 2^k x (times π if asked), in FourierEncoder's layout: [sin dim-major, cos dim-major]."""
    freqs = 2.0 ** torch.arange(num_bands, dtype=x.dtype) * (math.pi if pi else 1.0)
    arg = x.unsqueeze(-1) * freqs  # (..., 3, F)
    return torch.cat([torch.sin(arg).flatten(-2), torch.cos(arg).flatten(-2)], dim=-1)


@pytest.mark.parametrize(
    "build",
    [
        lambda d: DeepSDFDecoder(8, device=d),
        lambda d: SDFDecoder(8, device=d),
        lambda d: PointTokenEmbedding(8, device=d),
        lambda d: PointTransformerEncoder(32, 2, num_heads=2, device=d),
        lambda d: PointPoseTransformer(32, num_heads=2, encoder_depth=1, decoder_depth=1, device=d),
        lambda d: JointVotingHead(32, device=d),
        lambda d: PointObjectPoseHead(32, device=d),
        lambda d: ResNetUNet(resnet18(num_classes=None, base_channels=4, device=d), decoder_channels=(4, 4, 4, 8, 8),
                             upsample_channels=(4, 4, 4, 8), device=d),
        lambda d: HOISDFImageHeads(8, device=d),
    ],
)
def test_device_reaches_every_parameter_and_buffer(build):
    module = build("meta")
    elsewhere = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.device.type != "meta"]
    assert not elsewhere


# --------------------------------------------------------------------------- DeepSDFDecoder


@given(batch=st.integers(1, 3), q=st.integers(1, 12))
def test_decoder_shapes_and_bounded_output(batch, q):
    dec = small_decoder().eval()
    out = dec(points(batch, q), CENTER.expand(batch, 3), K.expand(batch, 3, 3), maps(batch), (64, 64))
    assert out.sdf.shape == (batch, q)
    assert out.hidden.shape == (batch, q, 64)
    assert out.image_features.shape == (batch, q, 8)
    assert out.encoding.shape == (batch, q, 30)
    assert out.valid.shape == (batch, q) and out.valid.dtype == torch.bool
    assert out.sdf.abs().max() < 1


def test_decoder_hoisdf_widths_and_weight_norm():
    dec = DeepSDFDecoder(3 + 64)  # the defaults are HOISDF's
    assert dec.input_dim == 256 + 30 + 3 == 289
    widths = [(layer.in_features, layer.out_features) for layer in dec.layers]
    assert widths == [(289, 512), (512, 512 - 289), (512, 512), (512, 512)]
    assert all(parametrize.is_parametrized(layer, "weight") for layer in dec.layers)
    assert not parametrize.is_parametrized(dec.output, "weight")
    assert dec.output.in_features == 512 and dec.output.out_features == 1
    assert dec.dropout.p == 0.2 and dec.point_scale == 3.1


def test_decoder_skip_layer_receives_hidden_then_input():
    dec = small_decoder().eval()
    seen = {}
    dec.layers[2].register_forward_pre_hook(lambda module, args: seen.setdefault("x", args[0]))
    p = points(2, 5)
    out = dec(p, CENTER.expand(2, 3), K.expand(2, 3, 3), maps(2), (64, 64))
    x = seen["x"]
    assert x.shape == (2, 5, 64)  # hidden wide after the concatenation
    z = torch.cat([dec.feature_mlp(out.image_features), out.encoding, dec.scaled(p, CENTER.expand(2, 3))], dim=-1)
    assert torch.allclose(x[..., -dec.input_dim :], z)


def test_decoder_without_skip_has_constant_width():
    dec = small_decoder(skip_layer=None)
    assert [layer.out_features for layer in dec.layers] == [64] * 4


@pytest.mark.parametrize("pi", [False, True])
def test_decoder_encoding_is_hoisdf_nerf_on_centred_scaled_points(pi):
    dec = small_decoder(encoding_pi=pi).double().eval()
    p = points(1, 7).double()
    out = dec(p, CENTER.double(), K.double(), [m.double() for m in maps(1)], (64, 64))
    x = (p - CENTER.double()[:, None]) * 3.1
    assert torch.allclose(dec.scaled(p, CENTER.double()), x)
    assert torch.allclose(out.encoding, reference_encoding(x, 5, pi))


def test_decoder_dropout_only_in_training():
    dec = small_decoder()
    args = (points(1, 6), CENTER, K, maps(1), (64, 64))
    dec.train()
    assert not torch.equal(dec(*args).sdf, dec(*args).sdf)
    dec.eval()
    assert torch.equal(dec(*args).sdf, dec(*args).sdf)


def test_decoder_gradients_reach_feature_maps_and_parameters():
    dec = small_decoder().double()
    fm = [m.double().requires_grad_(True) for m in maps(1)]
    dec(points(1, 4).double(), CENTER.double(), K.double(), fm, (64, 64)).sdf.sum().backward()
    assert all(m.grad.abs().sum() > 0 for m in fm)
    assert all(p.grad is not None for p in dec.parameters())


def test_decoder_errors():
    dec = small_decoder()
    with pytest.raises(ShapeError, match="points"):
        dec(torch.zeros(1, 5, 2), CENTER, K, maps(1), (64, 64))
    with pytest.raises(ShapeError, match="center"):
        dec(points(1, 5), torch.zeros(2, 3), K, maps(1), (64, 64))
    with pytest.raises(ShapeError, match="at least one"):
        dec(torch.zeros(1, 0, 3), CENTER, K, maps(1), (64, 64))
    bad = points(1, 5)
    bad[0, 2, 1] = float("nan")
    with pytest.raises(ValueRangeError, match="points"):
        dec(bad, CENTER, K, maps(1), (64, 64))
    with pytest.raises(ValueRangeError, match="center"):
        dec(points(1, 5), torch.full((1, 3), float("inf")), K, maps(1), (64, 64))
    with pytest.raises(ShapeError, match="feature_maps"):
        dec(points(1, 5), CENTER, K, [torch.zeros(1, 3, 8, 8)], (64, 64))
    with pytest.raises(ValueRangeError, match="hidden"):
        DeepSDFDecoder(8, feature_dim=16, hidden=32)  # 16 + 30 + 3 >= 32
    with pytest.raises(ValueRangeError, match="skip_layer"):
        DeepSDFDecoder(8, num_layers=2, skip_layer=2)
    with pytest.raises(ValueRangeError, match="dropout"):
        DeepSDFDecoder(8, dropout=1.0)


# --------------------------------------------------------------------------- PointTokenEmbedding


def small_embedding(**kw) -> PointTokenEmbedding:
    torch.manual_seed(0)
    return PointTokenEmbedding(8, **{"dim": 64, "feature_hidden": (16,), **kw})


def test_embedding_layout_matches_hoisdf():
    emb = small_embedding().double()
    assert emb.feature_dim == 64 - 33 and isinstance(emb.projection, torch.nn.Identity)
    p = points(2, 5).double()
    center = p[:, 0] + 0.01
    feats = torch.rand(2, 5, 8, dtype=torch.float64)
    sdf = torch.linspace(-0.1, 0.1, 10, dtype=torch.float64).view(2, 5)
    tokens = emb(p, center, feats, sdf, field="object")
    relative = p - center[:, None]
    assert tokens.shape == (2, 5, 64)
    assert torch.allclose(tokens[..., :3], relative)  # metres, not scaled
    assert torch.allclose(tokens[..., 3:33], reference_encoding(relative * 3.1, 5, False))
    sigma = torch.sigmoid(sdf / 0.1) / 0.1  # HOISDF code, beta = 0.1 at initialisation
    assert torch.allclose(tokens[..., 33:], emb.feature_mlp(feats) * sigma[..., None])


def test_embedding_density_conventions_and_clamp():
    d = torch.tensor([-0.12, -0.01, 0.0, 0.05, 0.14], dtype=torch.float64)
    code = small_embedding().double()
    paper = small_embedding(density_sign="paper").double()
    assert torch.allclose(code.sigma(d, "hand"), torch.sigmoid(d / 0.1) / 0.1)
    assert torch.allclose(paper.sigma(d, "hand"), torch.sigmoid(-d / 0.1) / 0.1)
    far = torch.tensor([0.15, 0.9, -0.15, -3.0], dtype=torch.float64)
    s = code.sigma(far, "hand")
    assert s[0] == s[1] and s[2] == s[3]  # clamped to ±0.15 before the density
    unclamped = small_embedding(sdf_clamp=None).double().sigma(far, "hand")
    assert unclamped[1] > unclamped[0]
    beta = code.density["hand"]
    assert beta.alpha_min == 2e-3 and torch.isclose(beta.alpha, torch.tensor(0.1, dtype=torch.float64))


def test_embedding_detaches_sdf_and_trains_beta_per_field():
    emb = small_embedding()
    sdf = torch.zeros(1, 4, requires_grad=True)
    tokens = emb(points(1, 4), CENTER, torch.rand(1, 4, 8), sdf, field="hand")
    tokens.sum().backward()
    assert sdf.grad is None
    assert emb.density["hand"].raw_alpha.grad is not None
    assert emb.density["object"].raw_alpha.grad is None
    assert set(emb.density.keys()) == {"hand", "object"}


def test_embedding_with_projection():
    emb = small_embedding(feature_dim=20)
    out = emb(points(2, 3), CENTER.expand(2, 3), torch.rand(2, 3, 8), torch.zeros(2, 3), field="hand")
    assert out.shape == (2, 3, 64) and emb.projection.in_features == 3 + 30 + 20


def test_embedding_errors():
    emb = small_embedding()
    good = (points(1, 4), CENTER, torch.rand(1, 4, 8), torch.zeros(1, 4))
    with pytest.raises(ValueRangeError, match="field"):
        emb(*good, field="table")
    with pytest.raises(ShapeError, match="features"):
        emb(good[0], CENTER, torch.rand(1, 4, 7), good[3], field="hand")
    with pytest.raises(ShapeError, match="sdf"):
        emb(good[0], CENTER, good[2], torch.zeros(1, 5), field="hand")
    with pytest.raises(ShapeError, match="at least one"):
        emb(torch.zeros(1, 0, 3), CENTER, torch.zeros(1, 0, 8), torch.zeros(1, 0), field="hand")
    with pytest.raises(ValueRangeError, match="sdf"):
        emb(good[0], CENTER, good[2], torch.full((1, 4), float("nan")), field="hand")
    with pytest.raises(ValueRangeError, match="dim"):
        PointTokenEmbedding(8, dim=33)
    with pytest.raises(ValueRangeError, match="density_sign"):
        PointTokenEmbedding(8, density_sign="inside")
    with pytest.raises(ValueRangeError, match=r"feature_hidden\[1\]"):
        PointTokenEmbedding(8, feature_hidden=(16, 0))


# --------------------------------------------------------------------------- masks and transformer


def test_mano_query_mask_matches_hoisdf():
    m = mano_query_mask()
    expected = torch.zeros(17, 17, dtype=torch.bool)
    expected[0, 0] = expected[16, 16] = True
    for finger in range(5):
        s = 1 + 3 * finger
        expected[s : s + 3, s : s + 3] = True
    assert torch.equal(m, expected)
    assert torch.equal(m, m.T)
    assert mano_query_mask(finger_mask=False).all()


def test_point_memory_mask():
    m = point_memory_mask(17, 6, 4)
    assert m.shape == (17, 10) and m[:, :6].all() and not m[:, 6:].any()
    assert point_memory_mask(17, 6, 4, block_object=False).all()
    assert point_memory_mask(3, 2, 0).shape == (3, 2)
    with pytest.raises(ValueRangeError, match="num_hand"):
        point_memory_mask(17, 0, 4)


def small_transformer(**kw) -> PointPoseTransformer:
    torch.manual_seed(0)
    cfg = {"num_heads": 2, "mlp_dim": 32, "encoder_depth": 2, "decoder_depth": 3, "dropout": 0.0, **kw}
    return PointPoseTransformer(16, **cfg).double().eval()


def tokens(n: int, seed: int) -> torch.Tensor:
    return torch.randn(2, n, 16, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_transformer_shapes_and_intermediates():
    model = small_transformer()
    hand, obj = tokens(7, 0), tokens(3, 1)
    out = model(hand, obj)
    assert out.rotation_6d.shape == (3, 2, 16, 6)
    assert out.shape.shape == (3, 2, 10)
    assert out.queries.shape == (3, 2, 17, 16)
    assert out.point_features.shape == (2, 2, 7, 16)
    assert out.memory.shape == (2, 10, 16)
    encoded = model.encoder(torch.cat([hand, obj], dim=1))
    assert torch.allclose(out.point_features, encoded.intermediate[:, :, :7])
    assert torch.allclose(out.queries, model.decode(encoded.memory, 7))
    assert torch.allclose(out.rotation_6d[-1], model.rotation_head(out.queries[-1, :, :16]))
    assert model(hand).rotation_6d.shape == (3, 2, 16, 6)  # no object tokens


def test_transformer_runs_in_fp32_under_cpu_bf16_autocast():
    # torch's CPU flash attention is slow in bf16, so the point transformer leaves autocast: under CPU bf16
    # autocast it computes exactly what fp32 computes on the same (bf16-rounded) tokens, and the gradient still
    # reaches a bf16 input
    model = small_transformer().float()
    hand, obj = tokens(7, 0).bfloat16(), tokens(3, 1).bfloat16()
    plain = model(hand.float(), obj.float())
    hand.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = model(hand, obj)
    for name in ("queries", "point_features", "memory"):  # encoder and decoder: fp32, bit for bit
        got, want = getattr(mixed, name), getattr(plain, name)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    for name in ("rotation_6d", "shape"):  # the MLP heads stay under autocast
        torch.testing.assert_close(getattr(mixed, name).float(), getattr(plain, name), rtol=0.05, atol=0.05)
    mixed.rotation_6d.sum().backward()
    assert hand.grad is not None and hand.grad.dtype == torch.bfloat16
    assert torch.isfinite(hand.grad).all() and hand.grad.abs().sum() > 0


def perturbed_queries(model: PointPoseTransformer, group: slice) -> tuple[torch.Tensor, torch.Tensor]:
    memory = tokens(9, 2)
    before = model.decode(memory, 6)
    with torch.no_grad():
        model.query_embed[group] += 1.0
    return before, model.decode(memory, 6)


@pytest.mark.parametrize("finger", range(5))
def test_finger_queries_do_not_see_other_fingers(finger):
    group = slice(1 + 3 * finger, 4 + 3 * finger)
    before, after = perturbed_queries(small_transformer(), group)
    others = [i for i in range(17) if not group.start <= i < group.stop]
    assert torch.allclose(before[:, :, others], after[:, :, others])  # every layer, global and shape too
    assert not torch.allclose(before[:, :, group], after[:, :, group])


def test_without_finger_mask_the_queries_mix():
    before, after = perturbed_queries(small_transformer(finger_mask=False), slice(1, 4))
    assert torch.allclose(before[0, :, 4:], after[0, :, 4:])  # layer 1 reads zero targets: nothing to mix yet
    assert not torch.allclose(before[1:, :, 4:], after[1:, :, 4:])


def test_global_and_shape_queries_attend_only_to_themselves():
    for index in (0, 16):
        before, after = perturbed_queries(small_transformer(), slice(index, index + 1))
        others = [i for i in range(17) if i != index]
        assert torch.allclose(before[:, :, others], after[:, :, others])


def test_memory_mask_hides_object_tokens_from_the_queries():
    model = small_transformer()
    memory = tokens(9, 3)
    changed = memory.clone()
    changed[:, 6:] = tokens(3, 4)
    assert torch.allclose(model.decode(memory, 6), model.decode(changed, 6))
    open_model = small_transformer(block_object_memory=False)
    assert not torch.allclose(open_model.decode(memory, 6), open_model.decode(changed, 6))
    # Through the encoder the object tokens do inform the hand (paper eq. 7).
    hand = tokens(6, 5)
    assert not torch.allclose(model(hand, tokens(3, 6)).rotation_6d, model(hand, tokens(3, 7)).rotation_6d)


def test_encoder_attention_mask():
    torch.manual_seed(0)
    enc = PointTransformerEncoder(16, 2, num_heads=2, mlp_dim=32, dropout=0.0).double().eval()
    x = tokens(5, 8)
    allow = torch.eye(5, dtype=torch.bool)  # every token alone
    changed = x.clone()
    changed[:, 4] += 1.0
    a, b = enc(x, allow), enc(changed, allow)
    assert torch.allclose(a.memory[:, :4], b.memory[:, :4])
    assert not torch.allclose(enc(x).memory[:, :4], enc(changed).memory[:, :4])
    assert a.intermediate.shape == (2, 2, 5, 16)


def test_transformer_errors():
    model = small_transformer()
    with pytest.raises(ShapeError, match="at least one"):
        model(torch.zeros(2, 0, 16, dtype=torch.float64))
    with pytest.raises(ShapeError, match="hand_tokens"):
        model(torch.zeros(2, 5, 8, dtype=torch.float64))
    with pytest.raises(ShapeError, match="object_tokens"):
        model(tokens(4, 0), torch.zeros(3, 2, 16, dtype=torch.float64))
    with pytest.raises(ValueRangeError, match="num_heads"):
        PointPoseTransformer(16, num_heads=3)
    with pytest.raises(ValueRangeError, match="num_hand"):
        model.decode(tokens(4, 0), 5)
