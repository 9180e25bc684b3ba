"""ResNet (torchvision names), checkpoint loading, frozen BN, HOISDF's U-Net and 2D heads."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import DTypeError, FileFormatError, ShapeError, ValueRangeError
from hoimask.data import SyntheticHOI
from hoimask.losses import hoisdf_image_loss
from hoimask.nn import (
    BasicBlock,
    HOISDFImageHeads,
    PixelNormalization,
    ResNet,
    ResNetUNet,
    load_resnet_checkpoint,
    resnet18,
    resnet34,
    resnet50,
)

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def torchvision_resnet50_keys() -> list[str]:
    """The state_dict keys of torchvision.models.resnet50(), in order, written out from its layout."""
    keys = ["conv1.weight", *(f"bn1.{s}" for s in BN)]
    for stage, depth in enumerate((3, 4, 6, 3), start=1):
        for i in range(depth):
            prefix = f"layer{stage}.{i}."
            for j in (1, 2, 3):
                keys += [f"{prefix}conv{j}.weight", *(f"{prefix}bn{j}.{s}" for s in BN)]
            if i == 0:
                keys += [f"{prefix}downsample.0.weight", *(f"{prefix}downsample.1.{s}" for s in BN)]
    return [*keys, "fc.weight", "fc.bias"]


def small(seed: int = 0, **kw) -> ResNet:
    """A narrow ResNet-50 with distinctive weights and BN statistics."""
    torch.manual_seed(seed)
    net = resnet50(**{"num_classes": None, "base_channels": 4, **kw})
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if t.is_floating_point():
                t.add_(torch.rand_like(t) * 0.1 if "running_var" in name else torch.randn_like(t) * 0.05)
    return net.eval()


def test_resnet50_keys_shapes_and_parameter_count_equal_torchvision():
    net = resnet50()
    sd = net.state_dict()
    assert list(sd) == torchvision_resnet50_keys()
    assert len(sd) == 320
    assert sum(p.numel() for p in net.parameters()) == 25_557_032
    expected = {
        "conv1.weight": (64, 3, 7, 7),
        "layer1.0.conv1.weight": (64, 64, 1, 1),
        "layer1.0.conv2.weight": (64, 64, 3, 3),
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer2.0.conv2.weight": (128, 128, 3, 3),
        "layer3.5.bn3.running_var": (1024,),
        "layer4.0.downsample.0.weight": (2048, 1024, 1, 1),
        "layer4.2.conv3.weight": (2048, 512, 1, 1),
        "fc.weight": (1000, 2048),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    assert net.feature_channels == (64, 256, 512, 1024, 2048)
    assert "fc.weight" not in resnet50(num_classes=None).state_dict()


def test_resnet18_and_34_parameter_counts_equal_torchvision():
    assert sum(p.numel() for p in resnet18().parameters()) == 11_689_512
    assert sum(p.numel() for p in resnet34().parameters()) == 21_797_672
    assert resnet18().feature_channels == (64, 64, 128, 256, 512)


@given(h=st.integers(1, 70), w=st.integers(1, 70), basic=st.booleans())
def test_forward_features_strides_for_any_size(h, w, basic):
    net = (resnet18 if basic else resnet50)(num_classes=None, base_channels=2).eval()
    with torch.no_grad():
        maps = net.forward_features(torch.randn(1, 3, h, w))
    assert [tuple(m.shape[1:]) for m in maps] == [
        (c, math.ceil(h / s), math.ceil(w / s)) for c, s in zip(net.feature_channels, net.feature_strides)
    ]


def test_forward_classifies_or_pools():
    x = torch.randn(2, 3, 32, 32)
    assert resnet18(num_classes=7, base_channels=4)(x).shape == (2, 7)
    net = resnet18(num_classes=None, base_channels=4).eval()
    torch.testing.assert_close(net(x), net.forward_features(x)[-1].mean(dim=(-2, -1)))
    with pytest.raises(ShapeError, match="'image'"):
        net(torch.randn(2, 4, 32, 32))
    with pytest.raises(DTypeError, match="'image'"):
        net(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))  # unnormalised bytes
    with pytest.raises(ShapeError, match="'layers'"):
        ResNet(BasicBlock, (2, 2, 2))


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model_module"])
def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, wrap):
    src, dst = small(0, num_classes=10), small(1, num_classes=10)
    sd = src.state_dict()
    obj = {
        "plain": sd,
        "state_dict": {"state_dict": sd, "epoch": 3},
        "model_module": {"model": {f"module.{k}": v for k, v in sd.items()}, "optimizer": {}},
    }[wrap]
    torch.save(obj, tmp_path / "resnet.pth")
    image = torch.randn(2, 3, 64, 64)
    assert not torch.equal(src(image), dst(image))
    report = load_resnet_checkpoint(tmp_path / "resnet.pth", dst)
    assert report.format == "torchvision" and report.missing_keys == [] and report.unexpected_keys == []
    assert torch.equal(src(image), dst(image))
    for a, b in zip(src.forward_features(image), dst.forward_features(image)):
        assert torch.equal(a, b)


def test_fc_is_reported_unexpected_for_a_backbone(tmp_path):
    src, dst = small(0, num_classes=10), small(1)
    torch.save(src.state_dict(), tmp_path / "cls.pth")
    report = load_resnet_checkpoint(tmp_path / "cls.pth", dst)
    assert report.unexpected_keys == ["fc.bias", "fc.weight"] and report.missing_keys == []
    image = torch.randn(1, 3, 32, 32)
    assert torch.equal(src.forward_features(image)[-1], dst.forward_features(image)[-1])
    with pytest.raises(FileFormatError, match="unexpected"):
        load_resnet_checkpoint(tmp_path / "cls.pth", small(1), strict=True)


def test_missing_keys_are_reported_and_strict_raises(tmp_path):
    src, dst = small(0), small(1)
    sd = src.state_dict()
    before = dst.layer4[2].conv3.weight.clone()
    for key in ("layer4.2.conv3.weight", "layer4.2.bn3.bias"):
        del sd[key]
    sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}  # torchvision's published files lack them
    torch.save(sd, tmp_path / "partial.pth")
    report = load_resnet_checkpoint(tmp_path / "partial.pth", dst)
    assert report.missing_keys == ["layer4.2.bn3.bias", "layer4.2.conv3.weight"]
    assert report.unexpected_keys == []
    assert torch.equal(dst.layer4[2].conv3.weight, before)  # kept
    assert torch.equal(dst.conv1.weight, src.conv1.weight)  # loaded
    with pytest.raises(FileFormatError, match=r"missing \['layer4.2.bn3.bias', 'layer4.2.conv3.weight'\]"):
        load_resnet_checkpoint(tmp_path / "partial.pth", small(1), strict=True)


def test_shape_mismatch_lists_every_key_and_loads_nothing(tmp_path):
    torch.save(small(0, base_channels=8).state_dict(), tmp_path / "wide.pth")
    dst = small(1)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(FileFormatError) as info:
        load_resnet_checkpoint(tmp_path / "wide.pth", dst)
    message = str(info.value)
    assert "conv1.weight: checkpoint (8, 3, 7, 7) vs model (4, 3, 7, 7)" in message
    assert "layer4.2.bn3.running_mean" in message and "layer1.0.downsample.0.weight" in message
    n_float = sum(1 for v in before.values() if v.dim() > 0)
    assert f"{n_float} tensors" in message  # every tensor with a channel dimension differs
    for k, v in dst.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_unreadable_files_raise_file_format_error(tmp_path):
    net = small(0)
    with pytest.raises(FileFormatError, match="not a file"):
        load_resnet_checkpoint(tmp_path / "absent.pth", net)
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(FileFormatError, match="cannot read"):
        load_resnet_checkpoint(tmp_path / "garbage.pth", net)
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    with pytest.raises(FileFormatError, match="state dict of tensors"):
        load_resnet_checkpoint(tmp_path / "tensor.pth", net)
    torch.save({"conv1.weight": torch.zeros(4, 3, 7, 7), "epoch": 3}, tmp_path / "mixed.pth")
    with pytest.raises(FileFormatError, match="state dict of tensors"):
        load_resnet_checkpoint(tmp_path / "mixed.pth", net)


def _batch_norms(module):
    return [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def test_frozen_batch_norm_survives_train_and_gets_no_gradient():
    net = small(0, frozen_bn=True)
    image = torch.randn(2, 3, 64, 64)
    reference = net.eval()(image)
    stats = {k: v.clone() for k, v in net.state_dict().items() if "running" in k or "num_batches" in k}
    net.train()
    assert net.training and all(not m.training for m in _batch_norms(net))
    assert all(not p.requires_grad for m in _batch_norms(net) for p in m.parameters())
    out = net(image)
    torch.testing.assert_close(out, reference)  # running statistics, not the batch's
    out.square().sum().backward()
    assert all(p.grad is None for m in _batch_norms(net) for p in m.parameters())
    assert net.conv1.weight.grad is not None and net.layer4[0].downsample[0].weight.grad is not None
    for k, v in stats.items():
        assert torch.equal(net.state_dict()[k], v), k

    # Nested in the U-Net: the decoder's BN trains, the backbone's stays frozen.
    unet = ResNetUNet(net, decoder_channels=(4, 4, 8, 8, 8), upsample_channels=(4, 4, 8, 8)).train()
    assert all(not m.training for m in _batch_norms(unet.backbone))
    assert all(m.training for m in _batch_norms(unet.fuse))

    net.freeze_batch_norm(False)
    assert all(m.training for m in _batch_norms(net))
    assert all(p.requires_grad for m in _batch_norms(net) for p in m.parameters())


def test_affine_only_freezing_keeps_batch_statistics():
    """HOISDF's code form: BN affine parameters get no gradient, the statistics train as usual."""
    net = small(0).freeze_batch_norm(statistics=False)
    image = torch.randn(2, 3, 64, 64)
    reference = net.eval()(image)
    net.train()
    assert all(m.training for m in _batch_norms(net))
    assert all(not p.requires_grad for m in _batch_norms(net) for p in m.parameters())
    before = net.layer1[0].downsample[1].running_mean.clone()
    out = net(image)
    assert not torch.allclose(out, reference)  # batch statistics, not the running ones
    assert not torch.equal(net.layer1[0].downsample[1].running_mean, before)  # and they are tracked
    out.square().sum().backward()
    assert all(p.grad is None for m in _batch_norms(net) for p in m.parameters())
    assert net.conv1.weight.grad is not None
    assert "frozen_bn=affine" in net.extra_repr()


def test_unet_shapes_for_64_and_256_input_with_hoisdf_widths():
    torch.manual_seed(0)
    unet = ResNetUNet().eval()
    heads = HOISDFImageHeads(unet.out_channels[0]).eval()
    assert unet.out_channels == (32, 64, 128, 256, 512)
    # Layer widths of HOISDF's Decoder (common/nets/module.py, ResNet-50), level i at stride 2 ** (i + 1):
    # deconv4..1 = (64->64, 128->64, 256->128, 2048->256), conv4d..1d = (64->32, 256->64, 512->128, 1024->256),
    # conv4..1 = (96->32, 128->64, 256->128, 512->256), conv0d = 2048->512.
    assert [tuple(u[0].weight.shape[:2]) for u in unet.upsamples] == [(64, 64), (128, 64), (256, 128), (2048, 256)]
    assert [tuple(k[0].weight.shape[:2]) for k in unet.skips] == [(32, 64), (64, 256), (128, 512), (256, 1024)]
    assert [tuple(f[0].weight.shape[:2]) for f in unet.fuse] == [(32, 96), (64, 128), (128, 256), (256, 512)]
    assert tuple(unet.project[0].weight.shape[:2]) == (512, 2048)
    for size in (64, 256):
        with torch.no_grad():
            maps = unet(torch.randn(1, 3, size, size))
            out = heads(maps[0])
        assert [tuple(m.shape) for m in maps] == [
            (1, c, size // s, size // s) for c, s in zip(unet.out_channels, unet.strides)
        ]
        assert out.heatmaps.shape == (1, 1, size // 2, size // 2)  # HOISDF: one map holding every joint
        assert out.hand_logits.shape == out.object_logits.shape == (1, size // 2, size // 2)


def test_unet_rejects_bad_input_and_configuration():
    unet = ResNetUNet(small(0), decoder_channels=(4, 4, 8, 8, 8), upsample_channels=(4, 4, 8, 8))
    with pytest.raises(ShapeError, match="multiples of 32"):
        unet(torch.randn(1, 3, 64, 48 + 8))
    with pytest.raises(ShapeError, match="'image'"):
        unet(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueRangeError, match="num_classes=None"):
        ResNetUNet(small(0, num_classes=10))
    with pytest.raises(ShapeError, match="5 and 4 entries"):
        ResNetUNet(small(0), decoder_channels=(4, 4, 8, 8))


def test_dtype_reaches_every_part():
    unet = ResNetUNet(
        resnet18(num_classes=None, base_channels=4, dtype=torch.float64),
        decoder_channels=(4, 4, 4, 8, 8), upsample_channels=(4, 4, 4, 8), dtype=torch.float64,
    )
    heads = HOISDFImageHeads(4, hidden=4, dtype=torch.float64)
    tensors = [*unet.parameters(), *unet.buffers(), *heads.parameters()]
    assert all(t.dtype == torch.float64 for t in tensors if t.is_floating_point())
    out = heads(unet(torch.randn(2, 3, 32, 32, dtype=torch.float64))[0])
    assert out.heatmaps.dtype == out.hand_logits.dtype == torch.float64


@given(batch=st.integers(1, 3), h=st.integers(1, 12), w=st.integers(1, 12), maps=st.sampled_from([1, 21]))
def test_image_heads_shapes(batch, h, w, maps):
    heads = HOISDFImageHeads(8, hidden=4, num_heatmaps=maps).eval()  # BN in training mode needs > 1 value
    out = heads(torch.randn(batch, 8, h, w))
    assert out.heatmaps.shape == (batch, maps, h, w)
    assert out.hand_logits.shape == out.object_logits.shape == (batch, h, w)


def test_image_heads_reject_wrong_channels():
    with pytest.raises(ShapeError, match="'features'"):
        HOISDFImageHeads(32)(torch.randn(1, 16, 8, 8))


def test_unet_and_heads_overfit_two_synthetic_images():
    """Every L_img term falls >= 10x; the heatmap ends far below predicting zeros (it learned peaks).

    HOISDF's form is used: one heatmap channel holding every joint. ``peak=1``
    instead of HOISDF's 255 (Adam moves weights by ~lr per step, so 255-high
    outputs need ~255x more steps) and a heatmap weight of 10 (balance for the
    shared layers) make a few dozen steps enough.
    """
    torch.manual_seed(0)
    data = SyntheticHOI(4, image_size=64, seed=3)
    samples = [data[i] for i in range(2)]
    image = PixelNormalization()(torch.stack([s["image"] for s in samples]))
    segmentation = torch.stack([s["segmentation"] for s in samples])
    joints = torch.stack([s["joints_2d"] for s in samples])
    unet = ResNetUNet(
        resnet50(num_classes=None, base_channels=8), decoder_channels=(16, 16, 32, 32, 64), upsample_channels=(16, 16, 32, 32)
    )
    heads = HOISDFImageHeads(16, hidden=16, num_heatmaps=1)
    optimizer = torch.optim.Adam([*unet.parameters(), *heads.parameters()], lr=1e-2)

    def terms():
        out = heads(unet(image)[0])
        return out, hoisdf_image_loss(
            out.heatmaps, out.hand_logits, out.object_logits, joints, segmentation == 1, segmentation == 2,
            image_size=(64, 64), peak=1.0,
        )

    first = None
    for _ in range(100):
        out, loss = terms()
        first = first or {k: float(v.detach()) for k, v in loss.items()}
        optimizer.zero_grad()
        (10 * loss["heatmap"] + loss["hand_seg"] + loss["object_seg"]).backward()
        optimizer.step()
    out, loss = terms()
    last = {k: float(v.detach()) for k, v in loss.items()}
    for name in first:
        assert last[name] < first[name] / 10, (name, first[name], last[name])
    zeros = hoisdf_image_loss(
        torch.zeros_like(out.heatmaps), out.hand_logits, out.object_logits, joints, segmentation == 1,
        segmentation == 2, image_size=(64, 64), peak=1.0,
    )["heatmap"]
    assert last["heatmap"] < float(zeros) / 10
