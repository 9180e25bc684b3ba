"""HOMAE's target-focused masking: structured occlusion of the hand-object interaction region.

HOMAE (Yang et al. 2025, ``papers/homae-summary.md``) "imposes structured
occlusion on regions of hand-object interaction"; the summary gives no
algorithm, so this is our reading of it, stated precisely:

1. **Target region.** Patches within ``margin`` patches (Chebyshev distance)
   of both a hand patch and an object patch: the contact zone and what lies
   between hand and object. If it is empty (no object, or hand and object far
   apart) the target is the foreground (hand or object); if there is no
   foreground either, the whole image.
2. **Structured occlusion.** ``focus_ratio`` of the masking budget (but never
   more patches than the target has) is spent on the target as one blob: the
   target patches nearest to a random target patch, like an occluder placed
   on the interaction.
3. The remaining budget masks uniformly random patches elsewhere. If the
   target is so large that the rest of the image cannot hold all the kept
   patches, more of the target is masked (the total kept is always ``L``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hoimask._checks import check_in_range, check_int, check_shape
from hoimask.masking._common import (
    BACKGROUND,
    HAND,
    NUM_REGIONS,
    OBJECT,
    blob_scores,
    check_grid,
    check_labels,
    uniform,
)
from hoimask.masking.base import MaskOutput, _keep_to_output
from hoimask.masking.region_ratio import RegionRatioMasker
from hoimask.masking.regions import _select_in_regions

__all__ = ["interaction_region", "TargetFocusedMasker"]


def _dilate(region: torch.Tensor, grid: tuple[int, int], margin: int) -> torch.Tensor:
    """Chebyshev dilation of a ``(B, N)`` bool grid by ``margin`` patches."""
    B = region.shape[0]
    if margin == 0:
        return region
    x = region.reshape(B, 1, grid[0], grid[1]).float()
    x = F.max_pool2d(x, kernel_size=2 * margin + 1, stride=1, padding=margin)
    return x.reshape(B, -1) > 0


def interaction_region(labels: torch.Tensor, grid_size: tuple[int, int], *, margin: int = 1) -> torch.Tensor:
    """The hand-object interaction region on the patch grid (see the module docs for the fallbacks).

    Args:
        labels: ``(B, N)`` integer patch labels (0 background, 1 hand, 2 object).
        grid_size: ``(gh, gw)``.
        margin: dilation radius in patches, an int ``>= 0``.

    Returns:
        ``(B, N)`` bool, never empty in any row.

    Raises:
        ShapeError: ``labels`` is not ``(B, gh * gw)``.
        DTypeError: non-integer labels, a non-int ``margin``.
        ValueRangeError: a label outside ``{0, 1, 2}``, a negative ``margin``.

    Shape:
        labels ``(B, N)`` -> ``(B, N)``.
    """
    gh, gw = check_grid(grid_size)
    check_shape(labels, f"B {gh * gw}", name="labels")
    check_labels(labels, NUM_REGIONS, name="labels", fn="interaction_region")
    check_int(margin, name="margin", low=0, fn="interaction_region")
    return _interaction_region(labels, (gh, gw), margin)


def _interaction_region(labels: torch.Tensor, grid: tuple[int, int], margin: int) -> torch.Tensor:
    """Unchecked core of :func:`interaction_region` (the masker's labels are already validated)."""
    gh, gw = grid
    hand, obj = labels == HAND, labels == OBJECT
    contact = _dilate(hand, (gh, gw), margin) & _dilate(obj, (gh, gw), margin)  # (B, N)
    foreground = labels != BACKGROUND
    has_contact = contact.any(dim=1, keepdim=True)
    has_foreground = foreground.any(dim=1, keepdim=True)
    fallback = torch.where(has_foreground, foreground, torch.ones_like(foreground))
    return torch.where(has_contact, contact, fallback)


class TargetFocusedMasker(RegionRatioMasker):
    """HOMAE-style masking concentrated on the hand-object interaction region.

    Args:
        mask_ratio: global fraction masked (fixes ``L``), in ``[0, 1)``.
        focus_ratio: fraction of the masking budget placed on the interaction
            region as one blob, in ``[0, 1]``.
        margin: dilation radius in patches that defines the interaction region.
        label_rule: ``"any"`` (default) or ``"majority"`` patch labelling.

    Needs ``segmentation`` ``(B, H, W)``.
    """

    def __init__(
        self, mask_ratio: float = 0.75, focus_ratio: float = 0.5, *, margin: int = 1, label_rule: str = "any"
    ) -> None:
        super().__init__(mask_ratio, mask_ratio, mask_ratio, mask_ratio, label_rule=label_rule)
        self.focus_ratio = check_in_range(focus_ratio, name="focus_ratio", low=0.0, high=1.0)
        self.margin = check_int(margin, name="margin", low=0)

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
        """Draw target-focused masks.

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
        labels = self._labels(batch_size, grid_size, segmentation, device)  # (B, N)
        B, N = labels.shape
        gh, gw = grid_size
        dev = labels.device
        num_keep = self.num_keep(N)
        num_masked = N - num_keep
        target = _interaction_region(labels, (gh, gw), self.margin)  # (B, N)
        n_target = target.sum(dim=1)  # (B,)
        # Masked inside the target: the focus share, at most the target, at least what the rest cannot keep.
        masked_target = torch.minimum(torch.full_like(n_target, round(self.focus_ratio * num_masked)), n_target)
        masked_target = torch.maximum(masked_target, n_target - num_keep)
        keep_target = n_target - masked_target
        keep_counts = torch.stack([num_keep - keep_target, keep_target], dim=1)  # (B, 2): [rest, target]
        counts = torch.stack([N - n_target, n_target], dim=1)
        u = uniform((B, N), generator, dev)  # (B, N)
        # Blob around a random target patch: nearer = higher score = masked first.
        scores = torch.where(target, blob_scores(u, target, (gh, gw)), u)  # (B, N)
        keep = _select_in_regions(target.long(), counts, keep_counts, scores)  # (B, N)
        return _keep_to_output(keep, num_keep)
