"""load_vit_checkpoint keeps a checkpoint's learned position embedding (issue 15, item 10).

A timm ViT's learned ``pos_embed`` loaded into the default (sin-cos) encoder must
be kept, resized with timm's or MAE's bicubic resize, used at every image size,
and reported; a sin-cos table stays exact sin-cos; ``keep_pos_embed=False``
drops it, reported. The references below resize with ``F.interpolate`` written
out here, independently of ``resize_pos_embed_2d``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.encoding import sincos_pos_embed_2d
from hoimask.nn import LoadReport, ViTEncoder, convert_vit_state_dict, load_vit_checkpoint

SIZES = {"patch_size": 16, "embed_dim": 32, "depth": 1, "num_heads": 2}


def timm_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A ViT-?/16 at 224 px as timm saves it: learned ``pos_embed`` (1, 1 + 14·14, D) with a class position."""
    g = torch.Generator().manual_seed(seed)
    D, hidden = SIZES["embed_dim"], 4 * SIZES["embed_dim"]
    shapes = {
        "cls_token": (1, 1, D),
        "pos_embed": (1, 1 + 14 * 14, D),
        "patch_embed.proj.weight": (D, 3, 16, 16),
        "patch_embed.proj.bias": (D,),
        "blocks.0.norm1.weight": (D,),
        "blocks.0.norm1.bias": (D,),
        "blocks.0.attn.qkv.weight": (3 * D, D),
        "blocks.0.attn.qkv.bias": (3 * D,),
        "blocks.0.attn.proj.weight": (D, D),
        "blocks.0.attn.proj.bias": (D,),
        "blocks.0.norm2.weight": (D,),
        "blocks.0.norm2.bias": (D,),
        "blocks.0.mlp.fc1.weight": (hidden, D),
        "blocks.0.mlp.fc1.bias": (hidden,),
        "blocks.0.mlp.fc2.weight": (D, hidden),
        "blocks.0.mlp.fc2.bias": (D,),
        "norm.weight": (D,),
        "norm.bias": (D,),
        "head.weight": (10, D),
        "head.bias": (10,),
    }
    sd = {k: 0.1 * torch.randn(shape, generator=g) for k, shape in shapes.items()}
    sd["pos_embed"] = 0.5 * torch.randn(shapes["pos_embed"], generator=g)  # learned: far from sin-cos
    for k in ("blocks.0.norm1.weight", "blocks.0.norm2.weight", "norm.weight"):
        sd[k] += 1.0
    return sd


def resized(pos: torch.Tensor, old: int, new: int, method: str) -> torch.Tensor:
    """Reference: timm's resample_abs_pos_embed / MAE's interpolate_pos_embed on a (1, 1 + old², D) embedding."""
    grid = pos[:, 1:].reshape(1, old, old, -1).permute(0, 3, 1, 2)  # (1, D, old, old)
    grid = F.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False, antialias=method == "timm")
    return torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, new * new, -1)], dim=1)


def reference_encoder(sd: dict[str, torch.Tensor], img_size: int, pos_embed: torch.Tensor) -> ViTEncoder:
    """A learned-embedding encoder loaded by torch's own ``load_state_dict`` with the given ``pos_embed``."""
    ref = ViTEncoder(img_size=img_size, pos_embed="learned", **SIZES)
    ref.load_state_dict({**{k: v for k, v in sd.items() if not k.startswith("head.")}, "pos_embed": pos_embed})
    return ref


@pytest.fixture
def timm_file(tmp_path):
    sd = timm_state_dict()
    torch.save(sd, tmp_path / "vit_timm.pth")
    return tmp_path / "vit_timm.pth", sd


def test_learned_embedding_kept_at_the_checkpoint_size(timm_file):
    path, sd = timm_file
    enc = ViTEncoder(img_size=224, **SIZES)  # default: fixed sin-cos
    report = load_vit_checkpoint(path, enc)
    assert report.format == "timm" and report.unexpected_keys == ["head.bias", "head.weight"]
    assert report.pos_embed.startswith("learned (14x14) from the checkpoint, used as is")
    assert "replaces the encoder's fixed sin-cos" in report.pos_embed and "'timm'" in report.pos_embed
    assert enc.config.pos_embed == "learned" and enc.config.pos_embed_resize == "timm"
    assert enc.pos_embed.requires_grad
    torch.testing.assert_close(enc.pos_embed, sd["pos_embed"], rtol=0, atol=0)
    image = torch.randn(2, 3, 224, 224)
    ref = reference_encoder(sd, 224, sd["pos_embed"])
    torch.testing.assert_close(enc(image).tokens, ref(image).tokens, rtol=0, atol=1e-5)
    torch.testing.assert_close(enc(image).cls_token, ref(image).cls_token, rtol=0, atol=1e-5)


@pytest.mark.parametrize("method", ["timm", "mae"])
def test_learned_embedding_resized_to_a_smaller_encoder(timm_file, method):
    path, sd = timm_file
    enc = ViTEncoder(img_size=128, **SIZES)  # 8x8 grid, fixed sin-cos
    report = load_vit_checkpoint(path, enc, pos_embed_resize=method)
    words = "timm: bicubic, antialiased" if method == "timm" else "MAE: bicubic, not antialiased"
    assert report.pos_embed.startswith(f"learned (14x14) from the checkpoint, resized to 8x8 ({words})")
    assert report.missing_keys == []
    expected = resized(sd["pos_embed"], 14, 8, method)
    torch.testing.assert_close(enc.pos_embed, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(enc.pos_embed[:, :1], sd["pos_embed"][:, :1], rtol=0, atol=0)  # class position
    assert enc.config.pos_embed == "learned" and enc.config.pos_embed_resize == method
    image = torch.randn(2, 3, 128, 128)
    torch.testing.assert_close(enc(image).tokens, reference_encoder(sd, 128, expected)(image).tokens,
                               rtol=0, atol=1e-5)
    other = resized(sd["pos_embed"], 14, 8, "mae" if method == "timm" else "timm")
    assert (enc.pos_embed - other).abs().max() > 1e-3  # the two resizes differ, so the test tells them apart


def test_auto_picks_the_resize_of_the_checkpoint_format(tmp_path, timm_file):
    path, sd = timm_file
    enc = ViTEncoder(img_size=128, **SIZES)
    load_vit_checkpoint(path, enc)  # timm format -> timm's antialiased resize
    torch.testing.assert_close(enc.pos_embed, resized(sd["pos_embed"], 14, 8, "timm"), rtol=0, atol=1e-6)
    mae = {"model": {**sd, "mask_token": torch.zeros(1, 1, 32), "decoder_embed.weight": torch.zeros(16, 32)}}
    torch.save(mae, tmp_path / "mae.pth")
    enc = ViTEncoder(img_size=128, **SIZES)
    report = load_vit_checkpoint(tmp_path / "mae.pth", enc)  # MAE format -> MAE's resize
    assert report.format == "mae" and "(MAE: bicubic, not antialiased)" in report.pos_embed
    torch.testing.assert_close(enc.pos_embed, resized(sd["pos_embed"], 14, 8, "mae"), rtol=0, atol=1e-6)
    assert enc.config.pos_embed_resize == "mae"


@pytest.mark.parametrize("method", ["timm", "mae"])
def test_other_image_sizes_resize_the_loaded_embedding_the_same_way(timm_file, method):
    path, sd = timm_file
    enc = ViTEncoder(img_size=224, **SIZES)
    load_vit_checkpoint(path, enc, pos_embed_resize=method)
    for side in (8, 20):  # 128 px (downsampling) and 320 px (upsampling)
        expected = resized(sd["pos_embed"], 14, side, method)
        torch.testing.assert_close(enc.patch_positions(side, side), expected[:, 1:], rtol=0, atol=1e-6)
    image = torch.randn(1, 3, 128, 128)
    ref = reference_encoder(sd, 128, resized(sd["pos_embed"], 14, 8, method))
    torch.testing.assert_close(enc(image).tokens, ref(image).tokens, rtol=0, atol=1e-5)
    sincos = ViTEncoder(img_size=224, **SIZES)  # what the encoder did before: sin-cos at other sizes
    assert (enc.patch_positions(8, 8) - sincos.patch_positions(8, 8)).abs().max() > 0.1


def test_opt_out_keeps_sincos_and_says_so(timm_file):
    path, _ = timm_file
    enc = ViTEncoder(img_size=128, **SIZES)
    report = load_vit_checkpoint(path, enc, keep_pos_embed=False, strict=False)
    assert report.pos_embed.startswith("dropped (keep_pos_embed=False): the checkpoint's learned (14x14)")
    assert "fixed sin-cos table (8x8)" in report.pos_embed
    assert "pos_embed" not in report.missing_keys
    assert enc.config.pos_embed == "sincos" and not enc.pos_embed.requires_grad
    torch.testing.assert_close(enc.pos_embed[0, 1:], sincos_pos_embed_2d(8, 8, 32), rtol=0, atol=0)
    torch.testing.assert_close(enc.pos_embed[:, :1], torch.zeros(1, 1, 32), rtol=0, atol=0)
    learned = ViTEncoder(img_size=128, pos_embed="learned", **SIZES)
    before = learned.pos_embed.detach().clone()
    report = load_vit_checkpoint(path, learned, keep_pos_embed=False)
    assert "learned embedding (8x8), unchanged" in report.pos_embed
    torch.testing.assert_close(learned.pos_embed, before, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_sincos_checkpoints_stay_exact_sincos(tmp_path, dtype):
    torch.manual_seed(0)
    src = ViTEncoder(img_size=224, **SIZES)  # a hoimask / MAE encoder: fixed sin-cos
    sd = {k: v.to(dtype) for k, v in src.state_dict().items()}
    torch.save({"model": {**sd, "mask_token": torch.zeros(1, 1, 32)}}, tmp_path / "mae.pth")
    same = ViTEncoder(img_size=224, **SIZES)
    report = load_vit_checkpoint(tmp_path / "mae.pth", same, strict=False)
    assert report.pos_embed.startswith("fixed sin-cos (14x14) in the checkpoint")
    assert same.config.pos_embed == "sincos" and not same.pos_embed.requires_grad
    torch.testing.assert_close(same.pos_embed, src.pos_embed, rtol=0, atol=0)  # exact, not the rounded copy
    small = ViTEncoder(img_size=128, **SIZES)
    report = load_vit_checkpoint(tmp_path / "mae.pth", small)
    assert "kept the encoder's exact fixed sin-cos (8x8)" in report.pos_embed
    torch.testing.assert_close(small.pos_embed[0, 1:], sincos_pos_embed_2d(8, 8, 32), rtol=0, atol=0)
    assert small.config.pos_embed == "sincos"


def test_learned_encoder_takes_a_sincos_checkpoint_as_learned(tmp_path):
    src = ViTEncoder(img_size=224, **SIZES)
    torch.save(src.state_dict(), tmp_path / "sincos.pth")
    dst = ViTEncoder(img_size=224, pos_embed="learned", **SIZES)
    report = load_vit_checkpoint(tmp_path / "sincos.pth", dst)
    assert report.pos_embed.startswith("fixed sin-cos (14x14) from the checkpoint, used as is")
    torch.testing.assert_close(dst.pos_embed, src.pos_embed, rtol=0, atol=0)
    assert dst.config.pos_embed == "learned" and dst.pos_embed.requires_grad


def test_checkpoint_without_a_position_embedding_is_reported(tmp_path, timm_file):
    _, sd = timm_file
    del sd["pos_embed"]
    torch.save(sd, tmp_path / "nopos.pth")
    enc = ViTEncoder(img_size=224, **SIZES)
    report = load_vit_checkpoint(tmp_path / "nopos.pth", enc)
    assert report.missing_keys == ["pos_embed"]
    assert report.pos_embed == "not in the checkpoint; the encoder keeps its own fixed sin-cos embedding"
    assert LoadReport("torchvision", [], []).pos_embed is None  # ResNet reports: no position embedding


def test_class_position_missing_in_the_checkpoint_is_zero(tmp_path, timm_file):
    _, sd = timm_file
    sd["pos_embed"] = sd["pos_embed"][:, 1:]  # timm's no_embed_class layout: (1, 196, D)
    torch.save(sd, tmp_path / "noclass.pth")
    enc = ViTEncoder(img_size=128, **SIZES)
    load_vit_checkpoint(tmp_path / "noclass.pth", enc, pos_embed_resize="mae")
    full = torch.cat([torch.zeros(1, 1, 32), sd["pos_embed"]], dim=1)
    torch.testing.assert_close(enc.pos_embed, resized(full, 14, 8, "mae"), rtol=0, atol=1e-6)


def test_convert_does_not_change_the_model(timm_file):
    _, sd = timm_file
    enc = ViTEncoder(img_size=128, **SIZES)
    before = enc.pos_embed.detach().clone()
    mapped, unexpected, fmt = convert_vit_state_dict(sd, enc, pos_embed_resize="mae")
    torch.testing.assert_close(mapped["pos_embed"], resized(sd["pos_embed"], 14, 8, "mae"), rtol=0, atol=1e-6)
    assert enc.config.pos_embed == "sincos"
    torch.testing.assert_close(enc.pos_embed, before, rtol=0, atol=0)
    mapped, _, _ = convert_vit_state_dict(sd, enc, keep_pos_embed=False)
    torch.testing.assert_close(mapped["pos_embed"], before, rtol=0, atol=0)


def test_bad_options_raise_typed_errors(timm_file):
    path, _ = timm_file
    enc = ViTEncoder(img_size=224, **SIZES)
    with pytest.raises(ValueRangeError, match="load_vit_checkpoint\\(\\): argument 'pos_embed_resize'"):
        load_vit_checkpoint(path, enc, pos_embed_resize="bilinear")
    with pytest.raises(DTypeError, match="load_vit_checkpoint\\(\\): argument 'keep_pos_embed'"):
        load_vit_checkpoint(path, enc, keep_pos_embed="no")
    with pytest.raises(ValueRangeError, match="convert_vit_state_dict\\(\\): argument 'pos_embed_resize'"):
        convert_vit_state_dict({}, enc, pos_embed_resize=None)
    with pytest.raises(DTypeError, match="keep_pos_embed"):
        convert_vit_state_dict({}, enc, keep_pos_embed=1)
    assert enc.config.pos_embed == "sincos"  # nothing happened
    with pytest.raises(ValueRangeError, match="pos_embed_resize"):
        ViTEncoder(pos_embed_resize="nearest", **SIZES)
    with pytest.raises(ShapeError, match="use_learned_pos_embed\\(\\): argument 'pos_embed'"):
        enc.use_learned_pos_embed(torch.zeros(1, 196, 32))  # the class position is missing
    with pytest.raises(ValueRangeError, match="argument 'resize'"):
        enc.use_learned_pos_embed(torch.zeros(1, 197, 32), resize="area")
    assert enc.config.pos_embed == "sincos"
