"""The MaskOutput contract for every masker, reproducibility, devices, bad inputs, light import."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from _hoi_toy import toy_scene
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.masking import (
    HybridMasker,
    MaskOutput,
    MultiModalMasker,
    RandomMasker,
    RegionRatioMasker,
    SkeletonGuidedMasker,
    TargetFocusedMasker,
    apply_mask,
    mask_output_from_keep,
    mask_output_from_scores,
    patch_labels,
    restore,
)

MASKERS = {
    "random": lambda: RandomMasker(0.75),
    "region": lambda: RegionRatioMasker(),
    "hybrid": lambda: HybridMasker(skeleton_prob=0.5),
    "skeleton": lambda: SkeletonGuidedMasker(),
    "target": lambda: TargetFocusedMasker(),
}


def check_contract(out: MaskOutput, B: int, N: int, L: int) -> None:
    assert out.mask.shape == (B, N) and out.mask.dtype == torch.bool
    assert out.ids_keep.shape == (B, L) and out.ids_keep.dtype == torch.int64
    assert out.ids_restore.shape == (B, N) and out.ids_restore.dtype == torch.int64
    assert (out.mask.sum(1) == N - L).all()
    # ids_keep are distinct and exactly the unmasked positions.
    kept = torch.zeros(B, N, dtype=torch.bool, device=out.mask.device).scatter_(1, out.ids_keep, True)
    assert torch.equal(kept, ~out.mask)
    # ids_restore is a permutation that puts [kept, masked] tokens back at their grid position.
    assert torch.equal(out.ids_restore.sort(1).values, torch.arange(N, device=out.mask.device).expand(B, N))
    tokens = torch.arange(N, device=out.mask.device, dtype=torch.float32).expand(B, N).unsqueeze(-1)  # (B, N, 1)
    visible = apply_mask(tokens, out.ids_keep)  # (B, L, 1)
    full = restore(visible, out.ids_restore, torch.tensor([-1.0], device=out.mask.device))
    expected = torch.where(out.mask.unsqueeze(-1), torch.full_like(tokens, -1.0), tokens)
    assert torch.equal(full, expected)


# Segmentations from structured extremes and random label maps.
seg_kind = st.sampled_from(["random", "empty_hand", "empty_object", "all_hand", "all_object", "all_background",
                            "sparse"])


def make_segmentation(kind: str, B: int, H: int, W: int, g: torch.Generator) -> torch.Tensor:
    labels = torch.randint(0, 3, (B, H, W), generator=g, dtype=torch.uint8)
    if kind == "empty_hand":
        labels[labels == 1] = 0
    elif kind == "empty_object":
        labels[labels == 2] = 1
    elif kind in ("all_hand", "all_object", "all_background"):
        labels.fill_({"all_hand": 1, "all_object": 2, "all_background": 0}[kind])
    elif kind == "sparse":
        labels = (torch.rand(B, H, W, generator=g) < 0.01).to(torch.uint8) * labels
    return labels


@given(
    name=st.sampled_from(sorted(MASKERS)),
    kind=seg_kind,
    B=st.integers(1, 4),
    gh=st.integers(1, 6),
    gw=st.integers(1, 6),
    patch=st.sampled_from([1, 4, 8]),
    seed=st.integers(0, 2**31 - 1),
)
def test_every_masker_keeps_exactly_L(name, kind, B, gh, gw, patch, seed):
    g = torch.Generator().manual_seed(seed)
    seg = make_segmentation(kind, B, gh * patch, gw * patch, g)
    joints = torch.rand(B, 21, 2, generator=g) * torch.tensor([gw * patch, gh * patch]) * 1.4 - 5
    masker = MASKERS[name]()
    N = gh * gw
    out = masker(B, (gh, gw), segmentation=seg, joints_2d=joints, generator=g)
    check_contract(out, B, N, masker.num_keep(N))


@pytest.mark.parametrize("name", sorted(MASKERS))
def test_same_seed_same_masks_and_seed_matters(name):
    joints, seg = toy_scene(6, 64, torch.Generator().manual_seed(1))
    masker = MASKERS[name]()
    a = masker(6, (8, 8), segmentation=seg, joints_2d=joints, generator=torch.Generator().manual_seed(7))
    b = masker(6, (8, 8), segmentation=seg, joints_2d=joints, generator=torch.Generator().manual_seed(7))
    c = masker(6, (8, 8), segmentation=seg, joints_2d=joints, generator=torch.Generator().manual_seed(8))
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert not torch.equal(a.mask, c.mask)


@pytest.mark.parametrize("name", sorted(MASKERS))
def test_outputs_on_requested_device_and_match_cpu(name, device):
    joints, seg = toy_scene(3, 64, torch.Generator().manual_seed(2))
    masker = MASKERS[name]()
    ref = masker(3, (8, 8), segmentation=seg, joints_2d=joints, generator=torch.Generator().manual_seed(3))
    out = masker(3, (8, 8), segmentation=seg.to(device), joints_2d=joints.to(device),
                 generator=torch.Generator().manual_seed(3))
    assert out.mask.device.type == device.type
    assert torch.equal(out.mask.cpu(), ref.mask)


def test_random_masker_ratio_range_and_num_keep():
    masker = RandomMasker((0.1, 0.5))
    g = torch.Generator().manual_seed(0)
    sizes = {masker(2, (14, 14), generator=g).num_keep for _ in range(30)}
    assert len(sizes) > 3 and min(sizes) >= 98 and max(sizes) <= 176
    with pytest.raises(ValueRangeError, match="mask_ratio"):
        masker.num_keep(196)
    assert masker.num_keep(196, mask_ratio=0.5) == 98
    assert RandomMasker(0.75).num_keep(196) == 49
    assert RandomMasker(0.0).num_keep(10) == 10


def test_random_masker_is_uniform_over_positions():
    out = RandomMasker(0.75)(4000, (4, 4), generator=torch.Generator().manual_seed(0))
    freq = out.mask.float().mean(0)
    assert torch.allclose(freq, torch.full_like(freq, 0.75), atol=0.03)


def test_mask_output_helpers_agree():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(5, 12, generator=g)
    a = mask_output_from_scores(scores, 4)
    b = mask_output_from_keep(~a.mask, 4)
    assert torch.equal(a.mask, b.mask)
    assert torch.equal(a.ids_restore, torch.argsort(scores, dim=1, stable=True).argsort(1))
    assert torch.equal(b.ids_keep, a.ids_keep.sort(1).values)  # grid order
    check_contract(b, 5, 12, 4)
    with pytest.raises(ShapeError, match="keep"):
        mask_output_from_keep(~a.mask, 5)


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5, float("nan")])
def test_ratios_outside_unit_interval_raise(ratio):
    with pytest.raises(ValueRangeError, match="mask_ratio"):
        RandomMasker(ratio)
    with pytest.raises(ValueRangeError, match="hand_ratio"):
        RegionRatioMasker(hand_ratio=ratio)
    with pytest.raises(ValueRangeError, match="object_ratio"):
        HybridMasker(object_ratio=ratio)
    with pytest.raises(ValueRangeError, match="background_ratio"):
        RegionRatioMasker(background_ratio=ratio)


def test_bad_segmentation_and_joints_raise():
    joints, seg = toy_scene(2, 32, torch.Generator().manual_seed(0))
    hybrid = HybridMasker()
    bad = seg.clone()
    bad[0, 0, 0] = 3
    with pytest.raises(ValueRangeError, match="segmentation"):
        hybrid(2, (4, 4), segmentation=bad, joints_2d=joints)
    with pytest.raises(ValueRangeError, match="segmentation"):
        RegionRatioMasker()(2, (4, 4), segmentation=seg.long() - 1)
    with pytest.raises(DTypeError, match="segmentation"):
        hybrid(2, (4, 4), segmentation=seg.float(), joints_2d=joints)
    with pytest.raises(ShapeError, match="segmentation"):
        hybrid(2, (5, 4), segmentation=seg, joints_2d=joints)  # 32 is not a multiple of 5
    with pytest.raises(ShapeError, match="segmentation"):
        hybrid(3, (4, 4), segmentation=seg, joints_2d=joints)  # batch size mismatch
    with pytest.raises(ValueRangeError, match="segmentation"):
        TargetFocusedMasker()(2, (4, 4))
    with pytest.raises(ShapeError, match="joints_2d"):
        hybrid(2, (4, 4), segmentation=seg, joints_2d=joints[:, :20])
    with pytest.raises(ShapeError, match="joints_2d"):
        hybrid(2, (4, 4), segmentation=seg, joints_2d=joints[..., :1])
    nan = joints.clone()
    nan[1, 5, 0] = float("nan")  # no hand annotation: not an error, the sample falls back (see below)
    assert SkeletonGuidedMasker()(2, (4, 4), segmentation=seg, joints_2d=nan).fallback.tolist() == [False, True]
    with pytest.raises(DTypeError, match="joints_2d"):
        SkeletonGuidedMasker()(2, (4, 4), segmentation=seg, joints_2d=joints.long())
    with pytest.raises(ValueRangeError, match="joints_2d"):
        SkeletonGuidedMasker()(2, (4, 4), segmentation=seg)
    with pytest.raises(DTypeError, match="grid_size"):
        RandomMasker()(2, 14)
    with pytest.raises(ValueRangeError, match="batch_size"):
        RegionRatioMasker()(0, (4, 4), segmentation=seg)


def test_import_is_light():
    code = (
        "import sys, hoimask.masking, hoimask.skeleton\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('trimesh', 'skimage', 'PIL', 'scipy') "
        "or m.startswith(('hoimask.data', 'hoimask.models', 'hoimask.nn', 'hoimask.engine'))]\n"
        "print(','.join(bad))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == ""


def test_mask_output_from_scores_checks_the_scores_shape():
    with pytest.raises(ShapeError, match="'scores'"):
        mask_output_from_scores(torch.rand(2, 3, 4), 2)


def test_restore_names_a_mask_token_of_the_wrong_size():
    out = mask_output_from_scores(torch.rand(2, 6), 3)
    with pytest.raises(ShapeError, match="'mask_token'"):
        restore(torch.zeros(2, 3, 4), out.ids_restore, torch.zeros(5))


# Samples without hand annotation (issue 15 item 1): per-sample fallback, reported in MaskOutput.fallback.
JOINT_MASKERS = ("hybrid", "skeleton")  # the maskers that read joints_2d


def _break_joints(joints: torch.Tensor, rows: torch.Tensor, kind: str) -> torch.Tensor:
    out = joints.clone()
    if kind == "all_nan":  # DexYCB / HO3D frame without a hand annotation
        out[rows] = float("nan")
    elif kind == "one_nan":
        out[rows, 7, 1] = float("nan")
    else:
        out[rows, 0, 0] = float("-inf")
    return out


@given(
    name=st.sampled_from(sorted(MASKERS)),
    bad=st.lists(st.booleans(), min_size=1, max_size=5),
    kind=st.sampled_from(["all_nan", "one_nan", "inf"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_samples_without_finite_joints_fall_back_per_sample_and_are_reported(name, bad, kind, seed):
    B = len(bad)
    joints, seg = toy_scene(B, 64, torch.Generator().manual_seed(seed))
    rows = torch.tensor(bad)
    masker = MASKERS[name]()
    out = masker(B, (8, 8), segmentation=seg, joints_2d=_break_joints(joints, rows, kind),
                 generator=torch.Generator().manual_seed(seed))
    check_contract(out, B, 64, masker.num_keep(64))  # a valid mask for every sample, L kept
    expected = rows if name in JOINT_MASKERS else torch.zeros(B, dtype=torch.bool)
    assert out.fallback.dtype == torch.bool and torch.equal(out.fallback, expected)
    assert out.num_fallback == int(expected.sum())
    # Annotated samples draw what they draw when every sample is annotated.
    ref = masker(B, (8, 8), segmentation=seg, joints_2d=joints, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(out.mask[~expected], ref.mask[~expected])
    assert not ref.fallback.any()
    if name in JOINT_MASKERS:
        # Unannotated samples get RMRA's mask with the same budgets (ratios kept) from the same seed.
        rmra = RegionRatioMasker(masker.mask_ratio, masker.background_ratio, masker.hand_ratio, masker.object_ratio)
        fallback = rmra(B, (8, 8), segmentation=seg, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(out.mask[expected], fallback.mask[expected])


def test_one_all_nan_sample_through_every_masker_keeps_the_hand_ratio():
    joints, seg = toy_scene(4, 64, torch.Generator().manual_seed(5))
    joints[2] = float("nan")
    labels = patch_labels(seg, (8, 8))
    for name, make in sorted(MASKERS.items()):
        masker = make()
        out = masker(4, (8, 8), segmentation=seg, joints_2d=joints, generator=torch.Generator().manual_seed(0))
        check_contract(out, 4, 64, masker.num_keep(64))
        assert out.fallback.tolist() == [False, False, name in JOINT_MASKERS, False], name
        if name in ("region", "hybrid", "skeleton"):  # region budgets hold for the fallback sample too
            hand = labels[2] == 1
            masked_hand = int((out.mask[2] & hand).sum())
            want = int(hand.sum()) - round(int(hand.sum()) * (1 - masker.hand_ratio))
            assert abs(masked_hand - want) <= 1, name
    multi = MultiModalMasker(2, 0.75)(4, (8, 8), joints_2d=joints, generator=torch.Generator().manual_seed(0))
    assert multi.fallback.tolist() == [False] * 4 and multi.num_fallback == 0


def test_hybrid_at_probability_zero_reads_no_joints_and_reports_no_fallback():
    joints, seg = toy_scene(3, 64, torch.Generator().manual_seed(0))
    joints[:] = float("nan")
    out = HybridMasker(skeleton_prob=0.0)(3, (8, 8), segmentation=seg, joints_2d=joints)
    assert out.fallback.tolist() == [False] * 3


def test_hand_built_mask_output_has_no_fallback_and_helpers_report_none():
    out = mask_output_from_scores(torch.rand(2, 6), 3)
    assert out.fallback.tolist() == [False, False] and out.num_fallback == 0
    manual = MaskOutput(out.mask, out.ids_keep, out.ids_restore)
    assert manual.fallback is None and manual.num_fallback == 0
