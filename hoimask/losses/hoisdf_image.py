"""HOISDF's 2D loss L_img: joint-heatmap MSE and hand / object segmentation BCE (HOISDF §3.1).

As in HOISDF's code (``main/model.py``, ``main/config.py``):

* **heatmap**: mean squared error between the predicted maps and Gaussians
  rendered at the 2D joints, ``sigma = 1.25`` heatmap pixels, peak ``255``
  (HOISDF multiplies its targets by 255); mean over pixels.
* **hand_seg**, **object_seg**: binary cross-entropy of the hand and object
  masks, mean over pixels.
* weights :data:`HOISDF_IMAGE_WEIGHTS`: heatmap 1e-3, each segmentation 1.

HOISDF predicts one heatmap channel holding the sum of all 21 Gaussians; a
per-joint form (21 channels) is also accepted: the channel count of
``heatmaps`` decides. The 1e-3 weight was tuned for the single channel: at
256² input (128² maps) and zero prediction the single-channel term is about
410 (0.41 weighted), a per-joint term about 20 (0.02 weighted).

Gaussians use the library's continuous pixel convention
(:func:`~hoimask.losses.render_gaussian_heatmaps`: a joint ``(u, v)`` sits at
heatmap index ``(u w / W - 0.5, v h / H - 0.5)``); HOISDF's code puts it at
``(u w / W, v h / H)``, half a heatmap pixel away. Segmentation masks at
another size than the logits are area-resized here (soft targets at the
boundaries); HOISDF's loaders resize them with nearest neighbour (hard
targets). HOISDF applies the sigmoid in the head and uses ``BCELoss``; this
loss takes logits (``binary_cross_entropy_with_logits``, the same value,
numerically stable).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import nn

from hoimask._checks import (
    DTypeError,
    ShapeError,
    ValueRangeError,
    check_floating,
    check_int,
    check_positive,
    check_shape,
)
from hoimask.losses._reduce import masked_mean
from hoimask.losses.image import render_gaussian_heatmaps
from hoimask.losses.weighted import LossOutput, weighted_sum

__all__ = [
    "HOISDF_IMAGE_WEIGHTS",
    "HOISDF_HEATMAP_SIGMA",
    "HOISDF_HEATMAP_PEAK",
    "hoisdf_image_loss",
    "HOISDFImageLoss",
]

#: HOISDF's weights of the L_img terms (``hm_weight``, ``obj_hm_weight`` in its config); read-only.
HOISDF_IMAGE_WEIGHTS: Mapping[str, float] = MappingProxyType({"heatmap": 1e-3, "hand_seg": 1.0, "object_seg": 1.0})
#: Gaussian standard deviation in heatmap pixels (HOISDF: ``sigma = 2.5 / 2``).
HOISDF_HEATMAP_SIGMA = 1.25
#: Peak value of each Gaussian target (HOISDF multiplies its heatmaps by 255).
HOISDF_HEATMAP_PEAK = 255.0


def _mask_target(mask: torch.Tensor, size: tuple[int, int], dtype: torch.dtype, name: str) -> torch.Tensor:
    """A ``(B, H, W)`` bool or [0, 1] mask as float at ``size`` (area-averaged when resized)."""
    if mask.dtype.is_complex:
        raise DTypeError(f"hoisdf_image_loss(): argument '{name}' expected a bool or real mask, got {mask.dtype}")
    if mask.dtype != torch.bool:
        if mask.numel() and (bool((mask < 0).any()) or bool((mask > 1).any()) or bool(mask.isnan().any())):
            raise ValueRangeError(
                f"hoisdf_image_loss(): argument '{name}' expected a bool mask or values in [0, 1], "
                f"got values in [{float(mask.min())}, {float(mask.max())}]"
            )
    target = mask.to(dtype)
    if tuple(target.shape[-2:]) != tuple(size):
        target = F.interpolate(target[:, None], size=size, mode="area")[:, 0]
    return target


def hoisdf_image_loss(
    heatmaps: torch.Tensor,
    hand_logits: torch.Tensor,
    object_logits: torch.Tensor,
    joints_2d: torch.Tensor,
    hand_mask: torch.Tensor,
    object_mask: torch.Tensor,
    *,
    image_size: tuple[int, int],
    has_object: torch.Tensor | None = None,
    sigma: float = HOISDF_HEATMAP_SIGMA,
    peak: float = HOISDF_HEATMAP_PEAK,
) -> dict[str, torch.Tensor]:
    """HOISDF's L_img terms, unweighted: ``{"heatmap", "hand_seg", "object_seg"}``.

    Combine them with ``weighted_sum(terms, HOISDF_IMAGE_WEIGHTS)`` (or use
    :class:`HOISDFImageLoss`).

    Missing annotations are masked, never an error:

    * a joint with a NaN/inf coordinate is not annotated: with per-joint maps
      its map does not count; with a single map, a sample counts only if all
      its joints are finite (a partial target would punish a correct peak);
    * samples with ``has_object`` False get no object term (their object
      logits receive no gradient).

    A term over which nothing counts is an exact 0.

    Args:
        heatmaps: ``(B, C, h, w)`` predicted maps, ``C = J`` (one per joint) or
            ``C = 1`` (HOISDF: every joint in one map).
        hand_logits: ``(B, h, w)`` hand-segmentation logits.
        object_logits: ``(B, h, w)`` object-segmentation logits.
        joints_2d: ``(B, J, 2)`` joint pixel coordinates ``(u, v)`` in the image.
        hand_mask: ``(B, H, W)`` bool or float in [0, 1] (e.g. ``segmentation == 1``).
            Masks at another size than the logits are area-resized to them
            (soft targets at the boundaries).
        object_mask: ``(B, H, W)``, as ``hand_mask`` (e.g. ``segmentation == 2``).
        image_size: ``(H_img, W_img)`` of the image ``joints_2d`` refers to.
        has_object: optional ``(B,)`` bool; default: every sample has an object.
        sigma: Gaussian standard deviation in heatmap pixels, > 0.
        peak: Gaussian peak value, > 0.

    Returns:
        Dict of three scalar tensors.

    Raises:
        ShapeError: inconsistent shapes, ``C`` neither 1 nor J, or ``image_size`` not a pair.
        ValueRangeError: a float mask outside [0, 1]; non-positive ``image_size``, ``sigma`` or ``peak``.

    Shape:
        ``(B, C, h, w), (B, h, w), (B, h, w), (B, J, 2), (B, H, W), (B, H, W)`` -> three ``()``.

    Example:
        >>> joints = torch.tensor([[[10.0, 20.0], [30.0, 12.0]]])
        >>> target = render_gaussian_heatmaps(joints, (16, 16), (32, 32), sigma=1.25) * 255
        >>> hand = torch.zeros(1, 32, 32, dtype=torch.bool); hand[:, 8:24, 8:24] = True
        >>> logits = (hand.float() * 2 - 1) * 30                    # confident and right
        >>> logits = torch.nn.functional.avg_pool2d(logits[:, None], 2)[:, 0]   # (1, 16, 16)
        >>> terms = hoisdf_image_loss(target, logits, -logits, joints, hand, ~hand, image_size=(32, 32))
        >>> [round(float(v), 6) for v in terms.values()]
        [0.0, 0.0, 0.0]
    """
    dims = check_shape(heatmaps, "B C h w", name="heatmaps")
    check_shape(hand_logits, "B h w", name="hand_logits", dims=dims)
    check_shape(object_logits, "B h w", name="object_logits", dims=dims)
    check_shape(joints_2d, "B J 2", name="joints_2d", dims=dims)
    check_shape(hand_mask, "B H W", name="hand_mask", dims=dims)
    check_shape(object_mask, "B H W", name="object_mask", dims=dims)
    check_floating(heatmaps, name="heatmaps")
    if not isinstance(image_size, (tuple, list)) or len(image_size) != 2:
        raise ShapeError(f"hoisdf_image_loss(): argument 'image_size' expected (H, W), got {image_size!r}")
    check_int(image_size[0], name="image_size[0]", low=1)
    check_int(image_size[1], name="image_size[1]", low=1)
    check_positive(sigma, name="sigma")
    check_positive(peak, name="peak")
    if dims["C"] not in (1, dims["J"]):
        raise ShapeError(
            f"hoisdf_image_loss(): argument 'heatmaps' expected 1 or J={dims['J']} channels, got shape {tuple(heatmaps.shape)}"
        )
    size = (dims["h"], dims["w"])

    finite = torch.isfinite(joints_2d).all(dim=-1)  # (B, J)
    joints = torch.where(finite[..., None], joints_2d, torch.zeros_like(joints_2d)).to(heatmaps.dtype)
    gaussians = render_gaussian_heatmaps(joints, size, image_size, sigma=sigma) * peak  # (B, J, h, w)
    gaussians = gaussians * finite[..., None, None].to(heatmaps.dtype)
    if dims["C"] == dims["J"]:
        error = (heatmaps - gaussians).pow(2).mean(dim=(-2, -1))  # (B, J)
        counted = finite
    else:
        error = (heatmaps - gaussians.sum(dim=1, keepdim=True)).pow(2).mean(dim=(-2, -1))  # (B, 1)
        counted = finite.all(dim=1, keepdim=True)
    heatmap = masked_mean(error, counted)

    hand_target = _mask_target(hand_mask, size, hand_logits.dtype, "hand_mask")
    hand_seg = F.binary_cross_entropy_with_logits(hand_logits, hand_target)

    if has_object is None:
        has_object = torch.ones(dims["B"], dtype=torch.bool, device=object_logits.device)
    check_shape(has_object, "B", name="has_object", dims=dims)
    object_target = _mask_target(object_mask, size, object_logits.dtype, "object_mask")
    per_sample = F.binary_cross_entropy_with_logits(object_logits, object_target, reduction="none").mean(dim=(-2, -1))
    object_seg = masked_mean(per_sample, has_object.bool())
    return {"heatmap": heatmap, "hand_seg": hand_seg, "object_seg": object_seg}


class HOISDFImageLoss(nn.Module):
    """L_img as one module: :func:`hoisdf_image_loss` weighted by :func:`~hoimask.losses.weighted_sum`.

    Args:
        weights: term name -> weight; default :data:`HOISDF_IMAGE_WEIGHTS`.
        sigma: Gaussian width in heatmap pixels.
        peak: Gaussian peak value.

    Shape:
        as :func:`hoisdf_image_loss` -> :class:`~hoimask.losses.LossOutput` (total ``()``, unweighted terms).

    Example:
        >>> loss = HOISDFImageLoss()
        >>> out = loss(torch.zeros(2, 21, 8, 8), torch.zeros(2, 8, 8), torch.zeros(2, 8, 8),
        ...            torch.full((2, 21, 2), 8.0), torch.zeros(2, 16, 16), torch.zeros(2, 16, 16), image_size=(16, 16))
        >>> sorted(out.terms), bool(out.total > 0)
        (['hand_seg', 'heatmap', 'object_seg'], True)
    """

    def __init__(
        self,
        weights: Mapping[str, float] | None = None,
        *,
        sigma: float = HOISDF_HEATMAP_SIGMA,
        peak: float = HOISDF_HEATMAP_PEAK,
    ) -> None:
        super().__init__()
        weights = dict(HOISDF_IMAGE_WEIGHTS if weights is None else weights)
        for name, value in weights.items():
            check_positive(value, name=f"weights[{name!r}]", strict=False)
        self.weights = weights
        self.sigma = check_positive(sigma, name="sigma")
        self.peak = check_positive(peak, name="peak")

    def forward(
        self,
        heatmaps: torch.Tensor,
        hand_logits: torch.Tensor,
        object_logits: torch.Tensor,
        joints_2d: torch.Tensor,
        hand_mask: torch.Tensor,
        object_mask: torch.Tensor,
        *,
        image_size: tuple[int, int],
        has_object: torch.Tensor | None = None,
    ) -> LossOutput:
        """See :func:`hoisdf_image_loss`; returns the weighted total and the unweighted terms."""
        terms = hoisdf_image_loss(
            heatmaps, hand_logits, object_logits, joints_2d, hand_mask, object_mask,
            image_size=image_size, has_object=has_object, sigma=self.sigma, peak=self.peak,
        )
        return weighted_sum(terms, self.weights)

    def extra_repr(self) -> str:
        return f"weights={self.weights}, sigma={self.sigma}, peak={self.peak}"
