"""The two image backbones of :class:`~hoimask.models.HOISDF`: ResNet U-Net (HOISDF) and ViT + DPT (MaskHOI).

Both map a normalised image ``(B, 3, H, W)`` to multi-scale maps, finest
first, that the 2D heads (finest map) and the SDF decoders (all maps) read.
"""

from __future__ import annotations

import torch
from torch import nn

from hoimask.models.hoisdf_config import HOISDFConfig
from hoimask.nn import DPTHead, ResNetUNet, ViTEncoder, resnet18, resnet34, resnet50

__all__ = ["ResNetUNetBackbone", "ViTDPTBackbone", "build_backbone"]


class ResNetUNetBackbone(nn.Module):
    """HOISDF's image backbone: :class:`~hoimask.nn.ResNetUNet` on a ResNet-18/34/50 (maps at strides 2–32).

    Shape:
        ``(B, 3, H, W)`` (H, W multiples of 32) -> five maps ``(B, C_i, H / s, W / s)``, s = 2, 4, 8, 16, 32.
    """

    def __init__(self, cfg: HOISDFConfig) -> None:
        super().__init__()
        build = {18: resnet18, 34: resnet34, 50: resnet50}[cfg.resnet_depth]
        resnet = build(num_classes=None, base_channels=cfg.resnet_base_channels)
        self.unet = ResNetUNet(resnet, decoder_channels=cfg.unet_channels, upsample_channels=cfg.unet_upsample_channels)
        if cfg.freeze_backbone_bn:  # HOISDF's freeze_stages: the encoder's BN affine parameters stay fixed
            resnet.freeze_batch_norm(statistics=False)
        self.out_channels = tuple(self.unet.out_channels)

    @property
    def encoder(self) -> nn.Module:
        """The ResNet (load torchvision weights into it with :func:`~hoimask.nn.load_resnet_checkpoint`)."""
        return self.unet.backbone

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Decoder maps, finest first."""
        return self.unet(image)


def _taps(depth: int) -> list[int]:
    """Four evenly spaced block indices ending at the last block (12 blocks: 2, 5, 8, 11)."""
    return [max(0, (i + 1) * depth // 4 - 1) for i in range(4)]


class ViTDPTBackbone(nn.Module):
    """MaskHOI's transfer: the full-grid :class:`~hoimask.nn.ViTEncoder` and a :class:`~hoimask.nn.DPTHead`.

    The DPT head reassembles four encoder blocks (evenly spaced, the last one
    included) into maps at strides 4, 8, 16, 32 with ``dpt_feature_dim``
    channels each.

    Shape:
        ``(B, 3, H, W)`` (H, W multiples of the patch size) -> four maps
        ``(B, dpt_feature_dim, ~H / s, ~W / s)``, s = 4, 8, 16, 32.
    """

    def __init__(self, cfg: HOISDFConfig) -> None:
        super().__init__()
        self.encoder = ViTEncoder(img_size=cfg.img_size, patch_size=cfg.patch_size, embed_dim=cfg.embed_dim,
                                  depth=cfg.depth, num_heads=cfg.num_heads)
        self.taps = _taps(cfg.depth)
        self.dpt = DPTHead(cfg.embed_dim, feature_dim=cfg.dpt_feature_dim, reassemble_dims=cfg.dpt_reassemble_dims,
                           patch_size=cfg.patch_size)
        self.out_channels = (cfg.dpt_feature_dim,) * 4

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """DPT maps, finest first."""
        grid = self.encoder.patch_embed.grid_size(image.shape[-2], image.shape[-1])
        layers = self.encoder(image, return_layers=self.taps).layers  # 4 x (B, N, D)
        return self.dpt(list(layers), grid_size=grid)


def build_backbone(cfg: HOISDFConfig) -> ResNetUNetBackbone | ViTDPTBackbone:
    """The backbone named by ``cfg.backbone``."""
    return ViTDPTBackbone(cfg) if cfg.backbone == "vit" else ResNetUNetBackbone(cfg)
