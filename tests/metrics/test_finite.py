"""Non-finite values in hoimask.metrics (docs/conventions.md, "Non-finite values"; issue 15 item 4).

Predictions: a NaN or infinity raises ``ValueRangeError`` naming the argument and
the first offending index. Ground truth: a non-finite entry is unannotated,
excluded from the means (the value equals the metric on the remaining data)
and counted by the ``Evaluator``.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import ValueRangeError
from hoimask.geometry import axis_angle_to_matrix
from hoimask.metrics import (
    ConstantBaselines,
    Evaluator,
    PCKAccumulator,
    add,
    add_s,
    add_within,
    center_error,
    corner_error,
    f_score,
    mpjpe,
    mpvpe,
    nearest_distances,
    object_mesh_error,
    pa_mpjpe,
    pa_mpvpe,
    pck_auc,
    point_set_diameter,
    st_align,
    st_mpjpe,
    write_ho3d_submission,
)

F64 = torch.float64
NAN, INF = float("nan"), float("inf")
WRIST, MIDDLE_MCP = 0, 9  # canonical order


def _hand(seed: int, B: int = 3, N: int = 21):
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(B, N, 3, generator=g, dtype=F64) * 0.1 + torch.tensor([0.0, 0.0, 0.6], dtype=F64)
    pred = gt + 0.01 * torch.randn(B, N, 3, generator=g, dtype=F64)
    return pred, gt


def _poses(seed: int, B: int = 3, P: int = 30):
    g = torch.Generator().manual_seed(seed)
    Rg = axis_angle_to_matrix(torch.randn(B, 3, generator=g, dtype=F64))
    Rp = axis_angle_to_matrix(0.1 * torch.randn(B, 3, generator=g, dtype=F64)) @ Rg
    tg = torch.rand(B, 3, generator=g, dtype=F64) + torch.tensor([0.0, 0.0, 0.5], dtype=F64)
    tp = tg + 0.01 * torch.randn(B, 3, generator=g, dtype=F64)
    pts = 0.05 * torch.randn(P, 3, generator=g, dtype=F64)
    return Rp, tp, Rg, tg, pts


# --------------------------------------------------------------------------- predictions raise

HAND_METRICS = {
    "mpjpe": lambda p, g: mpjpe(p, g),
    "rr_mpjpe": lambda p, g: mpjpe(p, g, root_relative=True),
    "pa_mpjpe": lambda p, g: pa_mpjpe(p, g),
    "st_mpjpe": lambda p, g: st_mpjpe(p, g),
    "mpvpe": lambda p, g: mpvpe(p, g),
    "pa_mpvpe": lambda p, g: pa_mpvpe(p, g),
}
OBJECT_METRICS = {
    "corner_error": corner_error,
    "add": add,
    "add_s": add_s,
    "object_mesh_error": object_mesh_error,
    "add_within": add_within,
}


@given(
    name=st.sampled_from(sorted(HAND_METRICS)),
    b=st.integers(0, 2),
    j=st.integers(0, 20),
    c=st.integers(0, 2),
    value=st.sampled_from([NAN, INF, -INF]),
    numpy=st.booleans(),
)
def test_one_non_finite_hand_prediction_raises_naming_pred_and_index(name, b, j, c, value, numpy):
    pred, gt = _hand(0)
    pred[b, j, c] = value
    if numpy:
        pred, gt = pred.numpy(), gt.numpy()
    with pytest.raises(ValueRangeError, match=rf"argument 'pred' must be finite.*first at index \({b}, {j}, {c}\)"):
        HAND_METRICS[name](pred, gt)


@pytest.mark.parametrize("name", sorted(OBJECT_METRICS))
@pytest.mark.parametrize("arg", ["R_pred", "t_pred", "model_points"])
def test_one_non_finite_object_prediction_or_model_point_raises(name, arg):
    Rp, tp, Rg, tg, pts = _poses(1)
    inputs = {"R_pred": Rp, "t_pred": tp, "R_gt": Rg, "t_gt": tg, "model_points": pts}
    bad = inputs[arg].clone()
    bad.view(-1)[4] = NAN
    inputs[arg] = bad
    with pytest.raises(ValueRangeError, match=rf"{name}\(\): argument '{arg}' must be finite"):
        OBJECT_METRICS[name](**inputs)


def test_other_predictions_and_inputs_that_cannot_be_excluded_raise():
    pred, gt = _hand(2)
    pred_bad = pred.clone()
    pred_bad[1, 4, 2] = NAN
    with pytest.raises(ValueRangeError, match=r"f_score\(\): argument 'pred_points'.*\(1, 4, 2\)"):
        f_score(pred_bad, gt, 0.005)
    with pytest.raises(ValueRangeError, match=r"center_error\(\): argument 't_pred'.*\(1, 2\)"):
        center_error(pred_bad[:, 4], gt[:, 4])
    with pytest.raises(ValueRangeError, match="'pred_root'"):
        mpvpe(pred, gt, pred_root=pred_bad[:, 4], gt_root=gt[:, 0])
    with pytest.raises(ValueRangeError, match="'query'"):
        nearest_distances(pred_bad, gt)
    with pytest.raises(ValueRangeError, match="'points'"):
        point_set_diameter(pred_bad)
    Rp, tp, Rg, tg, pts = _poses(3)
    for diameter in (torch.tensor([0.1, NAN, 0.1], dtype=F64), INF):
        with pytest.raises(ValueRangeError, match="'diameter'"):
            add_within(Rp, tp, Rg, tg, pts, diameter=diameter)


# --------------------------------------------------------------------------- ground truth is excluded


@given(b=st.integers(0, 2), j=st.integers(0, 20), value=st.sampled_from([NAN, INF]), seed=st.integers(0, 99))
def test_one_non_finite_gt_joint_is_excluded_from_its_sample_only(b, j, value, seed):
    pred, gt = _hand(seed)
    bad = gt.clone()
    bad[b, j, 1] = value
    keep = torch.arange(21) != j
    others = torch.arange(3) != b
    # mpjpe / pa_mpjpe: the metric of the remaining joints.
    torch.testing.assert_close(mpjpe(pred, bad)[b], mpjpe(pred[b : b + 1, keep], gt[b : b + 1, keep])[0])
    torch.testing.assert_close(pa_mpjpe(pred, bad)[b], pa_mpjpe(pred[b : b + 1, keep], gt[b : b + 1, keep])[0])
    torch.testing.assert_close(mpvpe(pred, bad)[b], mpvpe(pred[b : b + 1, keep], gt[b : b + 1, keep])[0])
    torch.testing.assert_close(pa_mpvpe(pred, bad)[b], pa_mpvpe(pred[b : b + 1, keep], gt[b : b + 1, keep])[0])
    for fn in (mpjpe, pa_mpjpe, st_mpjpe, mpvpe, pa_mpvpe):  # the other samples do not change
        assert torch.equal(fn(pred, bad)[others], fn(pred, gt)[others])
    # Root-relative: needs the root; ST: needs the wrist -> middle-MCP bone.
    rr = mpjpe(pred, bad, root_relative=True)[b]
    st_err = st_mpjpe(pred, bad)[b]
    if j == WRIST:
        assert torch.isnan(rr) and torch.isnan(st_err)
    else:
        p, g = pred[b : b + 1, keep], gt[b : b + 1, keep]
        torch.testing.assert_close(rr, mpjpe(p - pred[b : b + 1, :1], g - gt[b : b + 1, :1])[0])
        if j == MIDDLE_MCP:
            assert torch.isnan(st_err)
        else:
            aligned = st_align(pred, gt)[b, keep]
            torch.testing.assert_close(st_err, (aligned - gt[b, keep]).norm(dim=-1).mean())


def test_a_sample_without_any_annotated_joint_gets_nan_and_gradients_stay_finite():
    pred, gt = _hand(4)
    gt[1] = NAN
    gt[2, 3] = NAN
    pred.requires_grad_(True)
    for fn in (mpjpe, pa_mpjpe, st_mpjpe, mpvpe, pa_mpvpe):
        out = fn(pred, gt)
        assert torch.isnan(out[1]) and torch.isfinite(out[[0, 2]]).all(), fn.__name__
        pred.grad = None
        out[[0, 2]].sum().backward()
        assert torch.isfinite(pred.grad).all(), fn.__name__
    assert np.isnan(mpjpe(pred.detach().numpy(), gt.numpy())[1])


@given(b=st.integers(0, 2), k=st.integers(0, 39), seed=st.integers(0, 99))
def test_f_score_leaves_out_a_non_finite_gt_point(b, k, seed):
    pred, gt = _hand(seed, N=40)
    bad = gt.clone()
    bad[b, k] = NAN
    keep = torch.arange(40) != k
    got = f_score(pred, bad, [0.005, 0.015])
    torch.testing.assert_close(got[b], f_score(pred[b : b + 1], gt[b : b + 1, keep], [0.005, 0.015])[0])
    assert torch.equal(got[torch.arange(3) != b], f_score(pred, gt, [0.005, 0.015])[torch.arange(3) != b])


def test_f_score_issue_case_one_nan_no_longer_gives_zero():
    x = torch.rand(1, 50, 3, generator=torch.Generator().manual_seed(0))
    gt = x.clone()
    gt[0, 3] = NAN
    got = f_score(x, gt, 0.005)  # was 0
    torch.testing.assert_close(got, f_score(x, x[:, torch.arange(50) != 3], 0.005))
    torch.testing.assert_close(got, torch.tensor([2 * 0.98 / 1.98]))  # a = 49/50 (point 3 lost its twin), b = 1
    gt[0] = NAN
    assert torch.isnan(f_score(x, gt, 0.005)).all()  # nothing annotated: NaN, not 0


@given(b=st.integers(0, 2), what=st.sampled_from(["R", "t"]), value=st.sampled_from([NAN, INF]), seed=st.integers(0, 99))
def test_object_metrics_give_nan_for_a_sample_with_a_non_finite_gt_pose(b, what, value, seed):
    Rp, tp, Rg, tg, pts = _poses(seed)
    Rb, tb = Rg.clone(), tg.clone()
    (Rb if what == "R" else tb)[b].view(-1)[1] = value
    others = torch.arange(3) != b
    for name, fn in OBJECT_METRICS.items():
        got = fn(Rp, tp, Rb, tb, pts)
        assert torch.isnan(got[b]), name
        torch.testing.assert_close(got[others], fn(Rp[others], tp[others], Rg[others], tg[others], pts), msg=name)
    oce = center_error(tp, tb)
    assert torch.isnan(oce[b]) == (what == "t")
    torch.testing.assert_close(oce[others], center_error(tp[others], tg[others]))


# --------------------------------------------------------------------------- PCK / AUC


def test_pck_auc_issue_cases():
    with pytest.raises(ValueRangeError, match="'errors' has no finite value"):
        pck_auc(torch.tensor([[NAN]]))  # was 1.0
    assert float(pck_auc(torch.tensor([[0.1], [NAN]])).auc) == 0.0  # one error above hi: was 1.0
    torch.testing.assert_close(pck_auc(torch.tensor([[0.01], [NAN]])).auc, pck_auc(torch.tensor([[0.01]])).auc)


@given(
    S=st.integers(1, 6),
    K=st.integers(1, 5),
    holes=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 4)), max_size=8),
    seed=st.integers(0, 99),
)
def test_pck_auc_uses_each_keypoints_finite_errors_only(S, K, holes, seed):
    e = torch.rand(S, K, generator=torch.Generator().manual_seed(seed), dtype=F64) * 0.06
    for s, k in holes:
        if s < S and k < K:
            e[s, k] = NAN
    measured = [k for k in range(K) if torch.isfinite(e[:, k]).any()]
    if not measured:
        with pytest.raises(ValueRangeError):
            pck_auc(e)
        return
    per_keypoint = [pck_auc(e[torch.isfinite(e[:, k]), k : k + 1]) for k in measured]
    got = pck_auc(e)
    torch.testing.assert_close(got.auc, torch.stack([r.auc for r in per_keypoint]).mean())
    torch.testing.assert_close(got.curve, torch.stack([r.curve for r in per_keypoint]).mean(0))
    acc = PCKAccumulator(K)
    for s in range(S):
        acc.update(e[s : s + 1])
    torch.testing.assert_close(acc.result().auc, got.auc)
    assert acc.num_samples == S and acc.num_measured.tolist() == torch.isfinite(e).sum(0).tolist()


# --------------------------------------------------------------------------- Evaluator


def test_evaluator_excludes_and_counts_non_finite_ground_truth():
    pred, gt = _hand(5, B=4)
    pv, gv = _hand(6, B=4, N=60)
    Rp, tp, Rg, tg, pts = _poses(7, B=4)
    bad, bad_v, bad_t = gt.clone(), gv.clone(), tg.clone()
    bad[0, 5] = NAN  # one joint of sample 0
    bad[2] = NAN  # sample 2: no hand annotation (DexYCB joint_3d == -1)
    bad_v[2] = NAN
    bad_v[3, :4] = INF
    bad_t[1, 0] = NAN  # sample 1: object pose unknown
    ev = Evaluator()
    ev.update(pred, bad, pred_verts=pv, gt_verts=bad_v, pred_obj_R=Rp, pred_obj_t=tp, gt_obj_R=Rg, gt_obj_t=bad_t,
              obj_points=pts)  # no LinAlgError
    r = ev.compute()
    assert r["num_samples"] == 4
    assert (r["excluded_samples"], r["excluded_joints"], r["excluded_vertices"], r["excluded_objects"]) == (1, 22, 64, 1)
    hand = [0, 1, 3]
    np.testing.assert_allclose(r["mje"], 1000 * float(torch.nanmean(mpjpe(pred, bad)[hand])))
    np.testing.assert_allclose(r["pa_mje"], 1000 * float(pa_mpjpe(pred, bad)[hand].mean()))
    np.testing.assert_allclose(r["st_mje"], 1000 * float(st_mpjpe(pred, bad)[hand].mean()))
    np.testing.assert_allclose(r["mme"], 1000 * float(mpvpe(pv, bad_v)[hand].mean()))
    np.testing.assert_allclose(r["pa_mme"], 1000 * float(pa_mpvpe(pv, bad_v)[hand].mean()))
    np.testing.assert_allclose(r["f5"], 100 * float(f_score(pv, bad_v, 0.005)[hand].mean()))
    errors = (pred - bad).norm(dim=-1) * 1000  # NaN where not annotated
    np.testing.assert_allclose(r["jauc"], 100 * float(pck_auc(errors, 0.0, 50.0).auc))
    objects = [0, 2, 3]
    np.testing.assert_allclose(r["oce"], 1000 * float(center_error(tp, tg)[objects].mean()))
    np.testing.assert_allclose(r["add_s"], 1000 * float(add_s(Rp, tp, Rg, tg, pts)[objects].mean()))
    table = ev.format_tables()
    assert "Excluded, ground truth not finite: 1 sample, 22 joints, 64 vertices, 1 object pose" in table
    json.dumps(r)  # what evaluate.py stores


def test_evaluator_counts_nothing_excluded_as_zero():
    pred, gt = _hand(8)
    ev = Evaluator()
    ev.update(pred, gt)
    r = ev.compute()
    assert r["excluded_samples"] == 0 and r["excluded_joints"] == 0 and "excluded_objects" not in r
    assert "Excluded, ground truth not finite: 0 samples, 0 joints" in ev.format_tables()


@pytest.mark.parametrize("arg", ["pred_joints", "pred_verts", "pred_obj_R", "pred_obj_t"])
def test_evaluator_refuses_a_non_finite_prediction_and_stores_nothing(arg):
    pred, gt = _hand(9)
    pv, gv = _hand(10, N=30)
    Rp, tp, Rg, tg, pts = _poses(11)
    inputs = dict(pred_joints=pred, pred_verts=pv, pred_obj_R=Rp, pred_obj_t=tp)
    inputs[arg] = inputs[arg].clone()
    inputs[arg][2].view(-1)[1] = NAN
    ev = Evaluator()
    with pytest.raises(ValueRangeError, match=rf"Evaluator.update\(\): argument '{arg}' must be finite.*\(2, "):
        ev.update(inputs.pop("pred_joints"), gt, gt_verts=gv, gt_obj_R=Rg, gt_obj_t=tg, obj_points=pts, **inputs)
    assert ev.compute() == {"num_samples": 0.0}
    with pytest.raises(ValueRangeError, match="no predictions"):
        ev.write_ho3d_submission("never.json")


# --------------------------------------------------------------------------- submission, baselines


@pytest.mark.parametrize("arg", ["joints", "vertices"])
@pytest.mark.parametrize("suffix", [".json", ".zip"])
def test_write_ho3d_submission_refuses_non_finite_predictions_and_writes_nothing(tmp_path, arg, suffix):
    joints = torch.rand(2, 21, 3) + torch.tensor([0.0, 0.0, 0.5])
    verts = torch.rand(2, 778, 3) + torch.tensor([0.0, 0.0, 0.5])
    bad = {"joints": joints, "vertices": verts}
    bad[arg] = bad[arg].clone()
    bad[arg][1, 7, 2] = NAN
    path = tmp_path / f"pred{suffix}"
    with pytest.raises(ValueRangeError, match=rf"write_ho3d_submission\(\): argument '{arg}'.*\(1, 7, 2\)"):
        write_ho3d_submission(path, bad["joints"], bad["vertices"])
    assert os.listdir(tmp_path) == []


def test_constant_baselines_count_excluded_training_samples_and_keep_predictions_finite():
    joints = torch.rand(5, 21, 3, dtype=F64)
    R = torch.eye(3, dtype=F64).expand(5, 3, 3).clone()
    t = torch.rand(5, 3, dtype=F64)
    joints[1, 4] = NAN
    t[3, 0] = NAN
    base = ConstantBaselines()
    base.update(joints, R, t, torch.tensor([True, True, True, True, False]))
    assert (base.num_samples, base.num_excluded, base.num_excluded_objects) == (4, 1, 1)
    root = joints[:, 0].clone()
    root[2] = NAN  # a test sample without hand annotation
    preds = base.predict(5, dtype=F64, root=root)
    for name, p in preds.items():
        assert all(torch.isfinite(v).all() for v in p.values()), name
    torch.testing.assert_close(preds["wrist"]["joints"][2, 0], base.state_dict()["mean_root"])
