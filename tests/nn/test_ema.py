"""EMA teacher (DINO / iBOT, HandMIM §2.3): momentum schedule, exact update, no gradients, errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.nn import make_teacher, teacher_momentum, update_teacher


def net() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def test_momentum_schedule_end_points_and_cosine():
    assert teacher_momentum(0, 1000) == 0.996
    assert teacher_momentum(1000, 1000) == 1.0 and teacher_momentum(5000, 1000) == 1.0
    assert math.isclose(teacher_momentum(500, 1000), 0.998, rel_tol=0, abs_tol=1e-12)
    assert math.isclose(teacher_momentum(250, 1000), 1 - 0.004 * (1 + math.cos(math.pi / 4)) / 2, abs_tol=1e-12)
    values = [teacher_momentum(s, 100) for s in range(101)]
    assert all(a <= b for a, b in zip(values, values[1:]))
    assert teacher_momentum(3, 10, base=0.5, final=0.5) == 0.5


@given(step=st.integers(0, 10_000), total=st.integers(1, 10_000), base=st.floats(0.0, 1.0))
def test_momentum_stays_between_base_and_one(step, total, base):
    m = teacher_momentum(step, total, base=base)
    assert base - 1e-12 <= m <= 1.0 + 1e-12


def test_momentum_errors_name_the_argument():
    with pytest.raises(ValueRangeError, match="'step'"):
        teacher_momentum(-1, 10)
    with pytest.raises(ValueRangeError, match="'total_steps'"):
        teacher_momentum(0, 0)
    with pytest.raises(DTypeError, match="'step'"):
        teacher_momentum(1.5, 10)
    with pytest.raises(ValueRangeError, match="'base'"):
        teacher_momentum(0, 10, base=1.5)


def test_update_is_exactly_the_ema_formula_and_copies_buffers():
    torch.manual_seed(0)
    student = net()
    teacher = make_teacher(student)
    assert not any(p.requires_grad for p in teacher.parameters())
    for p in student.parameters():  # make them differ
        p.data.add_(torch.randn_like(p))
    student.train()(torch.randn(8, 3))  # moves the BatchNorm statistics
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    m = 0.9
    update_teacher(teacher, student, m)
    s_state = student.state_dict()
    for name, p in teacher.named_parameters():
        torch.testing.assert_close(p, m * before[name] + (1 - m) * s_state[name], rtol=1e-6, atol=1e-9)
    for name, b in teacher.named_buffers():
        assert torch.equal(b, s_state[name])
    assert all(p.requires_grad for p in student.parameters())


def test_momentum_one_keeps_and_zero_copies():
    torch.manual_seed(0)
    student = net()
    teacher = make_teacher(student)
    for p in student.parameters():
        p.data.add_(1.0)
    frozen = [p.clone() for p in teacher.parameters()]
    update_teacher(teacher, student, 1.0)
    assert all(torch.equal(a, b) for a, b in zip(teacher.parameters(), frozen))
    update_teacher(teacher, student, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(teacher.parameters(), student.parameters()))


def test_teacher_receives_no_gradient():
    torch.manual_seed(0)
    student = net()
    teacher = make_teacher(student)
    x = torch.randn(4, 3)
    loss = (student(x) - teacher(x)).square().sum() + teacher(x).sum()
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())
    # the copy is independent of the student
    student[0].weight.data.zero_()
    assert teacher[0].weight.abs().sum() > 0


def test_update_errors():
    student, other = net(), nn.Linear(3, 2)
    teacher = make_teacher(student)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueRangeError, match="'momentum'"):
            update_teacher(teacher, student, bad)
    with pytest.raises(DTypeError, match="'momentum'"):
        update_teacher(teacher, student, "0.9")
    with pytest.raises(ValueRangeError, match="'teacher'.*requires_grad_"):
        update_teacher(net(), student, 0.9)  # a trainable "teacher"
    with pytest.raises(ShapeError, match="'teacher' and 'student'"):
        update_teacher(make_teacher(other), student, 0.9)
    wide = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))
    with pytest.raises(ShapeError, match="'0.weight'"):
        update_teacher(make_teacher(wide), student, 0.9)
    with pytest.raises(DTypeError, match="'student'"):
        update_teacher(teacher, [1, 2], 0.9)
    with pytest.raises(DTypeError, match="'student'"):
        make_teacher("not a module")
