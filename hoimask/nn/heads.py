"""Prediction heads: 2D maps (segmentation, joint heatmaps) and parameters (object pose, MANO).

MaskHOI §III-C: the 2D heads read the finest DPT map; the parameter heads read
the decoded tokens directly ("direct parameter regression"): an MLP for the
object's 6D rotation and translation, a transformer head whose query tokens
cross-attend to the hand tokens for the 16 MANO rotations (6D) and the shape β.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from hoimask._checks import ShapeError, check_int, check_shape, check_size
from hoimask.nn.keypoints import expected_position
from hoimask.nn.transformer import CrossAttentionBlock, Mlp

__all__ = [
    "SegmentationHead",
    "HeatmapHead",
    "ObjectPoseHead",
    "ObjectPose",
    "MANOTransformerHead",
    "MANOParameters",
    "IDENTITY_6D",
    "SpatialTranslationHead",
    "spatial_soft_argmax",
]

#: 6D representation (first two columns of R, concatenated) of the identity rotation.
IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


class _ConvHead(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, hidden: int | None, device, dtype) -> None:
        super().__init__()
        check_int(in_channels, name="in_channels", low=1)
        hidden = in_channels if hidden is None else check_int(hidden, name="hidden", low=1)
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, hidden, 3, padding=1, device=device, dtype=dtype)
        self.conv2 = nn.Conv2d(hidden, out_channels, 1, device=device, dtype=dtype)

    def _predict(self, features: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
        fn = f"{type(self).__name__}.forward"
        check_shape(features, f"B {self.in_channels} H W", name="features", fn=fn)
        if size is not None:
            size = check_size(size, name="size", fn=fn)
        out = self.conv2(F.relu(self.conv1(features)))
        if size is not None and tuple(out.shape[-2:]) != tuple(size):
            out = F.interpolate(out, size=tuple(size), mode="bilinear", align_corners=False)
        return out



class SegmentationHead(_ConvHead):
    """Per-pixel class logits (background, hand, object) from a feature map.

    Args:
        in_channels: C of the feature map.
        num_classes: output classes (3: 0 background, 1 hand, 2 object).
        hidden: hidden channels (default ``in_channels``).

    Shape:
        features ``(B, C, h, w)`` -> logits ``(B, num_classes, *size)`` (``size``
        defaults to ``(h, w)``; bilinear upsampling otherwise).
    """

    def __init__(self, in_channels: int, num_classes: int = 3, *, hidden: int | None = None, device=None, dtype=None):
        check_int(num_classes, name="num_classes", low=1)
        super().__init__(in_channels, num_classes, hidden, device, dtype)
        self.num_classes = num_classes

    def forward(self, features: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Predict logits, optionally resized to ``size`` (e.g. the image size)."""
        return self._predict(features, size)


class HeatmapHead(_ConvHead):
    """One heatmap per joint (21, canonical order) from a feature map.

    Args:
        in_channels: C of the feature map.
        num_joints: J.
        hidden: hidden channels (default ``in_channels``).

    Shape:
        features ``(B, C, h, w)`` -> heatmaps ``(B, J, *size)`` (default ``(h, w)``).
    """

    def __init__(self, in_channels: int, num_joints: int = 21, *, hidden: int | None = None, device=None, dtype=None):
        check_int(num_joints, name="num_joints", low=1)
        super().__init__(in_channels, num_joints, hidden, device, dtype)
        self.num_joints = num_joints

    def forward(self, features: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Predict heatmaps, optionally resized to ``size``."""
        return self._predict(features, size)


class ObjectPose(NamedTuple):
    """Object pose predicted by :class:`ObjectPoseHead`."""

    rotation_6d: torch.Tensor  #: (B, 6)
    translation: torch.Tensor  #: (B, 3) metres, camera frame


class ObjectPoseHead(nn.Module):
    """MLP on the mean-pooled object tokens -> 6D rotation and translation (``f_pose``).

    The last layer starts at zero weights with the identity rotation and
    ``init_translation`` as bias, so training starts from a sensible pose.

    Args:
        dim: token size D.
        hidden: hidden width of the MLP.
        init_translation: initial translation (m), default 0.5 m in front of the camera.

    Shape:
        tokens ``(B, N, D)`` -> :class:`ObjectPose` ``((B, 6), (B, 3))``.
    """

    def __init__(
        self,
        dim: int,
        *,
        hidden: int = 256,
        init_translation: tuple[float, float, float] = (0.0, 0.0, 0.5),
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        check_int(dim, name="dim", low=1)
        check_int(hidden, name="hidden", low=1)
        if not isinstance(init_translation, (tuple, list)) or len(init_translation) != 3:
            raise ShapeError(f"ObjectPoseHead(): argument 'init_translation' expected 3 numbers (x, y, z), got {init_translation!r}")
        self.dim = dim
        self.norm = nn.LayerNorm(dim, device=device, dtype=dtype)
        self.mlp = Mlp(dim, hidden, 9, device=device, dtype=dtype)
        with torch.no_grad():
            self.mlp.fc2.weight.mul_(0.01)
            self.mlp.fc2.bias.copy_(torch.tensor([*IDENTITY_6D, *init_translation]))

    def forward(self, tokens: torch.Tensor) -> ObjectPose:
        """Regress the object pose from its tokens."""
        check_shape(tokens, f"B N {self.dim}", name="tokens")
        out = self.mlp(self.norm(tokens.mean(dim=1)))  # (B, 9)
        return ObjectPose(out[:, :6], out[:, 6:])


class MANOParameters(NamedTuple):
    """MANO parameters predicted by :class:`MANOTransformerHead`."""

    rotation_6d: torch.Tensor  #: (B, 16, 6) global + 15 joint rotations
    shape: torch.Tensor  #: (B, num_betas) β


class MANOTransformerHead(nn.Module):
    """Query tokens cross-attending to the hand tokens -> 16 x 6D rotations + β (``f_MANO``).

    One learned query per rotation and one for the shape (17 queries), refined
    by ``depth`` transformer decoder blocks; linear read-outs start at the
    identity rotation and the mean shape (β = 0).

    Args:
        context_dim: size of the hand tokens.
        dim: query width.
        depth: decoder blocks.
        num_heads: attention heads.
        num_rotations: 16 for MANO (global + 15 joints).
        num_betas: 10 for MANO.

    Shape:
        tokens ``(B, N, context_dim)`` -> :class:`MANOParameters` ``((B, 16, 6), (B, 10))``.
    """

    def __init__(
        self,
        context_dim: int,
        *,
        dim: int = 256,
        depth: int = 2,
        num_heads: int = 8,
        num_rotations: int = 16,
        num_betas: int = 10,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        for name, value in (("context_dim", context_dim), ("dim", dim), ("num_rotations", num_rotations),
                            ("num_betas", num_betas)):
            check_int(value, name=name, low=1)
        check_int(depth, name="depth", low=0)  # 0: the learned queries alone
        self.context_dim = context_dim
        self.num_rotations = num_rotations
        self.queries = nn.Parameter(torch.randn(num_rotations + 1, dim, device=device, dtype=dtype) * 0.02)
        self.blocks = nn.ModuleList(
            CrossAttentionBlock(dim, context_dim, num_heads, device=device, dtype=dtype) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, device=device, dtype=dtype)
        self.rotation_out = nn.Linear(dim, 6, device=device, dtype=dtype)
        self.shape_out = nn.Linear(dim, num_betas, device=device, dtype=dtype)
        with torch.no_grad():
            self.rotation_out.weight.mul_(0.01)
            self.rotation_out.bias.copy_(torch.tensor(IDENTITY_6D))
            self.shape_out.weight.mul_(0.01)
            self.shape_out.bias.zero_()

    def forward(self, tokens: torch.Tensor) -> MANOParameters:
        """Regress MANO rotations and shape from the hand tokens."""
        check_shape(tokens, f"B N {self.context_dim}", name="tokens")
        x = self.queries.to(tokens.dtype).expand(tokens.shape[0], -1, -1)  # (B, 17, dim)
        for block in self.blocks:
            x = block(x, tokens)
        x = self.norm(x)
        rot = self.rotation_out(x[:, : self.num_rotations])  # (B, 16, 6)
        shape = self.shape_out(x[:, self.num_rotations])  # (B, num_betas)
        return MANOParameters(rot, shape)


def spatial_soft_argmax(logits: torch.Tensor, grid_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over a token grid and the expected position of each map (soft-argmax).

    Args:
        logits: ``(B, N, K)`` one score per token and map (``N = h * w``, row-major).
        grid_size: ``(h, w)``.

    Returns:
        ``(weights (B, N, K), positions (B, K, 2))`` with positions ``(x, y)`` as
        fractions of the image side measured from its centre (``[-1/2, 1/2]``;
        the centre of token ``(i, j)`` is at ``((j + 1/2) / w - 1/2, (i + 1/2) / h - 1/2)``).

    Shape:
        ``(B, N, K) -> (B, N, K), (B, K, 2)``.

    Example:
        >>> logits = torch.full((1, 4, 1), -1e4); logits[0, 3] = 0.0  # all weight on token (1, 1) of a 2x2 grid
        >>> spatial_soft_argmax(logits, (2, 2))[1]
        tensor([[[0.2500, 0.2500]]])
    """
    h, w = check_size(grid_size, name="grid_size")
    check_shape(logits, f"B {h * w} K", name="logits")
    weights = logits.softmax(dim=1)  # (B, N, K)
    maps = weights.transpose(1, 2).reshape(weights.shape[0], -1, h, w)  # (B, K, h, w), row-major tokens
    return weights, expected_position(maps, (1.0, 1.0)) - 0.5


class SpatialTranslationHead(nn.Module):
    """Where a thing is in the image and how far away: soft-argmax over the tokens + a pooled depth.

    A mean over tokens discards *where* the tokens are; this head scores each
    token, takes the score-weighted mean of the token centres as the image
    position ``(a, b)`` and the score-weighted mean of the tokens (attention
    pooling) through an MLP for the log relative depth ``c`` and a small
    position correction. The output is the raw ``(a, b, c)`` of
    :func:`hoimask.geometry.translation_from_image`, which turns it into metres
    with the camera's ``K``. Starts at the image centre at the reference depth.

    Args:
        dim: token size D.
        hidden: MLP width.

    Shape:
        tokens ``(B, N, D)``, ``grid_size = (h, w)`` with ``N = h w`` -> ``(B, 3)``.

    Example:
        >>> head = SpatialTranslationHead(16, hidden=8)
        >>> head(torch.randn(2, 12, 16), (3, 4)).shape
        torch.Size([2, 3])
    """

    def __init__(self, dim: int, *, hidden: int = 128, device=None, dtype=None) -> None:
        super().__init__()
        check_int(dim, name="dim", low=1)
        check_int(hidden, name="hidden", low=1)
        self.dim = dim
        self.norm = nn.LayerNorm(dim, device=device, dtype=dtype)
        self.score = nn.Linear(dim, 1, device=device, dtype=dtype)
        self.mlp = Mlp(dim, hidden, 3, device=device, dtype=dtype)
        with torch.no_grad():
            self.score.weight.mul_(0.1)
            self.score.bias.zero_()
            self.mlp.fc2.weight.mul_(0.01)
            self.mlp.fc2.bias.zero_()

    def forward(self, tokens: torch.Tensor, grid_size: tuple[int, int]) -> torch.Tensor:
        """Predict the raw image-frame translation ``(a, b, c)``."""
        check_shape(tokens, f"B N {self.dim}", name="tokens")
        x = self.norm(tokens)
        weights, position = spatial_soft_argmax(self.score(x), grid_size)  # (B, N, 1), (B, 1, 2)
        pooled = (weights * x).sum(dim=1)  # (B, D)
        out = self.mlp(pooled)  # (B, 3): position correction, log relative depth
        return torch.cat([position[:, 0] + 0.1 * out[:, :2], out[:, 2:]], dim=-1)
