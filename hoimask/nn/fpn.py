"""Feature Pyramid Network (Lin et al., CVPR 2017): top-down merging of a backbone's multi-scale maps.

UniHOPE (as HFL-Net) reads its hand and object features from an FPN on a
ResNet-50 (§3.2). :class:`FeaturePyramid` is the plain form: a 1×1 lateral
convolution per input map, the coarser merged map upsampled (nearest) and
added, then a 3×3 convolution per level.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hoimask._checks import ShapeError, ValueRangeError, check_int, check_shape

__all__ = ["FeaturePyramid"]


class FeaturePyramid(nn.Module):
    """Top-down feature pyramid: maps ``(B, C_i, H_i, W_i)``, finest first -> ``out_channels`` each, same sizes.

    Args:
        in_channels: channels of the input maps, finest first (e.g. a ResNet's
            ``feature_channels[1:]`` for strides 4–32).
        out_channels: channels of every output map (UniHOPE / HFL-Net: 256).

    Shape:
        ``[(B, C_0, H_0, W_0), ...] -> [(B, D, H_0, W_0), ...]``

    Example:
        >>> fpn = FeaturePyramid((8, 16, 32), 12)
        >>> maps = [torch.randn(2, 8, 16, 16), torch.randn(2, 16, 8, 8), torch.randn(2, 32, 4, 4)]
        >>> [tuple(m.shape) for m in fpn(maps)]
        [(2, 12, 16, 16), (2, 12, 8, 8), (2, 12, 4, 4)]
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, *, device=None, dtype=None) -> None:
        super().__init__()
        in_channels = tuple(in_channels)
        if not in_channels:
            raise ValueRangeError("FeaturePyramid(): argument 'in_channels' expected at least one map, got ()")
        for i, c in enumerate(in_channels):
            check_int(c, name=f"in_channels[{i}]", low=1, fn="FeaturePyramid")
        self.in_channels = in_channels
        self.out_channels = check_int(out_channels, name="out_channels", low=1, fn="FeaturePyramid")
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, 1, device=device, dtype=dtype) for c in in_channels)
        self.smooth = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1, device=device, dtype=dtype)
                                    for _ in in_channels)

    def forward(self, maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Merged maps, finest first."""
        fn = "FeaturePyramid.forward"
        if len(maps) != len(self.in_channels):
            raise ShapeError(f"{fn}(): argument 'maps' expected {len(self.in_channels)} maps, got {len(maps)}")
        for i, (m, c) in enumerate(zip(maps, self.in_channels)):
            check_shape(m, f"B {c} H W", name=f"maps[{i}]", fn=fn)
        merged = self.lateral[-1](maps[-1])
        out = [self.smooth[-1](merged)]
        for i in range(len(maps) - 2, -1, -1):
            lateral = self.lateral[i](maps[i])  # (B, D, H_i, W_i)
            merged = lateral + F.interpolate(merged, size=lateral.shape[-2:], mode="nearest")
            out.append(self.smooth[i](merged))
        return out[::-1]
