"""Evaluator: agreement with the functions, batching, groups, units, tables, submission."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.geometry import axis_angle_to_matrix
from hoimask.metrics import (
    Evaluator,
    add_s,
    add_within,
    center_error,
    corner_error,
    f_score,
    mpjpe,
    mpvpe,
    object_mesh_error,
    pa_mpjpe,
    pa_mpvpe,
    pck_auc,
    st_mpjpe,
)
from hoimask.skeleton import convert_joint_order


def _batch(seed: int, B: int = 6, V: int = 50, P: int = 40):
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    gj = torch.rand(B, 21, 3, generator=g, dtype=f64) * 0.1 + torch.tensor([0.0, 0.0, 0.6], dtype=f64)
    pj = gj + 0.01 * torch.randn(B, 21, 3, generator=g, dtype=f64)
    gv = torch.rand(B, V, 3, generator=g, dtype=f64) * 0.1 + torch.tensor([0.0, 0.0, 0.6], dtype=f64)
    pv = gv + 0.004 * torch.randn(B, V, 3, generator=g, dtype=f64)
    Rg = axis_angle_to_matrix(torch.randn(B, 3, generator=g, dtype=f64))
    Rp = axis_angle_to_matrix(torch.randn(B, 3, generator=g, dtype=f64) * 0.1) @ Rg
    tg = torch.rand(B, 3, generator=g, dtype=f64) * 0.1 + torch.tensor([0.0, 0.0, 0.6], dtype=f64)
    tp = tg + 0.01 * torch.randn(B, 3, generator=g, dtype=f64)
    pts = torch.randn(P, 3, generator=g, dtype=f64) * 0.05
    occ = torch.rand(B, generator=g, dtype=f64)
    hand_only = torch.arange(B) % 3 == 0
    return dict(pred_joints=pj, gt_joints=gj, pred_verts=pv, gt_verts=gv, pred_obj_R=Rp, pred_obj_t=tp,
                gt_obj_R=Rg, gt_obj_t=tg, obj_points=pts, occlusion=occ, hand_only=hand_only,
                obj_diameter=torch.full((B,), 0.12, dtype=f64))


def test_matches_functions():
    b = _batch(0)
    ev = Evaluator()
    ev.update(**b)
    r = ev.compute()
    pj, gj, pv, gv = b["pred_joints"], b["gt_joints"], b["pred_verts"], b["gt_verts"]
    mm = 1000.0
    assert r["num_samples"] == 6
    assert r["mje"] == pytest.approx(float(mpjpe(pj, gj).mean()) * mm)
    assert r["rr_mje"] == pytest.approx(float(mpjpe(pj, gj, root_relative=True).mean()) * mm)
    assert r["pa_mje"] == pytest.approx(float(pa_mpjpe(pj, gj).mean()) * mm)
    assert r["st_mje"] == pytest.approx(float(st_mpjpe(pj, gj).mean()) * mm)
    assert r["mme"] == pytest.approx(float(mpvpe(pv, gv).mean()) * mm)
    assert r["rr_mme"] == pytest.approx(float(mpvpe(pv, gv, pred_root=pj[:, 0], gt_root=gj[:, 0]).mean()) * mm)
    assert r["pa_mme"] == pytest.approx(float(pa_mpvpe(pv, gv).mean()) * mm)
    assert r["f5"] == pytest.approx(float(f_score(pv, gv, 0.005).mean()) * 100)
    assert r["f15"] == pytest.approx(float(f_score(pv, gv, 0.015).mean()) * 100)
    err_v = (pv - gv).norm(dim=-1)
    assert r["vauc"] == pytest.approx(float(pck_auc(err_v).auc) * 100)
    assert r["jauc"] == pytest.approx(float(pck_auc((pj - gj).norm(dim=-1)).auc) * 100)
    obj = ~b["hand_only"]
    o = {k: b[k][obj] for k in ("pred_obj_R", "pred_obj_t", "gt_obj_R", "gt_obj_t")}
    args = (o["pred_obj_R"], o["pred_obj_t"], o["gt_obj_R"], o["gt_obj_t"], b["obj_points"])
    assert r["oce"] == pytest.approx(float(center_error(o["pred_obj_t"], o["gt_obj_t"]).mean()) * mm)
    assert r["mce"] == pytest.approx(float(corner_error(*args).mean()) * mm)
    assert r["ome"] == pytest.approx(float(object_mesh_error(*args).mean()) * mm)
    assert r["add_s"] == pytest.approx(float(add_s(*args).mean()) * mm)
    assert r["add_0.5d"] == pytest.approx(float(add_within(*args, diameter=0.12).mean()) * 100)


def test_batching_invariance_and_units():
    batches = [_batch(s) for s in range(3)]
    one = Evaluator()
    for b in batches:
        one.update(**b)
    merged = {k: (torch.cat([b[k] for b in batches]) if k != "obj_points" else batches[0][k]) for k in batches[0]}
    # obj_points differ per batch: give the merged evaluator a per-sample list
    merged["obj_points"] = [b["obj_points"] for b in batches for _ in range(6)]
    all_at_once = Evaluator()
    all_at_once.update(**merged)
    mm = Evaluator(units="mm")
    for b in batches:
        mm.update(**{k: (v * 1000 if k not in ("occlusion", "hand_only", "pred_obj_R", "gt_obj_R") else v)
                     for k, v in b.items()})
    r1, r2, r3 = one.compute(), all_at_once.compute(), mm.compute()
    assert r1.keys() == r2.keys() == r3.keys()
    for k in r1:
        assert r1[k] == pytest.approx(r2[k], rel=1e-9, abs=1e-9), k
        assert r1[k] == pytest.approx(r3[k], rel=1e-9, abs=1e-9), k


def test_groups():
    b = _batch(1, B=8)
    b["occlusion"] = torch.tensor([0.0, 0.1, 0.25, 0.3, 0.5, 0.74, 0.75, 1.0], dtype=torch.float64)
    b["hand_only"] = torch.tensor([True, False] * 4)
    ev = Evaluator()
    ev.update(**b)
    r = ev.compute()
    counts = {g: r.get(f"{g}/num_samples") for g in ev.group_names}
    assert counts == {"hand_only": 4, "hand_object": 4, "not_grasping": None, "grasping": None,  # no grasp labels
                      "occlusion_0-25": 2, "occlusion_25-50": 2, "occlusion_50-75": 2, "occlusion_75-100": 2}
    sel = torch.tensor([False, False, False, False, False, False, True, True])  # [0.75, 1.0] closed
    want = float(mpjpe(b["pred_joints"][sel], b["gt_joints"][sel]).mean()) * 1000
    assert r["occlusion_75-100/mje"] == pytest.approx(want)
    assert "hand_only/oce" not in r and "hand_object/oce" in r  # no object metric for hand-only scenes


def test_tables_and_partial_inputs():
    b = _batch(2)
    ev = Evaluator()
    ev.update(b["pred_joints"], b["gt_joints"])  # joints only
    r = ev.compute()
    assert "mme" not in r and "oce" not in r
    text = ev.format_tables()
    assert "Table I" in text and "Table II" in text and "Table III" in text
    assert f"{r['mje']:.2f}" in text and f"{r['st_mje']:.2f}" in text
    assert "| -" in text or " - |" in text  # unmeasured metrics are shown as "-"


def test_no_ground_truth_only_feeds_submission(tmp_path):
    b = _batch(3)
    ev = Evaluator()
    ev.update(b["pred_joints"], pred_verts=b["pred_verts"][:, :1].expand(6, 778, 3))
    assert ev.compute() == {"num_samples": 0.0}
    path = ev.write_ho3d_submission(tmp_path / "pred.json", expected_num_samples=6)
    xyz, verts = json.loads(open(path).read())
    assert len(xyz) == len(verts) == 6 and len(xyz[0]) == 21 and len(verts[0]) == 778


def test_submission_format(tmp_path):
    g = torch.Generator().manual_seed(5)
    joints = torch.rand(3, 21, 3, generator=g) * 0.1 + torch.tensor([0.0, 0.0, 0.5])
    verts = torch.rand(3, 778, 3, generator=g) * 0.1 + torch.tensor([0.0, 0.0, 0.5])
    ev = Evaluator()
    ev.update(joints[:2], pred_verts=verts[:2])
    ev.update(joints[2:], pred_verts=verts[2:])
    zpath = ev.write_ho3d_submission(str(tmp_path / "sub.zip"))
    with zipfile.ZipFile(zpath) as zf:
        assert zf.namelist() == ["pred.json"]
        xyz, vv = json.loads(zf.read("pred.json"))
    xyz, vv = np.array(xyz), np.array(vv)
    flip = np.array([1.0, -1.0, -1.0])
    want = convert_joint_order(joints, "canonical", "ho3d").numpy() * flip
    np.testing.assert_allclose(xyz, want, rtol=1e-6)
    np.testing.assert_allclose(vv, verts.numpy() * flip, rtol=1e-6)
    assert (xyz[..., 2] < 0).all()  # the official pred.py check: OpenGL, z < 0 in front
    # HO3D order: index 4 is the middle MCP, 16 the thumb tip
    np.testing.assert_allclose(xyz[:, 4], joints[:, 9].numpy() * flip, rtol=1e-6)
    np.testing.assert_allclose(xyz[:, 16], joints[:, 4].numpy() * flip, rtol=1e-6)
    assert not list(tmp_path.glob(".tmp-*"))  # atomic write leaves no temporary file


def test_submission_errors(tmp_path):
    joints = torch.rand(2, 21, 3) + torch.tensor([0.0, 0.0, 0.5])
    ev = Evaluator()
    ev.update(joints)
    with pytest.raises(ValueRangeError, match="vertices"):
        ev.write_ho3d_submission(tmp_path / "p.json")
    ev2 = Evaluator()
    ev2.update(joints * torch.tensor([1.0, -1.0, -1.0]), pred_verts=torch.rand(2, 778, 3) - 2.0)
    with pytest.raises(ValueRangeError, match="OpenGL"):
        ev2.write_ho3d_submission(tmp_path / "p.json")
    ev3 = Evaluator()
    ev3.update(joints, pred_verts=torch.rand(2, 778, 3) + 0.5)
    with pytest.raises(ShapeError, match="11524"):
        ev3.write_ho3d_submission(tmp_path / "p.json", expected_num_samples=11524)
    with pytest.raises(ValueRangeError, match="keep_predictions"):
        Evaluator(keep_predictions=False).write_ho3d_submission(tmp_path / "p.json")


def test_update_errors():
    b = _batch(4)
    ev = Evaluator()
    with pytest.raises(ShapeError, match="gt_joints"):
        ev.update(b["pred_joints"], b["gt_joints"][:3])
    with pytest.raises(ValueRangeError, match="occlusion"):
        ev.update(b["pred_joints"], b["gt_joints"], occlusion=torch.full((6,), 1.5))
    with pytest.raises(ValueRangeError, match="pred_verts"):
        ev.update(b["pred_joints"], b["gt_joints"], pred_verts=b["pred_verts"])
    with pytest.raises(ValueRangeError, match="obj_points"):
        ev.update(b["pred_joints"], b["gt_joints"], pred_obj_R=b["pred_obj_R"])
    with pytest.raises(ValueRangeError, match="'gt_joints' is required.*'gt_verts'"):  # not dropped silently
        ev.update(b["pred_joints"], gt_verts=b["gt_verts"])
    for key in ("gt_obj_R", "gt_obj_t"):  # object ground truth without its prediction is an error too
        with pytest.raises(ValueRangeError):
            ev.update(b["pred_joints"], **{key: b[key]})
    assert ev.compute() == {"num_samples": 0.0}
    with pytest.raises(ValueRangeError, match="occlusion_bins"):
        Evaluator(occlusion_bins=(0.5, 0.25))
    with pytest.raises(ValueRangeError, match="units"):
        Evaluator(units="cm")


def test_failed_update_stores_nothing_and_mixed_batches_align():
    b = _batch(6)
    ev = Evaluator()
    ev.update(b["pred_joints"], b["gt_joints"])  # no vertices in the first batch
    with pytest.raises(ValueRangeError, match="occlusion"):
        ev.update(b["pred_joints"], b["gt_joints"], occlusion=torch.full((6,), 2.0))
    ev.update(b["pred_joints"], b["gt_joints"], pred_verts=b["pred_verts"], gt_verts=b["gt_verts"])
    r = ev.compute()
    assert r["num_samples"] == 12
    assert len(ev._pred_joints) == 2  # the failed batch left no prediction behind
    assert r["mme"] == pytest.approx(float(mpvpe(b["pred_verts"], b["gt_verts"]).mean()) * 1000)
    assert r["mje"] == pytest.approx(float(mpjpe(b["pred_joints"], b["gt_joints"]).mean()) * 1000)


def test_device_inputs_match_cpu(device):
    b = _batch(7)
    cpu = Evaluator()
    cpu.update(**b)
    dev = Evaluator()
    moved = {k: v.to(device) for k, v in b.items()}
    moved["obj_points"] = [b["obj_points"].to(device)] * 6  # list form on the device
    dev.update(**moved)
    r_cpu, r_dev = cpu.compute(), dev.compute()
    assert r_cpu.keys() == r_dev.keys()
    for k in r_cpu:
        assert r_cpu[k] == pytest.approx(r_dev[k], rel=1e-9, abs=1e-9), k


@pytest.mark.parametrize(
    "kwargs, name",
    [({"auc_max_mm": 0.0}, "auc_max_mm"), ({"auc_steps": 1}, "auc_steps"), ({"add_fraction": 0}, "add_fraction"),
     ({"f_thresholds_mm": (5.0, -1.0)}, "f_thresholds_mm"), ({"add_s_direction": "both"}, "add_s_direction"),
     ({"root": "elbow"}, "joint")],
)
def test_constructor_errors(kwargs, name):
    with pytest.raises(ValueRangeError, match=name):
        Evaluator(**kwargs)


def test_protocols():
    b = _batch(8)
    official, hoisdf = Evaluator.from_protocol("official"), Evaluator.from_protocol("hoisdf", units="m")
    assert official.allow_reflection and official.add_s_direction == "gt_to_pred"
    assert not hoisdf.allow_reflection and hoisdf.add_s_direction == "pred_to_gt"
    # a mirrored prediction: PA-MJE 0 with reflections (official), not without (HOISDF)
    mirror = b["gt_joints"] * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    official.update(mirror, b["gt_joints"])
    hoisdf.update(mirror, b["gt_joints"])
    assert official.compute()["pa_mje"] == pytest.approx(0.0, abs=1e-6)
    assert hoisdf.compute()["pa_mje"] > 1.0
    with pytest.raises(ValueRangeError, match="protocol"):
        Evaluator.from_protocol("bop")
    with pytest.raises(ValueRangeError, match="allow_reflection"):
        Evaluator.from_protocol("hoisdf", allow_reflection=True)


def test_submission_scores_like_the_ho3d_server(tmp_path):
    """Score pred.json the way HO3D's eval.py does (gt in OpenGL, HO3D order): same MJE / ST-MJE."""
    b = _batch(9)
    gt_cv, gv_cv = b["gt_joints"], b["gt_verts"][:, :1].expand(6, 778, 3)
    ev = Evaluator()
    ev.update(b["pred_joints"], gt_cv, pred_verts=gv_cv + 0.001, gt_verts=gv_cv)
    ours = ev.compute()
    xyz_pred, _ = json.loads(open(ev.write_ho3d_submission(tmp_path / "pred.json")).read())
    flip = np.array([1.0, -1.0, -1.0])
    gt_gl = convert_joint_order(gt_cv, "canonical", "ho3d").numpy() * flip  # the server's ground truth
    mje, st = [], []
    for p, g in zip(np.array(xyz_pred), gt_gl):
        mje.append(np.linalg.norm(p - g, axis=1).mean())
        q = p / np.linalg.norm(p[4] - p[0]) * np.linalg.norm(g[4] - g[0])  # align_sc_tr, HO3D indices
        st.append(np.linalg.norm(q - q[0:1] + g[0:1] - g, axis=1).mean())
    assert np.mean(mje) * 1000 == pytest.approx(ours["mje"], rel=1e-5)
    assert np.mean(st) * 1000 == pytest.approx(ours["st_mje"], rel=1e-5)


def test_object_ground_truth_without_hand_ground_truth_is_scored():
    """HO3D's evaluation split: object poses known, hand joints hidden -> object metrics only."""
    b = _batch(4)
    obj = {k: b[k] for k in ("pred_obj_R", "pred_obj_t", "gt_obj_R", "gt_obj_t", "obj_points")}
    both, objects_only = Evaluator(), Evaluator()
    both.update(b["pred_joints"], b["gt_joints"], **obj)
    objects_only.update(b["pred_joints"], None, **obj)
    full, part = both.compute(), objects_only.compute()
    assert part["num_samples"] == 6 and "mje" not in part and "rr_mje" not in part
    for key in ("oce", "mce", "add_s"):
        assert part[key] == pytest.approx(full[key])


# ------------------------------------------------------------------ exclude_objects (HOISDF's 019_pitcher_base)
NAMES = ["019_pitcher_base", "019_pitcher_base", "003_cracker_box", "", "025_mug", "019_pitcher_base"]
OBJECT_KEYS = ("oce", "mce", "ome", "add_s", "add_0.5d")


def test_exclude_objects_leaves_named_objects_out_of_the_object_means_only():
    b = _batch(10)  # samples 0 and 3 are hand-only: no object metric either way
    ev = Evaluator(exclude_objects=["019_pitcher_base"])
    ev.update(**b, object_name=NAMES)
    r = ev.compute()
    kept = torch.tensor([False, False, True, False, True, False])  # objects not hand-only and not excluded
    o = {k: b[k][kept] for k in ("pred_obj_R", "pred_obj_t", "gt_obj_R", "gt_obj_t")}
    args = (o["pred_obj_R"], o["pred_obj_t"], o["gt_obj_R"], o["gt_obj_t"], b["obj_points"])
    assert r["oce"] == pytest.approx(float(center_error(o["pred_obj_t"], o["gt_obj_t"]).mean()) * 1000)
    assert r["mce"] == pytest.approx(float(corner_error(*args).mean()) * 1000)
    assert r["add_s"] == pytest.approx(float(add_s(*args).mean()) * 1000)
    # counted: samples 1 and 5 (sample 0 is hand-only, it had no object to exclude); not as non-finite poses
    assert r["excluded_objects_by_name"] == 2 and r["excluded_objects"] == 0
    assert ev.excluded_object_counts == {"019_pitcher_base": 2}
    assert "Excluded by name, no object metric (exclude_objects): 019_pitcher_base (2 samples)" in ev.format_tables()
    # exactly as if those object poses were unannotated
    unannotated = dict(b, gt_obj_t=b["gt_obj_t"].clone())
    unannotated["gt_obj_t"][[1, 5]] = float("nan")
    ref = Evaluator()
    ref.update(**unannotated)
    want = ref.compute()
    assert want["excluded_objects"] == 2
    for key in OBJECT_KEYS:
        assert r[key] == pytest.approx(want[key]), key
        assert r.get(f"hand_object/{key}") == pytest.approx(want.get(f"hand_object/{key}")), key
    # hand metrics unchanged
    plain = Evaluator()
    plain.update(**b)
    full = plain.compute()
    assert r["oce"] != pytest.approx(full["oce"])  # the exclusion changed the object mean
    for key, value in full.items():
        if key.split("/")[-1] not in OBJECT_KEYS and not key.startswith("excluded"):
            assert r[key] == pytest.approx(value), key


def test_exclude_objects_batches_and_hidden_hands():
    b = _batch(11)
    whole = Evaluator(exclude_objects=("019_pitcher_base", "025_mug"))
    whole.update(**b, object_name=NAMES)
    halves = Evaluator(exclude_objects=("019_pitcher_base", "025_mug"))
    for part in (slice(0, 3), slice(3, 6)):
        halves.update(**{k: v if k == "obj_points" else v[part] for k, v in b.items()}, object_name=NAMES[part])
    assert halves.compute() == pytest.approx(whole.compute())
    assert halves.excluded_object_counts == {"019_pitcher_base": 2, "025_mug": 1}
    # HO3D's evaluation split: object ground truth without hand ground truth, excluded alike
    obj = {k: b[k] for k in ("pred_obj_R", "pred_obj_t", "gt_obj_R", "gt_obj_t", "obj_points")}
    hidden = Evaluator(exclude_objects=["003_cracker_box"])
    hidden.update(b["pred_joints"], None, **obj, object_name=NAMES)
    r = hidden.compute()
    assert r["excluded_objects_by_name"] == 1 and "mje" not in r
    keep = [0, 1, 3, 4, 5]
    want = float(center_error(b["pred_obj_t"][keep], b["gt_obj_t"][keep]).mean()) * 1000
    assert r["oce"] == pytest.approx(want)
    everything = Evaluator(exclude_objects=["019_pitcher_base"])
    everything.update(**obj, pred_joints=b["pred_joints"], object_name=["019_pitcher_base"] * 6)
    r = everything.compute()
    assert r["num_samples"] == 6 and r["excluded_objects_by_name"] == 6 and "oce" not in r


def test_exclude_objects_needs_the_names_and_checks_them():
    b = _batch(12)
    ev = Evaluator(exclude_objects=["019_pitcher_base"])
    with pytest.raises(ValueRangeError, match="argument 'object_name' is required.*019_pitcher_base"):
        ev.update(**b)  # the option is never silently ignored
    with pytest.raises(ValueRangeError, match="object_name"):
        ev.update(b["pred_joints"], None, pred_obj_R=b["pred_obj_R"], pred_obj_t=b["pred_obj_t"],
                  gt_obj_R=b["gt_obj_R"], gt_obj_t=b["gt_obj_t"], obj_points=b["obj_points"])
    with pytest.raises(DTypeError, match="object_name"):
        ev.update(**b, object_name="019_pitcher_base")
    with pytest.raises(ShapeError, match="object_name.*B=6"):
        ev.update(**b, object_name=NAMES[:4])
    with pytest.raises(DTypeError, match=r"object_name.*index 2"):
        ev.update(**b, object_name=["a", "b", 3, "d", "e", "f"])
    assert ev.compute() == {"num_samples": 0.0}  # nothing of the failed batches was stored
    ev.update(b["pred_joints"], b["gt_joints"])  # no object input: nothing to exclude, no name needed
    assert "excluded_objects_by_name" not in ev.compute()
    plain = Evaluator()
    plain.update(**b, object_name=NAMES)  # names without exclude_objects change nothing
    assert "excluded_objects_by_name" not in plain.compute() and plain.excluded_object_counts == {}


@pytest.mark.parametrize("value, error", [("019_pitcher_base", DTypeError), ([""], ValueRangeError),
                                          ([3], DTypeError), (5, DTypeError)])
def test_exclude_objects_constructor_errors(value, error):
    with pytest.raises(error, match="exclude_objects"):
        Evaluator(exclude_objects=value)
    ev = Evaluator.from_protocol("hoisdf", exclude_objects=Evaluator.HOISDF_HO3D_EXCLUDED_OBJECTS)
    assert ev.exclude_objects == ("019_pitcher_base",)
