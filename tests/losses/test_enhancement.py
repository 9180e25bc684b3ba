"""UniHOPE's multi-level feature enhancement (eqs. 7, 8, 11): filtering, reduction, gradients, bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.losses import (
    ENHANCEMENT_LEVELS,
    UNIHOPE_ENHANCEMENT_WEIGHTS,
    UNIHOPE_OCCLUSION_THRESHOLD,
    MultiLevelEnhancementLoss,
    enhancement_mask,
    feature_consistency_loss,
)
from hoimask.nn import AttentionAdapter


def naive_loss(original: torch.Tensor, deoccluded: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The released code's reduction, written as a loop: per kept pair the mean |a - b|, then their mean; 0 if none."""
    per_pair = [(original[b] - deoccluded[b]).abs().mean() for b in range(original.shape[0]) if keep[b]]
    return torch.stack(per_pair).mean() if per_pair else original.new_zeros(())


def test_released_constants():
    assert UNIHOPE_ENHANCEMENT_WEIGHTS == {"init": 0.1, "roi": 0.1, "mano": 0.5}
    assert UNIHOPE_OCCLUSION_THRESHOLD == 0.1 and ENHANCEMENT_LEVELS == ("init", "roi", "mano")


# ---------------------------------------------------------------------------------------------
# The filter (eq. 8)
# ---------------------------------------------------------------------------------------------


def test_mask_known_values_and_threshold_edge():
    ratio = torch.tensor([0.0, 0.0999, 0.1, 0.7, 1.0, 0.7])
    grasped = torch.tensor([True, True, True, True, True, False])
    assert enhancement_mask(ratio, grasped).tolist() == [False, False, True, True, True, False]  # Ô = τ is kept
    assert enhancement_mask(ratio, grasped.long()).tolist() == enhancement_mask(ratio, grasped).tolist()
    assert enhancement_mask(ratio, grasped, threshold=0.0).tolist() == [True] * 5 + [False]
    ratio64 = torch.tensor([0.0, 0.0999, 0.1, 0.7, 1.0, 0.7], dtype=torch.float64)
    assert enhancement_mask(ratio64, grasped.float(), threshold=0.7).tolist() == [False] * 3 + [True, True, False]


@given(seed=st.integers(0, 10_000), b=st.integers(1, 20), tau=st.floats(0.0, 1.0))
def test_mask_is_occluded_and_grasping(seed, b, tau):
    g = torch.Generator().manual_seed(seed)
    ratio = torch.rand(b, generator=g)
    grasped = torch.rand(b, generator=g) < 0.5
    keep = enhancement_mask(ratio, grasped, threshold=tau)
    assert keep.tolist() == [bool(r >= torch.tensor(tau, dtype=torch.float32)) and bool(gr)
                             for r, gr in zip(ratio, grasped)]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# One level (eq. 7)
# ---------------------------------------------------------------------------------------------


@given(seed=st.integers(0, 10_000), b=st.integers(1, 8), shape=st.sampled_from([(3,), (2, 5), (4, 2, 3)]))
def test_level_loss_equals_the_loop(seed, b, shape):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(b, *shape, generator=g, dtype=torch.float64)
    d = torch.randn(b, *shape, generator=g, dtype=torch.float64)
    keep = torch.rand(b, generator=g) < 0.6
    torch.testing.assert_close(feature_consistency_loss(a, d, keep), naive_loss(a, d, keep))
    torch.testing.assert_close(feature_consistency_loss(a, d), naive_loss(a, d, torch.ones(b, dtype=torch.bool)))


@given(seed=st.integers(0, 10_000), b=st.integers(2, 8))
def test_filtered_pairs_contribute_exactly_zero(seed, b):
    """Value and gradient: whatever a filtered pair holds (NaN, inf, huge), nothing of it reaches the loss."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(b, 4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    d = torch.randn(b, 4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    keep = torch.rand(b, generator=g) < 0.5
    keep[0] = False
    loss = feature_consistency_loss(a, d, keep, detach_deoccluded=False)
    ga, gd = torch.autograd.grad(loss, [a, d])
    assert torch.equal(ga[~keep], torch.zeros_like(ga[~keep])) and torch.equal(gd[~keep], torch.zeros_like(gd[~keep]))
    junk_a, junk_d = a.detach().clone(), d.detach().clone()
    junk_a[~keep] = float("nan")
    junk_d[~keep] = float("inf")
    junk_a.requires_grad_(True)
    value = feature_consistency_loss(junk_a, junk_d, keep)
    assert torch.equal(value, loss.detach())
    (grad,) = torch.autograd.grad(value, junk_a)
    assert torch.isfinite(grad).all() and torch.equal(grad[~keep], torch.zeros_like(grad[~keep]))


def test_all_filtered_gives_zero_with_a_defined_gradient():
    a = torch.randn(3, 5, requires_grad=True)
    d = torch.randn(3, 5)
    loss = feature_consistency_loss(a, d, torch.zeros(3, dtype=torch.bool))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(a.grad, torch.zeros_like(a))
    empty = feature_consistency_loss(torch.zeros(0, 4, requires_grad=True), torch.zeros(0, 4))  # an empty batch
    assert empty.item() == 0.0
    h = AttentionAdapter(5, num_heads=1)
    out = MultiLevelEnhancementLoss(h)({"roi": a, "mano": a}, {"roi": d, "mano": d}, torch.zeros(3),
                                       torch.ones(3, dtype=torch.bool))  # nothing occluded: all filtered
    assert out.total.item() == 0.0
    out.total.backward()
    assert all(p.grad is None or (torch.isfinite(p.grad).all() and (p.grad == 0).all()) for p in h.parameters())


def test_the_deoccluded_side_is_detached_by_default():
    a = torch.randn(4, 6, requires_grad=True)
    d = torch.randn(4, 6, requires_grad=True)
    feature_consistency_loss(a, d).backward()
    assert d.grad is None and a.grad is not None and a.grad.abs().sum() > 0
    feature_consistency_loss(a, d, detach_deoccluded=False).backward()
    assert d.grad is not None and d.grad.abs().sum() > 0


def test_level_loss_gradcheck():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    d = torch.randn(4, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    keep = torch.tensor([True, False, True, True])
    assert torch.autograd.gradcheck(lambda x, y: feature_consistency_loss(x, y, keep, detach_deoccluded=False), [a, d])


# ---------------------------------------------------------------------------------------------
# The three levels (eq. 11)
# ---------------------------------------------------------------------------------------------


def _pairs(b: int, g: torch.Generator, dtype=torch.float64):
    shapes = {"init": (8, 4, 4), "roi": (6, 16), "mano": (12,)}
    original = {k: torch.randn(b, *s, generator=g, dtype=dtype) for k, s in shapes.items()}
    deoccluded = {k: torch.randn(b, *s, generator=g, dtype=dtype) for k, s in shapes.items()}
    return original, deoccluded


@given(seed=st.integers(0, 10_000), b=st.integers(1, 6))
def test_module_equals_the_weighted_functions(seed, b):
    g = torch.Generator().manual_seed(seed)
    original, deoccluded = _pairs(b, g)
    ratio = torch.rand(b, generator=g, dtype=torch.float64)
    grasped = torch.rand(b, generator=g) < 0.7
    torch.manual_seed(seed)
    h = AttentionAdapter(12, num_heads=3).double()
    out = MultiLevelEnhancementLoss(h)(original, deoccluded, ratio, grasped)
    keep = enhancement_mask(ratio, grasped)
    mapped = h(torch.where(keep[:, None], original["mano"], torch.zeros_like(original["mano"])))
    terms = {"init": feature_consistency_loss(original["init"], deoccluded["init"], keep),
             "roi": feature_consistency_loss(original["roi"], deoccluded["roi"], keep),
             "mano": feature_consistency_loss(mapped, deoccluded["mano"], keep)}  # fmt: skip
    for k, v in terms.items():
        torch.testing.assert_close(out.terms[k], v)
    torch.testing.assert_close(out.total, 0.1 * terms["init"] + 0.1 * terms["roi"] + 0.5 * terms["mano"])
    if keep.any():  # h only on the original side (released code): the target is the raw de-occluded feature
        torch.testing.assert_close(out.terms["mano"], naive_loss(h(original["mano"]), deoccluded["mano"], keep))
    both = MultiLevelEnhancementLoss(h, adapter_on="both")(original, deoccluded, ratio, grasped)
    torch.testing.assert_close(both.terms["mano"],
                               naive_loss(h(original["mano"]), h(deoccluded["mano"]), keep))


def test_module_filtered_pairs_reach_neither_the_loss_nor_the_adapter():
    """NaN features in filtered pairs: the same loss and the same gradients (the adapter's too) as without them."""
    g = torch.Generator().manual_seed(3)
    original, deoccluded = _pairs(5, g)
    ratio = torch.tensor([0.5, 0.02, 0.5, 0.9, 0.3], dtype=torch.float64)
    grasped = torch.tensor([True, True, False, True, True])
    torch.manual_seed(0)
    loss = MultiLevelEnhancementLoss(AttentionAdapter(12, num_heads=2).double(), detach_deoccluded=False)
    keep = enhancement_mask(ratio, grasped)

    def run(orig, deocc):
        orig = {k: v.clone().requires_grad_(True) for k, v in orig.items()}
        deocc = {k: v.clone().requires_grad_(True) for k, v in deocc.items()}
        loss.zero_grad()
        out = loss(orig, deocc, ratio, grasped)
        out.total.backward()
        return out, orig, deocc, [p.grad.clone() for p in loss.parameters()]

    clean, o1, d1, p1 = run(original, deoccluded)
    broken_o = {k: torch.where(keep.view(-1, *[1] * (v.dim() - 1)), v, torch.full_like(v, float("nan")))
                for k, v in original.items()}  # fmt: skip
    broken_d = {k: torch.where(keep.view(-1, *[1] * (v.dim() - 1)), v, torch.full_like(v, float("inf")))
                for k, v in deoccluded.items()}  # fmt: skip
    dirty, o2, d2, p2 = run(broken_o, broken_d)
    assert torch.equal(clean.total, dirty.total)
    for k in ENHANCEMENT_LEVELS:
        assert torch.equal(o1[k].grad, o2[k].grad) and torch.equal(d1[k].grad, d2[k].grad)
        assert (o2[k].grad[~keep] == 0).all() and (d2[k].grad[~keep] == 0).all()
    for a, b in zip(p1, p2):
        torch.testing.assert_close(a, b)
        assert torch.isfinite(b).all()


def test_module_all_filtered_is_zero_with_finite_gradients():
    g = torch.Generator().manual_seed(1)
    original, deoccluded = _pairs(4, g, dtype=torch.float32)
    original = {k: v.requires_grad_(True) for k, v in original.items()}
    h = AttentionAdapter(12, num_heads=2)
    loss = MultiLevelEnhancementLoss(h)
    out = loss(original, deoccluded, torch.tensor([0.0, 0.05, 0.5, 0.9]), torch.tensor([1, 1, 0, 0]))
    assert out.total.item() == 0.0 and all(v.item() == 0.0 for v in out.terms.values())
    out.total.backward()
    for v in original.values():
        assert torch.equal(v.grad, torch.zeros_like(v))
    for p in h.parameters():
        assert p.grad is None or ((p.grad == 0).all() and torch.isfinite(p.grad).all())


def test_module_levels_subset_and_weights():
    g = torch.Generator().manual_seed(2)
    original, deoccluded = _pairs(3, g)
    ratio, grasped = torch.full((3,), 0.5, dtype=torch.float64), torch.ones(3, dtype=torch.bool)
    only_roi = MultiLevelEnhancementLoss(weights={"roi": 2.0})
    out = only_roi({"roi": original["roi"]}, {"roi": deoccluded["roi"]}, ratio, grasped)
    assert list(out.terms) == ["roi"]
    torch.testing.assert_close(out.total, 2 * feature_consistency_loss(original["roi"], deoccluded["roi"]))
    no_adapter = MultiLevelEnhancementLoss()(original, deoccluded, ratio, grasped)  # h = identity
    torch.testing.assert_close(no_adapter.terms["mano"], feature_consistency_loss(original["mano"], deoccluded["mano"]))
    assert "weights=(init=0.1, roi=0.1, mano=0.5)" in repr(MultiLevelEnhancementLoss())


def test_module_bad_inputs_name_the_argument():
    g = torch.Generator().manual_seed(0)
    original, deoccluded = _pairs(3, g, dtype=torch.float32)
    ratio, grasped = torch.full((3,), 0.5), torch.ones(3, dtype=torch.bool)
    loss = MultiLevelEnhancementLoss()
    fn = r"MultiLevelEnhancementLoss.forward\(\)"
    with pytest.raises(ShapeError, match=rf"{fn}: argument 'deoccluded\['roi'\]'"):
        loss(original, {**deoccluded, "roi": deoccluded["roi"][:, :5]}, ratio, grasped)  # pair of mismatched size
    with pytest.raises(ShapeError, match=r"argument 'original\['mano'\]' has batch size 2"):
        loss({**original, "mano": original["mano"][:2]}, {**deoccluded, "mano": deoccluded["mano"][:2]}, ratio, grasped)
    for bad in (torch.tensor([0.5, 1.2, 0.3]), torch.tensor([-0.1, 0.5, 0.5]), torch.tensor([0.5, float("nan"), 0.1])):
        with pytest.raises(ValueRangeError, match=rf"{fn}: argument 'occlusion_ratio' expected values in \[0, 1\]"):
            loss(original, deoccluded, bad, grasped)
    with pytest.raises(ShapeError, match="argument 'occlusion_ratio'"):
        loss(original, deoccluded, torch.full((4,), 0.5), grasped)
    with pytest.raises(DTypeError, match="argument 'occlusion_ratio'"):
        loss(original, deoccluded, torch.zeros(3, dtype=torch.long), grasped)
    with pytest.raises(ValueRangeError, match="argument 'grasped'"):
        loss(original, deoccluded, ratio, torch.tensor([0.0, 0.5, 1.0]))
    with pytest.raises(ValueRangeError, match="unknown level"):
        loss({**original, "fpn": original["roi"]}, {**deoccluded, "fpn": deoccluded["roi"]}, ratio, grasped)
    with pytest.raises(ValueRangeError, match="argument 'deoccluded' expected the levels"):
        loss(original, {"init": deoccluded["init"]}, ratio, grasped)
    with pytest.raises(DTypeError, match=r"argument 'original\['init'\]'"):
        loss({**original, "init": original["init"].long()}, deoccluded, ratio, grasped)
    with pytest.raises(ValueRangeError, match="without a weight"):
        MultiLevelEnhancementLoss(weights={"roi": 1.0})(original, deoccluded, ratio, grasped)
    with pytest.raises(ValueRangeError, match="weights"):
        MultiLevelEnhancementLoss(weights={"init": -1.0})
    with pytest.raises(ValueRangeError, match="weights"):
        MultiLevelEnhancementLoss(weights={"c3_h": 0.1})
    with pytest.raises(ValueRangeError, match="adapter_on"):
        MultiLevelEnhancementLoss(adapter_on="target")
    with pytest.raises(ValueRangeError, match="threshold"):
        MultiLevelEnhancementLoss(threshold=1.1)
    with pytest.raises(DTypeError, match="adapter"):
        MultiLevelEnhancementLoss(adapter=lambda x: x)


def test_function_bad_inputs_name_the_argument():
    a = torch.zeros(3, 4)
    with pytest.raises(ShapeError, match=r"feature_consistency_loss\(\): argument 'deoccluded'"):
        feature_consistency_loss(a, torch.zeros(3, 5))
    with pytest.raises(ShapeError, match="argument 'keep'"):
        feature_consistency_loss(a, a, torch.ones(4, dtype=torch.bool))
    with pytest.raises(DTypeError, match="argument 'keep'"):
        feature_consistency_loss(a, a, torch.ones(3))
    with pytest.raises(DTypeError, match="argument 'original'"):
        feature_consistency_loss(a.long(), a)
    with pytest.raises(ShapeError, match="argument 'original'"):
        feature_consistency_loss(torch.tensor(1.0), torch.tensor(1.0))
    with pytest.raises(ValueRangeError, match=r"enhancement_mask\(\): argument 'occlusion_ratio'"):
        enhancement_mask(torch.tensor([1.5]), torch.tensor([True]))
    with pytest.raises(ShapeError, match=r"enhancement_mask\(\): argument 'grasped'"):
        enhancement_mask(torch.tensor([0.5]), torch.tensor([True, False]))
    with pytest.raises(ValueRangeError, match="argument 'grasped'"):
        enhancement_mask(torch.tensor([0.5]), torch.tensor([2]))
    with pytest.raises(ValueRangeError, match="argument 'threshold'"):
        enhancement_mask(torch.tensor([0.5]), torch.tensor([True]), threshold=-0.1)
