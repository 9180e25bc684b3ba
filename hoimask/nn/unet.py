"""HOISDF's image backbone: a U-Net decoder on a ResNet, and its 2D heads (HOISDF §3.1, §4.2).

:class:`ResNetUNet` runs a :class:`~hoimask.nn.ResNet` encoder and decodes from
stride 32 back to stride 2. At each finer level the coarser decoder map is
upsampled x2 by a transposed convolution (kernel 4, stride 2, BN, ReLU), the
encoder map of that stride is projected by a 1x1 convolution (BN, ReLU), both
are concatenated and fused by a 3x3 convolution (BN, ReLU). The stride-32 map is
a 1x1 projection of ``layer4``; as in HOISDF's code, the first upsampling reads
the raw ``layer4`` output. The five decoder maps ``F_dec^i`` are what the SDF
decoders sample at projected query points (eq. 1).

With the defaults (HOISDF's DexYCB decoder on ResNet-50) the maps have

=========  ========  ============  ================
stride     channels  256² input    encoder skip in
=========  ========  ============  ================
2          32        128²          stem (64)
4          64        64²           layer1 (256)
8          128       32²           layer2 (512)
16         256       16²           layer3 (1024)
32         512       8²            layer4 (2048)
=========  ========  ============  ================

(992 channels together, HOISDF's ``mutliscale_dim``). :class:`HOISDFImageHeads`
reads the stride-2 map: a joint heatmap (one channel holding every joint, as
HOISDF's code and paper; per-joint maps as an option) and hand / object
segmentation logits at half the input resolution (128² for 256² input),
trained with :func:`hoimask.losses.hoisdf_image_loss` (L_img).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from hoimask._checks import ShapeError, ValueRangeError, check_int, check_shape
from hoimask.nn.resnet import ResNet, resnet50

__all__ = ["ResNetUNet", "HOISDFImageHeads", "HOISDFImageOutput"]


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int, device, dtype) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False, device=device, dtype=dtype),
        nn.BatchNorm2d(out_channels, device=device, dtype=dtype),
        nn.ReLU(inplace=True),
    )


def _up_bn_relu(in_channels: int, out_channels: int, device, dtype) -> nn.Sequential:
    """x2 upsampling: transposed convolution, kernel 4, stride 2, padding 1 (exactly doubles H and W)."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False, device=device, dtype=dtype),
        nn.BatchNorm2d(out_channels, device=device, dtype=dtype),
        nn.ReLU(inplace=True),
    )


class ResNetUNet(nn.Module):
    """U-Net decoder on a ResNet: an image -> decoder maps at strides 2, 4, 8, 16, 32.

    Args:
        backbone: the encoder, a :class:`~hoimask.nn.ResNet` built with
            ``num_classes=None`` (default: ``resnet50(num_classes=None)``, random
            weights; load ImageNet weights with
            :func:`~hoimask.nn.load_resnet_checkpoint` into ``.backbone`` and
            freeze its BN with ``.backbone.freeze_batch_norm()``; HOISDF's
            code freezes only the affine parameters,
            ``freeze_batch_norm(statistics=False)``).
        decoder_channels: channels of the decoder maps at strides 2, 4, 8, 16, 32
            (finest first); each level's 1x1 skip projection has the same width.
            HOISDF: ``(32, 64, 128, 256, 512)``.
        upsample_channels: channels of the x2-upsampled map entering the levels
            at strides 2, 4, 8, 16. HOISDF: ``(64, 64, 128, 256)``.

    Attributes:
        strides: ``(2, 4, 8, 16, 32)``.
        out_channels: ``decoder_channels`` as a tuple.

    Shape:
        image ``(B, 3, H, W)``, H and W multiples of 32 -> five maps
        ``(B, decoder_channels[i], H / s, W / s)`` for ``s = 2, 4, 8, 16, 32``.

    Example:
        >>> from hoimask.nn import resnet18
        >>> unet = ResNetUNet(resnet18(num_classes=None, base_channels=8),
        ...                   decoder_channels=(4, 8, 8, 16, 16), upsample_channels=(8, 8, 8, 16))
        >>> [tuple(m.shape[1:]) for m in unet(torch.zeros(2, 3, 64, 64))]
        [(4, 32, 32), (8, 16, 16), (8, 8, 8), (16, 4, 4), (16, 2, 2)]
    """

    strides = (2, 4, 8, 16, 32)

    def __init__(
        self,
        backbone: ResNet | None = None,
        *,
        decoder_channels: Sequence[int] = (32, 64, 128, 256, 512),
        upsample_channels: Sequence[int] = (64, 64, 128, 256),
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        backbone = resnet50(num_classes=None, device=device, dtype=dtype) if backbone is None else backbone
        if not isinstance(backbone, ResNet):
            raise ValueRangeError(f"ResNetUNet(): argument 'backbone' expected a hoimask.nn.ResNet, got {type(backbone).__name__}")
        if backbone.fc is not None:
            raise ValueRangeError(
                "ResNetUNet(): argument 'backbone' has a classifier 'fc' that the U-Net would leave unused; "
                "build it with num_classes=None (load_resnet_checkpoint skips fc.* for such a model)"
            )
        decoder_channels, upsample_channels = list(decoder_channels), list(upsample_channels)
        if len(decoder_channels) != 5 or len(upsample_channels) != 4:
            raise ShapeError(
                "ResNetUNet(): arguments 'decoder_channels' and 'upsample_channels' need 5 and 4 entries, "
                f"got {len(decoder_channels)} and {len(upsample_channels)}"
            )
        for i, c in enumerate(decoder_channels):
            check_int(c, name=f"decoder_channels[{i}]", low=1)
        for i, c in enumerate(upsample_channels):
            check_int(c, name=f"upsample_channels[{i}]", low=1)
        self.backbone = backbone
        self.out_channels = tuple(decoder_channels)
        enc = backbone.feature_channels  # strides 2, 4, 8, 16, 32
        self.project = _conv_bn_relu(enc[4], decoder_channels[4], 1, device, dtype)  # stride-32 output
        # Levels at strides 2, 4, 8, 16 (index i); level i upsamples the map of level i + 1
        # (the raw layer4 output for i = 3).
        coarser = [decoder_channels[1], decoder_channels[2], decoder_channels[3], enc[4]]
        self.skips = nn.ModuleList(
            _conv_bn_relu(enc[i], decoder_channels[i], 1, device, dtype) for i in range(4)
        )
        self.upsamples = nn.ModuleList(
            _up_bn_relu(coarser[i], upsample_channels[i], device, dtype) for i in range(4)
        )
        self.fuse = nn.ModuleList(
            _conv_bn_relu(decoder_channels[i] + upsample_channels[i], decoder_channels[i], 3, device, dtype)
            for i in range(4)
        )

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Decode an image into five maps at strides 2, 4, 8, 16, 32 (finest first).

        Args:
            image: ``(B, 3, H, W)`` normalised image (ImageNet statistics for
                torchvision weights), H and W multiples of 32.

        Returns:
            List of five maps ``(B, out_channels[i], H / s, W / s)``.

        Raises:
            ShapeError: not ``(B, 3, H, W)``, or H or W not a multiple of 32.
        """
        dims = check_shape(image, "B 3 H W", name="image")
        if dims["H"] % 32 or dims["W"] % 32:
            raise ShapeError(
                f"ResNetUNet.forward(): argument 'image' expected H and W multiples of 32, got shape {tuple(image.shape)}"
            )
        features = self.backbone.forward_features(image)  # strides 2, 4, 8, 16, 32
        outputs: list[torch.Tensor] = [None] * 5  # type: ignore[list-item]
        outputs[4] = self.project(features[4])  # (B, C4, H/32, W/32)
        x = features[4]
        for i in (3, 2, 1, 0):
            up = self.upsamples[i](x)  # (B, U_i, H/s_i, W/s_i)
            x = self.fuse[i](torch.cat([self.skips[i](features[i]), up], dim=1))  # (B, C_i, H/s_i, W/s_i)
            outputs[i] = x
        return outputs


class HOISDFImageOutput(NamedTuple):
    """2D predictions of :class:`HOISDFImageHeads` (all logits / raw scores)."""

    heatmaps: torch.Tensor  #: (B, num_heatmaps, h, w) joint heatmaps (regressed, unnormalised)
    hand_logits: torch.Tensor  #: (B, h, w) hand-segmentation logits
    object_logits: torch.Tensor  #: (B, h, w) object-segmentation logits


def _pixel_mlp(in_channels: int, hidden: int, out_channels: int, device, dtype) -> nn.Sequential:
    """1x1 conv, BN, ReLU, 1x1 conv (HOISDF's ``convOut_*``)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, 1, device=device, dtype=dtype),
        nn.BatchNorm2d(hidden, device=device, dtype=dtype),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden, out_channels, 1, device=device, dtype=dtype),
    )


class HOISDFImageHeads(nn.Module):
    """HOISDF's 2D heads on the finest decoder map: joint heatmaps, hand and object segmentation.

    Three independent per-pixel MLPs (1x1 conv, BN, ReLU, 1x1 conv). The
    segmentation heads return logits (HOISDF's code applies the sigmoid inside
    the head and uses ``BCELoss``; :func:`hoimask.losses.hoisdf_image_loss`
    uses the equivalent, numerically stable BCE on logits).

    Args:
        in_channels: channels of the stride-2 decoder map (HOISDF: 32).
        hidden: hidden channels of each head (HOISDF: 32).
        num_heatmaps: 1 (default; HOISDF's code and paper: a single map
            holding every joint's Gaussian), or 21 for one map per joint
            (canonical order).

    Shape:
        features ``(B, in_channels, h, w)`` -> :class:`HOISDFImageOutput`
        ``((B, num_heatmaps, h, w), (B, h, w), (B, h, w))``.

    Example:
        >>> heads = HOISDFImageHeads(32)
        >>> out = heads(torch.zeros(2, 32, 128, 128))
        >>> tuple(out.heatmaps.shape), tuple(out.hand_logits.shape), tuple(out.object_logits.shape)
        ((2, 1, 128, 128), (2, 128, 128), (2, 128, 128))
        >>> HOISDFImageHeads(32, num_heatmaps=21)(torch.zeros(1, 32, 8, 8)).heatmaps.shape
        torch.Size([1, 21, 8, 8])
    """

    def __init__(
        self, in_channels: int = 32, *, hidden: int = 32, num_heatmaps: int = 1, device=None, dtype=None
    ) -> None:
        super().__init__()
        check_int(in_channels, name="in_channels", low=1)
        check_int(hidden, name="hidden", low=1)
        check_int(num_heatmaps, name="num_heatmaps", low=1)
        self.in_channels = in_channels
        self.num_heatmaps = num_heatmaps
        self.heatmap = _pixel_mlp(in_channels, hidden, num_heatmaps, device, dtype)
        self.hand_segmentation = _pixel_mlp(in_channels, hidden, 1, device, dtype)
        self.object_segmentation = _pixel_mlp(in_channels, hidden, 1, device, dtype)

    def forward(self, features: torch.Tensor) -> HOISDFImageOutput:
        """Predict heatmaps and segmentation logits at the resolution of ``features``."""
        check_shape(features, f"B {self.in_channels} h w", name="features")
        return HOISDFImageOutput(
            self.heatmap(features),
            self.hand_segmentation(features)[:, 0],
            self.object_segmentation(features)[:, 0],
        )
