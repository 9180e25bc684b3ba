"""Skeleton-guided patterns and the hybrid masker's schedule."""

from __future__ import annotations

import pytest
import torch
from _hoi_toy import toy_scene
from hypothesis import given, settings
from hypothesis import strategies as st

from hoimask._checks import ShapeError, ValueRangeError
from hoimask.masking import (
    PATTERNS,
    HybridMasker,
    RegionRatioMasker,
    SkeletonGuidedMasker,
    patch_labels,
    region_ratio_masking,
    sample_skeleton_patterns,
    skeleton_hand_scores,
    skeleton_targets,
)
from hoimask.masking.skeleton_guided import check_pattern_probs
from hoimask.skeleton import BONES, FINGER_CHAINS, FINGERS, JOINT_DEPTH, rasterize_bones

GRID, PATCH, SIZE = (14, 14), (8, 8), 112


def _expected_targets(joints, pattern: str, index: int, thickness: float) -> torch.Tensor:
    """Union of rasterize_bones over the bones the pattern names."""
    bones = rasterize_bones(joints, GRID, PATCH, thickness=thickness)  # (B, 20, N)
    if pattern == "finger":
        chain = FINGER_CHAINS[FINGERS[index]]
        chosen = [k for k, (p, c) in enumerate(BONES) if p in chain and c in chain]
    else:
        chosen = [k for k, (_, c) in enumerate(BONES) if JOINT_DEPTH[c] == index]
    return bones[:, chosen].any(1)


@pytest.mark.parametrize("pattern, index", [("finger", f) for f in range(5)] + [("level", d) for d in range(1, 5)]
                         + [("fingertips", 4)])
def test_targets_are_the_named_bones(pattern, index):
    joints, _ = toy_scene(4, SIZE, torch.Generator().manual_seed(index))
    pid = torch.full((4,), PATTERNS.index(pattern))
    idx = torch.full((4,), index)
    got = skeleton_targets(joints, pid, idx, GRID, PATCH, thickness=4.0)
    assert torch.equal(got, _expected_targets(joints, "finger" if pattern == "finger" else "level", index, 4.0))
    assert got.any(1).all()
    region = skeleton_targets(joints, torch.full((4,), PATTERNS.index("region")), idx, GRID, PATCH, thickness=4.0)
    assert not region.any()


@settings(max_examples=20)
@given(st.sampled_from([("finger", f) for f in range(5)] + [("level", d) for d in range(1, 5)]),
       st.floats(0.05, 0.95), st.integers(0, 2**31 - 1))
def test_pattern_masks_only_its_structure_when_enough_patches(choice, hand_ratio, seed):
    pattern, index = choice
    g = torch.Generator().manual_seed(seed)
    joints, seg = toy_scene(4, SIZE, g)
    labels = patch_labels(seg, GRID)
    pid = torch.full((4,), PATTERNS.index(pattern))
    idx = torch.full((4,), index)
    scores = skeleton_hand_scores(joints, labels, pid, idx, GRID, PATCH, thickness=4.0, generator=g)
    out = region_ratio_masking(seg, GRID, mask_ratio=0.75, hand_ratio=hand_ratio, hand_scores=scores, generator=g)
    hand = labels == 1
    on = skeleton_targets(joints, pid, idx, GRID, PATCH, thickness=4.0) & hand
    masked_hand = out.mask & hand
    for b in range(4):
        if masked_hand[b].sum() <= on[b].sum():
            assert not (masked_hand[b] & ~on[b]).any()  # only structure patches are masked
        else:
            assert (on[b] <= masked_hand[b]).all()  # the whole structure is masked first


def test_region_pattern_masks_a_blob_around_a_hand_patch():
    joints, seg = toy_scene(6, SIZE, torch.Generator().manual_seed(4))
    labels = patch_labels(seg, GRID)
    pid = torch.full((6,), PATTERNS.index("region"))
    scores = skeleton_hand_scores(joints, labels, pid, torch.zeros(6, dtype=torch.long), GRID, PATCH,
                                  thickness=4.0, generator=torch.Generator().manual_seed(0))
    hand = labels == 1
    seed = torch.where(hand, scores, torch.full_like(scores, -1.0)).argmax(1)
    assert hand.gather(1, seed[:, None]).all()
    rows, cols = torch.arange(196) // 14, torch.arange(196) % 14
    for b in range(6):
        d = torch.hypot((rows - seed[b] // 14).float(), (cols - seed[b] % 14).float())
        h = hand[b]
        order = scores[b][h].argsort(descending=True)
        dist_sorted = d[h][order]
        assert torch.all(dist_sorted[1:] >= dist_sorted[:-1] - 0.6)  # nearer patches masked first


def test_pattern_sampling_follows_probabilities():
    probs = check_pattern_probs({"finger": 2.0, "region": 1.0, "level": 1.0})
    assert probs.tolist() == [0.5, 0.0, 0.25, 0.25]
    pattern, index = sample_skeleton_patterns(8000, probs, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(pattern, minlength=4).double() / 8000
    assert torch.allclose(freq, probs, atol=0.02)
    fingers = index[pattern == 0]
    assert set(fingers.tolist()) == set(range(5))
    assert set(index[pattern == 2].tolist()) == {1, 2, 3, 4}
    with pytest.raises(ValueRangeError, match="pattern_probs"):
        check_pattern_probs({"palm": 1.0})
    with pytest.raises(ValueRangeError, match="pattern_probs"):
        check_pattern_probs({"finger": 0.0})


def test_skeleton_masker_single_finger_pattern():
    joints, seg = toy_scene(16, SIZE, torch.Generator().manual_seed(5))
    masker = SkeletonGuidedMasker(mask_ratio=0.75, hand_ratio=0.1, pattern_probs={"finger": 1.0}, thickness=4.0)
    out = masker(16, GRID, segmentation=seg, joints_2d=joints, generator=torch.Generator().manual_seed(0))
    hand = patch_labels(seg, GRID) == 1
    per_finger = torch.stack([_expected_targets(joints, "finger", f, 4.0) for f in range(5)], 1) & hand[:, None]
    masked_hand = out.mask & hand
    for b in range(16):
        # Some finger f explains the mask: its patches hold every masked hand patch when it has
        # enough patches, otherwise all of its patches are masked (and the rest is random).
        explained = []
        for f in range(5):
            on = per_finger[b, f]
            if on.sum() >= masked_hand[b].sum():
                explained.append(bool((masked_hand[b] & ~on).sum() == 0))
            else:
                explained.append(bool((on & ~masked_hand[b]).sum() == 0))
        assert any(explained), f"sample {b}: masked hand patches do not follow one finger"


def test_hybrid_schedule_and_extremes():
    joints, seg = toy_scene(4, SIZE, torch.Generator().manual_seed(6))
    masker = HybridMasker(skeleton_prob=0.0, skeleton_prob_end=1.0)
    assert masker.current_skeleton_prob == 0.0
    # At probability 0 the hybrid masker is RMRA and needs no joints.
    out = masker(4, GRID, segmentation=seg, generator=torch.Generator().manual_seed(1))
    ref = RegionRatioMasker()(4, GRID, segmentation=seg, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out.mask, ref.mask)
    masker.set_progress(0.25)
    assert masker.current_skeleton_prob == pytest.approx(0.25)
    with pytest.raises(ValueRangeError, match="joints_2d"):
        masker(4, GRID, segmentation=seg)
    with pytest.raises(ValueRangeError, match="progress"):
        masker.set_progress(1.5)
    assert HybridMasker(progress=0.5, skeleton_prob=0.2, skeleton_prob_end=0.6).current_skeleton_prob == pytest.approx(0.4)
    assert HybridMasker(skeleton_prob=0.5).current_skeleton_prob == 0.5
    with pytest.raises(ValueRangeError, match="skeleton_prob"):
        HybridMasker(skeleton_prob=1.2)


def test_hybrid_keeps_rmra_budgets():
    joints, seg = toy_scene(8, SIZE, torch.Generator().manual_seed(7))
    labels = patch_labels(seg, GRID)
    a = HybridMasker(skeleton_prob=1.0)(8, GRID, segmentation=seg, joints_2d=joints,
                                        generator=torch.Generator().manual_seed(0))
    b = RegionRatioMasker()(8, GRID, segmentation=seg, generator=torch.Generator().manual_seed(0))
    for region in range(3):
        assert torch.equal((a.mask & (labels == region)).sum(1), (b.mask & (labels == region)).sum(1))


def test_skeleton_helpers_check_their_inputs():
    joints = torch.zeros(3, 21, 2)
    pattern = index = torch.zeros(3, dtype=torch.int64)
    with pytest.raises(ShapeError, match="'pattern'"):
        skeleton_targets(joints, pattern[:2], index, GRID, PATCH, thickness=1.0)
    with pytest.raises(ShapeError, match="'labels'"):
        skeleton_hand_scores(joints, torch.zeros(3, 7, dtype=torch.int64), pattern, index, GRID, PATCH,
                             thickness=1.0)
    with pytest.raises(ShapeError, match="'probs'"):
        sample_skeleton_patterns(2, torch.full((3,), 1 / 3))
