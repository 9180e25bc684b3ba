"""DPT head (Ranftl et al. 2021): tokens from several layers -> multi-scale feature maps.

Layout follows MultiMAE's DPT head: four taps are *reassembled* into image-like
maps at strides 4, 8, 16 and 32 (1x1 projection, then a transposed convolution
x4 / x2, identity, or a strided 3x3 convolution), each projected to
``feature_dim`` by a 3x3 convolution, then *fused* coarse to fine by residual
convolution units. Unlike MultiMAE's depth head we return the four fused maps
(strides 4, 8, 16, 32) instead of one dense prediction: they are the
multi-scale features ``f_h``/``f_o`` of MaskHOI that the SDF decoders sample.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from hoimask._checks import ShapeError, check_int, check_shape, check_size

__all__ = ["DPTHead", "ResidualConvUnit", "FusionBlock"]


class ResidualConvUnit(nn.Module):
    """``x + conv(relu(conv(relu(x))))`` with 3x3 convolutions.

    Shape:
        ``(B, C, H, W)`` -> ``(B, C, H, W)``.
    """

    def __init__(self, channels: int, *, device=None, dtype=None) -> None:
        super().__init__()
        check_int(channels, name="channels", low=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, device=device, dtype=dtype)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the unit."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.conv1.in_channels:
            check_shape(x, f"B {self.conv1.in_channels} H W", name="x")  # raises the typed error
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FusionBlock(nn.Module):
    """DPT feature fusion: add the skip (through a residual unit), refine, resize, 1x1 conv.

    Shape:
        x ``(B, C, h, w)``, optional skip ``(B, C, h, w)`` -> ``(B, C, *size)``
        (``size`` defaults to ``(h, w)``).
    """

    def __init__(self, channels: int, *, device=None, dtype=None) -> None:
        super().__init__()
        check_int(channels, name="channels", low=1)
        self.skip_unit = ResidualConvUnit(channels, device=device, dtype=dtype)
        self.unit = ResidualConvUnit(channels, device=device, dtype=dtype)
        self.out_conv = nn.Conv2d(channels, channels, 1, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Fuse ``x`` with ``skip`` and resize to ``size``."""
        dims = check_shape(x, f"B {self.out_conv.in_channels} h w", name="x")
        if skip is not None:
            check_shape(skip, f"B {self.out_conv.in_channels} h w", name="skip", dims=dims)
        if size is not None:
            size = check_size(size, name="size")
        if skip is not None:
            x = x + self.skip_unit(skip)
        x = self.unit(x)
        if size is not None and tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(x)


def _reassemble(in_dim: int, out_dim: int, stride: int, patch_size: int, device, dtype) -> nn.Module:
    """1x1 projection then resampling from the token grid (stride P) to ``stride``."""
    layers: list[nn.Module] = [nn.Conv2d(in_dim, out_dim, 1, device=device, dtype=dtype)]
    if stride < patch_size:
        factor = patch_size // stride
        layers.append(nn.ConvTranspose2d(out_dim, out_dim, factor, stride=factor, device=device, dtype=dtype))
    elif stride > patch_size:
        factor = stride // patch_size
        layers.append(nn.Conv2d(out_dim, out_dim, 3, stride=factor, padding=1, device=device, dtype=dtype))
    return nn.Sequential(*layers)


class DPTHead(nn.Module):
    """Dense Prediction Transformer head returning fused multi-scale feature maps.

    Args:
        in_dims: token size of each tap (an int means the same for all four).
        feature_dim: channels of every output map.
        reassemble_dims: channels after reassembling each tap (MultiMAE: 96, 192, 384, 768).
        patch_size: P of the token grid; strides are ``(4, 8, 16, 32)`` and must
            be reachable from P by integer factors.

    Shape:
        taps: four ``(B, N, D_i)`` token tensors over a ``(gh, gw)`` grid ->
        four maps ``(B, feature_dim, ~H/s, ~W/s)`` for ``s = 4, 8, 16, 32``
        (finest first).

    Example:
        >>> head = DPTHead(32, feature_dim=8, reassemble_dims=(8, 8, 8, 8))
        >>> maps = head([torch.zeros(1, 16, 32)] * 4, grid_size=(4, 4))
        >>> [tuple(m.shape[-2:]) for m in maps]
        [(16, 16), (8, 8), (4, 4), (2, 2)]
    """

    strides = (4, 8, 16, 32)

    def __init__(
        self,
        in_dims: int | Sequence[int],
        *,
        feature_dim: int = 256,
        reassemble_dims: Sequence[int] = (96, 192, 384, 768),
        patch_size: int = 16,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        in_dims = tuple(in_dims) if isinstance(in_dims, Sequence) else in_dims
        in_dims = list(check_size(in_dims, name="in_dims", length=4, allow_int=True))
        reassemble_dims = tuple(reassemble_dims) if isinstance(reassemble_dims, Sequence) else reassemble_dims
        reassemble_dims = check_size(reassemble_dims, name="reassemble_dims", length=4)
        check_int(feature_dim, name="feature_dim", low=1)
        check_int(patch_size, name="patch_size", low=1)
        for s in self.strides:
            if max(s, patch_size) % min(s, patch_size):
                raise ShapeError(f"DPTHead(): argument 'patch_size' {patch_size} is not compatible with stride {s}")
        self.patch_size = patch_size
        self.in_dims = in_dims
        self.feature_dim = feature_dim
        self.reassemble = nn.ModuleList(
            _reassemble(d, r, s, patch_size, device, dtype) for d, r, s in zip(in_dims, reassemble_dims, self.strides)
        )
        self.project = nn.ModuleList(
            nn.Conv2d(r, feature_dim, 3, padding=1, bias=False, device=device, dtype=dtype) for r in reassemble_dims
        )
        self.fusion = nn.ModuleList(FusionBlock(feature_dim, device=device, dtype=dtype) for _ in range(4))

    def forward(self, taps: Sequence[torch.Tensor], *, grid_size: tuple[int, int]) -> list[torch.Tensor]:
        """Turn four token tensors into four fused feature maps.

        Args:
            taps: four ``(B, N, D_i)`` tensors in grid order, shallow to deep.
            grid_size: ``(gh, gw)`` with ``gh * gw = N``.

        Returns:
            List of four maps at strides 4, 8, 16, 32 (finest first).
        """
        if not isinstance(taps, Sequence) or len(taps) != 4:
            got = len(taps) if isinstance(taps, Sequence) else type(taps).__name__
            raise ShapeError(f"DPTHead.forward(): argument 'taps' needs 4 tensors, got {got}")
        gh, gw = check_size(grid_size, name="grid_size")
        dims: dict[str, int] = {"N": gh * gw}
        maps = []
        for i, (tap, reassemble, project) in enumerate(zip(taps, self.reassemble, self.project)):
            check_shape(tap, f"B N {self.in_dims[i]}", name=f"taps[{i}]", dims=dims)
            grid = rearrange(tap, "b (h w) d -> b d h w", h=gh, w=gw)
            maps.append(project(reassemble(grid)))
        outputs = [None] * 4
        x = self.fusion[3](maps[3])  # stride 32
        outputs[3] = x
        for level in (2, 1, 0):
            skip = maps[level]
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=True)
            x = self.fusion[level](x, skip)
            outputs[level] = x
        return outputs
