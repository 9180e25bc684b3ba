"""Patch labels, RMRA budgets, region selection, target-focused masking, draw_mask."""

from __future__ import annotations

import contextlib
import os
from unittest import mock

import pytest
import torch
from _hoi_toy import toy_scene
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask._numba import numba_available
from hoimask.masking import (
    HybridMasker,
    RegionRatioMasker,
    TargetFocusedMasker,
    draw_mask,
    interaction_region,
    patch_labels,
    region_counts,
    region_keep_counts,
    region_ratio_masking,
    select_in_regions,
)
from hoimask.masking.regions import _patch_labels

#: The labelling paths of the ``any`` rule on CPU: torch ops, and numba's one-pass kernels where installed.
LABELLERS = ["torch"] + (["numba"] if numba_available() else [])


@contextlib.contextmanager
def labeller(name: str):
    with mock.patch.dict(os.environ, {"HOIMASK_DISABLE_NUMBA": "0" if name == "numba" else "1"}):
        yield


def _reference_labels(seg: torch.Tensor, grid, rule: str) -> torch.Tensor:
    """Per-patch Python reference."""
    B, H, W = seg.shape
    gh, gw = grid
    ph, pw = H // gh, W // gw
    out = torch.zeros(B, gh * gw, dtype=torch.int64)
    for b in range(B):
        for r in range(gh):
            for c in range(gw):
                block = seg[b, r * ph : (r + 1) * ph, c * pw : (c + 1) * pw].flatten().tolist()
                counts = [block.count(k) for k in range(3)]
                if rule == "any":
                    label = 1 if counts[1] else 2 if counts[2] else 0
                else:  # majority, ties hand > object > background
                    label = max((counts[1], 2, 1), (counts[2], 1, 2), (counts[0], 0, 0))[2]
                out[b, r * gw + c] = label
    return out


@given(
    st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.sampled_from([1, 2, 3, 8, 16]),
    st.sampled_from(["any", "majority"]), st.floats(0.0, 1.0), st.integers(0, 2**31 - 1),
    st.sampled_from([torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64]), st.sampled_from(LABELLERS),
)
def test_patch_labels_match_reference(B, gh, gw, p, rule, density, seed, dtype, path):
    g = torch.Generator().manual_seed(seed)
    raw = torch.randint(0, 3, (B, gh * p, gw * p), generator=g)
    seg = (raw * (torch.rand(raw.shape, generator=g) < density)).to(dtype)
    with labeller(path):
        got = patch_labels(seg, (gh, gw), rule=rule)
    assert torch.equal(got, _reference_labels(seg, (gh, gw), rule))


@pytest.mark.skipif(not numba_available(), reason="needs numba (the 'fast' extra)")
@pytest.mark.parametrize("dtype", [torch.uint8, torch.bool, torch.int32, torch.int64])
def test_numba_labelling_equals_torch_and_finds_bad_values_anywhere(dtype):
    g = torch.Generator().manual_seed(4)
    seg = torch.randint(0, 3, (7, 32, 48), generator=g) * (torch.rand(7, 32, 48, generator=g) < 0.05)
    seg = (seg == 1) if dtype == torch.bool else seg.to(dtype)
    with labeller("torch"):
        expected = [patch_labels(seg, grid) for grid in ((4, 6), (4, 4))]  # patches 8 x 8 (words), 8 x 12 (pixels)
    with labeller("numba"):
        got = [patch_labels(seg, grid) for grid in ((4, 6), (4, 4))]
        bad = seg.to(torch.int64)
        bad[6, 31, 47] = 3  # the last pixel of the last sample
        bad = bad.to(torch.uint8 if dtype == torch.bool else dtype)
        with pytest.raises(ValueRangeError, match=r"got values in \[0, 3\]"):
            patch_labels(bad, (4, 6))
        bad[6, 31, 47] = -2 if dtype in (torch.int32, torch.int64) else 200
        with pytest.raises(ValueRangeError, match="segmentation"):
            patch_labels(bad, (4, 4))
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


@pytest.mark.parametrize("rule", ["any", "majority"])
@pytest.mark.parametrize("patch", [1, 3, 16])
@pytest.mark.parametrize("path", LABELLERS)
def test_a_bool_hand_mask_labels_like_its_uint8_labels(rule, patch, path):
    g = torch.Generator().manual_seed(1)
    hand = torch.rand(2, 3 * patch, 4 * patch, generator=g) < 0.2
    with labeller(path):
        got = patch_labels(hand, (3, 4), rule=rule)
    assert torch.equal(got, _reference_labels(hand.to(torch.uint8), (3, 4), rule))
    assert set(got.unique().tolist()) <= {0, 1}
    out = HybridMasker(skeleton_prob=0.0)(2, (3, 4), segmentation=hand, generator=g)
    assert out.ids_keep.shape == (2, 3)
    with pytest.raises(DTypeError, match="bool hand mask"):
        patch_labels(hand.float(), (3, 4))


@pytest.mark.parametrize("path", LABELLERS)
def test_labels_of_views_at_any_byte_offset_empty_batches_and_empty_images(path):
    g = torch.Generator().manual_seed(2)
    flat = torch.randint(0, 3, (3 + 2 * 16 * 24,), generator=g).to(torch.uint8)
    with labeller(path):
        for offset in (0, 1, 3):  # a contiguous view that does not start on an 8-byte boundary
            seg = flat[offset : offset + 2 * 16 * 24].view(2, 16, 24)
            assert torch.equal(patch_labels(seg, (2, 3)), _reference_labels(seg, (2, 3), "any"))
        assert patch_labels(torch.zeros(0, 16, 16, dtype=torch.uint8), (2, 2)).shape == (0, 4)
        for shape in ((2, 0, 16), (2, 8, 0)):
            for dtype in (torch.uint8, torch.int32):
                with pytest.raises(ShapeError, match="non-empty image"):
                    patch_labels(torch.zeros(shape, dtype=dtype), (1, 2))


def test_bit_fast_path_equals_generic_path():
    g = torch.Generator().manual_seed(0)
    seg = (torch.randint(0, 3, (3, 48, 64), generator=g) * (torch.rand(3, 48, 64, generator=g) < 0.01)).to(torch.uint8)
    fast = _patch_labels(seg, (3, 4), (16, 16), "any")  # pw % 8 == 0: 64-bit OR path
    blocks = seg.reshape(3, 3, 16, 4, 16)
    hand, obj = (blocks == 1).any(4).any(2), (blocks == 2).any(4).any(2)
    assert torch.equal(fast, torch.where(hand, 1, torch.where(obj, 2, 0)).reshape(3, 12))


@st.composite
def counts_and_keep(draw):
    n = [draw(st.integers(0, 80)) for _ in range(3)]
    if sum(n) == 0:
        n[0] = 1
    L = draw(st.integers(0, sum(n)))
    ratios = [draw(st.floats(0.0, 0.99)) for _ in range(3)]
    return torch.tensor([n]), L, ratios


@given(counts_and_keep())
def test_region_keep_counts_are_feasible_and_protect_the_hand(data):
    counts, L, (rb, rh, ro) = data
    keep = region_keep_counts(counts, L, background_ratio=rb, hand_ratio=rh, object_ratio=ro)
    assert int(keep.sum()) == L
    assert (keep >= 0).all() and (keep <= counts).all()
    n_bg, n_hand, n_obj = counts[0].tolist()
    want_hand = round(n_hand * (1 - rh))
    if 0 <= L - want_hand <= n_bg + n_obj:  # background and object can absorb the rest
        assert abs(int(keep[0, 1]) - want_hand) <= 1


def test_region_keep_counts_shift_bg_and_object_equally():
    counts = torch.tensor([[100, 50, 46]])
    keep = region_keep_counts(counts, 49, background_ratio=0.75, hand_ratio=0.5, object_ratio=0.9)
    assert keep.tolist() == [[21, 25, 3]]
    masked = 1 - keep.double() / counts
    # Object stays masked more than background; both shifted by ~the same amount.
    assert masked[0, 2] > masked[0, 0]
    assert abs((masked[0, 0] - 0.75) - (masked[0, 2] - 0.9)) < 0.03


def test_masked_hand_fraction_matches_hand_ratio_on_toy_scenes():
    joints, seg = toy_scene(16, 112, torch.Generator().manual_seed(0))
    masker = RegionRatioMasker(mask_ratio=0.75, hand_ratio=0.4)
    out = masker(16, (14, 14), segmentation=seg, generator=torch.Generator().manual_seed(1))
    labels = patch_labels(seg, (14, 14))
    hand = labels == 1
    n_hand = hand.sum(1)
    frac = (out.mask & hand).sum(1).float() / n_hand
    large = n_hand >= 20
    assert large.sum() >= 8
    assert torch.all((frac[large] - 0.4).abs() <= 1.0 / n_hand[large])


def test_region_masking_is_uniform_within_a_region():
    seg = torch.zeros(1, 4, 4, dtype=torch.uint8)
    seg[0, :2] = 1  # top half hand
    out = region_ratio_masking(seg.expand(3000, 4, 4), (4, 4), mask_ratio=0.5, hand_ratio=0.25,
                               generator=torch.Generator().manual_seed(0))
    freq = out.mask.float().mean(0).view(4, 4)
    assert torch.allclose(freq[:2], torch.full((2, 4), 0.25), atol=0.04)
    assert torch.allclose(freq[2:], torch.full((2, 4), 0.75), atol=0.04)


def test_select_in_regions_keeps_lowest_scores():
    labels = torch.tensor([[0, 1, 0, 1, 1, 0]])
    counts = region_counts(labels)
    assert counts.tolist() == [[3, 3, 0]]
    scores = torch.tensor([[0.9, 0.1, 0.2, 0.8, 0.5, 0.3]])
    keep = select_in_regions(labels, counts, torch.tensor([[1, 2, 0]]), scores)
    assert keep.tolist() == [[False, True, True, False, True, False]]


def test_interaction_region_and_fallbacks():
    labels = torch.zeros(3, 5, 5, dtype=torch.int64)
    labels[0, 1:3, 1] = 1
    labels[0, 1:3, 2] = 2  # hand and object touch
    labels[1, 0, 0] = 1
    labels[1, 4, 4] = 2  # far apart -> foreground
    region = interaction_region(labels.view(3, 25), (5, 5), margin=1).view(3, 5, 5)
    assert region[0, 1:3, 1:3].all() and not region[0, 4].any()
    assert region[1].sum() == 2 and region[1, 0, 0] and region[1, 4, 4]
    assert region[2].all()  # empty image -> whole grid


def test_target_focused_concentrates_on_interaction():
    joints, seg = toy_scene(8, 112, torch.Generator().manual_seed(3))
    masker = TargetFocusedMasker(mask_ratio=0.6, focus_ratio=0.5, margin=1)
    out = masker(8, (14, 14), segmentation=seg, generator=torch.Generator().manual_seed(0))
    target = interaction_region(patch_labels(seg, (14, 14)), (14, 14), margin=1)
    masked_target = (out.mask & target).sum(1)
    budget = 196 - masker.num_keep(196)
    want = torch.clamp(torch.full_like(masked_target, round(0.5 * budget)), max=target.sum(1))
    assert torch.all(masked_target >= want)
    with pytest.raises(ValueRangeError, match="focus_ratio"):
        TargetFocusedMasker(focus_ratio=1.5)


def test_draw_mask_fills_masked_patches_only():
    image = torch.rand(2, 3, 8, 12)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[0, 1] = True
    pic = draw_mask(image, mask, 4, fill=(10, 20, 30))
    assert pic.shape == (2, 8, 12, 3) and pic.dtype == torch.uint8
    assert (pic[0, :4, 4:8] == torch.tensor([10, 20, 30], dtype=torch.uint8)).all()
    expect = (image.permute(0, 2, 3, 1) * 255).round().to(torch.uint8)
    assert torch.equal(pic[1], expect[1]) and torch.equal(pic[0, 4:], expect[0, 4:])
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    normalised = (image - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    single = draw_mask(normalised[1], mask[1], (4, 4), mean=mean, std=std)
    assert (single.int() - expect[1].int()).abs().max() <= 1
    with pytest.raises(ShapeError, match="patch_size"):
        draw_mask(image, mask, 5)
    with pytest.raises(ShapeError, match="mask"):
        draw_mask(image, mask[:, :5], 4)


@pytest.mark.parametrize("patch", [4, 8, 16])
@pytest.mark.parametrize("rule", ["any", "majority"])
@pytest.mark.parametrize(
    "dtype, case",
    [(d, c) for d in (torch.uint8, torch.int8, torch.int64)
     for c in ("three_alone", "three_mixed", "four", "big", "negative", "top_byte")
     if not (d == torch.uint8 and c == "negative") and not (d != torch.uint8 and c == "top_byte")],
)
@pytest.mark.parametrize("path", LABELLERS)
def test_invalid_labels_raise_on_every_path(dtype, patch, rule, case, path):
    seg = torch.zeros(2, 2 * patch, 2 * patch, dtype=dtype)
    seg[1, :2, :2] = 1
    seg[1, patch - 1, 1] = 2  # patch (0, 0) of sample 1 holds hand and object
    value, where = {"three_alone": (3, (0, patch + 1, 1)), "three_mixed": (3, (1, 0, 0)), "four": (4, (0, 0, 0)),
                    "big": (100, (1, patch, patch)), "negative": (-1, (0, 1, 1)),
                    "top_byte": (255, (1, 1, 7))}[case]  # byte 7 of a word: the int64 sign bit
    with labeller(path):
        if rule == "any":
            assert torch.equal(patch_labels(seg, (2, 2), rule=rule)[1], torch.tensor([1, 0, 0, 0]))
        seg[where] = value
        with pytest.raises(ValueRangeError, match="segmentation"):
            patch_labels(seg, (2, 2), rule=rule)
        with pytest.raises(ValueRangeError, match="segmentation"):
            RegionRatioMasker(label_rule=rule)(2, (2, 2), segmentation=seg)


def test_region_helpers_check_their_inputs():
    labels = torch.zeros(2, 25, dtype=torch.int64)
    counts = region_counts(labels)
    with pytest.raises(ShapeError, match="'labels'"):
        region_counts(labels.view(2, 5, 5))
    with pytest.raises(ShapeError, match="'counts'"):
        region_keep_counts(counts[:, :2], 5, background_ratio=0.5, hand_ratio=0.5, object_ratio=0.5)
    with pytest.raises(ValueRangeError, match="'hand_ratio'"):
        region_keep_counts(counts, 5, background_ratio=0.5, hand_ratio=1.5, object_ratio=0.5)
    with pytest.raises(ShapeError, match="'scores'"):
        select_in_regions(labels, counts, counts, torch.rand(2, 24))
    with pytest.raises(ShapeError, match="'labels'"):
        interaction_region(labels, (4, 4))


def test_region_ratio_masking_names_bad_hand_scores():
    seg = torch.zeros(2, 8, 8, dtype=torch.uint8)
    with pytest.raises(ShapeError, match="'hand_scores'"):
        region_ratio_masking(seg, (4, 4), hand_scores=torch.rand(2, 15))
    with pytest.raises(DTypeError, match="'hand_scores'"):
        region_ratio_masking(seg, (4, 4), hand_scores=[[0.5] * 16] * 2)


# Budget helpers reject negative, non-finite and out-of-range inputs (issue 15 item 5).


@given(counts_and_keep(), st.sampled_from([torch.int64, torch.int32, torch.float64]))
def test_region_keep_counts_valid_inputs_give_non_negative_counts_summing_to_L(data, dtype):
    counts, L, (rb, rh, ro) = data
    keep = region_keep_counts(counts.to(dtype), L, background_ratio=rb, hand_ratio=rh, object_ratio=ro)
    assert keep.dtype == torch.int64 and int(keep.sum()) == L
    assert (keep >= 0).all() and (keep <= counts).all()


@given(counts_and_keep(), st.data())
def test_region_keep_counts_rejects_bad_counts_and_budgets(data, draw):
    counts, L, (rb, rh, ro) = data
    ratios = dict(background_ratio=rb, hand_ratio=rh, object_ratio=ro)
    region = draw.draw(st.integers(0, 2))
    bad = counts.double().clone()
    bad[0, region] = draw.draw(st.sampled_from([-1.0, -7.0, float("nan"), float("inf"), 2.5]))
    with pytest.raises(ValueRangeError, match=r"region_keep_counts\(\): argument 'counts'"):
        region_keep_counts(bad, L, **ratios)
    n = int(counts.sum())
    over = draw.draw(st.integers(n + 1, n + 50))
    with pytest.raises(ValueRangeError, match=rf"'num_keep'.*got num_keep={over}"):
        region_keep_counts(counts, over, **ratios)
    with pytest.raises(ValueRangeError, match=r"'num_keep' expected an int in \[0, inf\], got -1"):
        region_keep_counts(counts, -1, **ratios)
    with pytest.raises(DTypeError, match="'num_keep'"):
        region_keep_counts(counts, float(L), **ratios)
    with pytest.raises(ValueRangeError, match="'object_ratio'.*nan"):
        region_keep_counts(counts, L, **{**ratios, "object_ratio": float("nan")})


def test_region_keep_counts_rejects_a_row_without_patches():
    with pytest.raises(ValueRangeError, match=r"'num_keep'.*N=0 at row 1"):
        region_keep_counts(torch.tensor([[3, 2, 1], [0, 0, 0]]), 0, background_ratio=0.5, hand_ratio=0.5,
                           object_ratio=0.5)
    with pytest.raises(DTypeError, match="'counts'"):
        region_keep_counts(torch.ones(1, 3, dtype=torch.bool), 1, background_ratio=0.5, hand_ratio=0.5,
                           object_ratio=0.5)


@st.composite
def region_selection(draw):
    B, N, R = draw(st.integers(1, 4)), draw(st.integers(1, 30)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, R, (B, N), generator=g)
    counts = torch.zeros(B, R, dtype=torch.int64).scatter_add_(1, labels, torch.ones_like(labels))
    keep = (torch.rand(B, R, generator=g) * (counts + 1)).long().clamp_max(counts)
    scores = torch.rand(B, N, generator=g) * 3.999
    return labels, counts, keep, scores


@given(region_selection())
def test_select_in_regions_valid_inputs_keep_exactly_the_budgets(data):
    labels, counts, keep_counts, scores = data
    keep = select_in_regions(labels, counts, keep_counts, scores)
    kept_per_region = torch.zeros_like(counts).scatter_add_(1, labels, keep.long())
    assert torch.equal(kept_per_region, keep_counts)
    assert torch.equal(keep.sum(1), keep_counts.sum(1))


@given(region_selection(), st.sampled_from(["label", "counts", "keep_over", "keep_negative", "score_nan",
                                            "score_inf", "score_negative", "score_too_large"]))
def test_select_in_regions_rejects_invalid_inputs(data, what):
    labels, counts, keep_counts, scores = data
    R = counts.shape[1]
    labels, counts, keep_counts, scores = labels.clone(), counts.clone(), keep_counts.clone(), scores.clone()
    if what == "label":
        labels[0, 0] = R
        arg = "labels"
    elif what == "counts":
        counts[0, 0] += 1
        arg = "counts"
    elif what == "keep_over":
        keep_counts[0, 0] = counts[0, 0] + 1
        arg = "keep_counts"
    elif what == "keep_negative":
        keep_counts[0, 0] = -1
        arg = "keep_counts"
    else:
        scores[0, 0] = {"score_nan": float("nan"), "score_inf": float("inf"), "score_negative": -0.5,
                        "score_too_large": 4.0}[what]
        arg = "scores"
    with pytest.raises(ValueRangeError, match=rf"select_in_regions\(\): argument '{arg}'"):
        select_in_regions(labels, counts, keep_counts, scores)


def test_interaction_region_rejects_bad_labels_and_margin():
    labels = torch.zeros(2, 16, dtype=torch.int64)
    with pytest.raises(ValueRangeError, match=r"'margin' expected an int in \[0, inf\], got -1"):
        interaction_region(labels, (4, 4), margin=-1)
    with pytest.raises(DTypeError, match="'margin'"):
        interaction_region(labels, (4, 4), margin=1.5)
    bad = labels.clone()
    bad[1, 3] = 3
    with pytest.raises(ValueRangeError, match=r"'labels' expected labels in \[0, 2\], got values in \[0, 3\]"):
        interaction_region(bad, (4, 4))
    with pytest.raises(DTypeError, match="'labels'"):
        interaction_region(labels.float(), (4, 4))
