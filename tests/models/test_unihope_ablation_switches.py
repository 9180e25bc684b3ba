"""UniHOPE's Table 7 ablation switches: ``fusion_confidence="always"``, ``case_filtering``, ``deoccluded_samples``;
and ``run_dropped_twins`` (whether the twins of pairs eq. 8 drops run at all)."""

from __future__ import annotations

import pytest
import torch

from hoimask._checks import DTypeError, ValueRangeError
from hoimask.data import SyntheticHOI, collate
from hoimask.models import UniHOPE

SIZE = 64
LEVELS = ("enhancement_init", "enhancement_roi", "enhancement_mano")
HAND = ("joints_2d", "joints_3d", "vertices", "mano", "root_depth")


@pytest.fixture(scope="module")
def batch() -> dict:
    """Four grasping scenes with their de-occluded twins."""
    ds = SyntheticHOI(num_samples=4, image_size=SIZE, seed=5, num_sdf_points=0, num_object_points=64,
                      hand_only_prob=0.0, not_grasped_prob=0.0, deoccluded=True)
    return collate([ds[i] for i in range(4)])


def tiny(**overrides) -> UniHOPE:
    torch.manual_seed(0)
    return UniHOPE.from_preset("tiny", img_size=SIZE, **overrides)


def test_always_fuses_the_object_features_whatever_the_switcher_says(batch):
    always = tiny(fusion_confidence="always").eval()
    hard = tiny().eval()
    hard.load_state_dict(always.state_dict())
    with torch.no_grad():
        fused = hard.predict(batch["image"], batch["K"], grasp_confidence=torch.ones(4))["joints"]
        for bias in (-50.0, 50.0):  # the switcher says "not grasping" / "grasping" for every sample
            always.switcher.fc2.weight.zero_()
            always.switcher.fc2.bias.fill_(bias)
            assert torch.equal(always.predict(batch["image"], batch["K"])["joints"], fused)
    with torch.no_grad():  # and differs from keeping them out
        kept_out = hard.predict(batch["image"], batch["K"], grasp_confidence=torch.zeros(4))["joints"]
        assert not torch.equal(always.predict(batch["image"], batch["K"])["joints"], kept_out)


def test_without_case_filtering_every_real_pair_is_distilled(batch):
    not_grasping = dict(batch, grasped=torch.zeros(4, dtype=batch["grasped"].dtype))  # eq. (8) drops all four
    filtered = tiny()(not_grasping)
    assert filtered["enhancement_pairs"] == 0 and all(float(filtered["terms"][k].detach()) == 0.0 for k in LEVELS)
    model = tiny(case_filtering=False)
    out = model(not_grasping)
    assert out["enhancement_pairs"] == 4 and all(float(out["terms"][k].detach()) > 0.0 for k in LEVELS)
    flagged = model(dict(not_grasping, has_deoccluded=torch.tensor([True, False, True, False])))
    assert flagged["enhancement_pairs"] == 2 and flagged["enhancement_unpaired"] == 2


def test_deoccluded_samples_average_the_hand_terms_over_originals_and_twins(batch):
    model = tiny(deoccluded_samples=True).eval()  # eval: samples independent (no shared batch-norm statistics)
    plain = tiny().eval()
    plain.load_state_dict(model.state_dict())
    no_pair = dict(batch, grasped=torch.zeros(4, dtype=batch["grasped"].dtype))  # the twins still run as samples
    out, ref = model(no_pair), plain(no_pair)
    assert out["enhancement_pairs"] == 0
    twins_alone = plain(dict(no_pair, image=batch["deoccluded_image"]))
    for k in HAND:  # each term is a mean over samples with the same number of entries: the average of both
        expected = (ref["terms"][k] + twins_alone["terms"][k]) / 2
        torch.testing.assert_close(out["terms"][k], expected, rtol=1e-5, atol=1e-7)
    assert not torch.equal(out["terms"]["joints_3d"], ref["terms"]["joints_3d"])
    # a twin identical to its image changes nothing; without twins in the batch the switch does nothing
    same = model(dict(no_pair, deoccluded_image=batch["image"]))
    for k in HAND:
        torch.testing.assert_close(same["terms"][k], ref["terms"][k], rtol=1e-5, atol=1e-7)
    bare = {k: v for k, v in batch.items() if k != "deoccluded_image"}
    assert torch.equal(model(bare)["loss"], plain(bare)["loss"])


def test_dropped_twins_do_not_run_and_change_no_term(batch):
    """By default only the kept pairs' twins run: the backbone sees B + kept images, every term is as with all
    twins run (eval: no batch statistics), and a dropped pair's terms stay exactly zero."""
    fast = tiny().eval()
    full = tiny(run_dropped_twins=True).eval()
    full.load_state_dict(fast.state_dict())
    two_kept = dict(batch, grasped=torch.tensor([True, False, True, False]),  # eq. (8) keeps samples 0 and 2
                    occlusion_ratio=torch.full((4,), 0.5))
    seen = []
    for model in (fast, full):
        hook = model.fpn.register_forward_hook(lambda m, args, out: seen.append(out[0].shape[0]))
        out = model(two_kept)
        hook.remove()
        assert out["enhancement_pairs"] == 2
    assert seen == [4 + 2, 4 + 4]
    a, b = fast(two_kept)["terms"], full(two_kept)["terms"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    assert all(float(a[k].detach()) > 0.0 for k in LEVELS)
    none_kept = dict(batch, grasped=torch.zeros(4, dtype=torch.bool))
    seen.clear()
    hook = fast.fpn.register_forward_hook(lambda m, args, out: seen.append(out[0].shape[0]))
    out = fast(none_kept)
    hook.remove()
    assert seen == [4] and all(float(out["terms"][k].detach()) == 0.0 for k in LEVELS)


def test_switches_are_checked_and_saved():
    with pytest.raises(ValueRangeError, match="fusion_confidence"):
        tiny(fusion_confidence="never")
    with pytest.raises(DTypeError, match="case_filtering"):
        tiny(case_filtering="yes")
    with pytest.raises(DTypeError, match="deoccluded_samples"):
        tiny(deoccluded_samples=1)
    with pytest.raises(DTypeError, match="run_dropped_twins"):
        tiny(run_dropped_twins=None)
    model = tiny(fusion_confidence="always", case_filtering=False, deoccluded_samples=True, run_dropped_twins=True)
    state = {"model_type": "unihope", "unihope_config": model.config_state(), "model": model.state_dict()}
    again = UniHOPE.from_checkpoint_state(state).config
    assert (again.fusion_confidence, again.case_filtering, again.deoccluded_samples,
            again.run_dropped_twins) == ("always", False, True, True)
