"""HOMAE's fusion of the implicit SDF with an explicit point cloud derived from it, for :class:`~hoimask.models.HOISDF`.

HOMAE (Yang et al., 2025) "combine[s] the implicit SDF with an explicit point
cloud derived from the SDF" and gives no details; this is hoimask's design
(``HOISDFConfig(point_cloud_fusion=True)``; docs/models.md, "Point-cloud fusion"):

1. :func:`select_near_surface` — per branch, the ``k`` pose query points with
   the smallest predicted ``|SDF|`` (``k = ceil(fusion_fraction · N)``, the
   same count for every sample; slots that merely repeat points come last).
2. :func:`surface_cloud` — each is moved onto the predicted zero level,
   ``p' = p - d·∇d/|∇d|`` (:func:`hoimask.sdf.project_to_surface`: the
   field's value and autograd gradient w.r.t. the point, detached), giving an
   oriented cloud (points + unit normals). Points whose ``|d|`` reaches the
   SDF clamp (beyond what the loss trains the field to represent) or whose
   gradient vanishes are kept in their slot but marked invalid.
3. :class:`SurfaceCloudFusion` — one :class:`~hoimask.nn.PointNetEncoder`
   per field on ``[s·(p' - c), n]`` (c the field's anchor) with masked
   max‖mean pooling; both global features, concatenated ``[g_hand, g_object]``,
   go through one linear layer per branch to a **cloud token** that joins the
   branch's point transformer beside the cross-field tokens. The point tokens
   (built from the SDF-sampled features) attend to it, so the pose heads read
   the implicit and the explicit geometry together; the heads themselves read
   only the point tokens, as in HOISDF.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import torch
from torch import nn

from hoimask._checks import (
    DTypeError,
    ShapeError,
    ValueRangeError,
    check_finite,
    check_int,
    check_shape,
)
from hoimask.nn import PointNetEncoder
from hoimask.sdf import project_to_surface

__all__ = ["SurfaceCloud", "SurfaceCloudFusion", "fusion_count", "select_near_surface", "surface_cloud"]


def fusion_count(num_points: int, fraction: float) -> int:
    """Points per sample of a branch's cloud: ``max(1, ceil(fraction · num_points))``.

    Example:
        >>> fusion_count(600, 0.5), fusion_count(3, 0.1)
        (300, 1)
    """
    return max(1, math.ceil(fraction * num_points - 1e-9))


def select_near_surface(
    points: torch.Tensor,
    sdf: torch.Tensor,
    k: int,
    valid: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``k`` points with the smallest ``|sdf|`` per sample, in increasing order; invalid points last.

    Args:
        points: ``(B, N, 3)`` points.
        sdf: ``(B, N)`` their signed distances (non-finite values count as infinitely far).
        k: points to keep, ``1 <= k <= N``.
        valid: ``(B, N)`` bool (``None``: all valid); invalid points are
            chosen only when fewer than ``k`` are valid.

    Returns:
        ``(points (B, k, 3), sdf (B, k), valid (B, k))``.

    Example:
        >>> p = torch.arange(12.0).reshape(1, 4, 3)
        >>> _, d, ok = select_near_surface(p, torch.tensor([[0.3, -0.1, 0.2, 0.0]]), 2,
        ...                                torch.tensor([[True, True, True, False]]))
        >>> d, ok
        (tensor([[-0.1000,  0.2000]]), tensor([[True, True]]))
    """
    fn = "select_near_surface"
    dims = check_shape(points, "B N 3", name="points", fn=fn)
    check_shape(sdf, "B N", name="sdf", dims=dims, fn=fn)
    check_int(k, name="k", low=1, high=dims["N"], fn=fn)
    if valid is None:
        valid = torch.ones_like(sdf, dtype=torch.bool)
    check_shape(valid, "B N", name="valid", dims=dims, fn=fn)
    if valid.dtype != torch.bool:
        raise DTypeError(f"{fn}(): argument 'valid' expected a bool tensor, got dtype {valid.dtype}")
    distance = sdf.detach().abs().nan_to_num(nan=math.inf)
    order = distance.argsort(dim=1, stable=True)  # (B, N) by |sdf|
    invalid = torch.gather(~valid, 1, order).to(torch.uint8)
    order = torch.gather(order, 1, invalid.argsort(dim=1, stable=True))[:, :k]  # valid first, each by |sdf|
    chosen = torch.gather(points, 1, order[..., None].expand(-1, -1, 3))
    return chosen, torch.gather(sdf, 1, order), torch.gather(valid, 1, order)


class SurfaceCloud(NamedTuple):
    """The explicit cloud of one field (camera frame, detached)."""

    points: torch.Tensor  #: (B, k, 3) m, projected onto the predicted zero level
    normals: torch.Tensor  #: (B, k, 3) unit outward normals of the predicted field
    sdf: torch.Tensor  #: (B, k) predicted SDF (m) at the points before the projection
    valid: torch.Tensor  #: (B, k) bool: a valid query point, within the clamp, with a usable gradient


def surface_cloud(
    sdf_fn: Callable[[torch.Tensor], torch.Tensor],
    points: torch.Tensor,
    sdf: torch.Tensor,
    k: int,
    *,
    valid: torch.Tensor | None = None,
    max_distance: float | None = None,
) -> SurfaceCloud:
    """Select the ``k`` query points nearest the zero level and project them onto it.

    Args:
        sdf_fn: ``(B, k, 3)`` points (m) -> ``(B, k)`` predicted SDF (m),
            differentiable w.r.t. the points.
        points: ``(B, N, 3)`` query points (m).
        sdf: ``(B, N)`` their predicted SDF (any units: only the order matters).
        k: points of the cloud per sample.
        valid: ``(B, N)`` bool validity of the query points.
        max_distance: points with ``|sdf_fn| >= max_distance`` (m) are not projected and marked invalid.

    Returns:
        :class:`SurfaceCloud` with ``(B, k, ...)`` entries.
    """
    chosen, _, ok = select_near_surface(points, sdf, k, valid)
    surface = project_to_surface(sdf_fn, chosen, max_distance=max_distance)
    return SurfaceCloud(surface.points, surface.normals, surface.sdf, ok & surface.near)


class SurfaceCloudFusion(nn.Module):
    """Global features of the explicit surface clouds, as one extra token per branch.

    One :class:`~hoimask.nn.PointNetEncoder` per field (input ``[s·(p - c), n]``,
    6 channels), the pooled features of all fields concatenated in ``fields``
    order, and per field a linear layer to the token width: the cloud token
    of that field's branch.

    Args:
        dim: token width of the point transformers.
        hidden: widths of each encoder's shared MLP ((64, 128)).
        pool: pooling of the encoders (``"max_mean"``; :data:`~hoimask.nn.POOL_MODES`).
        point_scale: ``s`` (3.1, the scale of HOISDF's fields).
        fields: field names ((``"hand"``, ``"object"``)).

    Shape:
        clouds ``{field: SurfaceCloud (B, k_field, ...)}``, centers ``{field: (B, 3)}``
        -> ``{field: (B, dim)}``.

    Example:
        >>> fusion = SurfaceCloudFusion(32, hidden=(16,))
        >>> cloud = lambda k: SurfaceCloud(torch.rand(2, k, 3), torch.randn(2, k, 3), torch.zeros(2, k),
        ...                                torch.ones(2, k, dtype=torch.bool))
        >>> out = fusion({"hand": cloud(10), "object": cloud(4)}, {"hand": torch.zeros(2, 3), "object": torch.ones(2, 3)})
        >>> out["hand"].shape, out["object"].shape
        (torch.Size([2, 32]), torch.Size([2, 32]))
    """

    def __init__(
        self,
        dim: int,
        *,
        hidden: Sequence[int] = (64, 128),
        pool: str = "max_mean",
        point_scale: float = 3.1,
        fields: Sequence[str] = ("hand", "object"),
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        fn = "SurfaceCloudFusion.__init__"
        check_int(dim, name="dim", low=1, fn=fn)
        if isinstance(fields, str) or len(fields) == 0:
            raise ValueRangeError(f"{fn}(): argument 'fields' expected a non-empty sequence of names, got {fields!r}")
        self.fields = tuple(fields)
        self.encoders = nn.ModuleDict({
            name: PointNetEncoder(3, hidden=hidden, pool=pool, point_scale=point_scale, device=device, dtype=dtype)
            for name in self.fields
        })
        width = sum(encoder.out_dim for encoder in self.encoders.values())
        self.to_token = nn.ModuleDict({name: nn.Linear(width, dim, device=device, dtype=dtype) for name in self.fields})

    def forward(self, clouds: Mapping[str, SurfaceCloud], centers: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Encode every field's cloud around its centre; return each branch's cloud token ``(B, dim)``."""
        fn = "SurfaceCloudFusion.forward"
        missing = [name for name in self.fields if name not in clouds or name not in centers]
        if missing:
            raise ValueRangeError(f"{fn}(): arguments 'clouds' and 'centers' need the fields {missing}")
        pooled = []
        for name in self.fields:
            cloud = clouds[name]
            dims = check_shape(cloud.points, "B K 3", name=f"clouds[{name!r}].points", fn=fn)
            check_shape(cloud.normals, "B K 3", name=f"clouds[{name!r}].normals", dims=dims, fn=fn)
            check_finite(cloud.normals, name=f"clouds[{name!r}].normals", fn=fn)
            if pooled and pooled[0].shape[0] != dims["B"]:
                raise ShapeError(f"{fn}(): argument 'clouds[{name!r}]' has batch {dims['B']}, "
                                 f"expected {pooled[0].shape[0]}")
            pooled.append(self.encoders[name](cloud.points, centers[name], cloud.normals, cloud.valid))
        features = torch.cat(pooled, dim=-1)  # (B, Σ out_dim)
        return {name: self.to_token[name](features) for name in self.fields}
