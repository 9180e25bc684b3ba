"""RoIAlign (He et al., Mask R-CNN) on ``torch.nn.functional.grid_sample``: fixed-size crops of feature maps.

UniHOPE crops its hand and object features with RoIAlign (§3.2). hoimask
has no torchvision dependency, so :func:`roi_align` samples the bins with
``grid_sample`` and follows torchvision's ``roi_align(..., aligned=True)``:

* a box ``(x0, y0, x1, y1)`` in image pixels (continuous, pixel ``i`` covers
  ``[i, i + 1)``) is scaled by ``spatial_scale`` and shifted by −0.5, so
  feature cell ``j`` is centred on the continuous coordinate ``j``;
* the box is split into ``output_size`` bins; each bin averages
  ``sampling_ratio × sampling_ratio`` regularly spaced bilinear samples;
* a sample more than one cell outside the map (``x < −1`` or ``x > W``) is 0;
  one inside that margin is clamped to the border cells.

Unlike torchvision, ``sampling_ratio`` must be given (≥ 1): its adaptive
``sampling_ratio=0`` draws a different number of samples per box, which a
single ``grid_sample`` call cannot. Gradients flow into the features and
into the boxes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hoimask._checks import (
    ShapeError,
    check_floating,
    check_int,
    check_positive,
    check_shape,
    check_size,
)

__all__ = ["RoIAlign", "roi_align"]


def _split_boxes(boxes: torch.Tensor, batch: int, fn: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(image index (K,), boxes (K, 4))`` from ``(B, 4)`` (one box per image) or ``(K, 5)`` (index first)."""
    if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[-1] not in (4, 5):
        check_shape(boxes, "K 5", name="boxes", fn=fn)  # raises for any other shape
    check_floating(boxes, name="boxes", fn=fn)
    if boxes.shape[-1] == 4:
        if boxes.shape[0] != batch:
            raise ShapeError(f"{fn}(): argument 'boxes' of shape (B, 4) expected one box per image (B={batch}), "
                             f"got shape {tuple(boxes.shape)}")
        return torch.arange(batch, device=boxes.device), boxes
    index = boxes[:, 0].round().long()
    if boxes.shape[0] and (bool((index < 0).any()) or bool((index >= batch).any())):
        raise ShapeError(f"{fn}(): argument 'boxes' holds image indices outside [0, {batch}) in its first column")
    return index, boxes[:, 1:]


def roi_align(
    features: torch.Tensor,
    boxes: torch.Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = 2,
) -> torch.Tensor:
    """Crop ``features`` in ``boxes`` to ``output_size`` bins (torchvision's ``roi_align(aligned=True)``).

    Args:
        features: ``(B, C, H, W)`` floating feature maps.
        boxes: ``(B, 4)`` one box ``(x0, y0, x1, y1)`` per image, or ``(K, 5)``
            rows ``(image index, x0, y0, x1, y1)``; image pixels (``spatial_scale``
            maps them to feature cells).
        output_size: ``S`` or ``(h, w)`` bins.
        spatial_scale: feature cells per image pixel (a stride-4 map: 0.25).
        sampling_ratio: bilinear samples per bin side (≥ 1).

    Returns:
        ``(K, C, h, w)`` (``K = B`` for ``(B, 4)`` boxes), in ``features``' dtype.

    Raises:
        ShapeError: shapes other than those above, image indices outside ``[0, B)``.
        DTypeError: non-floating features or boxes.
        ValueRangeError: a non-positive ``spatial_scale``, ``sampling_ratio`` < 1, a size < 1.

    Shape:
        ``(B, C, H, W), (K, 4|5) -> (K, C, h, w)``

    Example:
        >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> roi_align(x, torch.tensor([[0.0, 0.0, 4.0, 4.0]]), 2, sampling_ratio=2)  # 2x2 cell averages
        tensor([[[[ 2.5000,  4.5000],
                  [10.5000, 12.5000]]]])
    """
    fn = "roi_align"
    dims = check_shape(features, "B C H W", name="features", fn=fn)
    check_floating(features, name="features", fn=fn)
    out_h, out_w = check_size(output_size, name="output_size", low=1, allow_int=True, fn=fn)
    spatial_scale = check_positive(spatial_scale, name="spatial_scale", fn=fn)
    s = check_int(sampling_ratio, name="sampling_ratio", low=1, fn=fn)
    index, box = _split_boxes(boxes, dims["B"], fn)
    if box.shape[0] == 0:  # no RoI: nothing to sample
        return features.new_zeros(0, dims["C"], out_h, out_w)
    H, W = dims["H"], dims["W"]
    box = box.to(features.dtype) * spatial_scale - 0.5  # (K, 4) in cell-centre coordinates
    x0, y0, x1, y1 = box.unbind(-1)
    # sample positions inside a bin, as fractions of the box: (j + (i + 0.5) / s) / out
    fx = (torch.arange(out_w * s, device=features.device, dtype=features.dtype) + 0.5) / (out_w * s)  # (w s,)
    fy = (torch.arange(out_h * s, device=features.device, dtype=features.dtype) + 0.5) / (out_h * s)  # (h s,)
    xs = x0[:, None] + fx[None] * (x1 - x0)[:, None]  # (K, w s) cell coordinates
    ys = y0[:, None] + fy[None] * (y1 - y0)[:, None]  # (K, h s)
    inside_x = (xs >= -1) & (xs <= W)
    inside_y = (ys >= -1) & (ys <= H)
    # grid_sample, align_corners=True: -1 -> cell 0, +1 -> cell W - 1; "border" clamps (zeros beyond the margin below)
    gx = xs.clamp(0, W - 1) / max(W - 1, 1) * 2 - 1
    gy = ys.clamp(0, H - 1) / max(H - 1, 1) * 2 - 1
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)  # (K, h s, w s, 2)
    crops = features[index]  # (K, C, H, W)
    samples = F.grid_sample(crops, grid, mode="bilinear", padding_mode="border", align_corners=True)
    inside = (inside_y[:, :, None] & inside_x[:, None, :])[:, None]  # (K, 1, h s, w s)
    samples = torch.where(inside, samples, torch.zeros((), dtype=samples.dtype, device=samples.device))
    return F.avg_pool2d(samples, s) if s > 1 else samples  # (K, C, h, w)


class RoIAlign(nn.Module):
    """Module form of :func:`roi_align` holding ``output_size``, ``spatial_scale`` and ``sampling_ratio``.

    Shape:
        ``(B, C, H, W), (K, 4|5) -> (K, C, h, w)``

    Example:
        >>> RoIAlign(7, spatial_scale=0.25)(torch.randn(2, 8, 32, 32), torch.tensor([[0.0, 0, 64, 64]] * 2)).shape
        torch.Size([2, 8, 7, 7])
    """

    def __init__(self, output_size: int | tuple[int, int], spatial_scale: float = 1.0, sampling_ratio: int = 2) -> None:
        super().__init__()
        self.output_size = check_size(output_size, name="output_size", low=1, allow_int=True, fn="RoIAlign")
        self.spatial_scale = check_positive(spatial_scale, name="spatial_scale", fn="RoIAlign")
        self.sampling_ratio = check_int(sampling_ratio, name="sampling_ratio", low=1, fn="RoIAlign")

    def forward(self, features: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Crops of ``features`` in ``boxes``."""
        return roi_align(features, boxes, self.output_size, self.spatial_scale, self.sampling_ratio)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, sampling_ratio={self.sampling_ratio}"
