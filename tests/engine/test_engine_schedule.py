import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import DTypeError, ValueRangeError
from hoimask.engine import WarmupCosineSchedule, warmup_cosine_factor


def test_known_values():
    kw = dict(total_steps=100, warmup_steps=10)
    assert warmup_cosine_factor(0, **kw) == pytest.approx(0.1)
    assert warmup_cosine_factor(9, **kw) == pytest.approx(1.0)
    assert warmup_cosine_factor(10, **kw) == pytest.approx(1.0)
    assert warmup_cosine_factor(55, **kw) == pytest.approx(0.5)  # half-way through the cosine
    assert warmup_cosine_factor(100, **kw) == pytest.approx(0.0)
    assert warmup_cosine_factor(500, **kw, min_lr_ratio=0.1) == pytest.approx(0.1)


def test_paper_late_decay():
    kw = dict(total_steps=50_000, warmup_steps=1_000, decay_start=0.72)
    assert warmup_cosine_factor(20_000, **kw) == 1.0
    assert warmup_cosine_factor(35_999, **kw) == 1.0
    assert warmup_cosine_factor(36_001, **kw) < 1.0
    mid = 36_000 + 7_000
    assert warmup_cosine_factor(mid, **kw) == pytest.approx(0.5)


@given(
    total=st.integers(1, 500),
    warm_frac=st.floats(0, 1),
    decay_start=st.floats(0, 1),
    min_ratio=st.floats(0, 1),
)
def test_monotone_after_warmup_and_bounded(total, warm_frac, decay_start, min_ratio):
    warm = int(warm_frac * total)
    f = [warmup_cosine_factor(s, total_steps=total, warmup_steps=warm, decay_start=decay_start,
                              min_lr_ratio=min_ratio) for s in range(total + 2)]
    assert all(0 < v <= 1 + 1e-12 for v in f[:warm])
    assert all(a < b for a, b in zip(f[:warm], f[1:warm]))
    after = f[warm:]
    assert all(b <= a + 1e-12 for a, b in zip(after, after[1:]))
    assert all(min_ratio - 1e-12 <= v <= 1 + 1e-12 for v in after)
    assert f[-1] == pytest.approx(min_ratio)


def test_scheduler_matches_function_per_group():
    p1, p2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p1], "lr": 1.0}, {"params": [p2], "lr": 0.5}], lr=1.0)
    sched = WarmupCosineSchedule(opt, total_steps=20, warmup_steps=5, decay_start=0.5, min_lr_ratio=0.1)
    for step in range(25):
        f = warmup_cosine_factor(step, total_steps=20, warmup_steps=5, decay_start=0.5, min_lr_ratio=0.1)
        assert opt.param_groups[0]["lr"] == pytest.approx(f)
        assert opt.param_groups[1]["lr"] == pytest.approx(0.5 * f)
        opt.step()
        sched.step()


def test_state_dict_round_trip_weights_only(tmp_path):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupCosineSchedule(opt, total_steps=20, warmup_steps=5)
    for _ in range(7):
        opt.step()
        sched.step()
    torch.save(sched.state_dict(), tmp_path / "s.pt")
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched2 = WarmupCosineSchedule(opt2, total_steps=20, warmup_steps=5)
    sched2.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    opt2.step()
    sched2.step()
    opt.step()
    sched.step()
    assert math.isclose(sched.get_last_lr()[0], sched2.get_last_lr()[0])


@pytest.mark.parametrize(
    "kwargs, err",
    [
        (dict(total_steps=0, warmup_steps=0), ValueRangeError),
        (dict(total_steps=10, warmup_steps=11), ValueRangeError),
        (dict(total_steps=10, warmup_steps=1, decay_start=1.5), ValueRangeError),
        (dict(total_steps=10, warmup_steps=1, min_lr_ratio=-0.1), ValueRangeError),
        (dict(total_steps=10.0, warmup_steps=1), DTypeError),
    ],
)
def test_bad_arguments(kwargs, err):
    with pytest.raises(err, match="warmup_cosine_factor"):
        warmup_cosine_factor(0, **kwargs)


def test_negative_step():
    with pytest.raises(ValueRangeError, match="step"):
        warmup_cosine_factor(-1, total_steps=10, warmup_steps=1)
