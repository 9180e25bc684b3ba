"""Grasp labels from object motion (UniHOPE eq. 1): the function, DexYCB's two rules, synthetic scenes."""

from __future__ import annotations

import math
import pickle
import shutil
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import DTypeError, FileFormatError, ShapeError, ValueRangeError
from hoimask.data import DexYCB
from hoimask.data.grasp import (
    GRASP_RRE_DEG,
    GRASP_RTE,
    grasp_labels_from_motion,
    relative_rotation_error,
    relative_translation_error,
)
from hoimask.data.testing import write_dexycb_fixture
from hoimask.geometry import axis_angle_to_matrix, quaternion_to_matrix


def random_rotations(n: int, g: torch.Generator) -> torch.Tensor:
    q = torch.randn(n, 4, generator=g, dtype=torch.float64)
    return quaternion_to_matrix(q / q.norm(dim=-1, keepdim=True))


def by_hand(R: np.ndarray, t: np.ndarray, R0: np.ndarray, t0: np.ndarray) -> tuple[float, float]:
    """RRE (degrees) and RTE of one pair, written out as in the released ``prepare_grasp_dexycb.py``."""
    rel_R = R.T @ R0  # rotation of inv(T) ∘ T0
    rel_t = R.T @ (t0 - t)
    rre = np.degrees(np.arccos(np.clip(0.5 * (np.trace(rel_R) - 1.0), -1.0, 1.0)))
    return float(rre), float(np.linalg.norm(rel_t))


# ---------------------------------------------------------------------------------------------
# The function
# ---------------------------------------------------------------------------------------------


@given(seed=st.integers(0, 10_000), n=st.integers(1, 16))
def test_errors_and_labels_equal_the_hand_computation(seed, n):
    g = torch.Generator().manual_seed(seed)
    R0, R = random_rotations(n, g), random_rotations(n, g)
    t0 = torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.1
    t = t0 + torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.04
    rre, rte = relative_rotation_error(R, R0), relative_translation_error(t, t0)
    labels = grasp_labels_from_motion(R, t, R0, t0)
    for i in range(n):
        want_r, want_t = by_hand(R[i].numpy(), t[i].numpy(), R0[i].numpy(), t0[i].numpy())
        assert math.isclose(float(rre[i]), want_r, abs_tol=1e-6)
        assert math.isclose(float(rte[i]), want_t, abs_tol=1e-12)
        assert bool(labels[i]) == (want_r > 5.0 or want_t > 0.05)


@given(seed=st.integers(0, 10_000), angle=st.floats(0.0, 179.0))
def test_rre_is_the_angle_of_the_relative_rotation(seed, angle):
    """R = R0 · exp(θ a) has RRE θ whatever R0 and the axis a; the error is symmetric."""
    g = torch.Generator().manual_seed(seed)
    R0 = random_rotations(1, g)[0]
    axis = torch.randn(3, generator=g, dtype=torch.float64)
    R = R0 @ axis_angle_to_matrix(axis / axis.norm() * math.radians(angle))
    assert math.isclose(float(relative_rotation_error(R, R0)), angle, abs_tol=1e-5)
    assert math.isclose(float(relative_rotation_error(R0, R)), angle, abs_tol=1e-5)


@given(seed=st.integers(0, 10_000))
def test_labels_do_not_depend_on_the_camera(seed):
    """A fixed change of camera frame (C, c) applied to both poses keeps RRE, RTE and the label."""
    g = torch.Generator().manual_seed(seed)
    R0, R, C = random_rotations(8, g), random_rotations(8, g), random_rotations(1, g)[0]
    t0 = torch.randn(8, 3, generator=g, dtype=torch.float64) * 0.1
    t = t0 + torch.randn(8, 3, generator=g, dtype=torch.float64) * 0.04
    c = torch.randn(3, generator=g, dtype=torch.float64)
    moved = grasp_labels_from_motion(C @ R, t @ C.T + c, C @ R0, t0 @ C.T + c)
    assert torch.equal(moved, grasp_labels_from_motion(R, t, R0, t0))
    torch.testing.assert_close(relative_rotation_error(C @ R, C @ R0), relative_rotation_error(R, R0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exactly_at_a_threshold_is_not_grasping(dtype):
    """The paper's "exceeds": strict comparisons, in the inputs' precision."""
    eye = torch.eye(3, dtype=dtype)
    t0 = torch.zeros(3, dtype=dtype)
    t = torch.tensor([[0.05, 0.0, 0.0], [0.0, 0.0, -0.05], [0.0, 0.0501, 0.0]], dtype=dtype)
    assert grasp_labels_from_motion(eye, t, eye, t0).tolist() == [False, False, True]
    # An RRE exactly equal to the threshold (whatever the rounding of arccos) is not grasping, just below it is.
    R = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.radians(GRASP_RRE_DEG)], dtype=torch.float64)).to(dtype)
    rre = float(relative_rotation_error(R, eye))
    assert abs(rre - GRASP_RRE_DEG) < (1e-3 if dtype == torch.float32 else 1e-9)
    assert not bool(grasp_labels_from_motion(R, t0, eye, t0, rre_deg=rre))
    assert bool(grasp_labels_from_motion(R, t0, eye, t0, rre_deg=rre - 1e-3))
    for degrees, expected in ((GRASP_RRE_DEG - 0.01, False), (GRASP_RRE_DEG + 0.01, True)):
        Rd = axis_angle_to_matrix(torch.tensor([math.radians(degrees), 0.0, 0.0], dtype=torch.float64)).to(dtype)
        assert bool(grasp_labels_from_motion(Rd, t0, eye, t0)) is expected
    # Either error alone is enough; rotation and translation both below: not grasping.
    R6 = axis_angle_to_matrix(torch.tensor([0.0, math.radians(6.0), 0.0], dtype=torch.float64)).to(dtype)
    assert bool(grasp_labels_from_motion(R6, t0, eye, t0))
    R4 = axis_angle_to_matrix(torch.tensor([0.0, math.radians(4.0), 0.0], dtype=torch.float64)).to(dtype)
    assert not bool(grasp_labels_from_motion(R4, t[1] * 0.9, eye, t0))
    # A zero threshold: any motion counts, none does not.
    assert not bool(grasp_labels_from_motion(eye, t0, eye, t0, rre_deg=0.0, rte=0.0))


def test_batch_dimensions_broadcast():
    g = torch.Generator().manual_seed(0)
    R = random_rotations(12, g).reshape(3, 4, 3, 3)
    t = torch.randn(3, 4, 3, generator=g, dtype=torch.float64) * 0.05
    R0, t0 = torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)  # one rest pose for all
    labels = grasp_labels_from_motion(R, t, R0, t0)
    assert labels.shape == (3, 4) and labels.dtype == torch.bool
    full = grasp_labels_from_motion(R, t, R0.expand(3, 4, 3, 3), t0.expand(3, 4, 3))
    assert torch.equal(labels, full)
    # A static object (t only, no R batch) still gives the broadcast shape.
    assert grasp_labels_from_motion(R0, t, R0, t0).shape == (3, 4)
    assert relative_translation_error(t, t0).shape == (3, 4) and relative_rotation_error(R, R0).shape == (3, 4)


def test_bad_inputs_name_the_argument():
    eye, zero = torch.eye(3), torch.zeros(3)
    fn = "grasp_labels_from_motion"
    with pytest.raises(ShapeError, match=rf"{fn}\(\): argument 'R'"):
        grasp_labels_from_motion(torch.zeros(3, 4), zero, eye, zero)  # a 3x4 pose is not a rotation
    with pytest.raises(ShapeError, match="argument 't_first'"):
        grasp_labels_from_motion(eye, zero, eye, torch.zeros(4))
    with pytest.raises(ShapeError, match="argument 't'"):
        grasp_labels_from_motion(eye.expand(2, 3, 3), torch.zeros(3, 3), eye, zero)  # batch 2 vs 3
    with pytest.raises(ValueRangeError, match="argument 'R_first'.*rotation"):
        grasp_labels_from_motion(eye, zero, 2 * eye, zero)
    with pytest.raises(ValueRangeError, match="argument 'R'.*rotation"):
        grasp_labels_from_motion(torch.diag(torch.tensor([1.0, 1.0, -1.0])), zero, eye, zero)  # a reflection
    nan_R = eye.clone()
    nan_R[1, 2] = float("nan")
    with pytest.raises(ValueRangeError, match="argument 'R_first' must be finite"):
        grasp_labels_from_motion(eye, zero, nan_R, zero)
    with pytest.raises(ValueRangeError, match="argument 't' must be finite"):
        grasp_labels_from_motion(eye, torch.tensor([0.0, float("inf"), 0.0]), eye, zero)
    with pytest.raises(ValueRangeError, match="argument 'rre_deg'"):
        grasp_labels_from_motion(eye, zero, eye, zero, rre_deg=-1.0)
    with pytest.raises(ValueRangeError, match="argument 'rre_deg'"):
        grasp_labels_from_motion(eye, zero, eye, zero, rre_deg=181.0)
    with pytest.raises(ValueRangeError, match="argument 'rte'"):
        grasp_labels_from_motion(eye, zero, eye, zero, rte=-0.01)
    with pytest.raises(ValueRangeError, match="argument 'rte'"):
        grasp_labels_from_motion(eye, zero, eye, zero, rte=float("nan"))
    with pytest.raises(DTypeError, match="argument 'rte'"):
        grasp_labels_from_motion(eye, zero, eye, zero, rte="5cm")
    with pytest.raises(DTypeError, match="argument 'R'"):
        grasp_labels_from_motion(torch.eye(3, dtype=torch.int64), zero, eye, zero)
    with pytest.raises(DTypeError, match="argument 't_first'"):
        grasp_labels_from_motion(eye, zero, eye, [0.0, 0.0, 0.0])
    with pytest.raises(ShapeError, match=r"relative_rotation_error\(\): argument 'R_first'"):
        relative_rotation_error(eye, torch.zeros(3))
    with pytest.raises(ShapeError, match=r"relative_translation_error\(\): argument 't'"):
        relative_translation_error(torch.zeros(2), zero)


def test_defaults_are_unihopes():
    assert (GRASP_RRE_DEG, GRASP_RTE) == (5.0, 0.05)


# ---------------------------------------------------------------------------------------------
# DexYCB: grasp_rule="motion" (default) and "contact"
# ---------------------------------------------------------------------------------------------

#: (degrees, metres) of sequence 0's extra frames 2..6 and their expected labels.
MOTION = [(3.0, 0.0), (8.0, 0.0), (0.0, 0.03), (0.0, 0.08), (4.0, 0.04)]
EXPECTED = [False, False, False, True, False, True, False]  # frames 0, 1 (not moved), then MOTION


@pytest.fixture(scope="module")
def moving_root(tmp_path_factory, mano_root):
    return write_dexycb_fixture(tmp_path_factory.mktemp("dexycb_motion"), mano_root, object_motion=MOTION)


def _dexycb(root, mano_root, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixture is smaller than the release
        return DexYCB(root, mano_root=mano_root, num_sdf_points=0, num_object_points=16, **kw)


def _sequence0_camera(ds, ci: int) -> list[int]:
    return [i for i, (k, c, _) in enumerate(ds.frames.tolist()) if k == 0 and c == ci]


def test_dexycb_motion_rule_labels_relative_to_the_first_frame(moving_root, mano_root):
    ds = _dexycb(moving_root, mano_root)
    assert ds.grasp_rule == "motion"
    for ci in (0, 5):
        idx = _sequence0_camera(ds, ci)
        assert [int(ds.frames[i][2]) for i in idx] == list(range(7))
        labels = [bool(ds[i]["grasped"]) for i in idx]
        assert labels == EXPECTED, (ci, labels)
    # The label is the function of the files' poses (the same camera's labels_000000.npz as the rest pose).
    d = ds._frame_dir(ds.frames[idx[0]])[2]
    rest = np.load(d / "labels_000000.npz")["pose_y"][0].astype(np.float64)
    for f in range(7):
        now = np.load(d / f"labels_{f:06d}.npz")["pose_y"][0].astype(np.float64)
        rre, rte = by_hand(now[:, :3], now[:, 3], rest[:, :3], rest[:, 3])
        assert (rre > 5.0 or rte > 0.05) == EXPECTED[f]
        if f >= 2:
            assert math.isclose(rre, MOTION[f - 2][0], abs_tol=0.02) and math.isclose(rte, MOTION[f - 2][1], abs_tol=1e-5)
    # Other sequences have only their first frame: never grasping under the motion rule.
    others = [i for i, (k, _, _) in enumerate(ds.frames.tolist()) if k != 0]
    assert not any(bool(ds[i]["grasped"]) for i in others[::8])


def test_dexycb_contact_rule_is_kept(moving_root, mano_root):
    """``grasp_rule="contact"``: the hand mesh within ``contact_threshold`` of the object (the fixture's object
    touches the hand in frame 0; the unannotated frame 1 is never in contact)."""
    ds = _dexycb(moving_root, mano_root, grasp_rule="contact")
    idx = _sequence0_camera(ds, 0)
    assert bool(ds[idx[0]]["grasped"]) and not bool(ds[idx[1]]["grasped"])
    motion = _dexycb(moving_root, mano_root)
    for i in idx:  # everything but the label is the same sample
        a, b = ds[i], motion[i]
        for key in a:
            if isinstance(a[key], str):
                assert a[key] == b[key]
            elif key != "grasped":
                torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, equal_nan=True, msg=key)


def test_dexycb_rest_poses_are_cached_per_sequence_and_camera(moving_root, mano_root):
    ds = _dexycb(moving_root, mano_root)
    idx = _sequence0_camera(ds, 0)
    first = [bool(ds[i]["grasped"]) for i in idx]
    assert set(ds._rest_poses) == {(0, 0)}  # frame 0 needs no second read; frames 1.. share one entry
    clone = pickle.loads(pickle.dumps(ds))  # workers rebuild the cache
    assert clone._rest_poses == {} and [bool(clone[i]["grasped"]) for i in idx] == first


def test_dexycb_missing_first_frame_labels_are_named(moving_root, mano_root, tmp_path):
    root = tmp_path / "dex"
    shutil.copytree(moving_root, root)
    ds = _dexycb(root, mano_root)
    idx = _sequence0_camera(ds, 0)
    d = ds._frame_dir(ds.frames[idx[0]])[2]
    (d / "labels_000000.npz").unlink()
    for f in (1, 3):  # the frame's own labels exist; its rest pose does not
        with pytest.raises(FileFormatError, match=r"labels_000000\.npz: not found.*grasp_rule='motion'"):
            ds[idx[f]]
    _dexycb(root, mano_root, grasp_rule="contact")[idx[3]]  # the contact rule does not read the first frame
    np.savez(d / "labels_000000.npz", seg=np.zeros((48, 64), np.uint8))  # present but without pose_y
    with pytest.raises(FileFormatError, match=r"labels_000000\.npz: missing array 'pose_y'"):
        _dexycb(root, mano_root)[idx[3]]


def test_dexycb_poses_that_are_not_rotations_are_named(moving_root, mano_root, tmp_path):
    root = tmp_path / "dex"
    shutil.copytree(moving_root, root)
    ds = _dexycb(root, mano_root)
    idx = _sequence0_camera(ds, 0)
    d = ds._frame_dir(ds.frames[idx[0]])[2]
    for bad_frame, read in ((3, 3), (0, 4)):  # the frame's own pose, then the rest pose another frame reads
        path = d / f"labels_{bad_frame:06d}.npz"
        good = dict(np.load(path))
        lab = dict(good)
        lab["pose_y"] = lab["pose_y"].copy()
        lab["pose_y"][0, :, :3] *= 2.0  # a scaled matrix: not a rotation
        np.savez(path, **lab)
        with pytest.raises(FileFormatError, match=rf"labels_{bad_frame:06d}\.npz: array 'pose_y'.*rotation"):
            _dexycb(root, mano_root)[idx[read]]
        np.savez(path, **good)


def test_dexycb_refuses_an_unknown_grasp_rule(dexycb_root, mano_root):
    with pytest.raises(ValueRangeError, match=r"DexYCB.__init__\(\): argument 'grasp_rule'"):
        _dexycb(dexycb_root, mano_root, grasp_rule="touch")


def test_the_default_fixture_is_unchanged_by_the_motion_option(dexycb_root, moving_root):
    """``object_motion=()`` writes what the fixture always wrote; the extra frames leave the others alone."""
    for rel in ("20200709-subject-01/20200709_141700/836212060125/labels_000000.npz",
                "20200709-subject-01/20200709_141703/932122062010/labels_000000.npz"):  # fmt: skip
        a, b = np.load(dexycb_root / rel), np.load(moving_root / rel)
        assert all(np.array_equal(a[k], b[k]) for k in a.files)


# ---------------------------------------------------------------------------------------------
# Synthetic scenes: grasped = placed in the hand = moved from where it would rest
# ---------------------------------------------------------------------------------------------


def test_synthetic_grasped_means_placed_in_the_hand(synthetic_samples, small_synthetic):
    """A synthetic scene is one frame: its rest pose is where the object would lie without the hand. The object
    is grasped exactly when the scene placed it in the hand (held, so moved from that rest pose); an object
    beside the hand lies at rest (not grasped); a scene without an object is never grasped."""
    from hoimask.data.cache import _index_seed
    from hoimask.data.scene import sample_scene

    kinds = set()
    for i, s in enumerate(synthetic_samples):
        g = torch.Generator().manual_seed(_index_seed(small_synthetic.seed, i))
        scene = sample_scene(small_synthetic.hand, small_synthetic.image_size, generator=g,
                             hand_only_prob=small_synthetic.hand_only_prob,
                             not_grasped_prob=small_synthetic.not_grasped_prob)  # fmt: skip
        kind = "none" if scene.obj is None else "grasp" if scene.grasped else "apart"
        kinds.add(kind)
        assert bool(s["grasped"]) == (kind == "grasp")
        assert bool(s["has_object"]) == (kind != "none")
    assert "grasp" in kinds and len(kinds) >= 2
