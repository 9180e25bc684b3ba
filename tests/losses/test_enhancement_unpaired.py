"""``MultiLevelEnhancementLoss(..., paired=)``: samples without a real de-occluded twin contribute exactly zero."""

from __future__ import annotations

import pytest
import torch

from hoimask._checks import DTypeError, ShapeError
from hoimask.losses import ENHANCEMENT_LEVELS, MultiLevelEnhancementLoss, enhancement_mask
from hoimask.nn import AttentionAdapter


def _features(b: int, seed: int) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(seed)
    shapes = {"init": (8, 4, 4), "roi": (6, 16), "mano": (12,)}
    return ({k: torch.randn(b, *s, generator=g, dtype=torch.float64) for k, s in shapes.items()},
            {k: torch.randn(b, *s, generator=g, dtype=torch.float64) for k, s in shapes.items()})


def test_unpaired_samples_are_filtered_exactly_like_eq8_drops():
    original, deoccluded = _features(5, 0)
    ratio = torch.tensor([0.5, 0.6, 0.7, 0.05, 0.9], dtype=torch.float64)
    grasped = torch.tensor([True, True, True, True, False])
    paired = torch.tensor([True, False, True, True, True])
    torch.manual_seed(0)
    loss = MultiLevelEnhancementLoss(AttentionAdapter(12, num_heads=2).double(), detach_deoccluded=False)

    def run(orig, deocc, grasp, pair):
        orig = {k: v.clone().requires_grad_(True) for k, v in orig.items()}
        deocc = {k: v.clone().requires_grad_(True) for k, v in deocc.items()}
        loss.zero_grad()
        out = loss(orig, deocc, ratio, grasp, pair)
        out.total.backward()
        return out, orig, deocc, [p.grad.clone() for p in loss.parameters()]

    with_flag, o1, d1, p1 = run(original, deoccluded, grasped, paired)
    # the same sample dropped by eq. 8 instead (not grasping): the same value and gradients
    dropped, o2, d2, p2 = run(original, deoccluded, grasped & paired, None)
    assert torch.equal(with_flag.total, dropped.total) and with_flag.total > 0
    for k in ENHANCEMENT_LEVELS:
        assert torch.equal(o1[k].grad, o2[k].grad) and torch.equal(d1[k].grad, d2[k].grad)
        assert (o1[k].grad[1] == 0).all() and (d1[k].grad[1] == 0).all()  # the unpaired sample: exactly zero
        assert o1[k].grad[0].abs().sum() > 0
    for a, b in zip(p1, p2):
        torch.testing.assert_close(a, b)
    # a placeholder holding anything (even NaN) changes nothing
    nan = {k: v.clone() for k, v in deoccluded.items()}
    for v in nan.values():
        v[1] = float("nan")
    again, _, d3, p3 = run(original, nan, grasped, paired)
    assert torch.equal(again.total, with_flag.total) and all(torch.isfinite(p).all() for p in p3)
    keep = enhancement_mask(ratio, grasped) & paired
    assert keep.tolist() == [True, False, True, False, False]


def test_paired_is_checked():
    original, deoccluded = _features(3, 1)
    ratio, grasped = torch.full((3,), 0.5, dtype=torch.float64), torch.ones(3, dtype=torch.bool)
    loss = MultiLevelEnhancementLoss()
    with pytest.raises(ShapeError, match="argument 'paired'"):
        loss(original, deoccluded, ratio, grasped, torch.ones(2, dtype=torch.bool))
    with pytest.raises(DTypeError, match="argument 'paired' expected a bool tensor"):
        loss(original, deoccluded, ratio, grasped, torch.ones(3))
