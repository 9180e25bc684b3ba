"""A small PointNet: a shared per-point MLP and a symmetric pooling into one global feature.

* :func:`pool_points` — masked max / mean / max‖mean pooling over the points
  of a set: the symmetric function that makes the encoder permutation invariant.
* :class:`PointNetEncoder` — PointNet (Qi et al., CVPR 2017) without the
  input / feature transforms: every point ``[s·(p - c), f]`` goes through the
  same ReLU MLP, then :func:`pool_points`, then an optional linear projection.

:class:`~hoimask.models.HOISDF` encodes the explicit surface clouds of
``point_cloud_fusion=True`` (HOMAE's SDF + point-cloud fusion) with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hoimask._checks import (
    DTypeError,
    ShapeError,
    ValueRangeError,
    check_choice,
    check_finite,
    check_int,
    check_positive,
    check_shape,
)
from hoimask.nn._mlp import relu_mlp

__all__ = ["POOL_MODES", "PointNetEncoder", "pool_points"]

#: The pooling modes of :func:`pool_points`.
POOL_MODES = ("max", "mean", "max_mean")


def pool_points(features: torch.Tensor, valid: torch.Tensor | None = None, *, mode: str = "max_mean") -> torch.Tensor:
    """Pool per-point features over the point axis, ignoring invalid points.

    ``"max"``: the channel-wise maximum; ``"mean"``: the mean; ``"max_mean"``:
    both, concatenated ``[max, mean]``. Invalid points (``valid`` False) take
    no part; a set without any valid point pools to **zeros** (no evidence),
    so the output is always finite. The result does not depend on the order
    of the points.

    Args:
        features: ``(..., N, C)`` per-point features.
        valid: ``(..., N)`` bool, True = the point counts (``None``: all count).
        mode: one of :data:`POOL_MODES`.

    Returns:
        ``(..., C)`` (``"max"``, ``"mean"``) or ``(..., 2C)`` (``"max_mean"``).

    Raises:
        ShapeError: ``features`` is not ``(..., N, C)`` or ``valid`` not ``(..., N)``.
        DTypeError: ``valid`` is not bool.
        ValueRangeError: unknown ``mode``.

    Example:
        >>> f = torch.tensor([[1.0, -2.0], [3.0, 0.0], [100.0, 100.0]])
        >>> pool_points(f, torch.tensor([True, True, False]))  # [max, mean] of the first two
        tensor([ 3.,  0.,  2., -1.])
        >>> pool_points(f, torch.zeros(3, dtype=torch.bool), mode="max")
        tensor([0., 0.])
    """
    fn = "pool_points"
    dims = check_shape(features, "... N C", name="features", fn=fn)
    check_choice(mode, POOL_MODES, name="mode", fn=fn)
    if valid is None:
        valid = torch.ones(features.shape[:-1], dtype=torch.bool, device=features.device)
    else:
        check_shape(valid, "... N", name="valid", dims=dims, fn=fn)
        if valid.dtype != torch.bool:
            raise DTypeError(f"{fn}(): argument 'valid' expected a bool tensor, got dtype {valid.dtype}")
        valid = valid.expand(features.shape[:-1])
    keep = valid.unsqueeze(-1)  # (..., N, 1)
    any_valid = keep.any(dim=-2)  # (..., 1)
    out = []
    if mode in ("max", "max_mean"):
        highest = features.masked_fill(~keep, float("-inf")).amax(dim=-2)  # (..., C)
        out.append(torch.where(any_valid, highest, torch.zeros_like(highest)))
    if mode in ("mean", "max_mean"):
        count = keep.sum(dim=-2).clamp_min(1).to(features.dtype)  # (..., 1)
        out.append((features * keep.to(features.dtype)).sum(dim=-2) / count)  # (..., C)
    return out[0] if len(out) == 1 else torch.cat(out, dim=-1)


class PointNetEncoder(nn.Module):
    """Global feature of a point set: shared ReLU MLP on ``[s·(p - c), f]``, masked pooling, linear.

    Per point ``p`` with optional features ``f`` (e.g. normals) and a set
    centre ``c``: ``h = MLP([point_scale · (p - c), f])`` with a ReLU after
    every layer (PointNet's shared MLP, without batch norm — sets here are
    small and batches tiny); then :func:`pool_points` over the valid points;
    then a linear layer to ``dim`` (``None``: no projection, the pooled width).
    The output is invariant to the order of the points and ignores invalid ones.

    Args:
        feature_channels: channels of the per-point features ``f`` (0: none).
        hidden: widths of the shared MLP ((64, 128)).
        dim: output width; ``None`` = the pooled width
            (``hidden[-1]``, or ``2 · hidden[-1]`` for ``"max_mean"``).
        pool: one of :data:`POOL_MODES` (``"max_mean"``).
        point_scale: ``s``, the factor on centred coordinates (1; HOISDF's fields use 3.1).

    Shape:
        points ``(B, N, 3)``, center ``(B, 3)`` or None, features ``(B, N, F)``,
        valid ``(B, N)`` bool or None -> ``(B, out_dim)``.

    Example:
        >>> enc = PointNetEncoder(3, hidden=(16, 32), dim=8)
        >>> points, normals = torch.rand(2, 50, 3), torch.randn(2, 50, 3)
        >>> enc(points, points.mean(1), normals).shape, enc.out_dim
        (torch.Size([2, 8]), 8)
        >>> perm = torch.randperm(50)
        >>> torch.allclose(enc(points, None, normals), enc(points[:, perm], None, normals[:, perm]), atol=1e-6)
        True
    """

    def __init__(
        self,
        feature_channels: int = 0,
        *,
        hidden: Sequence[int] = (64, 128),
        dim: int | None = None,
        pool: str = "max_mean",
        point_scale: float = 1.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        fn = "PointNetEncoder.__init__"
        self.feature_channels = check_int(feature_channels, name="feature_channels", low=0, fn=fn)
        if isinstance(hidden, (str, int)) or len(hidden) == 0:
            raise ValueRangeError(f"{fn}(): argument 'hidden' expected a non-empty sequence of widths, got {hidden!r}")
        for i, w in enumerate(hidden):
            check_int(w, name=f"hidden[{i}]", low=1, fn=fn)
        self.pool = check_choice(pool, POOL_MODES, name="pool", fn=fn)
        self.point_scale = check_positive(point_scale, name="point_scale", fn=fn)
        self.mlp = relu_mlp([3 + self.feature_channels, *hidden], relu_last=True, device=device, dtype=dtype)
        pooled = hidden[-1] * (2 if pool == "max_mean" else 1)
        if dim is None:
            self.projection: nn.Module = nn.Identity()
            self.out_dim = pooled
        else:
            self.out_dim = check_int(dim, name="dim", low=1, fn=fn)
            self.projection = nn.Linear(pooled, dim, device=device, dtype=dtype)

    def forward(
        self,
        points: torch.Tensor,
        center: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Encode each set of points into one vector.

        Args:
            points: ``(B, N, 3)`` positions, N >= 1, finite.
            center: ``(B, 3)`` the frame's origin per set (``None``: the origin).
            features: ``(B, N, feature_channels)``; required iff ``feature_channels > 0``.
            valid: ``(B, N)`` bool, True = the point counts (``None``: all).

        Returns:
            ``(B, out_dim)`` global features (zeros before the projection for a set without a valid point).
        """
        fn = "PointNetEncoder.forward"
        dims = check_shape(points, "B N 3", name="points", fn=fn)
        if dims["N"] == 0:
            raise ShapeError(f"{fn}(): argument 'points' expected at least one point, got N=0")
        check_finite(points, name="points", fn=fn)
        x = points
        if center is not None:
            check_shape(center, "B 3", name="center", dims=dims, fn=fn)
            check_finite(center, name="center", fn=fn)
            x = points - center.unsqueeze(1)  # (B, N, 3)
        x = x * self.point_scale
        if self.feature_channels:
            if features is None:
                raise ValueRangeError(f"{fn}(): argument 'features' is required (feature_channels="
                                      f"{self.feature_channels}), got None")
            check_shape(features, f"B N {self.feature_channels}", name="features", dims=dims, fn=fn)
            x = torch.cat([x, features.to(x.dtype)], dim=-1)  # (B, N, 3 + F)
        elif features is not None:
            raise ValueRangeError(f"{fn}(): argument 'features' must be None when feature_channels=0, "
                                  f"got shape {tuple(features.shape)}")
        pooled = pool_points(self.mlp(x), valid, mode=self.pool)  # (B, pooled)
        return self.projection(pooled)

    def extra_repr(self) -> str:
        return f"feature_channels={self.feature_channels}, pool={self.pool!r}, point_scale={self.point_scale:g}"
