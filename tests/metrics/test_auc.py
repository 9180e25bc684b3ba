"""PCK curve / AUC: limits, a hand-worked value, EvalUtil agreement, accumulation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import ShapeError, ValueRangeError
from hoimask.metrics import PCKAccumulator, pck_auc


def _eval_util_reference(errors: np.ndarray, lo: float, hi: float, steps: int):
    """HO3D/FreiHAND EvalUtil.get_measures, re-derived with explicit loops."""
    thresholds = np.linspace(lo, hi, steps)
    norm = np.trapezoid(np.ones_like(thresholds), thresholds)
    aucs, curves = [], []
    for k in range(errors.shape[1]):
        curve = np.array([np.mean(errors[:, k] <= t) for t in thresholds])
        curves.append(curve)
        aucs.append(np.trapezoid(curve, thresholds) / norm)
    return np.mean(aucs), np.mean(curves, axis=0), thresholds


def test_limits():
    assert float(pck_auc(torch.zeros(5, 21)).auc) == pytest.approx(1.0)
    assert float(pck_auc(torch.full((5, 21), 0.0501)).auc) == 0.0
    # error == hi counts only at the last threshold ("<="): half of the last trapezoid
    at_hi = pck_auc(torch.full((5, 21), 0.05, dtype=torch.float64))
    assert float(at_hi.auc) == pytest.approx(0.5 / 99)


def test_hand_worked_value():
    # thresholds [0, 0.5, 1]; error 0.5 -> PCK [0, 1, 1] ("<=") -> area 0.75
    r = pck_auc(torch.tensor([[0.5]], dtype=torch.float64), lo=0.0, hi=1.0, steps=3)
    assert float(r.auc) == pytest.approx(0.75)
    assert torch.equal(r.curve, torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64))
    assert torch.allclose(r.thresholds, torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    # two keypoints, errors 0 and 2 (beyond hi): AUCs 1 and 0 -> mean 0.5
    r2 = pck_auc(np.array([[0.0, 2.0]]), lo=0.0, hi=1.0, steps=3)
    assert isinstance(r2.auc, np.ndarray) and float(r2.auc) == pytest.approx(0.5)


@given(S=st.integers(1, 30), K=st.integers(1, 8), seed=st.integers(0, 10_000), steps=st.integers(2, 120))
def test_matches_eval_util(S, K, seed, steps):
    rng = np.random.default_rng(seed)
    errors = rng.uniform(0.0, 0.07, size=(S, K))
    errors[rng.random((S, K)) < 0.1] = 0.025  # values exactly on some thresholds
    auc, curve, th = _eval_util_reference(errors, 0.0, 0.05, steps)
    r = pck_auc(errors, 0.0, 0.05, steps)
    assert float(r.auc) == pytest.approx(auc, abs=1e-12)
    np.testing.assert_allclose(r.curve, curve, atol=1e-12)
    np.testing.assert_allclose(r.thresholds, th)


def test_mm_range_equals_m_range():
    rng = np.random.default_rng(3)
    e = rng.uniform(0, 0.06, size=(40, 21))
    assert float(pck_auc(e).auc) == pytest.approx(float(pck_auc(e * 1000, 0.0, 50.0, 100).auc), abs=1e-12)


def test_accumulator_equals_one_shot():
    rng = np.random.default_rng(4)
    e = rng.uniform(0, 0.06, size=(50, 21))
    acc = PCKAccumulator(21)
    for chunk in np.array_split(e, 4):
        acc.update(torch.from_numpy(chunk))
    res = acc.result()
    one = pck_auc(e)
    assert float(res.auc) == pytest.approx(float(one.auc), abs=1e-12)
    np.testing.assert_allclose(res.curve.numpy(), one.curve, atol=1e-12)
    assert PCKAccumulator(3).result() is None


def test_errors():
    with pytest.raises(ShapeError, match="errors"):
        pck_auc(torch.zeros(3))
    with pytest.raises(ValueRangeError, match="hi"):
        pck_auc(torch.zeros(3, 2), lo=0.05, hi=0.05)
    with pytest.raises(ValueRangeError, match="steps"):
        pck_auc(torch.zeros(3, 2), steps=1)
    with pytest.raises(ValueRangeError, match="errors"):
        pck_auc(torch.zeros(0, 2))
    with pytest.raises(ShapeError, match="errors"):
        PCKAccumulator(21).update(torch.zeros(4, 20))
    for bad in (0, -1, 2.5):  # not truncated to an int, nor left to fail inside torch.zeros
        with pytest.raises(ValueRangeError, match="num_keypoints"):
            PCKAccumulator(bad)
