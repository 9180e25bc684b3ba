"""DexYCB toolkit result files: read back as the toolkit reads them, scored as it scores them.

The official evaluators need the licensed dataset, so this test re-states their
reading and scoring code (``dex_ycb_toolkit/hpe_eval.py`` with FreiHAND's
``EvalUtil`` and ``align_w_scale``; ``bop_toolkit_lib.inout.load_bop_results``
and ``pose_error.adi``) from their documented behaviour, feeds them our files,
and checks that they give the numbers of hoimask's ``Evaluator`` on the same
predictions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.geometry import axis_angle_to_matrix
from hoimask.metrics import Evaluator
from hoimask.metrics.dexycb_results import (
    BOP_RESULTS_HEADER,
    write_dexycb_bop_results,
    write_dexycb_hpe_results,
)
from hoimask.skeleton import order_indices

MIRROR = np.diag([-1.0, 1.0, 1.0])


# ---------------------------------------------------------------- the toolkit's side, re-stated
def toolkit_load_hpe_results(path) -> dict[int, np.ndarray]:
    """``HPEEvaluator._load_results``: 64 comma-separated fields per line, int id, 21x3 float64 (mm)."""
    results = {}
    with open(path) as fh:
        for line in fh:
            elems = line.split(",")
            if len(elems) != 64:
                raise ValueError(f"a line does not have 64 comma-separated elements: {line}")
            results[int(elems[0])] = np.array(elems[1:], dtype=np.float64).reshape(21, 3)
    return results


def align_w_scale(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """FreiHAND's similarity alignment of ``pred`` onto ``gt`` (Frobenius-normalised, SciPy Procrustes)."""
    from scipy.linalg import orthogonal_procrustes

    t1, t2 = gt.mean(0), pred.mean(0)
    s1, s2 = np.linalg.norm(gt - t1) + 1e-8, np.linalg.norm(pred - t2) + 1e-8
    R, s = orthogonal_procrustes((gt - t1) / s1, (pred - t2) / s2)
    return ((pred - t2) / s2) @ R.T * s * s1 + t1


def toolkit_hpe_scores(anno: dict[int, np.ndarray], res: dict[int, np.ndarray]) -> dict[str, tuple[float, float]]:
    """``HPEEvaluator.evaluate``: EvalUtil over every annotated image (all joints visible), 0-50 mm, 100 steps."""
    dists = {"absolute": [], "root-relative": [], "procrustes": []}
    for i, gt in anno.items():
        assert i in res, f"missing image id in result file: {i}"
        pred = res[i]
        dists["absolute"].append(np.linalg.norm(gt - pred, axis=1))
        dists["root-relative"].append(np.linalg.norm((gt - gt[0]) - (pred - pred[0]), axis=1))
        dists["procrustes"].append(np.linalg.norm(gt - align_w_scale(gt, pred), axis=1))
    thresholds = np.linspace(0.0, 50.0, 100)
    norm = np.trapezoid(np.ones_like(thresholds), thresholds)
    out = {}
    for kind, rows in dists.items():
        d = np.stack(rows)  # (images, 21): EvalUtil's per-keypoint lists
        pck = np.stack([(d <= t).mean(0) for t in thresholds], 1)  # (21, steps)
        auc = np.trapezoid(pck, thresholds, axis=1) / norm
        out[kind] = (float(d.mean(0).mean()), float(auc.mean()))
    return out


def toolkit_load_bop_results(path) -> list[dict]:
    """``bop_toolkit_lib.inout.load_bop_results`` (bop19): header skipped on line 1, 7 fields per line."""
    results = []
    with open(path) as fh:
        for line_id, line in enumerate(fh, start=1):
            if line_id == 1 and BOP_RESULTS_HEADER in line:
                continue
            elems = line.split(",")
            if len(elems) != 7:
                raise ValueError(f"A line does not have 7 comma-sep. elements: {line}")
            results.append({
                "scene_id": int(elems[0]), "im_id": int(elems[1]), "obj_id": int(elems[2]),
                "score": float(elems[3]),
                "R": np.array(list(map(float, elems[4].split())), np.float64).reshape((3, 3)),
                "t": np.array(list(map(float, elems[5].split())), np.float64).reshape((3, 1)),
                "time": float(elems[6]),
            })  # fmt: skip
    return results


def bop_adi(R_e, t_e, R_g, t_g, pts) -> float:
    """BOP ``pose_error.adi``: mean over gt points of the distance to the nearest estimated point."""
    est, gt = pts @ R_e.T + t_e.ravel(), pts @ R_g.T + t_g.ravel()
    return float(np.sqrt(((gt[:, None] - est[None]) ** 2).sum(-1)).min(1).mean())


# ---------------------------------------------------------------- data
def _hand_case(n: int, seed: int):
    rng = np.random.default_rng(seed)
    gt32 = (rng.normal(0, 0.04, (n, 21, 3)) + [0.0, 0.0, 0.6]).astype(np.float32)  # labels: float32 metres
    pred = gt32.astype(np.float64) + rng.normal(0, 0.012, (n, 21, 3)) + rng.normal(0, 0.01, (n, 1, 3))
    mirrored = rng.random(n) < 0.4
    ids = rng.permutation(10 * n)[:n]  # unique, unordered, with gaps
    return gt32, pred, mirrored, ids


@pytest.mark.parametrize("joint_order", ["canonical", "mano"])
def test_hpe_file_scored_like_the_toolkit_gives_the_evaluator_numbers(tmp_path, joint_order):
    gt32, pred, mirrored, ids = _hand_case(60, 0)
    flip = np.where(mirrored[:, None, None], -1.0, 1.0) * np.array([1.0, 0.0, 0.0]) + np.array([0.0, 1.0, 1.0])
    seen_gt, seen_pred = gt32.astype(np.float64) * flip, pred * flip  # what DexYCB(hands="mirror") yields
    ev = Evaluator()  # the official protocol: reflections allowed in Procrustes, as align_w_scale
    ev.update(torch.from_numpy(seen_pred), torch.from_numpy(seen_gt))
    scores = ev.compute()
    to_order = order_indices("canonical", joint_order)
    path = write_dexycb_hpe_results(tmp_path / "hpe.txt", ids, seen_pred[:, to_order], joint_order=joint_order,
                                    mirrored=mirrored)  # fmt: skip
    # The toolkit's annotation: labels x 1000 in float32 (hpe_eval.py), then float64; unmirrored.
    anno = {int(i): (g * np.float32(1000)).astype(np.float64) for i, g in zip(ids, gt32)}
    res = toolkit_load_hpe_results(path)
    assert set(res) == set(anno)
    np.testing.assert_allclose(np.stack([res[int(i)] for i in ids]), pred * 1000, rtol=0, atol=5e-7)
    toolkit = toolkit_hpe_scores(anno, res)
    for kind, (mje, auc) in (("absolute", ("mje", "jauc")), ("root-relative", ("rr_mje", "rr_jauc")),
                             ("procrustes", ("pa_mje", "pa_jauc"))):  # fmt: skip
        # mm: equal to 1e-5 (the toolkit prints 4 decimals; its labels are x1000 in float32)
        assert toolkit[kind][0] == pytest.approx(scores[mje], abs=1e-5)
        assert toolkit[kind][1] == pytest.approx(scores[auc] / 100, abs=1e-9)  # toolkit: fraction, hoimask: %
    assert 0.1 < toolkit["absolute"][1] < 0.9  # the AUCs are not trivially 0 or 1
    # A prediction for an unannotated image (joint_3d all -1) is ignored by the toolkit, a missing one is not.
    extra = write_dexycb_hpe_results(tmp_path / "extra.txt", np.append(ids, 10**6), np.concatenate([pred, pred[:1]]))
    assert toolkit_hpe_scores(anno, toolkit_load_hpe_results(extra))["absolute"][0] == pytest.approx(
        toolkit["absolute"][0], abs=1e-4)  # fmt: skip
    with pytest.raises(AssertionError, match="missing image id"):
        toolkit_hpe_scores(anno, {k: v for k, v in res.items() if k != int(ids[0])})


def test_hpe_file_layout(tmp_path):
    joints = torch.arange(2 * 21 * 3, dtype=torch.float64).reshape(2, 21, 3) / 1000  # metres
    path = write_dexycb_hpe_results(tmp_path / "r.txt", np.array([7, 3]), joints, units="m")
    lines = open(path).read().split("\n")
    assert lines[-1] == "" and len(lines) == 3  # one line per image, newline-terminated, no blank line
    first = lines[0].split(",")
    assert len(first) == 64 and first[0] == "7" and first[1:4] == ["0.000000", "1.000000", "2.000000"]
    assert lines[1].split(",")[-1] == "125.000000"  # x21 y21 z21 of the 2nd image, mm
    mm = write_dexycb_hpe_results(tmp_path / "mm.txt", np.array([7, 3]), joints * 1000, units="mm")
    assert open(mm).read() == open(path).read()


def test_hpe_writer_rejects_bad_input(tmp_path):
    joints = torch.zeros(2, 21, 3)
    with pytest.raises(ValueRangeError, match="'image_ids'.*duplicates"):
        write_dexycb_hpe_results(tmp_path / "a.txt", np.array([1, 1]), joints)
    with pytest.raises(ValueRangeError, match="'image_ids'"):
        write_dexycb_hpe_results(tmp_path / "a.txt", np.array([-1, 1]), joints)
    with pytest.raises(DTypeError, match="'image_ids'"):
        write_dexycb_hpe_results(tmp_path / "a.txt", np.array([1.0, 2.0]), joints)
    with pytest.raises(ShapeError, match="'joints'"):
        write_dexycb_hpe_results(tmp_path / "a.txt", np.array([1, 2]), joints[:, :20])
    with pytest.raises(ShapeError, match="'image_ids'"):
        write_dexycb_hpe_results(tmp_path / "a.txt", np.array([1, 2, 3]), joints)
    with pytest.raises(ValueRangeError, match="'joints'.*non-finite"):
        write_dexycb_hpe_results(tmp_path / "a.txt", np.array([1, 2]), joints.index_fill(0, torch.tensor([1]), float("nan")))
    with pytest.raises(ShapeError, match="'mirrored'"):
        write_dexycb_hpe_results(tmp_path / "a.txt", np.array([1, 2]), joints, mirrored=np.array([1, 0]))
    assert not (tmp_path / "a.txt").exists()  # nothing half-written


def _object_case(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    R_g = axis_angle_to_matrix(torch.randn(n, 3, generator=g, dtype=torch.float64)).numpy()
    t_g = (torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.05 + torch.tensor([0.0, 0.0, 0.7])).numpy()
    R_p = axis_angle_to_matrix(torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.1).numpy() @ R_g
    t_p = t_g + 0.01 * torch.randn(n, 3, generator=g, dtype=torch.float64).numpy()
    pts = (torch.rand(200, 3, generator=g, dtype=torch.float64) * 0.08 - 0.04).numpy()  # model points, metres
    return R_g, t_g, R_p, t_p, pts


def test_bop_file_reads_back_exactly_and_gives_the_evaluator_add_s(tmp_path):
    n = 12
    R_g, t_g, R_p, t_p, pts = _object_case(n, 1)
    mirrored = np.arange(n) % 3 == 0
    m = np.where(mirrored[:, None, None], MIRROR, np.eye(3))
    seen = {"R_g": m @ R_g @ m, "t_g": (m @ t_g[..., None])[..., 0], "R_p": m @ R_p @ m, "t_p": (m @ t_p[..., None])[..., 0]}
    seen_pts = pts[None] @ m  # the mirrored model (x -> -x), as the loader mirrors it: (n, P, 3)
    ev = Evaluator()
    ev.update(torch.zeros(n, 21, 3), torch.zeros(n, 21, 3), pred_obj_R=seen["R_p"], pred_obj_t=seen["t_p"],
              gt_obj_R=seen["R_g"], gt_obj_t=seen["t_g"], obj_points=seen_pts)  # fmt: skip
    scores = ev.compute()
    scene_ids, im_ids, obj_ids = np.arange(n) // 4, np.arange(n) * 4, np.full(n, 5)
    times = np.repeat([0.5, 0.25, 0.125], 4)  # one time per (scene, image)
    path = write_dexycb_bop_results(tmp_path / "bop.csv", scene_ids, im_ids, obj_ids, seen["R_p"], seen["t_p"],
                                    times=times, mirrored=mirrored)  # fmt: skip
    ests = toolkit_load_bop_results(path)
    assert open(path).readline() == BOP_RESULTS_HEADER + "\n"
    assert [(e["scene_id"], e["im_id"], e["obj_id"]) for e in ests] == list(zip(scene_ids, im_ids, obj_ids))
    assert [e["score"] for e in ests] == [1.0] * n and [e["time"] for e in ests] == times.tolist()
    for k, e in enumerate(ests):  # R row-major, t in mm, mirror undone: bit-exact
        np.testing.assert_array_equal(e["R"], R_p[k])
        np.testing.assert_array_equal(e["t"][:, 0], t_p[k] * 1000)
    adi = [bop_adi(e["R"], e["t"], R_g[k], t_g[k][:, None] * 1000, pts * 1000) for k, e in enumerate(ests)]
    assert np.mean(adi) == pytest.approx(scores["add_s"], rel=1e-9)  # mm both
    oce = [np.linalg.norm(e["t"][:, 0] - t_g[k] * 1000) for k, e in enumerate(ests)]
    assert np.mean(oce) == pytest.approx(scores["oce"], rel=1e-9)


def test_bop_writer_defaults_and_errors(tmp_path):
    R, t = np.eye(3)[None].repeat(2, 0), np.array([[0.0, 0.0, 0.5], [0.1, 0.0, 0.5]])
    path = write_dexycb_bop_results(tmp_path / "b.csv", np.array([3, 3]), np.array([0, 0]), np.array([1, 21]), R, t)
    lines = open(path).read().splitlines()
    assert lines[1] == "3,0,1,1.0,1.0 0.0 0.0 0.0 1.0 0.0 0.0 0.0 1.0,0.0 0.0 500.0,-1.0"
    assert lines[2].split(",")[5] == "100.0 0.0 500.0"
    with pytest.raises(ValueRangeError, match="'obj_ids'"):
        write_dexycb_bop_results(tmp_path / "x.csv", np.array([3, 3]), np.array([0, 0]), np.array([0, 22]), R, t)
    with pytest.raises(ValueRangeError, match="'times'"):
        write_dexycb_bop_results(tmp_path / "x.csv", np.array([3, 3]), np.array([0, 0]), np.array([1, 2]), R, t,
                                 times=np.array([0.1, 0.2]))  # fmt: skip
    with pytest.raises(ShapeError, match="'translations'"):
        write_dexycb_bop_results(tmp_path / "x.csv", np.array([3, 3]), np.array([0, 0]), np.array([1, 2]), R, t[:, :2])
    with pytest.raises(ValueRangeError, match="'rotations'.*non-finite"):
        write_dexycb_bop_results(tmp_path / "x.csv", np.array([3, 3]), np.array([0, 0]), np.array([1, 2]), R * np.nan, t)
    assert not (tmp_path / "x.csv").exists()
