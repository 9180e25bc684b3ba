"""Maskers for masked image modelling on hand-object images (MaskHOI §III-B)."""

from hoimask.masking.base import MaskOutput, apply_mask, mask_output_from_scores, restore

__all__ = ["MaskOutput", "apply_mask", "mask_output_from_scores", "restore"]
