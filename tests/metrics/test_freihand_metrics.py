"""FreiHAND evaluation: agreement with a NumPy re-statement of the official eval.py, invariances, batching, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.metrics import FreiHANDEvaluator, freihand_errors, freihand_metrics

KEYS = ("xyz_mean3d", "xyz_auc3d", "xyz_al_mean3d", "xyz_al_auc3d", "mesh_mean3d", "mesh_auc3d", "mesh_al_mean3d",
        "mesh_al_auc3d", "f_score_5", "f_al_score_5", "f_score_15", "f_al_score_15")


# ------------------------------------------------ eval.py, re-stated in NumPy (lmb-freiburg/freihand)
def _official_align_w_scale(mtx1, mtx2, return_trafo=False):
    """align_w_scale: centre, divide by the Frobenius norm + 1e-8, SciPy orthogonal_procrustes(mtx1_t, mtx2_t)."""
    t1, t2 = mtx1.mean(0), mtx2.mean(0)
    a, b = mtx1 - t1, mtx2 - t2
    s1, s2 = np.linalg.norm(a) + 1e-8, np.linalg.norm(b) + 1e-8
    a, b = a / s1, b / s2
    u, w, vt = np.linalg.svd((b.T @ a).T)  # orthogonal_procrustes(A=a, B=b): svd((B^T A)^T), R = u vt, scale = sum(w)
    R, s = u @ vt, w.sum()
    if return_trafo:
        return R, s, s1, t1 - t2
    return (b @ R.T) * s * s1 + t1


def _official_align_by_trafo(mtx, trafo):
    t2 = mtx.mean(0)
    R, s, s1, t1 = trafo
    return (mtx - t2) @ R.T * s * s1 + t1 + t2


def _official_fscore(gt, pr, th):
    """calculate_fscore with exact nearest neighbours (Open3D's point-cloud distance)."""
    d = np.sqrt(((gt[:, None, :] - pr[None, :, :]) ** 2).sum(-1))
    d1, d2 = d.min(axis=1), d.min(axis=0)  # each gt point to pred; each pred point to gt
    recall, precision = np.mean(d2 < th), np.mean(d1 < th)
    return 2 * recall * precision / (recall + precision) if recall + precision > 0 else 0.0


def _trapz(y, x):
    return float(np.sum((np.asarray(y)[1:] + np.asarray(y)[:-1]) * np.diff(x)) / 2)


class _OfficialEvalUtil:
    """EvalUtil: per-keypoint lists of distances, get_measures(lo, hi, steps)."""

    def __init__(self, num_kp):
        self.data = [[] for _ in range(num_kp)]

    def feed(self, gt, vis, pred):
        dist = np.sqrt(np.sum(np.square(gt - pred), axis=1))
        for i in range(gt.shape[0]):
            if vis[i]:
                self.data[i].append(dist[i])

    def get_measures(self, lo, hi, steps):
        thresholds = np.linspace(lo, hi, steps)
        norm = _trapz(np.ones_like(thresholds), thresholds)
        means, aucs = [], []
        for data in self.data:
            if not data:
                continue
            data = np.array(data)
            means.append(np.mean(data))
            pck = [np.mean((data <= t).astype("float")) for t in thresholds]
            aucs.append(_trapz(pck, thresholds) / norm)
        return float(np.mean(means)), float(np.mean(aucs))


def _official_eval(xyz_list, verts_list, xyz_pred_list, verts_pred_list):
    """The loop of eval.py main(), returning the scores.txt values in metres (not x 100)."""
    ev_xyz, ev_xyz_al = _OfficialEvalUtil(21), _OfficialEvalUtil(21)
    ev_mesh, ev_mesh_al = _OfficialEvalUtil(778), _OfficialEvalUtil(778)
    f_list, f_al_list, threshs = [], [], (0.005, 0.015)
    shape_is_mano = None
    for xyz, verts, xyz_pred, verts_pred in zip(xyz_list, verts_list, xyz_pred_list, verts_pred_list):
        ev_xyz.feed(xyz, np.ones_like(xyz[:, 0]), xyz_pred)
        if shape_is_mano is None:
            shape_is_mano = verts_pred.shape[0] == verts.shape[0]
        if shape_is_mano:
            ev_mesh.feed(verts, np.ones_like(verts[:, 0]), verts_pred)
        xyz_pred_al = _official_align_w_scale(xyz, xyz_pred)
        if shape_is_mano:
            verts_pred_al = _official_align_w_scale(verts, verts_pred)
        else:
            verts_pred_al = _official_align_by_trafo(verts_pred, _official_align_w_scale(xyz, xyz_pred, True))
        ev_xyz_al.feed(xyz, np.ones_like(xyz[:, 0]), xyz_pred_al)
        if shape_is_mano:
            ev_mesh_al.feed(verts, np.ones_like(verts[:, 0]), verts_pred_al)
        f_list.append([_official_fscore(verts, verts_pred, t) for t in threshs])
        f_al_list.append([_official_fscore(verts, verts_pred_al, t) for t in threshs])
    out = {}
    for name, ev in (("xyz", ev_xyz), ("xyz_al", ev_xyz_al), ("mesh", ev_mesh), ("mesh_al", ev_mesh_al)):
        if name.startswith("mesh") and not shape_is_mano:
            out[f"{name}_mean3d"] = out[f"{name}_auc3d"] = -1.0
            continue
        out[f"{name}_mean3d"], out[f"{name}_auc3d"] = ev.get_measures(0.0, 0.05, 100)
    f, fa = np.array(f_list).T, np.array(f_al_list).T
    for k, t in enumerate(threshs):
        out[f"f_score_{round(t * 1000)}"] = float(f[k].mean())
        out[f"f_al_score_{round(t * 1000)}"] = float(fa[k].mean())
    return out


# ----------------------------------------------------------------------------------------- data
def _random_rotation(rng: np.random.Generator, reflect: bool = False) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q @ np.diag([1.0, 1.0, -1.0]) if reflect else q


def _random_set(seed: int, S: int = 5, mirror: bool = False, num_pred_vertices: int = 778):
    """Ground truth of hand size 0.5 m in front of the camera, and predictions a few mm to cm off."""
    rng = np.random.default_rng(seed)
    gt_xyz = rng.uniform(-0.06, 0.06, (S, 21, 3)) + np.array([0.0, 0.0, 0.5])
    gt_verts = rng.uniform(-0.06, 0.06, (S, 778, 3)) + np.array([0.0, 0.0, 0.5])
    pred_xyz = gt_xyz + rng.normal(0.0, 0.012, gt_xyz.shape) + rng.normal(0.0, 0.01, (S, 1, 3))
    pred_verts = gt_verts + rng.normal(0.0, 0.004, gt_verts.shape) + rng.normal(0.0, 0.006, (S, 1, 3))
    pred_verts = pred_verts[:, :num_pred_vertices]
    if mirror:  # the best fit is a reflection: eval.py's Procrustes allows it
        pred_xyz, pred_verts = pred_xyz * np.array([-1.0, 1.0, 1.0]), pred_verts * np.array([-1.0, 1.0, 1.0])
    return pred_xyz, gt_xyz, pred_verts, gt_verts


# ------------------------------------------------------------------------------- official agreement
@pytest.mark.parametrize("mirror", [False, True])
@pytest.mark.parametrize("as_torch", [False, True])
def test_matches_official_eval_py_on_random_data(mirror, as_torch):
    pred_xyz, gt_xyz, pred_verts, gt_verts = _random_set(1 + mirror, mirror=mirror)
    ref = _official_eval(gt_xyz, gt_verts, pred_xyz, pred_verts)
    args = [torch.from_numpy(a) for a in (pred_xyz, gt_xyz, pred_verts, gt_verts)] if as_torch else \
        [pred_xyz, gt_xyz, pred_verts, gt_verts]
    ours = freihand_metrics(*args)
    for key in KEYS:
        assert ours[key] == pytest.approx(ref[key], abs=1e-6), key
    assert ours["num_samples"] == 5
    # The data are not degenerate: every number lies strictly inside its range.
    assert all(0.0 < ref[k] < 1.0 for k in KEYS if "auc" in k or k.startswith("f_"))
    assert ref["xyz_al_mean3d"] < ref["xyz_mean3d"] and ref["f_al_score_5"] != ref["f_score_5"]


def test_non_mano_prediction_matches_official_align_by_trafo():
    """A 500-vertex prediction: no mesh errors (eval.py's -1, here NaN), F-scores through the joints' fit."""
    pred_xyz, gt_xyz, pred_verts, gt_verts = _random_set(3, num_pred_vertices=500)
    ref = _official_eval(gt_xyz, gt_verts, pred_xyz, pred_verts)
    ours = freihand_metrics(pred_xyz, gt_xyz, pred_verts, gt_verts)
    for key in KEYS:
        if key.startswith("mesh"):
            assert ref[key] == -1.0 and math.isnan(ours[key]), key
        else:
            assert ours[key] == pytest.approx(ref[key], abs=1e-6), key
    assert ref["f_al_score_15"] != ref["f_score_15"]  # the official quirk changes the aligned mesh


def test_evaluator_batches_equal_one_call():
    pred_xyz, gt_xyz, pred_verts, gt_verts = _random_set(4, S=7)
    whole = freihand_metrics(pred_xyz, gt_xyz, pred_verts, gt_verts)
    ev = FreiHANDEvaluator()
    for lo, hi in ((0, 2), (2, 3), (3, 7)):
        ev.update(pred_xyz[lo:hi], gt_xyz[lo:hi], pred_verts[lo:hi], gt_verts[lo:hi])
    split = ev.compute()
    assert split["num_samples"] == 7
    for key in KEYS:
        assert split[key] == pytest.approx(whole[key], abs=1e-12), key
    curves = ev.pck_curves()
    assert set(curves) == {"xyz", "xyz_al", "mesh", "mesh_al"} and curves["xyz"].curve.shape == (100,)


def test_unannotated_ground_truth_joint_is_left_out_as_evalutil_vis():
    pred_xyz, gt_xyz, _, _ = _random_set(5)
    gt = gt_xyz.copy()
    gt[1, 7] = np.nan  # unannotated: EvalUtil.feed with keypoint_vis[7] = 0 for that sample
    ours = freihand_metrics(pred_xyz, gt)
    ev = _OfficialEvalUtil(21)
    for p, g, nan_row in zip(pred_xyz, gt_xyz, (False, True, False, False, False)):
        vis = np.ones(21)
        vis[7] = 0 if nan_row else 1
        ev.feed(g, vis, p)
    mean, auc = ev.get_measures(0.0, 0.05, 100)
    assert ours["xyz_mean3d"] == pytest.approx(mean, abs=1e-12)
    assert ours["xyz_auc3d"] == pytest.approx(auc, abs=1e-12)
    errors = freihand_errors(pred_xyz, gt)
    assert np.isnan(errors.joints_aligned[1, 7]) and np.isfinite(np.delete(errors.joints_aligned[1], 7)).all()
    assert math.isnan(ours["mesh_mean3d"]) and math.isnan(ours["f_score_5"])  # no vertices given


# ------------------------------------------------------------------------------------- known values
def test_identical_prediction_is_perfect():
    _, gt_xyz, _, gt_verts = _random_set(6)
    s = freihand_metrics(gt_xyz, gt_xyz, gt_verts, gt_verts)
    for key in ("xyz_mean3d", "xyz_al_mean3d", "mesh_mean3d", "mesh_al_mean3d"):
        assert s[key] == pytest.approx(0.0, abs=1e-9)
    for key in ("xyz_auc3d", "mesh_auc3d", "f_score_5", "f_al_score_5", "f_score_15", "f_al_score_15"):
        assert s[key] == pytest.approx(1.0, abs=1e-12), key
    # Aligned errors are rounding-small, not 0: they miss only the first threshold, t = 0 (``error <= 0``),
    # which costs half of the first of the 99 trapezoids -- in eval.py too.
    for key in ("xyz_al_auc3d", "mesh_al_auc3d"):
        assert 1 - 0.5 / 99 - 1e-12 <= s[key] <= 1.0, key


def test_zero_predictor_as_the_freihand_readme():
    """pred.py's zero predictor: aligned, every joint lands on the ground truth's centroid."""
    _, gt_xyz, _, gt_verts = _random_set(7)
    s = freihand_metrics(np.zeros_like(gt_xyz), gt_xyz, np.zeros_like(gt_verts), gt_verts)
    centred = np.linalg.norm(gt_xyz - gt_xyz.mean(axis=1, keepdims=True), axis=-1).mean()
    assert s["xyz_al_mean3d"] == pytest.approx(centred, rel=1e-9)
    assert s["xyz_mean3d"] == pytest.approx(np.linalg.norm(gt_xyz, axis=-1).mean(), rel=1e-12)
    assert s["f_score_5"] == 0.0 and s["xyz_auc3d"] == 0.0


# ------------------------------------------------------------------------------------- invariances
@given(seed=st.integers(0, 10_000), reflect=st.booleans(), scale=st.floats(0.2, 5.0))
def test_aligned_errors_invariant_to_a_similarity_of_the_prediction(seed, reflect, scale):
    pred_xyz, gt_xyz, pred_verts, gt_verts = _random_set(seed, S=2)
    rng = np.random.default_rng(seed + 1)
    R, t = _random_rotation(rng, reflect), rng.normal(0.0, 0.3, 3)
    base = freihand_errors(pred_xyz, gt_xyz, pred_verts, gt_verts)
    moved = freihand_errors(scale * pred_xyz @ R.T + t, gt_xyz, scale * pred_verts @ R.T + t, gt_verts)
    np.testing.assert_allclose(moved.joints_aligned, base.joints_aligned, atol=1e-9)
    np.testing.assert_allclose(moved.vertices_aligned, base.vertices_aligned, atol=1e-9)
    np.testing.assert_array_equal(moved.f_scores_aligned, base.f_scores_aligned)
    assert not np.allclose(moved.joints, base.joints)  # the unaligned errors do see the transform


@given(seed=st.integers(0, 10_000))
def test_errors_are_zero_on_identical_inputs(seed):
    _, gt_xyz, _, gt_verts = _random_set(seed, S=2)
    e = freihand_errors(gt_xyz, gt_xyz, gt_verts, gt_verts)
    assert np.abs(e.joints).max() == 0.0 and np.abs(e.vertices).max() == 0.0
    assert np.abs(e.joints_aligned).max() < 1e-9 and np.abs(e.vertices_aligned).max() < 1e-9
    assert (e.f_scores == 1.0).all() and (e.f_scores_aligned == 1.0).all()


# ----------------------------------------------------------------------------------- types, errors
def test_numpy_in_numpy_out_torch_stays_torch():
    pred_xyz, gt_xyz, pred_verts, gt_verts = _random_set(8, S=2)
    e = freihand_errors(pred_xyz, gt_xyz, pred_verts, gt_verts)
    assert isinstance(e.joints, np.ndarray) and e.joints.shape == (2, 21) and e.f_scores.shape == (2, 2)
    t = freihand_errors(*(torch.from_numpy(a).float() for a in (pred_xyz, gt_xyz, pred_verts, gt_verts)))
    assert isinstance(t.vertices, torch.Tensor) and t.vertices.dtype == torch.float32 and t.vertices.shape == (2, 778)


def test_bad_inputs_name_the_argument():
    pred_xyz, gt_xyz, pred_verts, gt_verts = _random_set(9, S=2)
    with pytest.raises(ShapeError, match="gt_joints"):
        freihand_errors(pred_xyz, gt_xyz[:, :20])
    with pytest.raises(ShapeError, match="gt_vertices"):
        freihand_errors(pred_xyz, gt_xyz, pred_verts, gt_verts[:1])
    with pytest.raises(ValueRangeError, match="pred_vertices"):
        freihand_errors(pred_xyz, gt_xyz, pred_verts, None)
    bad = pred_xyz.copy()
    bad[0, 3, 1] = np.inf
    with pytest.raises(ValueRangeError, match="pred_joints"):
        freihand_errors(bad, gt_xyz)
    with pytest.raises(ValueRangeError, match="f_thresholds"):
        freihand_errors(pred_xyz, gt_xyz, f_thresholds=(0.005, -1.0))
    with pytest.raises(DTypeError, match="pred_joints"):
        freihand_errors(pred_xyz.tolist(), gt_xyz)
    with pytest.raises(ValueRangeError, match="f_thresholds"):
        FreiHANDEvaluator(f_thresholds=(0.005, 0.0051))  # both would be called f_score_5
    with pytest.raises(ValueRangeError, match=r"auc_range\[1\]"):
        FreiHANDEvaluator(auc_range=(0.05, 0.0))
    ev = FreiHANDEvaluator()
    ev.update(pred_xyz, gt_xyz, pred_verts, gt_verts)
    with pytest.raises(ValueRangeError, match="every batch"):
        ev.update(pred_xyz, gt_xyz)
    with pytest.raises(ShapeError, match="pred_vertices"):
        ev.update(pred_xyz, gt_xyz, pred_verts[:, :500], gt_verts)
    assert ev.num_samples == 2  # the refused batches were not counted
