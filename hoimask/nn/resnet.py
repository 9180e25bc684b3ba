"""ResNet (He et al. 2016) with torchvision's parameter names: HOISDF's image encoder.

HOISDF (§3.1, §4.2) extracts image features with a U-Net whose encoder is a
ResNet-50; :class:`ResNet` is that encoder, written so that a torchvision
``resnet*.pth`` (or any checkpoint using its names) loads by key with
:func:`load_resnet_checkpoint`, and without depending on torchvision.

Names and layout equal torchvision's ResNet "v1.5" (the stride of a bottleneck
sits on its 3x3 convolution): ``conv1``, ``bn1``, ``layer{1-4}.{i}.conv{1,2,3}``
/ ``bn{1,2,3}``, ``layer{k}.0.downsample.{0,1}`` and ``fc``. ``resnet50()``
with 1000 classes has torchvision's 25,557,032 parameters.

:meth:`ResNet.forward_features` returns the maps the U-Net decoder reads: the
stem at stride 2 (after ``conv1``/``bn1``/ReLU, before the max-pool, as in
HOISDF) and the outputs of ``layer1`` .. ``layer4`` at strides 4, 8, 16, 32.

Frozen batch norm (HOISDF fine-tunes with the backbone's BN frozen), two forms
(:meth:`ResNet.freeze_batch_norm`): by default every ``BatchNorm2d`` of the
network uses its running statistics and its affine parameters get no gradient,
and :meth:`ResNet.train` keeps it that way (the "FrozenBN" of detection
backbones); with ``statistics=False`` only the affine parameters are frozen and
the batch statistics are used and tracked as usual, which is what HOISDF's
code does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hoimask._checks import (
    DTypeError,
    FileFormatError,
    ShapeError,
    check_floating,
    check_int,
    check_shape,
)
from hoimask.nn.checkpoint import LoadReport, _read_checkpoint, _shape_mismatches

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "resnet18",
    "resnet34",
    "resnet50",
    "load_resnet_checkpoint",
]


def _check_block(in_channels: int, planes: int, stride: int, fn: str) -> None:
    for name, value in (("in_channels", in_channels), ("planes", planes), ("stride", stride)):
        check_int(value, name=name, low=1, fn=fn)


def _check_block_input(x: torch.Tensor, channels: int, fn: str) -> None:
    """Cheap ``(B, channels, H, W)`` test; the full check only builds the error message."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != channels:
        check_shape(x, f"B {channels} H W", name="x", fn=fn)


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int, device, dtype) -> nn.Conv2d:
    """Bias-free convolution with 'same' padding for odd kernels (torchvision's conv1x1 / conv3x3)."""
    return nn.Conv2d(
        in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False,
        device=device, dtype=dtype,
    )


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34).

    Args:
        in_channels: channels of the input.
        planes: channels of the block (output = ``planes * expansion``).
        stride: stride of the first convolution.
        downsample: module applied to the input when its shape changes.

    Shape:
        ``(B, in_channels, H, W)`` -> ``(B, planes, ceil(H / stride), ceil(W / stride))``.
    """

    expansion = 1

    def __init__(
        self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None, *,
        device=None, dtype=None,
    ) -> None:
        super().__init__()
        _check_block(in_channels, planes, stride, "BasicBlock")
        self.conv1 = _conv(in_channels, planes, 3, stride, device, dtype)
        self.bn1 = nn.BatchNorm2d(planes, device=device, dtype=dtype)
        self.conv2 = _conv(planes, planes, 3, 1, device, dtype)
        self.bn2 = nn.BatchNorm2d(planes, device=device, dtype=dtype)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        _check_block_input(x, self.conv1.in_channels, "BasicBlock.forward")
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand, with a residual connection (ResNet-50 and deeper).

    Args:
        in_channels: channels of the input.
        planes: inner channels (output = ``planes * 4``).
        stride: stride of the 3x3 convolution (torchvision's "v1.5").
        downsample: module applied to the input when its shape changes.

    Shape:
        ``(B, in_channels, H, W)`` -> ``(B, 4 planes, ceil(H / stride), ceil(W / stride))``.
    """

    expansion = 4

    def __init__(
        self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None, *,
        device=None, dtype=None,
    ) -> None:
        super().__init__()
        _check_block(in_channels, planes, stride, "Bottleneck")
        out_channels = planes * self.expansion
        self.conv1 = _conv(in_channels, planes, 1, 1, device, dtype)
        self.bn1 = nn.BatchNorm2d(planes, device=device, dtype=dtype)
        self.conv2 = _conv(planes, planes, 3, stride, device, dtype)
        self.bn2 = nn.BatchNorm2d(planes, device=device, dtype=dtype)
        self.conv3 = _conv(planes, out_channels, 1, 1, device, dtype)
        self.bn3 = nn.BatchNorm2d(out_channels, device=device, dtype=dtype)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        _check_block_input(x, self.conv1.in_channels, "Bottleneck.forward")
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + identity)


class ResNet(nn.Module):
    """ResNet encoder with torchvision's parameter names, multi-scale features and optional frozen BN.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck` (the class, not an instance).
        layers: number of blocks in each of the four stages (ResNet-50: ``(3, 4, 6, 3)``).
        num_classes: size of the classifier ``fc``; ``None`` builds no classifier
            (a pure backbone, as HOISDF uses; :meth:`forward` then returns the
            pooled features).
        base_channels: channels of the stem and inner channels of the first stage;
            each stage doubles them (torchvision: 64). Smaller values give a
            narrow network for tests and CPU demos (no checkpoint fits it).
        frozen_bn: freeze every batch norm, statistics included (see
            :meth:`freeze_batch_norm`; HOISDF's code form is
            ``freeze_batch_norm(statistics=False)``).
        zero_init_residual: start the last BN of every block at zero weight, so
            each residual block starts as the identity (torchvision's option).

    Attributes:
        feature_strides: ``(2, 4, 8, 16, 32)``, the strides of :meth:`forward_features`.
        feature_channels: their channels; ResNet-50: ``(64, 256, 512, 1024, 2048)``,
            ResNet-18/34: ``(64, 64, 128, 256, 512)``.

    Shape:
        :meth:`forward`: ``(B, 3, H, W)`` -> ``(B, num_classes)`` (or ``(B, feature_channels[-1])``);
        :meth:`forward_features`: ``(B, 3, H, W)`` -> five maps ``(B, C_s, ceil(H / s), ceil(W / s))``.

    Example:
        >>> net = resnet50(num_classes=None, base_channels=8)
        >>> maps = net.forward_features(torch.zeros(1, 3, 64, 64))
        >>> [tuple(m.shape[1:]) for m in maps]
        [(8, 32, 32), (32, 16, 16), (64, 8, 8), (128, 4, 4), (256, 2, 2)]
    """

    feature_strides = (2, 4, 8, 16, 32)

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        *,
        num_classes: int | None = 1000,
        base_channels: int = 64,
        frozen_bn: bool = False,
        zero_init_residual: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if not (isinstance(block, type) and issubclass(block, nn.Module) and isinstance(getattr(block, "expansion", None), int)):
            raise DTypeError(f"ResNet(): argument 'block' expected BasicBlock or Bottleneck, got {block!r}")
        layers = list(layers)
        if len(layers) != 4:
            raise ShapeError(f"ResNet(): argument 'layers' needs 4 stage depths, got {len(layers)}")
        for i, depth in enumerate(layers):
            check_int(depth, name=f"layers[{i}]", low=1)
        check_int(base_channels, name="base_channels", low=1)
        if num_classes is not None:
            check_int(num_classes, name="num_classes", low=1)
        expansion = block.expansion
        self.num_classes = num_classes
        self.feature_channels = (base_channels, *(base_channels * 2**i * expansion for i in range(4)))

        # Registration order = torchvision's, so state_dict() lists keys in its order.
        self.conv1 = nn.Conv2d(3, base_channels, 7, stride=2, padding=3, bias=False, device=device, dtype=dtype)
        self.bn1 = nn.BatchNorm2d(base_channels, device=device, dtype=dtype)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = base_channels
        for i, depth in enumerate(layers):
            planes = base_channels * 2**i
            stride = 1 if i == 0 else 2
            stage, in_channels = self._make_stage(block, in_channels, planes, depth, stride, device, dtype)
            self.add_module(f"layer{i + 1}", stage)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = None if num_classes is None else nn.Linear(in_channels, num_classes, device=device, dtype=dtype)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)
        self.frozen_bn = False
        self.frozen_bn_statistics = True
        self.freeze_batch_norm(frozen_bn)

    @staticmethod
    def _make_stage(block, in_channels, planes, depth, stride, device, dtype) -> tuple[nn.Sequential, int]:
        out_channels = planes * block.expansion
        downsample = None
        if stride != 1 or in_channels != out_channels:
            downsample = nn.Sequential(
                _conv(in_channels, out_channels, 1, stride, device, dtype),
                nn.BatchNorm2d(out_channels, device=device, dtype=dtype),
            )
        blocks = [block(in_channels, planes, stride, downsample, device=device, dtype=dtype)]
        blocks += [block(out_channels, planes, device=device, dtype=dtype) for _ in range(1, depth)]
        return nn.Sequential(*blocks), out_channels

    def freeze_batch_norm(self, frozen: bool = True, *, statistics: bool = True) -> ResNet:
        """Freeze (or unfreeze) every batch norm of the network.

        Frozen: the affine ``weight`` and ``bias`` have ``requires_grad=False``
        and, with ``statistics`` (default), the running statistics are used and
        never updated (the BN modules stay in eval mode, also after
        :meth:`train`). With ``statistics=False`` the BN modules follow the
        network's mode as usual (batch statistics in training, running
        statistics updated): HOISDF's code (``freeze_stages`` stops the
        gradient of the backbone parameters whose names contain ``bn``, which
        misses ``downsample.1``; here every BN is frozen). Unfreezing restores
        training mode (if the network is training) and ``requires_grad=True``.
        A later ``requires_grad_(True)`` on the whole network would re-enable
        the BN gradients; build optimisers from parameters that require grad.

        Args:
            frozen: the new state.
            statistics: also freeze the running statistics (eval-mode BN).

        Returns:
            ``self``.
        """
        self.frozen_bn = bool(frozen)
        self.frozen_bn_statistics = bool(statistics)
        for m in self.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.requires_grad_(not self.frozen_bn)
        return self.train(self.training)

    def train(self, mode: bool = True) -> ResNet:
        """Set training mode; batch norms stay in eval mode while frozen with their statistics."""
        super().train(mode)
        if self.frozen_bn and self.frozen_bn_statistics:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward_features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at strides 2 (stem), 4, 8, 16, 32 (``layer1`` .. ``layer4``), finest first.

        Args:
            image: ``(B, 3, H, W)`` normalised image (ImageNet statistics for
                torchvision weights).

        Returns:
            Five maps ``(B, feature_channels[i], ceil(H / s), ceil(W / s))``.
        """
        check_shape(image, "B 3 H W", name="image")
        check_floating(image, name="image")
        stem = F.relu(self.bn1(self.conv1(image)))  # (B, C0, H/2, W/2)
        x = self.layer1(self.maxpool(stem))  # (B, C1, H/4, W/4)
        maps = [stem, x]
        for stage in (self.layer2, self.layer3, self.layer4):
            x = stage(x)
            maps.append(x)
        return maps

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Classify: global average pool of the stride-32 map, then ``fc`` (if any).

        Returns:
            ``(B, num_classes)`` logits, or ``(B, feature_channels[-1])`` pooled
            features when the network has no classifier.
        """
        x = torch.flatten(self.avgpool(self.forward_features(image)[-1]), 1)
        return x if self.fc is None else self.fc(x)

    def extra_repr(self) -> str:
        frozen = self.frozen_bn and ("all" if self.frozen_bn_statistics else "affine")
        return f"feature_channels={self.feature_channels}, frozen_bn={frozen}"


def resnet18(**kwargs) -> ResNet:
    """ResNet-18 (:class:`BasicBlock`, stages ``(2, 2, 2, 2)``); keyword arguments go to :class:`ResNet`."""
    return ResNet(BasicBlock, (2, 2, 2, 2), **kwargs)


def resnet34(**kwargs) -> ResNet:
    """ResNet-34 (:class:`BasicBlock`, stages ``(3, 4, 6, 3)``); keyword arguments go to :class:`ResNet`."""
    return ResNet(BasicBlock, (3, 4, 6, 3), **kwargs)


def resnet50(**kwargs) -> ResNet:
    """ResNet-50 (:class:`Bottleneck`, stages ``(3, 4, 6, 3)``), HOISDF's encoder.

    Keyword arguments go to :class:`ResNet`; the defaults build torchvision's
    classifier (1000 classes, 25,557,032 parameters). For HOISDF's backbone use
    ``resnet50(num_classes=None)`` and, after loading ImageNet weights,
    ``frozen_bn=True`` / :meth:`ResNet.freeze_batch_norm`.
    """
    return ResNet(Bottleneck, (3, 4, 6, 3), **kwargs)


def _unwrap(obj: object, path: str) -> dict[str, torch.Tensor]:
    """The state dict in a checkpoint: plain, or under ``"state_dict"`` / ``"model"``; ``module.`` removed."""
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise FileFormatError(f"load_resnet_checkpoint(): {path!r} does not hold a state dict of tensors")
    return {re.sub(r"^module\.", "", k): v for k, v in obj.items()}


def load_resnet_checkpoint(path: str | os.PathLike, model: nn.Module, *, strict: bool = False) -> LoadReport:
    """Load a torchvision-format ResNet checkpoint from a local file into ``model`` by key.

    Accepts a plain state dict (torchvision's ``resnet50-*.pth``) or one nested
    under ``"state_dict"`` or ``"model"``, and removes a ``module.`` prefix
    (``DataParallel``/DDP). Entries the model lacks (``fc.*`` when it was built
    with ``num_classes=None``) are skipped and reported as unexpected. A
    missing ``num_batches_tracked`` counter is not reported (torchvision's
    published weights predate it; it only matters for BN momentum ``None``).

    Args:
        path: a ``.pth``/``.pt`` file written by ``torch.save`` (read with
            ``weights_only=True``: no pickled code runs).
        model: a :class:`ResNet` (e.g. ``ResNetUNet(...).backbone``).
        strict: raise if any key is missing or unexpected.

    Returns:
        :class:`~hoimask.nn.LoadReport` with ``format="torchvision"`` and the
        sorted missing and unexpected keys.

    Raises:
        FileFormatError: no such file, unreadable file, not a state dict of
            tensors, shapes that differ from the model's (all listed, before
            anything is loaded), or (``strict``) missing/unexpected keys.

    Shape:
        not applicable (loads parameters and buffers in place).

    Example:
        >>> import os, tempfile
        >>> src, dst = resnet18(num_classes=10, base_channels=4), resnet18(num_classes=None, base_channels=4)
        >>> path = os.path.join(tempfile.mkdtemp(), "resnet.pth")
        >>> torch.save({"state_dict": src.state_dict()}, path)
        >>> load_resnet_checkpoint(path, dst).unexpected_keys
        ['fc.bias', 'fc.weight']
    """
    path = os.fspath(path)
    state = _unwrap(_read_checkpoint(path, "load_resnet_checkpoint"), path)
    own = model.state_dict()
    wrong = _shape_mismatches(state, own)
    if wrong:
        raise FileFormatError(
            f"load_resnet_checkpoint(): {len(wrong)} tensors of {path!r} have mismatched shapes:\n  " + "\n  ".join(wrong)
        )
    unexpected = sorted(k for k in state if k not in own)
    missing = sorted(k for k in own if k not in state and not k.endswith("num_batches_tracked"))
    if strict and (missing or unexpected):
        raise FileFormatError(
            f"load_resnet_checkpoint(): strict load of {path!r} failed; missing {missing}, unexpected {unexpected}"
        )
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return LoadReport("torchvision", missing, unexpected)
