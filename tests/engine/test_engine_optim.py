import pytest
import torch
from torch import nn

from hoimask._checks import ValueRangeError
from hoimask.engine import build_optimizer, param_groups, vit_layer_id


class TinyViT(nn.Module):
    def __init__(self, depth=3):
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.patch_embed = nn.Linear(4, 8)
        self.encoder.pos_embed = nn.Parameter(torch.zeros(1, 5, 8))
        self.encoder.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(8), nn.Linear(8, 8)) for _ in range(depth))
        self.encoder.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 2)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def _group_of(groups, name):
    return next(g for g in groups if name in g["names"])


def test_no_decay_on_norms_biases_embeddings_and_frozen_left_out():
    groups = param_groups(TinyViT(), weight_decay=0.05)
    names = [n for g in groups for n in g["names"]]
    assert "frozen.weight" not in names
    assert _group_of(groups, "head.weight")["weight_decay"] == 0.05
    assert _group_of(groups, "encoder.blocks.0.1.weight")["weight_decay"] == 0.05
    for n in ("head.bias", "encoder.norm.weight", "encoder.blocks.1.0.weight", "encoder.pos_embed"):
        assert _group_of(groups, n)["weight_decay"] == 0.0, n
    total = sum(p.numel() for g in groups for p in g["params"])
    model = TinyViT()
    assert total == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_layer_decay_scales():
    groups = param_groups(TinyViT(depth=3), weight_decay=0.05, layer_decay=0.5, num_layers=3)
    assert _group_of(groups, "head.weight")["lr_scale"] == 1.0
    assert _group_of(groups, "encoder.blocks.2.1.weight")["lr_scale"] == 0.5
    assert _group_of(groups, "encoder.blocks.0.1.weight")["lr_scale"] == 0.125
    assert _group_of(groups, "encoder.patch_embed.weight")["lr_scale"] == 0.0625


def test_layer_ids():
    assert vit_layer_id("encoder.blocks.11.attn.qkv.weight", 12) == 12
    assert vit_layer_id("encoder.cls_token", 12) == 0
    assert vit_layer_id("encoder.norm.weight", 12) == 13
    assert vit_layer_id("decoder.blocks.0.x", 12) == 13


def test_build_optimizer_sets_scaled_lr():
    opt = build_optimizer(TinyViT(), lr=1e-3, layer_decay=0.5, num_layers=3)
    assert isinstance(opt, torch.optim.AdamW)
    lrs = sorted({round(g["lr"], 12) for g in opt.param_groups})
    assert lrs == [round(1e-3 * 0.5**k, 12) for k in (4, 3, 2, 1, 0)]


def test_errors():
    with pytest.raises(ValueRangeError, match="num_layers"):
        param_groups(TinyViT(), weight_decay=0.05, layer_decay=0.7)
    with pytest.raises(ValueRangeError, match="layer_decay"):
        param_groups(TinyViT(), weight_decay=0.05, layer_decay=1.5, num_layers=3)
    with pytest.raises(ValueRangeError, match="lr"):
        build_optimizer(TinyViT(), lr=0.0)
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueRangeError, match="no trainable"):
        build_optimizer(frozen, lr=1e-3)
