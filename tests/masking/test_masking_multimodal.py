"""MultiMAE's Dirichlet allocation across modalities."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from test_masking_contract import check_contract

from hoimask._checks import ShapeError, ValueRangeError
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
