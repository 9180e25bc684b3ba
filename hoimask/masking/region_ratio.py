"""Region-specific Mask Ratio Allocation (RMRA, MaskHOI §III-B).

Objects are masked most (a rigid object is inferred from little texture), the
background moderately, the hand least (its structure is hard to infer). The
paper gives no numbers; the defaults here (object 0.9, background 0.75, hand
0.5 under a global 0.75) are our choice. The global number of kept patches is
fixed by ``mask_ratio``, so every batch stays dense; how the three budgets are
reconciled with it is described in :func:`hoimask.masking.regions.region_keep_counts`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hoimask._checks import ValueRangeError, check_choice, check_shape
from hoimask.masking._common import (
    HAND,
    Masker,
    check_batch_size,
    check_grid,
    check_ratio,
    keep_count,
    resolve_device,
    uniform,
)
from hoimask.masking.base import MaskOutput, _keep_to_output
from hoimask.masking.regions import (
    LABEL_RULES,
    _region_keep_counts,
    _select_in_regions,
    region_counts,
    segmentation_labels,
)

__all__ = ["region_ratio_masking", "RegionRatioMasker"]


def _masking_from_labels(
    labels: torch.Tensor,
    num_keep: int,
    ratios: tuple[float, float, float],
    scores: torch.Tensor,
    *,
    fallback: torch.Tensor | None = None,
) -> MaskOutput:
    """Core shared by the segmentation-aware maskers.

    ``labels`` ``(B, N)``; ``ratios`` = (background, hand, object); ``scores``
    ``(B, N)`` in ``[0, 2)``, low = kept first within a region; ``fallback``
    ``(B,)`` bool is passed to the output (``None``: all ``False``).
    """
    counts = region_counts(labels)  # (B, 3)
    keep_counts = _region_keep_counts(counts, num_keep, ratios)  # (B, 3)
    keep = _select_in_regions(labels, counts, keep_counts, scores)  # (B, N)
    return _keep_to_output(keep, num_keep, fallback)


def region_ratio_masking(
    segmentation: torch.Tensor,
    grid_size: Sequence[int],
    *,
    mask_ratio: float = 0.75,
    background_ratio: float = 0.75,
    hand_ratio: float = 0.5,
    object_ratio: float = 0.9,
    label_rule: str = "any",
    hand_scores: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> MaskOutput:
    """RMRA masks: per-region mask ratios under a fixed global number of kept patches.

    Within each region the masked patches are chosen uniformly at random, unless
    ``hand_scores`` orders the hand patches (higher score = masked first), which
    is how skeleton guidance plugs in.

    Args:
        segmentation: integer labels 0 background, 1 hand, 2 object; the patch size
            ``(H // gh, W // gw)`` must divide the image exactly.
        grid_size: ``(gh, gw)``.
        mask_ratio: global fraction masked, fixes ``L = floor(N (1 - mask_ratio))``.
        background_ratio: target ratio of background patches, in ``[0, 1)``.
        hand_ratio: target ratio of hand patches, in ``[0, 1)``.
        object_ratio: target ratio of object patches, in ``[0, 1)``.
        label_rule: how patches get labels, ``"any"`` or ``"majority"``
            (see :func:`hoimask.masking.patch_labels`).
        hand_scores: optional ``(B, N)`` scores in ``[0, 2)`` ordering the hand patches.
        generator: source of randomness; ``None`` uses torch's default generator.

    Returns:
        :class:`MaskOutput` on the segmentation's device.

    Shape:
        segmentation ``(B, H, W)`` -> mask ``(B, N)``, ids_keep ``(B, L)``, ids_restore ``(B, N)``.
    """
    ratios = tuple(check_ratio(r, n) for r, n in ((background_ratio, "background_ratio"),
                                                   (hand_ratio, "hand_ratio"), (object_ratio, "object_ratio")))
    check_choice(label_rule, LABEL_RULES, name="label_rule")
    labels = segmentation_labels(segmentation, grid_size, label_rule)  # (B, N)
    B, N = labels.shape
    noise = uniform((B, N), generator, labels.device)
    scores = noise
    if hand_scores is not None:
        check_shape(hand_scores, f"{B} {N}", name="hand_scores")
        scores = torch.where(labels == HAND, hand_scores.to(noise), noise)
    return _masking_from_labels(labels, keep_count(N, check_ratio(mask_ratio, "mask_ratio")), ratios, scores)


class RegionRatioMasker(Masker):
    """RMRA masker: object masked most, background moderately, hand least.

    Args:
        mask_ratio: global fraction masked (fixes ``L``), in ``[0, 1)``.
        background_ratio: target ratio of background patches.
        hand_ratio: target ratio of hand patches (kept exactly whenever background
            and object can absorb the rest of the budget).
        object_ratio: target ratio of object patches.
        label_rule: ``"any"`` (default) or ``"majority"`` patch labelling.

    Needs ``segmentation`` ``(B, H, W)`` when called.
    """

    def __init__(
        self,
        mask_ratio: float = 0.75,
        background_ratio: float = 0.75,
        hand_ratio: float = 0.5,
        object_ratio: float = 0.9,
        *,
        label_rule: str = "any",
    ) -> None:
        self.mask_ratio = check_ratio(mask_ratio, "mask_ratio")
        self.background_ratio = check_ratio(background_ratio, "background_ratio")
        self.hand_ratio = check_ratio(hand_ratio, "hand_ratio")
        self.object_ratio = check_ratio(object_ratio, "object_ratio")
        self.label_rule = check_choice(label_rule, LABEL_RULES, name="label_rule")

    def _labels(
        self, batch_size: int, grid_size: Sequence[int], segmentation: torch.Tensor | None, device
    ) -> torch.Tensor:
        """Validated ``(B, N)`` patch labels on the output device."""
        check_batch_size(batch_size)
        grid = check_grid(grid_size)
        if segmentation is None:
            raise ValueRangeError(
                f"{type(self).__name__}(): argument 'segmentation' is required: a (B, H, W) label map "
                "(0 background, 1 hand, 2 object), got None"
            )
        labels = segmentation_labels(segmentation, grid, self.label_rule, batch_size)
        return labels.to(resolve_device(device, segmentation))

    def __call__(
        self,
        batch_size: int,
        grid_size: tuple[int, int],
        *,
        segmentation: torch.Tensor | None = None,
        joints_2d: torch.Tensor | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> MaskOutput:
        """Draw RMRA masks.

        Args:
            batch_size: ``B``; must match ``segmentation``.
            grid_size: ``(gh, gw)``.
            segmentation: required ``(B, H, W)`` labels in ``{0, 1, 2}``.
            joints_2d: unused.
            device: output device (default: the segmentation's).
            generator: source of randomness; ``None`` uses torch's default generator.

        Returns:
            :class:`MaskOutput` with exactly ``num_keep(gh * gw)`` kept per sample.

        Shape:
            mask ``(B, N)``, ids_keep ``(B, L)``, ids_restore ``(B, N)``.
        """
        labels = self._labels(batch_size, grid_size, segmentation, device)
        B, N = labels.shape
        noise = uniform((B, N), generator, labels.device)
        ratios = (self.background_ratio, self.hand_ratio, self.object_ratio)
        return _masking_from_labels(labels, self.num_keep(N), ratios, noise)
