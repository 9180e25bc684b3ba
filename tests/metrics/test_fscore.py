"""F-score and the chunked exact nearest-neighbour search."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import ShapeError, ValueRangeError
from hoimask.metrics import f_score, nearest_distances, point_set_diameter
from hoimask.metrics.nearest import _chunk_sizes


def _brute(q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return (q[:, :, None] - r[:, None]).norm(dim=-1).amin(dim=2)


def test_f_score_hand_worked():
    pred = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    gt = torch.tensor([[[0.0, 0.0, 0.001]]])
    # pred->gt: 0.001 (in), ~1 (out) -> 1/2; gt->pred: 0.001 (in) -> 1; F = 2*0.5*1/1.5
    assert float(f_score(pred, gt, 0.01)) == pytest.approx(2 / 3, rel=1e-6)


def test_f_score_strict_threshold_and_zero_case():
    pred = torch.tensor([[[0.0, 0.0, 0.0]]], dtype=torch.float64)
    gt = torch.tensor([[[0.5, 0.0, 0.0]]], dtype=torch.float64)
    assert float(f_score(pred, gt, 0.5)) == 0.0  # distance == threshold is not counted (official "<")
    assert float(f_score(pred, gt, 0.5000001)) == 1.0


def test_f_score_identical_and_multi_threshold(generator):
    x = torch.rand(3, 778, 3, generator=generator)
    assert torch.equal(f_score(x, x, 0.005), torch.ones(3))
    multi = f_score(x, x + torch.tensor([0.01, 0.0, 0.0]), (0.005, 0.015))
    assert multi.shape == (3, 2)
    assert torch.allclose(multi[:, 1], torch.ones(3))
    assert bool((multi[:, 0] < 1).all())


@given(P=st.integers(1, 40), G=st.integers(1, 40), seed=st.integers(0, 10_000), th=st.floats(0.01, 0.5))
def test_f_score_symmetric(P, G, seed, th):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(2, P, 3, generator=g, dtype=torch.float64)
    b = torch.rand(2, G, 3, generator=g, dtype=torch.float64)
    assert torch.equal(f_score(a, b, th), f_score(b, a, th))


def test_f_score_matches_reference_definition():
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 60, 3)), rng.random((2, 45, 3))
    out = f_score(a, b, 0.1)
    assert isinstance(out, np.ndarray)
    for i in range(2):
        d_ab = np.linalg.norm(a[i][:, None] - b[i][None], axis=-1)
        r = np.mean(d_ab.min(1) < 0.1)  # predicted points near the gt
        p = np.mean(d_ab.min(0) < 0.1)  # gt points matched
        ref = 0.0 if r + p == 0 else 2 * r * p / (r + p)
        assert out[i] == pytest.approx(ref)


@given(Q=st.integers(1, 50), R=st.integers(1, 50), budget=st.integers(1, 200), seed=st.integers(0, 10_000))
def test_nearest_chunked_equals_brute_force(Q, R, budget, seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(2, Q, 3, generator=g, dtype=torch.float64)
    r = torch.randn(2, R, 3, generator=g, dtype=torch.float64)
    assert torch.allclose(nearest_distances(q, r, max_elements=budget), _brute(q, r), atol=1e-12)


@given(B=st.integers(1, 8), Q=st.integers(1, 20_000), R=st.integers(1, 20_000), budget=st.integers(1, 1 << 22))
def test_chunk_sizes_respect_budget(B, Q, R, budget):
    q, r = _chunk_sizes(B, Q, R, budget)
    assert 1 <= q <= Q and 1 <= r <= R
    assert B * q * r <= max(budget, B)  # one point pair per sample is the floor


def test_nearest_exact_for_coincident_points():
    x = torch.rand(1, 500, 3, dtype=torch.float32) * 1000  # large coordinates
    assert torch.equal(nearest_distances(x, x), torch.zeros(1, 500))


def test_nearest_10k_by_10k_matches_kdtree():
    spatial = pytest.importorskip("scipy.spatial")
    rng = np.random.default_rng(1)
    a, b = rng.random((1, 10_000, 3)), rng.random((1, 10_000, 3))
    ours = nearest_distances(a, b)  # default budget: 4 Mi distances at a time
    ref, _ = spatial.cKDTree(b[0]).query(a[0], k=1)
    np.testing.assert_allclose(ours[0], ref, rtol=1e-12, atol=1e-15)


def test_nearest_gradient():
    g = torch.Generator().manual_seed(0)
    q = torch.rand(1, 7, 3, generator=g, dtype=torch.float64, requires_grad=True)
    r = torch.rand(1, 9, 3, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: nearest_distances(x, r, max_elements=4), (q,))


def test_point_set_diameter():
    cube = torch.tensor([[x, y, z] for x in (0.0, 1.0) for y in (0.0, 1.0) for z in (0.0, 1.0)])
    assert float(point_set_diameter(cube)) == pytest.approx(3**0.5)
    batch = torch.stack([cube, 2 * cube])
    assert torch.allclose(point_set_diameter(batch, max_elements=3), torch.tensor([3**0.5, 2 * 3**0.5]))


def test_errors():
    with pytest.raises(ShapeError, match="gt_points"):
        f_score(torch.zeros(2, 5, 3), torch.zeros(3, 5, 3), 0.1)
    with pytest.raises(ValueRangeError, match="threshold"):
        f_score(torch.zeros(1, 5, 3), torch.zeros(1, 5, 3), 0.0)
    with pytest.raises(ValueRangeError, match="point"):
        f_score(torch.zeros(1, 0, 3), torch.zeros(1, 5, 3), 0.1)
    with pytest.raises(ShapeError, match="reference"):
        nearest_distances(torch.zeros(1, 5, 3), torch.zeros(1, 5, 2))
    with pytest.raises(ShapeError, match="points"):
        point_set_diameter(torch.zeros(1, 0, 3))
