"""UniHOPE's object-switcher loss (eq. 2): BCE of one logit == two-class softmax cross-entropy; label checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.losses import UNIHOPE_SWITCH_WEIGHT, grasp_switch_loss


@given(seed=st.integers(0, 10_000), b=st.integers(1, 16))
def test_equals_eq2_two_class_cross_entropy(seed, b):
    """eq. (2) on logits (z0, z1) is BCE on z1 - z0; the mean over the batch."""
    g = torch.Generator().manual_seed(seed)
    two = 3 * torch.randn(b, 2, generator=g, dtype=torch.float64)
    grasped = torch.rand(b, generator=g) < 0.5
    want = F.cross_entropy(two, grasped.long())
    torch.testing.assert_close(grasp_switch_loss(two[:, 1] - two[:, 0], grasped), want)


def test_known_values_and_label_types():
    z = torch.tensor([0.0, 2.0, -1.0])
    labels = torch.tensor([True, True, False])
    want = (math.log(2) + math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0))) / 3
    assert math.isclose(float(grasp_switch_loss(z, labels)), want, rel_tol=1e-6)
    for same in (labels.long(), labels.float(), labels.to(torch.uint8), labels.double()):
        assert torch.equal(grasp_switch_loss(z, same), grasp_switch_loss(z, labels))
    assert grasp_switch_loss(z.double(), labels).dtype == torch.float64
    assert UNIHOPE_SWITCH_WEIGHT == 10.0


def test_gradcheck():
    z = torch.randn(5, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([True, False, True, True, False])
    assert torch.autograd.gradcheck(lambda x: grasp_switch_loss(x, labels), [z])


def test_bad_inputs_name_the_argument():
    z = torch.zeros(3)
    fn = r"grasp_switch_loss\(\)"
    for bad in (torch.tensor([0.0, 0.5, 1.0]), torch.tensor([0, 2, 1]), torch.tensor([-1, 0, 1]),
                torch.tensor([0.0, float("nan"), 1.0])):  # fmt: skip
        with pytest.raises(ValueRangeError, match=rf"{fn}: argument 'grasped' expected grasp labels"):
            grasp_switch_loss(z, bad)
    with pytest.raises(ShapeError, match=rf"{fn}: argument 'grasped'"):
        grasp_switch_loss(z, torch.ones(4, dtype=torch.bool))
    with pytest.raises(ShapeError, match="argument 'logit'"):
        grasp_switch_loss(torch.zeros(3, 1), torch.ones(3, dtype=torch.bool))
    with pytest.raises(DTypeError, match="argument 'logit'"):
        grasp_switch_loss(torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.bool))
    with pytest.raises(DTypeError, match="argument 'grasped'"):
        grasp_switch_loss(z, [True, False, True])
