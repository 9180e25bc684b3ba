"""Pixel-aligned sampling of multi-scale feature maps at projected 3D points.

MaskHOI and HOISDF read the image feature of a 3D query point ``p`` at its
projection ``pi(p, K)`` (``f(pi(p, K))`` in MaskHOI §III-C). This module
projects camera-frame points with the intrinsics of the *input image* and
samples every feature map bilinearly at the same relative image position.

Pixel convention: pixel ``(row i, column j)`` covers ``[j, j + 1) x [i, i + 1)``
so its centre is at ``(j + 0.5, i + 0.5)`` (the OpenCV / ``align_corners=False``
convention). A feature map of size ``(H_i, W_i)`` spans the whole image of size
``(H, W)``, so the normalised coordinate ``2 u / W - 1`` addresses the same
image position at every scale.

Points behind or on the camera plane (``z <= 0``) and points whose projection
falls outside ``[0, W] x [0, H]`` are *invalid*: their features are zeros and
``valid`` is False. Valid points use border padding, so a point in the outer
half pixel reads the edge value instead of being blended with zeros.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import DTypeError, ShapeError, check_floating, check_same_device, check_shape
from .camera import project

__all__ = ["pixel_aligned_features", "PixelAlignedFeatures"]


def _check_image_size(image_size: Sequence[int], fn: str) -> tuple[int, int]:
    if len(image_size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in image_size):
        raise DTypeError(f"{fn}(): argument 'image_size' expected two positive ints (H, W), got {image_size!r}")
    return int(image_size[0]), int(image_size[1])


def pixel_aligned_features(
    points: Tensor, K: Tensor, feature_maps: Sequence[Tensor], image_size: Sequence[int]
) -> tuple[Tensor, Tensor]:
    """Bilinearly sample multi-scale feature maps at the projections of 3D points.

    Args:
        points: camera-frame query points (OpenCV: z forward, metres).
        K: intrinsics of the input image (pixels).
        feature_maps: one or more maps covering the whole image, e.g. the
            DPT outputs at several strides; their features are concatenated
            in list order.
        image_size: ``(H, W)`` of the image ``K`` refers to.

    Returns:
        ``(features, valid)``: features in the dtype of the feature maps,
        zeros where ``valid`` is False (behind the camera or outside the image).

    Shape:
        - points: ``(B, Q, 3)``; K: ``(B, 3, 3)``
        - feature_maps[i]: ``(B, C_i, H_i, W_i)``
        - features: ``(B, Q, sum_i C_i)``; valid: ``(B, Q)`` bool

    Example:
        >>> K = torch.tensor([[[10.0, 0, 2], [0, 10.0, 2], [0, 0, 1]]])
        >>> fmap = torch.arange(16.0).view(1, 1, 4, 4)
        >>> p = torch.tensor([[[-0.05, 0.05, 1.0], [0.0, 0.0, -1.0]]])  # centre of pixel (row 2, col 1); behind
        >>> f, ok = pixel_aligned_features(p, K, [fmap], (4, 4))
        >>> f.squeeze(-1), ok
        (tensor([[9., 0.]]), tensor([[ True, False]]))
    """
    fn = "pixel_aligned_features"
    dims = check_shape(points, "B Q 3", name="points", fn=fn)
    check_shape(K, "B 3 3", name="K", dims=dims, fn=fn)
    check_floating(points, name="points", fn=fn)
    check_floating(K, name="K", fn=fn)
    H, W = _check_image_size(image_size, fn)
    if isinstance(feature_maps, Tensor) or len(feature_maps) == 0:
        raise ShapeError(f"{fn}(): argument 'feature_maps' expected a non-empty list of (B, C, H, W) tensors")
    for i, fmap in enumerate(feature_maps):
        check_shape(fmap, "B _ _ _", name=f"feature_maps[{i}]", dims=dims, fn=fn)
        check_floating(fmap, name=f"feature_maps[{i}]", fn=fn)
    check_same_device({"points": points, "K": K, **{f"feature_maps[{i}]": f for i, f in enumerate(feature_maps)}}, fn=fn)

    z = points[..., 2]
    front = z > 0
    # Project a harmless stand-in for points behind the camera (their result is masked anyway).
    safe = torch.where(front.unsqueeze(-1), points, torch.ones_like(points))
    uv = project(safe, K.to(points.dtype))  # (B, Q, 2) pixels
    u, v = uv.unbind(-1)
    valid = front & (u >= 0) & (u <= W) & (v >= 0) & (v <= H)
    grid = torch.stack([2.0 * u / W - 1.0, 2.0 * v / H - 1.0], dim=-1)
    grid = torch.where(valid.unsqueeze(-1), grid, torch.zeros_like(grid))  # keep NaN/inf out of grid_sample
    out = []
    for fmap in feature_maps:
        sampled = F.grid_sample(
            fmap, grid.to(fmap.dtype).unsqueeze(1), mode="bilinear", padding_mode="border", align_corners=False
        )  # (B, C_i, 1, Q)
        out.append(sampled.squeeze(2).transpose(1, 2))  # (B, Q, C_i)
    features = torch.cat(out, dim=-1)
    features = features * valid.unsqueeze(-1).to(features.dtype)
    return features, valid


class PixelAlignedFeatures(nn.Module):
    """Module form of :func:`pixel_aligned_features` holding the image size.

    Args:
        image_size: ``(H, W)`` of the image the intrinsics refer to.

    Shape:
        - points: ``(B, Q, 3)``; K: ``(B, 3, 3)``; feature_maps[i]: ``(B, C_i, H_i, W_i)``
        - output: ``((B, Q, sum_i C_i), (B, Q) bool)``
    """

    def __init__(self, image_size: Sequence[int]) -> None:
        super().__init__()
        self.image_size = _check_image_size(image_size, "PixelAlignedFeatures")

    def forward(self, points: Tensor, K: Tensor, feature_maps: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """Sample ``feature_maps`` at the projections of ``points`` (see the function)."""
        return pixel_aligned_features(points, K, feature_maps, self.image_size)

    def extra_repr(self) -> str:
        return f"image_size={self.image_size}"
