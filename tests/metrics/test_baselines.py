"""ConstantBaselines: the trivial predictors every evaluation is compared with."""

import pytest
import torch

from hoimask._checks import ValueRangeError
from hoimask.geometry import axis_angle_to_matrix
from hoimask.metrics import ConstantBaselines, Evaluator, baseline_ratios, format_baseline_table


def test_fit_predict_and_state_roundtrip(generator):
    joints = torch.randn(10, 21, 3, generator=generator, dtype=torch.float64)
    joints[3] = float("nan")  # skipped
    R = axis_angle_to_matrix(0.1 * torch.randn(10, 3, generator=generator, dtype=torch.float64))
    t = torch.randn(10, 3, generator=generator, dtype=torch.float64)
    has = torch.tensor([True] * 8 + [False] * 2)
    base = ConstantBaselines()
    base.update(joints[:6], R[:6], t[:6], has[:6])
    base.update(joints[6:], R[6:], t[6:], has[6:])
    assert base.num_samples == 9
    state = base.state_dict()
    ok = torch.isfinite(joints).flatten(1).all(1)
    torch.testing.assert_close(state["mean_root"], joints[ok, 0].mean(0))
    torch.testing.assert_close(state["mean_relative_joints"], (joints[ok] - joints[ok, :1]).mean(0))
    torch.testing.assert_close(state["mean_object_translation"], t[has].mean(0))
    Rm = state["mean_object_rotation"]
    torch.testing.assert_close(Rm @ Rm.T, torch.eye(3, dtype=torch.float64))
    assert torch.linalg.det(Rm) > 0
    pred = ConstantBaselines.from_state_dict(state).predict(4, dtype=torch.float64)
    torch.testing.assert_close(pred["mean_pose"]["joints"][2], state["mean_root"] + state["mean_relative_joints"])
    torch.testing.assert_close(pred["wrist"]["joints"][1], state["mean_root"].expand(21, 3))
    torch.testing.assert_close(pred["wrist"]["object_rotation"][0], Rm)
    # anchored at given wrists: the hand there, the object at the wrist + the mean offset (samples with both)
    both = has & ok
    offset = (t[both] - joints[both, 0]).mean(0)
    torch.testing.assert_close(state["mean_object_offset"], offset)
    root = torch.randn(4, 3, generator=generator, dtype=torch.float64)
    anchored = ConstantBaselines.from_state_dict(state).predict(4, dtype=torch.float64, root=root)
    torch.testing.assert_close(anchored["mean_pose"]["joints"], root[:, None] + state["mean_relative_joints"])
    torch.testing.assert_close(anchored["wrist"]["object_translation"], root + offset)
    old = {k: v for k, v in state.items() if k not in ("mean_object_offset", "num_offsets")}
    with pytest.raises(ValueRangeError, match="root"):
        ConstantBaselines.from_state_dict(old).predict(4, root=root)


def test_empty_and_bad_state_raise():
    with pytest.raises(ValueRangeError, match="no training sample"):
        ConstantBaselines().state_dict()
    with pytest.raises(ValueRangeError, match="lacks"):
        ConstantBaselines.from_state_dict({})


def test_a_perfect_model_has_ratio_zero_and_the_constant_ratio_one(generator):
    joints = torch.randn(6, 21, 3, generator=generator)
    base = ConstantBaselines()
    base.update(joints)
    model, const = Evaluator(), Evaluator()
    model.update(joints, joints)
    const.update(base.predict(6)["mean_pose"]["joints"], joints)
    ratios = baseline_ratios(model.compute(), {"mean_pose": const.compute()})
    assert ratios["mean_pose"]["rr_mje"] == 0.0 and "oce" not in ratios["mean_pose"]
    table = format_baseline_table(const.compute(), {"mean_pose": const.compute()})
    assert "| rr_mje |" in table and "1.00" in table
