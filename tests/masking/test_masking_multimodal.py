"""MultiMAE's Dirichlet allocation across modalities."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from test_masking_contract import check_contract

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.masking import MultiModalMasker, allocate_tokens, sample_dirichlet
from hoimask.masking.multimodal import _sample_gamma


@pytest.mark.parametrize("alpha", [0.3, 1.0, 2.5])
def test_gamma_moments(alpha):
    x = _sample_gamma(torch.full((40000,), alpha), torch.Generator().manual_seed(0), torch.device("cpu"))
    assert (x > 0).all()
    assert abs(x.mean().item() - alpha) < 0.05 * max(alpha, 1)
    assert abs(x.var().item() - alpha) < 0.1 * max(alpha, 1)


def test_dirichlet_moments():
    p = sample_dirichlet([1.0, 1.0], 20000, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(p.sum(1), torch.ones(20000, dtype=torch.float64))
    assert abs(p[:, 0].mean().item() - 0.5) < 0.01
    assert abs(p[:, 0].var().item() - 1 / 12) < 0.005  # Dirichlet(1, 1) marginal is uniform
    q = sample_dirichlet([2.0, 1.0, 1.0], 20000, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(q.mean(0), torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64), atol=0.01)
    with pytest.raises(ValueRangeError, match="alpha"):
        sample_dirichlet([1.0, 0.0], 3)


@given(st.integers(1, 5), st.integers(1, 30), st.data())
def test_allocation_is_exact_and_capped(M, N, data):
    L = data.draw(st.integers(0, M * N))
    seed = data.draw(st.integers(0, 2**31 - 1))
    p = sample_dirichlet([0.5] * M, 8, generator=torch.Generator().manual_seed(seed))
    counts = allocate_tokens(p, L, [N] * M)
    assert (counts.sum(1) == L).all() and (counts >= 0).all() and (counts <= N).all()
    if L <= N:  # no capping: within one token of the proportional share
        assert ((counts - p * L).abs() < 1.0 + 1e-9).all()


@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 5), st.floats(0.0, 0.95), st.integers(0, 2**31 - 1))
def test_multimodal_masker_contract(M, gh, gw, ratio, seed):
    masker = MultiModalMasker(num_modalities=M, mask_ratio=ratio)
    out = masker(3, (gh, gw), generator=torch.Generator().manual_seed(seed))
    check_contract(out, 3, M * gh * gw, masker.num_keep(M * gh * gw))


def test_multimodal_visible_split_varies_and_is_reproducible():
    masker = MultiModalMasker(num_modalities=2, mask_ratio=0.75)
    a = masker(500, (14, 14), generator=torch.Generator().manual_seed(0))
    b = masker(500, (14, 14), generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.mask, b.mask)
    rgb_visible = (~a.mask[:, :196]).sum(1).double() / 98
    assert rgb_visible.min() < 0.1 and rgb_visible.max() > 0.9  # Dirichlet(1, 1): anything from 0 to 1
    assert abs(rgb_visible.mean().item() - 0.5) < 0.05


def test_allocate_tokens_checks_shapes():
    with pytest.raises(ShapeError, match="'capacity'"):
        allocate_tokens(torch.full((2, 3), 1 / 3), 4, [5, 5])
    with pytest.raises(ShapeError, match="'proportions'"):
        allocate_tokens(torch.full((3,), 1 / 3), 4, [5, 5, 5])


@given(st.integers(1, 5), st.data())
def test_allocate_tokens_with_any_valid_proportions_sums_to_L(M, data):
    rows = data.draw(st.lists(st.lists(st.floats(0.0, 1.0), min_size=M, max_size=M).filter(lambda r: sum(r) > 0),
                              min_size=1, max_size=4))
    p = torch.tensor(rows, dtype=torch.float64)
    p = p / p.sum(1, keepdim=True)
    capacity = data.draw(st.lists(st.integers(0, 20), min_size=M, max_size=M))
    L = data.draw(st.integers(0, sum(capacity)))
    counts = allocate_tokens(p.float() if data.draw(st.booleans()) else p, L, capacity)
    assert (counts.sum(1) == L).all() and (counts >= 0).all() and (counts <= torch.tensor(capacity)).all()


@given(st.integers(2, 5), st.data())
def test_allocate_tokens_rejects_invalid_inputs(M, data):
    p = torch.full((2, M), 1.0 / M, dtype=torch.float64)
    cap = [4] * M
    m = data.draw(st.integers(0, M - 1))
    bad = p.clone()
    bad[1, m] = data.draw(st.sampled_from([float("nan"), float("inf"), -0.25]))
    with pytest.raises(ValueRangeError, match=r"allocate_tokens\(\): argument 'proportions'"):
        allocate_tokens(bad, 3, cap)
    with pytest.raises(ValueRangeError, match=r"'proportions' expected rows summing to 1, got row 0"):
        allocate_tokens(p * data.draw(st.sampled_from([0.5, 1.5, 0.0])), 3, cap)
    with pytest.raises(ValueRangeError, match=rf"'capacity\[{m}\]' expected an int in \[0, inf\], got -1"):
        allocate_tokens(p, 3, [-1 if i == m else 4 for i in range(M)])
    over = data.draw(st.integers(4 * M + 1, 4 * M + 100))
    with pytest.raises(ValueRangeError, match=rf"'num_keep' expected an int in \[0, {4 * M}\], got {over}"):
        allocate_tokens(p, over, cap)
    with pytest.raises(ValueRangeError, match="'num_keep'.*got -1"):
        allocate_tokens(p, -1, cap)
    with pytest.raises(DTypeError, match="'num_keep'"):
        allocate_tokens(p, 2.0, cap)
    with pytest.raises(DTypeError, match="'proportions'"):
        allocate_tokens(torch.ones(2, M, dtype=torch.int64), 1, cap)
