"""UniHOPE's evaluation in the Evaluator: grasp-status split, switcher accuracy, ADD-0.5D per object (hand-computed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.metrics import Evaluator
from hoimask.metrics.unihope import per_object_add, switcher_correct

NAN = float("nan")


def _inputs(**extra) -> dict:
    """4 samples; every predicted joint moved by 10, 20, 40, 80 mm along x (so MJE = that, RR-MJE = 0);
    object translations off by 10, 60, 60, 10 mm for a 100 mm object (ADD = the offset: pass, fail, fail, pass)."""
    g = torch.Generator().manual_seed(0)
    gt = torch.randn(4, 21, 3, generator=g, dtype=torch.float64) * 0.05 + torch.tensor([0.0, 0.0, 0.5])
    shift = torch.tensor([0.01, 0.02, 0.04, 0.08], dtype=torch.float64)
    pred = gt + shift[:, None, None] * torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    R = torch.eye(3, dtype=torch.float64).expand(4, 3, 3)
    t = torch.tensor([[0.0, 0.0, 0.5]], dtype=torch.float64).expand(4, 3)
    off = torch.tensor([0.01, 0.06, 0.06, 0.01], dtype=torch.float64)
    return dict(pred_joints=pred, gt_joints=gt, pred_obj_R=R, pred_obj_t=t + off[:, None] * torch.tensor([1.0, 0, 0]),
                gt_obj_R=R, gt_obj_t=t, obj_points=torch.randn(4, 30, 3, generator=g, dtype=torch.float64) * 0.02,
                obj_diameter=torch.full((4,), 0.1, dtype=torch.float64), object_name=["a", "a", "b", "b"],
                hand_only=torch.zeros(4, dtype=torch.bool), **extra)


def test_grasp_split_switcher_and_objects_hand_computed():
    ev = Evaluator()
    ev.update(**_inputs(grasped=torch.tensor([1.0, 0.0, 1.0, NAN]),  # sample 3: no label
                        grasp_probability=torch.tensor([0.9, 0.5, 0.4, 0.2])))
    r = ev.compute()
    assert r["mje"] == pytest.approx(37.5) and r["hand_object/num_samples"] == 4  # has_object: no split
    assert r["grasping/num_samples"] == 2 and r["not_grasping/num_samples"] == 1
    assert r["grasping/mje"] == pytest.approx(25.0) and r["not_grasping/mje"] == pytest.approx(20.0)
    assert r["grasping/rr_mje"] == pytest.approx(0.0, abs=1e-9)
    only = Evaluator()  # the group's AUC is that of its samples alone
    only.update(**{k: (v[[0, 2]] if isinstance(v, torch.Tensor) else v[0::2]) for k, v in _inputs().items()})
    assert r["grasping/jauc"] == pytest.approx(only.compute()["jauc"]) != pytest.approx(r["jauc"])
    # switcher: predicted [grasp, grasp (0.5 counts), no, no] vs labels [1, 0, 1, ?]: right, wrong, wrong, -
    assert r["switcher_accuracy"] == pytest.approx(100 / 3)
    assert r["grasping/switcher_accuracy"] == pytest.approx(50.0) and r["not_grasping/switcher_accuracy"] == 0.0
    # ADD-0.5D [100, 0, 0, 100]; per object without the sample labelled not grasping (1): a = {0}, b = {2, 3}
    assert r["add_0.5d"] == pytest.approx(50.0)
    assert r["object_a/add_0.5d"] == 100.0 and r["object_a/num_samples"] == 1
    assert r["object_b/add_0.5d"] == 50.0 and r["object_b/num_samples"] == 2
    assert r["add_0.5d_mean_over_objects"] == pytest.approx(75.0)
    assert r["grasping/add_0.5d"] == pytest.approx(50.0)  # samples 0 and 2
    text = ev.format_tables()
    assert "By grasp status (UniHOPE Table 2 layout" in text and "Switcher acc." in text
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert rows["hand-object"].split("|")[2].strip() == "2" and rows["hand-only"].split("|")[2].strip() == "1"
    assert rows["a"].split("|")[3].strip() == "100.00" and rows["b"].split("|")[3].strip() == "50.00"
    assert rows["mean over objects"].split("|")[3].strip() == "75.00"
    assert rows["hand-object"].split("|")[-2].strip() == "50.00"  # the switcher column, last


def test_a_model_without_switcher_and_samples_without_labels():
    ev = Evaluator()
    ev.update(**_inputs(grasped=[True, None, False, None]))
    r = ev.compute()
    assert not any("switcher" in k for k in r)  # no row, no zeros
    assert r["grasping/num_samples"] == 1 and r["not_grasping/num_samples"] == 1
    assert r["grasping/mje"] == pytest.approx(10.0) and r["not_grasping/mje"] == pytest.approx(40.0)
    assert r["object_a/add_0.5d"] == 50.0 and r["object_a/num_samples"] == 2  # unlabelled samples count
    assert r["object_b/add_0.5d"] == 100.0 and r["object_b/num_samples"] == 1  # sample 2 (not grasping) left out
    text = ev.format_tables()
    assert "By grasp status" in text and "Switcher" not in text
    # a batch with no labels at all: no grasp group, no grasp table; objects over every sample
    bare = Evaluator()
    bare.update(**_inputs())
    b = bare.compute()
    assert "grasping/num_samples" not in b and "not_grasping/num_samples" not in b
    assert b["object_b/add_0.5d"] == 50.0 and b["add_0.5d_mean_over_objects"] == 50.0
    assert "By grasp status" not in bare.format_tables() and "ADD-0.5D per object" in bare.format_tables()
    # labelled and unlabelled batches mix; the switcher is scored on the batches that have it
    bare.update(**_inputs(grasped=torch.tensor([True, True, False, False]),
                          grasp_probability=np.array([0.7, 0.2, 0.1, 0.6])))
    m = bare.compute()
    assert m["num_samples"] == 8 and m["grasping/num_samples"] == 2 and m["switcher_accuracy"] == 50.0


def test_bad_grasp_inputs_are_named_and_store_nothing():
    ev = Evaluator()
    with pytest.raises(ValueRangeError, match="argument 'grasped' expected 0, 1"):
        ev.update(**_inputs(grasped=torch.tensor([0, 1, 2, 0])))
    with pytest.raises(ShapeError, match=r"argument 'grasped' expected shape \(4,\)"):
        ev.update(**_inputs(grasped=torch.ones(3, dtype=torch.bool)))
    with pytest.raises(DTypeError, match="argument 'grasped'"):
        ev.update(**_inputs(grasped="yes"))
    with pytest.raises(ValueRangeError, match="argument 'grasp_probability' expected probabilities"):
        ev.update(**_inputs(grasped=torch.ones(4, dtype=torch.bool), grasp_probability=torch.tensor([0.1, NAN, 0, 1])))
    with pytest.raises(ValueRangeError, match="'grasp_probability' needs the ground-truth 'grasped'"):
        ev.update(**_inputs(grasp_probability=torch.full((4,), 0.5)))
    with pytest.raises(DTypeError, match="argument 'grasp_probability'"):
        ev.update(**_inputs(grasped=torch.ones(4, dtype=torch.bool), grasp_probability=torch.ones(4, dtype=torch.long)))
    assert ev.compute() == {"num_samples": 0.0}


def test_helpers_known_values():
    right = switcher_correct(torch.tensor([0.5, 0.49, 1.0]), np.array([1.0, 1.0, 0.0]), fn="t")
    assert right.tolist() == [100.0, 0.0, 0.0]
    names = np.array(["x", "", "y", "x"], dtype=object)
    out = per_object_add(np.array([100.0, 100.0, NAN, 0.0]), names, np.zeros(4, dtype=bool))
    assert out == {"object_x/add_0.5d": 50.0, "object_x/num_samples": 2.0, "add_0.5d_mean_over_objects": 50.0}
    assert per_object_add(None, names, np.zeros(4, dtype=bool)) == {}
