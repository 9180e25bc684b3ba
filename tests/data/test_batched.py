"""Batched views equal the per-sample transforms, row by row, to float rounding."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import DataLoader

from hoimask._checks import ShapeError
from hoimask.data import (
    ColorJitter,
    Compose,
    GaussianBlur,
    RandomRotateScale,
    batched_views,
    collate,
    supports_batching,
    uncollate,
)
from hoimask.engine import AugmentedViews


def _assert_batch_close(got, want, atol=1e-5):
    assert set(got) == set(want)
    for key, value in want.items():
        if isinstance(value, torch.Tensor):
            assert got[key].dtype == value.dtype, key
            if value.is_floating_point():
                torch.testing.assert_close(got[key], value, rtol=0, atol=atol, equal_nan=True, msg=key)
            else:
                assert torch.equal(got[key], value), key
        else:
            assert got[key] == value, key


def _nearest_maps_close(got, want, key, max_fraction=0.002):
    # nearest-neighbour maps may differ where a sample point falls within rounding of a pixel border
    differ = (got[key] != want[key]).float().mean().item()
    assert differ <= max_fraction, (key, differ)


TRANSFORMS = {
    "warp+jitter": Compose([RandomRotateScale(), ColorJitter()]),
    "warp": RandomRotateScale(max_rotation=90.0, scale=(0.7, 1.4), translate=0.2),
    "jitter": ColorJitter(0.5, 0.5, 0.5, 0.3),
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_batched_views_equal_the_per_sample_transform(small_synthetic, name):
    transform = TRANSFORMS[name]
    samples = [small_synthetic[i] for i in (0, 1, 2, 3, 4, 5, 17, 23)]  # 17, 23: hand-only scenes
    nan = torch.full((3,), float("nan"))
    samples[5] = dict(samples[5], object_translation=nan, joints_2d=torch.full((21, 2), float("nan")))  # unlabelled
    seeds = [11 * i + 1 for i in range(8)]
    want = collate([transform(s, generator=torch.Generator().manual_seed(k)) for s, k in zip(samples, seeds)])
    got = batched_views(collate(samples), transform, [torch.Generator().manual_seed(k) for k in seeds])
    for key in ("segmentation", "amodal_hand_mask", "depth"):
        _nearest_maps_close(got, want, key)
        got[key] = want[key]
    _assert_batch_close(got, want)


def test_batched_views_transform_only_the_given_rows(synthetic_samples):
    transform = TRANSFORMS["warp+jitter"]
    batch = collate(synthetic_samples[:4])
    image = batch["image"].clone()
    out = batched_views(batch, transform, [torch.Generator().manual_seed(0)], rows=[2])
    assert torch.equal(batch["image"], image)  # the input batch is not modified
    for row in (0, 1, 3):
        for key in ("image", "joints_3d", "K", "segmentation"):
            assert torch.equal(out[key][row], batch[key][row])
    single = transform(synthetic_samples[2], generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out["image"][2], single["image"], rtol=0, atol=1e-5)
    assert batched_views(batch, transform, [], rows=[])["image"] is batch["image"]


def test_supports_batching_and_errors(synthetic_samples):
    assert supports_batching(RandomRotateScale()) and supports_batching(ColorJitter())
    assert supports_batching(Compose([RandomRotateScale(), Compose([ColorJitter()])]))
    assert not supports_batching(GaussianBlur()) and not supports_batching(Compose([ColorJitter(), GaussianBlur()]))
    batch = collate(synthetic_samples[:2])
    with pytest.raises(TypeError, match="transform"):
        batched_views(batch, GaussianBlur(), [None, None])
    with pytest.raises(ShapeError, match="generators"):
        batched_views(batch, ColorJitter(), [None])
    wide = dict(batch, image=torch.rand(2, 3, 8, 12))
    with pytest.raises(ShapeError, match="square"):
        batched_views(wide, RandomRotateScale(), [None, None])


def test_uncollate_inverts_collate(synthetic_samples):
    samples = [dict(s, name=f"s{i}", weight=0.5 * i) for i, s in enumerate(synthetic_samples[:3])]
    batch = collate(samples)
    back = uncollate(batch, 3)
    assert [b["name"] for b in back] == ["s0", "s1", "s2"]
    _assert_batch_close(collate(back), batch, atol=0)


def test_augmented_views_fetch_batches_as_the_per_sample_views(small_synthetic):
    scenes = [small_synthetic[i] for i in range(6)]
    transform = Compose([RandomRotateScale(), ColorJitter()])
    fast = AugmentedViews(scenes, transform, repeats=3, seed=4)
    slow = AugmentedViews(scenes, transform, repeats=3, seed=4, batched=False)
    assert fast.batched and not slow.batched
    assert not AugmentedViews(scenes, GaussianBlur(), repeats=2).batched  # other transforms: one at a time
    indices = [0, 7, 13, 5, 17, 6]  # originals and views, in a shuffled order
    got, want = collate(fast.__getitems__(indices)), collate(slow.__getitems__(indices))
    for key in ("segmentation", "amodal_hand_mask", "depth"):
        _nearest_maps_close(got, want, key)
        got[key] = want[key]
    _assert_batch_close(got, want)
    assert fast.__getitems__([0])[0] is scenes[0]  # a batch of originals is passed through
    loader = DataLoader(fast, batch_size=4, collate_fn=collate)  # the DataLoader fetches through __getitems__
    first = next(iter(loader))
    _assert_batch_close({"image": first["image"]}, {"image": collate([fast[i] for i in range(4)])["image"]})
    with pytest.raises(IndexError):
        fast.__getitems__([18])
    with pytest.raises(TypeError, match="batched"):
        AugmentedViews(scenes, transform, repeats=2, batched="yes")


def test_zero_angle_turns_nothing_in_3d(synthetic_samples):
    flat = RandomRotateScale(max_rotation=0.0)
    batch = collate(synthetic_samples[:2])
    out = batched_views(batch, flat, [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)])
    for key in ("joints_3d", "sdf_points", "hand_pose", "object_rotation"):
        assert torch.equal(torch.nan_to_num(out[key]), torch.nan_to_num(batch[key])), key
    assert math.isclose(float(out["K"][0, 2, 2]), 1.0)
