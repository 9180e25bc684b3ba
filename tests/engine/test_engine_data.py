import pytest
import torch
from engine_toy_training import ToyData
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import ValueRangeError
from hoimask.engine import AugmentedViews, iterate_batches, steps_per_epoch


def _take(stream, n):
    out = []
    for step, batch in stream:
        out.append((step, batch["x"]))
        if len(out) == n:
            return out


@given(start=st.integers(0, 20), batch=st.integers(1, 5))
def test_resumed_stream_equals_uninterrupted(start, batch):
    data = ToyData(n=23)
    full = _take(iterate_batches(data, batch_size=batch, seed=3), start + 6)
    resumed = _take(iterate_batches(data, batch_size=batch, seed=3, start_step=start), 6)
    for (s1, x1), (s2, x2) in zip(full[start:], resumed):
        assert s1 == s2 and torch.equal(x1, x2)


def test_epochs_differ_and_ranks_are_disjoint():
    data = ToyData(n=16)
    spe = steps_per_epoch(16, 4, 1)
    seq = _take(iterate_batches(data, batch_size=4, seed=0), 2 * spe)
    assert not torch.equal(torch.cat([x for _, x in seq[:spe]]), torch.cat([x for _, x in seq[spe:]]))
    r0 = _take(iterate_batches(data, batch_size=2, seed=0, rank=0, world_size=2), 4)
    r1 = _take(iterate_batches(data, batch_size=2, seed=0, rank=1, world_size=2), 4)
    rows0 = {tuple(r.tolist()) for _, x in r0 for r in x}
    rows1 = {tuple(r.tolist()) for _, x in r1 for r in x}
    assert len(rows0) == 8 and len(rows1) == 8 and not rows0 & rows1


def test_too_small_dataset():
    with pytest.raises(ValueRangeError, match="batch"):
        steps_per_epoch(5, 4, 2)


def _shift(sample, generator=None):
    """A toy transform: adds a random offset drawn from the generator."""
    return {**sample, "x": sample["x"] + torch.rand((), generator=generator)}


def test_augmented_views_originals_first_then_fixed_random_views():
    base = [{"x": torch.tensor(float(i))} for i in range(4)]
    views = AugmentedViews(base, _shift, repeats=3, seed=1)
    assert len(views) == 12
    assert all(views[i] is base[i] for i in range(4))  # the originals, untouched
    # every view is a fixed function of its index (resume replays it), and views differ
    assert torch.equal(views[5]["x"], AugmentedViews(base, _shift, repeats=3, seed=1)[5]["x"])
    assert not torch.equal(views[5]["x"], views[9]["x"])  # same scene (1), other view
    assert not torch.equal(views[5]["x"], AugmentedViews(base, _shift, repeats=3, seed=2)[5]["x"])
    assert int(views[9]["x"]) == 1 and torch.equal(views[-1]["x"], views[11]["x"])
    assert len(AugmentedViews(base, _shift, repeats=1)) == 4
    with pytest.raises(IndexError):
        views[12]
    with pytest.raises(ValueRangeError, match="repeats"):
        AugmentedViews(base, _shift, repeats=0)
    with pytest.raises(ValueRangeError, match="seed"):
        AugmentedViews(base, _shift, repeats=2, seed=-1)
    with pytest.raises(TypeError, match="transform"):
        AugmentedViews(base, "rotate", repeats=2)
