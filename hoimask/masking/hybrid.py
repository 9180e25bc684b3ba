"""Skeleton-guided and hybrid structure-aware maskers (MaskHOI §III-B, Tables V-VI).

:class:`HybridMasker` is MaskHOI's Hybrid Structure-aware Masking Strategy:
RMRA decides how many patches of background, hand and object are masked;
with probability ``skeleton_prob`` per sample the hand's share follows the
skeleton (:mod:`hoimask.masking.skeleton_guided`), otherwise it is random.
The probability may follow a linear schedule over training progress (Table VI
compares 0 -> 1 with constants; 0.5 is best).

:class:`SkeletonGuidedMasker` always uses the skeleton for the hand and treats
background and object alike (one ratio for both).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from hoimask._checks import check_in_range, check_probability
from hoimask.masking._common import HAND, uniform
from hoimask.masking.base import MaskOutput
from hoimask.masking.region_ratio import RegionRatioMasker, _masking_from_labels
from hoimask.masking.skeleton_guided import (
    check_joints_2d,
    check_pattern_probs,
    sample_skeleton_patterns,
    skeleton_hand_scores,
)

__all__ = ["HybridMasker", "SkeletonGuidedMasker"]


class HybridMasker(RegionRatioMasker):
    """RMRA budgets with skeleton guidance for the hand budget (MaskHOI's hybrid strategy).

    Args:
        mask_ratio: global fraction masked (fixes ``L``), in ``[0, 1)``.
        background_ratio: RMRA target ratio of background patches, in ``[0, 1)``.
        hand_ratio: RMRA target ratio of hand patches, in ``[0, 1)``.
        object_ratio: RMRA target ratio of object patches, in ``[0, 1)``.
        skeleton_prob: probability that a sample's hand budget follows the skeleton
            (paper best: 0.5). With ``skeleton_prob_end`` it is the value at progress 0.
        skeleton_prob_end: optional value at progress 1; the probability is then
            linear in the training progress (Table VI's "0.0 -> 1.0").
        progress: training progress in ``[0, 1]`` (see :meth:`set_progress`).
        pattern_probs: weights of ``"finger"``, ``"fingertips"``, ``"level"``,
            ``"region"`` (default :data:`~hoimask.masking.DEFAULT_PATTERN_PROBS`).
        thickness: bone brush side in pixels; ``None`` = half the patch width.
        label_rule: ``"any"`` (default) or ``"majority"`` patch labelling.

    Needs ``segmentation`` ``(B, H, W)`` and, whenever the current skeleton
    probability is positive, ``joints_2d`` ``(B, 21, 2)`` in pixels of that image.
    Samples whose joints are not all finite (no hand annotation) are masked
    like RMRA (random hand patches, same budgets) and flagged in
    :attr:`MaskOutput.fallback`; the other samples draw exactly as they would
    without them.

    Example:
        >>> import torch
        >>> seg = torch.zeros(2, 64, 64, dtype=torch.uint8)
        >>> seg[:, 16:48, 16:40] = 1; seg[:, 16:48, 40:56] = 2
        >>> joints = torch.rand(2, 21, 2, generator=torch.Generator().manual_seed(0)) * 32 + 16
        >>> masker = HybridMasker(skeleton_prob=0.0, skeleton_prob_end=1.0)
        >>> masker.set_progress(0.5)
        >>> out = masker(2, (4, 4), segmentation=seg, joints_2d=joints, generator=torch.Generator().manual_seed(0))
        >>> out.ids_keep.shape, masker.num_keep(16), masker.current_skeleton_prob
        (torch.Size([2, 4]), 4, 0.5)
    """

    def __init__(
        self,
        mask_ratio: float = 0.75,
        background_ratio: float = 0.75,
        hand_ratio: float = 0.5,
        object_ratio: float = 0.9,
        *,
        skeleton_prob: float = 0.5,
        skeleton_prob_end: float | None = None,
        progress: float = 0.0,
        pattern_probs: Mapping[str, float] | None = None,
        thickness: float | None = None,
        label_rule: str = "any",
    ) -> None:
        super().__init__(mask_ratio, background_ratio, hand_ratio, object_ratio, label_rule=label_rule)
        self.skeleton_prob = check_probability(skeleton_prob, name="skeleton_prob")
        self.skeleton_prob_end = (
            None if skeleton_prob_end is None else check_probability(skeleton_prob_end, name="skeleton_prob_end")
        )
        self.progress = check_in_range(progress, name="progress", low=0.0, high=1.0)
        self.pattern_probs = dict(pattern_probs) if pattern_probs is not None else None
        self._probs = check_pattern_probs(pattern_probs)
        self.thickness = None if thickness is None else check_in_range(thickness, name="thickness", low=0.0)

    def set_progress(self, progress: float) -> None:
        """Set the training progress in ``[0, 1]`` used by the skeleton-probability schedule.

        Args:
            progress: fraction of training done (e.g. ``step / total_steps``).
        """
        self.progress = check_in_range(progress, name="progress", low=0.0, high=1.0)

    @property
    def current_skeleton_prob(self) -> float:
        """The skeleton probability at the current progress."""
        if self.skeleton_prob_end is None:
            return self.skeleton_prob
        return self.skeleton_prob + (self.skeleton_prob_end - self.skeleton_prob) * self.progress

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
        """Draw hybrid masks.

        Args:
            batch_size: ``B``; must match ``segmentation`` and ``joints_2d``.
            grid_size: ``(gh, gw)``.
            segmentation: required ``(B, H, W)`` labels in ``{0, 1, 2}``.
            joints_2d: ``(B, 21, 2)`` pixel coordinates ``(x, y)`` in the image of
                ``segmentation``, canonical joint order; required when the skeleton
                probability is positive. A sample with a NaN or infinite
                coordinate (a frame without hand annotation) falls back to RMRA's
                random hand patches, with the same region budgets.
            device: output device (default: the segmentation's).
            generator: source of randomness; ``None`` uses torch's default generator.

        Returns:
            :class:`MaskOutput` with exactly ``num_keep(gh * gw)`` kept per sample;
            ``fallback`` ``(B,)`` is ``True`` for the samples whose joints were
            not finite (all ``False`` at skeleton probability 0, where joints are
            not read).

        Shape:
            mask ``(B, N)``, ids_keep ``(B, L)``, ids_restore ``(B, N)``.
        """
        labels = self._labels(batch_size, grid_size, segmentation, device)  # (B, N)
        B, N = labels.shape
        dev = labels.device
        ratios = (self.background_ratio, self.hand_ratio, self.object_ratio)
        noise = uniform((B, N), generator, dev)  # (B, N)
        prob = self.current_skeleton_prob
        if prob <= 0.0:
            return _masking_from_labels(labels, self.num_keep(N), ratios, noise)
        joints, usable = check_joints_2d(joints_2d, B, f"{type(self).__name__}.__call__")
        joints, usable = joints.to(dev), usable.to(dev)  # (B, 21, 2), (B,)
        use_skeleton = uniform((B,), generator, dev) < prob  # (B,)
        pattern, index = sample_skeleton_patterns(B, self._probs, device=dev, generator=generator)
        gh, gw = grid_size
        patch = (segmentation.shape[1] // gh, segmentation.shape[2] // gw)
        thickness = self.thickness if self.thickness is not None else min(patch) / 2
        # Skeleton scores only for the samples that use them (about skeleton_prob of the batch);
        # samples without finite joints (no hand annotation) fall back to random hand patches.
        chosen = (use_skeleton & usable).nonzero().squeeze(1)  # (B_s,)
        hand_scores = skeleton_hand_scores(
            joints[chosen], labels[chosen], pattern[chosen], index[chosen], (gh, gw), patch,
            thickness=thickness, noise=noise[chosen],
        )  # (B_s, N)
        scores = noise.clone()
        scores[chosen] = torch.where(labels[chosen] == HAND, hand_scores, noise[chosen])
        return _masking_from_labels(labels, self.num_keep(N), ratios, scores, fallback=~usable)


class SkeletonGuidedMasker(HybridMasker):
    """Hand patches masked along the skeleton (Fig. 4); background and object masked alike.

    The hand keeps ``1 - hand_ratio`` of its patches (when the rest of the image
    can absorb the remaining budget); the masked hand patches follow one
    skeleton pattern per sample. Background and object share ``mask_ratio``'s
    remaining budget uniformly.

    Args:
        mask_ratio: global fraction masked (fixes ``L``), in ``[0, 1)``.
        hand_ratio: fraction of hand patches masked, in ``[0, 1)``.
        pattern_probs: weights of ``"finger"``, ``"fingertips"``, ``"level"``, ``"region"``.
        thickness: bone brush side in pixels; ``None`` = half the patch width.
        label_rule: ``"any"`` (default) or ``"majority"`` patch labelling.

    Needs ``segmentation`` ``(B, H, W)`` and ``joints_2d`` ``(B, 21, 2)``. A
    sample whose joints are not all finite (no hand annotation) falls back to
    random hand patches under the same budgets and is flagged in
    :attr:`MaskOutput.fallback`.
    """

    def __init__(
        self,
        mask_ratio: float = 0.75,
        hand_ratio: float = 0.5,
        *,
        pattern_probs: Mapping[str, float] | None = None,
        thickness: float | None = None,
        label_rule: str = "any",
    ) -> None:
        super().__init__(
            mask_ratio,
            background_ratio=mask_ratio,
            hand_ratio=hand_ratio,
            object_ratio=mask_ratio,
            skeleton_prob=1.0,
            pattern_probs=pattern_probs,
            thickness=thickness,
            label_rule=label_rule,
        )
