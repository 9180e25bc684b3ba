"""Maskers for masked image modelling on hand-object images (MaskHOI §III-B).

Every masker is called as ``masker(batch_size, grid_size, *, segmentation=None,
joints_2d=None, device=None, generator=None) -> MaskOutput`` and keeps the same
number ``masker.num_keep(N)`` of patches in every sample.
"""

from hoimask.masking._common import Masker
from hoimask.masking.base import (
    MaskOutput,
    apply_mask,
    mask_output_from_keep,
    mask_output_from_scores,
    restore,
)
from hoimask.masking.draw import draw_mask
from hoimask.masking.hybrid import HybridMasker, SkeletonGuidedMasker
from hoimask.masking.multimodal import MultiModalMasker, allocate_tokens, sample_dirichlet
from hoimask.masking.random_mask import RandomMasker, random_masking
from hoimask.masking.region_ratio import RegionRatioMasker, region_ratio_masking
from hoimask.masking.regions import (
    LABEL_RULES,
    patch_labels,
    region_counts,
    region_keep_counts,
    select_in_regions,
)
from hoimask.masking.skeleton_guided import (
    DEFAULT_PATTERN_PROBS,
    PATTERNS,
    sample_skeleton_patterns,
    skeleton_hand_scores,
    skeleton_targets,
)
from hoimask.masking.target_focused import TargetFocusedMasker, interaction_region

__all__ = [
    "DEFAULT_PATTERN_PROBS",
    "LABEL_RULES",
    "PATTERNS",
    "HybridMasker",
    "MaskOutput",
    "Masker",
    "MultiModalMasker",
    "RandomMasker",
    "RegionRatioMasker",
    "SkeletonGuidedMasker",
    "TargetFocusedMasker",
    "allocate_tokens",
    "apply_mask",
    "draw_mask",
    "interaction_region",
    "mask_output_from_keep",
    "mask_output_from_scores",
    "patch_labels",
    "random_masking",
    "region_counts",
    "region_keep_counts",
    "region_ratio_masking",
    "restore",
    "sample_dirichlet",
    "sample_skeleton_patterns",
    "select_in_regions",
    "skeleton_hand_scores",
    "skeleton_targets",
]
