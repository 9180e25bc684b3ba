"""load_vit_checkpoint: timm, MAE and MultiMAE key formats, resizing, errors."""

from __future__ import annotations

import pytest
import torch
from einops import rearrange

from hoimask._checks import FileFormatError
from hoimask.nn import ViTEncoder, detect_checkpoint_format, load_vit_checkpoint


def make(seed: int, **kw) -> ViTEncoder:
    torch.manual_seed(seed)
    enc = ViTEncoder(**{"img_size": 32, "patch_size": 8, "embed_dim": 16, "depth": 2, "num_heads": 2, **kw})
    with torch.no_grad():  # make every tensor distinctive, incl. the fixed ones
        for p in enc.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return enc


def assert_same(a: ViTEncoder, b: ViTEncoder, skip: tuple[str, ...] = ()) -> None:
    sb = b.state_dict()
    for k, v in a.state_dict().items():
        if not k.startswith(skip):
            torch.testing.assert_close(v, sb[k], msg=k)


def test_timm_format_round_trip(tmp_path):
    src, dst = make(0), make(1)
    path = tmp_path / "timm.pth"
    sd = src.state_dict()
    sd["head.weight"] = torch.zeros(10, 16)
    torch.save(sd, path)
    report = load_vit_checkpoint(path, dst)
    assert report.format == "timm" and report.missing_keys == [] and report.unexpected_keys == ["head.weight"]
    assert_same(src, dst)
    image = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(src(image).tokens, dst(image).tokens)


def test_mae_format_round_trip(tmp_path):
    src, dst = make(0), make(1)
    sd = {f"module.{k}": v for k, v in src.state_dict().items()}
    sd.update({"mask_token": torch.zeros(1, 1, 8), "decoder_embed.weight": torch.zeros(8, 16)})
    torch.save({"model": sd, "epoch": 3}, tmp_path / "mae.pth")
    report = load_vit_checkpoint(tmp_path / "mae.pth", dst)
    assert report.format == "mae"
    assert report.missing_keys == []
    assert report.unexpected_keys == ["decoder_embed.weight", "mask_token"]
    assert_same(src, dst)


def test_multimae_format_round_trip(tmp_path):
    src, dst = make(0), make(1)
    sd = {}
    for k, v in src.state_dict().items():
        if k.startswith("blocks."):
            sd["encoder." + k[len("blocks.") :]] = v
        elif k.startswith("patch_embed."):
            sd["input_adapters.rgb." + k[len("patch_embed.") :]] = v
    sd["input_adapters.rgb.pos_emb"] = rearrange(src.pos_embed[:, 1:], "1 (h w) d -> 1 d h w", h=4)
    sd["global_tokens"] = src.cls_token
    sd["output_adapters.depth.weight"] = torch.zeros(3)
    torch.save({"model": sd}, tmp_path / "multimae.pth")
    report = load_vit_checkpoint(tmp_path / "multimae.pth", dst)
    assert report.format == "multimae"
    assert report.missing_keys == ["norm.bias", "norm.weight"]
    assert report.unexpected_keys == ["output_adapters.depth.weight"]
    assert_same(src, dst, skip=("norm.", "pos_embed"))
    torch.testing.assert_close(dst.pos_embed[:, 1:], src.pos_embed[:, 1:])
    torch.testing.assert_close(dst.pos_embed[:, :1], torch.zeros(1, 1, 16))


@pytest.mark.parametrize("method", ["mae", "timm"])
def test_position_embedding_is_resized_to_the_model_grid(tmp_path, method):
    src = make(0, img_size=64, pos_embed="learned")  # 8x8 grid
    dst = make(1, img_size=32, pos_embed="learned")  # 4x4 grid
    torch.save(src.state_dict(), tmp_path / "big.pth")
    report = load_vit_checkpoint(tmp_path / "big.pth", dst, pos_embed_resize=method)
    assert report.missing_keys == []
    assert dst.pos_embed.shape == (1, 17, 16)
    torch.testing.assert_close(dst.pos_embed[:, :1], src.pos_embed[:, :1])  # class position kept
    expected = torch.nn.functional.interpolate(
        rearrange(src.pos_embed[:, 1:], "1 (h w) d -> 1 d h w", h=8), size=(4, 4), mode="bicubic",
        align_corners=False, antialias=method == "timm",
    )
    torch.testing.assert_close(dst.pos_embed[:, 1:], rearrange(expected, "1 d h w -> 1 (h w) d"))
    assert dst.config.pos_embed_resize == method and "resized to 4x4" in report.pos_embed


def test_wrong_shapes_list_every_mismatched_key(tmp_path):
    torch.save(make(0, embed_dim=24).state_dict(), tmp_path / "wide.pth")
    dst = make(1)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(FileFormatError) as info:
        load_vit_checkpoint(tmp_path / "wide.pth", dst)
    message = str(info.value)
    for key in ("patch_embed.proj.weight", "cls_token", "blocks.0.attn.qkv.weight", "blocks.1.mlp.fc2.bias", "norm.weight"):
        assert key in message
    assert "(24," in message or ", 24)" in message
    for k, v in dst.state_dict().items():  # nothing was loaded
        torch.testing.assert_close(v, before[k])


def test_strict_missing_file_and_garbage(tmp_path):
    dst = make(1)
    sd = make(0).state_dict()
    del sd["norm.weight"]
    torch.save(sd, tmp_path / "partial.pth")
    assert load_vit_checkpoint(tmp_path / "partial.pth", dst).missing_keys == ["norm.weight"]
    with pytest.raises(FileFormatError, match="norm.weight"):
        load_vit_checkpoint(tmp_path / "partial.pth", dst, strict=True)
    with pytest.raises(FileFormatError, match="not a file"):
        load_vit_checkpoint(tmp_path / "absent.pth", dst)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(FileFormatError, match="cannot read"):
        load_vit_checkpoint(tmp_path / "junk.pth", dst)
    torch.save({"model": {"a": 1}}, tmp_path / "nontensor.pth")
    with pytest.raises(FileFormatError, match="state dict"):
        load_vit_checkpoint(tmp_path / "nontensor.pth", dst)


def test_detect_format():
    assert detect_checkpoint_format({"global_tokens": torch.zeros(1)}) == "multimae"
    assert detect_checkpoint_format({"decoder_pred.weight": torch.zeros(1)}) == "mae"
    assert detect_checkpoint_format({"blocks.0.norm1.weight": torch.zeros(1)}) == "timm"
