"""UniHOPE on batches where only some samples have a de-occluded twin (``has_deoccluded``, real data)."""

from __future__ import annotations

import pytest
import torch

from hoimask._checks import DTypeError
from hoimask.data import SyntheticHOI, collate
from hoimask.losses import enhancement_mask
from hoimask.models import UniHOPE

SIZE = 64
LEVELS = ("enhancement_init", "enhancement_roi", "enhancement_mano")


@pytest.fixture(scope="module")
def batch() -> dict:
    """Four grasping scenes with an occluded hand (every pair passes eq. 8); sample 1 is marked unpaired."""
    ds = SyntheticHOI(num_samples=60, image_size=SIZE, seed=5, num_sdf_points=0, num_object_points=64,
                      hand_only_prob=0.0, not_grasped_prob=0.0, deoccluded=True)
    kept = [s for s in (ds[i] for i in range(len(ds)))
            if bool(s["grasped"]) and float(s["occlusion_ratio"]) >= 0.15][:4]
    assert len(kept) == 4, "the synthetic seed gave too few occluded grasps"
    out = collate(kept)
    out["has_deoccluded"] = torch.tensor([True, False, True, True])
    out["deoccluded_image"][1] = 0.0  # the loaders' placeholder
    return out


def tiny() -> UniHOPE:
    torch.manual_seed(0)
    return UniHOPE.from_preset("tiny", img_size=SIZE)


def test_unpaired_samples_are_counted_and_skipped(batch):
    model = tiny()
    out = model(batch)
    assert enhancement_mask(batch["occlusion_ratio"], batch["grasped"]).all()
    assert out["enhancement_pairs"] == 3 and out["enhancement_unpaired"] == 1
    assert all(out["terms"][k] > 0 for k in LEVELS)
    # the placeholder never runs (train mode: not even batch-norm statistics see it): any content, same terms
    noisy = dict(batch, deoccluded_image=batch["deoccluded_image"].clone())
    noisy["deoccluded_image"][1] = torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    again = model(noisy)
    for k in LEVELS:
        assert torch.equal(out["terms"][k], again["terms"][k])
    # no twin at all in the batch: exact zeros, every sample counted
    none = model(dict(batch, has_deoccluded=torch.zeros(4, dtype=torch.bool)))
    assert none["enhancement_pairs"] == 0 and none["enhancement_unpaired"] == 4
    assert all(float(none["terms"][k]) == 0.0 for k in LEVELS)
    # synthetic batches (no flag) are unchanged: every twin is real
    plain = model({k: v for k, v in batch.items() if k != "has_deoccluded"})
    assert plain["enhancement_pairs"] == 4 and plain["enhancement_unpaired"] == 0


def test_an_unpaired_sample_contributes_zero_gradient(batch):
    """Eval mode (samples independent): the enhancement terms give no gradient to the unpaired sample's image,
    and equal the terms of the batch where eq. (8) drops that sample instead."""
    model = tiny().eval()
    image = batch["image"].clone().requires_grad_(True)
    out = model(dict(batch, image=image))
    total = sum(out["terms"][k] for k in LEVELS)
    (grad,) = torch.autograd.grad(total, image)
    assert bool((grad[1] == 0).all()) and grad[0].abs().sum() > 0 and grad[2].abs().sum() > 0
    dropped = dict(batch, grasped=torch.tensor([True, False, True, True]))
    dropped.pop("has_deoccluded")
    reference = model(dropped)
    for k in LEVELS:
        torch.testing.assert_close(out["terms"][k], reference["terms"][k], rtol=1e-5, atol=1e-7)


def test_has_deoccluded_is_checked(batch):
    with pytest.raises(DTypeError, match=r"batch\['has_deoccluded'\] expected a bool tensor"):
        tiny()(dict(batch, has_deoccluded=torch.ones(4)))
