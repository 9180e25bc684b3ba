"""DINO / iBOT projection head, teacher temperature, centring and sharpening (HandMIM §2.3, §3.1)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import ShapeError, ValueRangeError
from hoimask.nn import DINOHead, TeacherCentering, center_and_sharpen, teacher_temperature


def test_head_default_sizes_are_dino_ibot():
    head = DINOHead(384, 256)
    linears = [m for m in head.mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(384, 2048), (2048, 2048), (2048, 256)]
    assert head.last_layer.weight_v.shape == (256, 256)
    assert not head.last_layer.weight_g.requires_grad  # norm_last_layer: prototypes of norm 1
    assert {"last_layer.weight_g", "last_layer.weight_v"} <= set(head.state_dict())  # DINO's key names


def test_head_output_is_a_cosine_to_unit_prototypes():
    torch.manual_seed(0)
    head = DINOHead(16, 12, hidden_dim=32, bottleneck_dim=8)
    x = torch.randn(3, 7, 16)
    out = head(x)
    assert out.shape == (3, 7, 12)
    assert out.abs().max() <= 1 + 1e-6  # unit bottleneck vector · unit prototype
    # weight normalisation: rescaling a prototype does not change the scores
    with torch.no_grad():
        head.last_layer.weight_v.mul_(torch.rand(12, 1) * 5 + 0.1)
    torch.testing.assert_close(head(x), out)
    # and rescaling the bottleneck does not either (L2 normalised before the prototypes)
    with torch.no_grad():
        head.mlp[-1].weight.mul_(3.0)
        head.mlp[-1].bias.mul_(3.0)
    torch.testing.assert_close(head(x), out)


def test_head_gradients_and_learned_norms():
    head = DINOHead(8, 4, hidden_dim=16, bottleneck_dim=6, num_layers=1, norm_last_layer=False)
    assert sum(isinstance(m, torch.nn.Linear) for m in head.mlp) == 1
    head(torch.randn(5, 8)).square().sum().backward()
    assert head.last_layer.weight_g.grad is not None and head.last_layer.weight_v.grad is not None
    assert head.mlp[0].weight.grad.abs().sum() > 0


def test_head_errors():
    with pytest.raises(ShapeError, match="'x'"):
        DINOHead(8, 4, hidden_dim=16, bottleneck_dim=6)(torch.randn(2, 9))
    with pytest.raises(ValueRangeError, match="'out_dim'"):
        DINOHead(8, 0)
    with pytest.raises(ValueRangeError, match="'num_layers'"):
        DINOHead(8, 4, num_layers=0)


def test_teacher_temperature_warmup():
    assert teacher_temperature(0, warmup_steps=30) == 0.04
    assert abs(teacher_temperature(15, warmup_steps=30) - 0.055) < 1e-12
    assert teacher_temperature(30, warmup_steps=30) == 0.07 == teacher_temperature(10**6, warmup_steps=30)
    assert teacher_temperature(0, warmup_steps=0) == 0.07
    with pytest.raises(ValueRangeError, match="'step'"):
        teacher_temperature(-1, warmup_steps=3)
    with pytest.raises(ValueRangeError, match="'start'"):
        teacher_temperature(0, warmup_steps=3, start=0.0)


@given(shift=st.floats(-10, 10), temperature=st.floats(0.02, 2.0))
def test_center_and_sharpen_is_a_distribution_invariant_to_shifts(shift, temperature):
    logits = torch.randn(4, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    p = center_and_sharpen(logits, None, temperature)
    torch.testing.assert_close(p.sum(-1), torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(center_and_sharpen(logits + shift, None, temperature), p)
    # the centre is subtracted before the temperature
    center = torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(center_and_sharpen(logits, center, temperature),
                               torch.softmax((logits - center) / temperature, -1))


def test_sharpening_and_no_gradient():
    logits = torch.tensor([[0.0, 0.5, 1.0]], requires_grad=True)
    sharp, soft = center_and_sharpen(logits, None, 0.04), center_and_sharpen(logits, None, 1.0)
    assert sharp.max() > soft.max()
    assert not sharp.requires_grad  # targets are detached
    with pytest.raises(ShapeError, match="'center'"):
        center_and_sharpen(logits, torch.zeros(2))
    with pytest.raises(ValueRangeError, match="'temperature'"):
        center_and_sharpen(logits, None, 0.0)


def test_centering_update_is_the_ema_of_batch_means():
    centering = TeacherCentering(3, momentum=0.9, warmup_steps=10)
    assert "center" in centering.state_dict()  # persistent: resumes with the checkpoint
    a = torch.randn(2, 5, 3)  # (views or batch, tokens, K): the mean is over every leading dimension
    centering.update(a)
    torch.testing.assert_close(centering.center, 0.1 * a.reshape(-1, 3).mean(0, keepdim=True))
    b = torch.randn(4, 3)
    expected = 0.9 * centering.center + 0.1 * b.mean(0, keepdim=True)
    centering.update(b)
    torch.testing.assert_close(centering.center, expected)
    logits = torch.randn(4, 3)
    torch.testing.assert_close(centering(logits, step=5),
                               torch.softmax((logits - centering.center) / 0.055, -1))
    assert centering.student_temperature == 0.1 and centering.teacher_temperature(10) == 0.07
    with pytest.raises(ShapeError, match="'teacher_logits'"):
        centering.update(torch.randn(4, 5))
    with pytest.raises(ValueRangeError, match="'momentum'"):
        TeacherCentering(3, momentum=1.1)
