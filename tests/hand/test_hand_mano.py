"""MANOLayer: template, invariances, input layouts, left hand, smplx cross-check, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.geometry import axis_angle_to_matrix, matrix_to_rotation_6d
from hoimask.hand import (
    FINGERTIP_VERTEX_IDS,
    LEFT_FINGERTIP_VERTEX_IDS,
    MANOLayer,
    load_mano_arrays,
    to_npz,
)
from hoimask.skeleton import JOINT_INDEX

F64 = torch.float64
TIPS = [JOINT_INDEX[f"{f}_tip"] for f in ("thumb", "index", "middle", "ring", "little")]


def _random_inputs(batch: int, seed: int, scale: float = 0.6):
    g = torch.Generator().manual_seed(seed)
    pose = scale * torch.randn(batch, 16, 3, generator=g, dtype=F64)
    shape = torch.randn(batch, 10, generator=g, dtype=F64)
    trans = 0.1 * torch.randn(batch, 3, generator=g, dtype=F64)
    return pose, shape, trans


@pytest.fixture(scope="module")
def right(right_pkl):
    return MANOLayer(right_pkl, dtype=F64)


def test_zero_pose_and_shape_give_template(right, right_pkl):
    arrays = load_mano_arrays(right_pkl)
    out = right(torch.zeros(2, 16, 3, dtype=F64), torch.zeros(2, 10, dtype=F64))
    template = torch.from_numpy(arrays["v_template"])
    torch.testing.assert_close(out.vertices, template.expand(2, -1, -1), rtol=0, atol=1e-12)
    joints = torch.from_numpy(arrays["J_regressor"] @ arrays["v_template"])
    torch.testing.assert_close(out.mano_joints, joints.expand(2, -1, -1), rtol=0, atol=1e-12)
    assert out.vertices.shape == (2, 778, 3) and out.joints.shape == (2, 21, 3)
    assert right.faces.shape == (1538, 3) and right.faces.dtype == torch.int64


def test_fingertips_are_the_chosen_vertices(right):
    pose, shape, trans = _random_inputs(3, 1)
    out = right(pose, shape, trans)
    ids = list(FINGERTIP_VERTEX_IDS["manopth"])
    torch.testing.assert_close(out.joints[:, TIPS], out.vertices[:, ids], rtol=0, atol=0)
    # The non-tip joints are the 16 MANO joints, reordered.
    assert torch.equal(out.joints[:, 0], out.mano_joints[:, 0])
    assert torch.equal(out.joints[:, JOINT_INDEX["thumb_mcp"]], out.mano_joints[:, 13])


def test_left_fingertips_follow_manopth(left_pkl):
    # manopth/manolayer.py, ManoLayer.forward: right tips [745, 317, 444, 556, 673], left [745, 317, 445, 556, 673]
    assert LEFT_FINGERTIP_VERTEX_IDS["manopth"] == (745, 317, 445, 556, 673)
    assert FINGERTIP_VERTEX_IDS["manopth"] == (745, 317, 444, 556, 673)
    left = MANOLayer(left_pkl, side="left", dtype=F64)
    assert left.tip_vertex_ids.tolist() == [745, 317, 445, 556, 673]
    pose, shape, trans = _random_inputs(2, 3)
    out = left(_mirror_pose(pose), shape, trans)
    torch.testing.assert_close(out.joints[:, TIPS], out.vertices[:, [745, 317, 445, 556, 673]], rtol=0, atol=0)
    # smplx uses one set of ids for both hands
    assert MANOLayer(left_pkl, side="left", fingertips="smplx").tip_vertex_ids.tolist() == [744, 320, 443, 554, 671]


@settings(max_examples=10)
@given(seed=st.integers(0, 10_000))
def test_global_rotation_rotates_output_rigidly(right, seed):
    pose, shape, trans = _random_inputs(2, seed)
    g = torch.Generator().manual_seed(seed + 1)
    extra = axis_angle_to_matrix(torch.randn(2, 3, generator=g, dtype=F64))  # (2, 3, 3)
    rot = axis_angle_to_matrix(pose)  # (2, 16, 3, 3)
    turned = rot.clone()
    turned[:, 0] = extra @ rot[:, 0]
    base, moved = right(rot, shape, trans), right(turned, shape, trans)
    wrist = base.mano_joints[:, :1]  # the root rotation turns the hand about its (unmoved) wrist
    for field in ("vertices", "joints", "mano_joints"):
        expect = (getattr(base, field) - wrist) @ extra.transpose(1, 2) + wrist
        torch.testing.assert_close(getattr(moved, field), expect, rtol=0, atol=1e-10)


def test_pose_layouts_agree(right):
    pose, shape, trans = _random_inputs(3, 2)
    ref = right(pose, shape, trans)
    rot = axis_angle_to_matrix(pose)
    for other in (pose.reshape(3, 48), rot, matrix_to_rotation_6d(rot)):
        out = right(other, shape, trans)
        torch.testing.assert_close(out.vertices, ref.vertices, rtol=0, atol=1e-10)


@pytest.mark.parametrize("flat", [True, False])
def test_pca_with_all_components_equals_axis_angle(right_pkl, flat):
    arrays = load_mano_arrays(right_pkl)
    aa_layer = MANOLayer(right_pkl, flat_hand_mean=flat, dtype=F64)
    pca_layer = MANOLayer(right_pkl, use_pca=True, num_pca_comps=45, flat_hand_mean=flat, dtype=F64)
    pose, shape, _ = _random_inputs(2, 3)
    coeffs = torch.linalg.solve(
        torch.from_numpy(arrays["hands_components"]).T, pose[:, 1:].reshape(2, 45).T
    ).T  # pose = coeffs @ components
    pca_pose = torch.cat([pose[:, 0], coeffs], dim=1)
    torch.testing.assert_close(pca_layer(pca_pose, shape).vertices, aa_layer(pose, shape).vertices,
                               rtol=0, atol=1e-10)  # fmt: skip


def test_center_root_and_translation(right_pkl):
    layer = MANOLayer(right_pkl, center_root=True, dtype=F64)
    pose, shape, trans = _random_inputs(2, 4)
    out = layer(pose, shape, trans)
    torch.testing.assert_close(out.mano_joints[:, 0], trans, rtol=0, atol=1e-12)
    torch.testing.assert_close(out.joints[:, 0], trans, rtol=0, atol=1e-12)


def test_gradients_reach_pose_and_shape(right):
    pose, shape, trans = _random_inputs(2, 5)
    pose.requires_grad_(True)
    shape.requires_grad_(True)
    out = right(pose, shape, trans)
    (out.vertices.square().sum() + out.joints.square().sum()).backward()
    assert pose.grad.abs().sum() > 0 and shape.grad.abs().sum() > 0
    assert torch.isfinite(pose.grad).all() and torch.isfinite(shape.grad).all()


def test_output_follows_input_dtype(right_pkl):
    layer = MANOLayer(right_pkl)  # float32 buffers
    pose, shape, _ = _random_inputs(1, 6)
    assert layer(pose, shape).vertices.dtype == F64
    assert layer(pose.float(), shape.float()).vertices.dtype == torch.float32


def _mirror_pose(pose: torch.Tensor) -> torch.Tensor:
    return pose * pose.new_tensor([1.0, -1.0, -1.0])


@pytest.mark.parametrize("flat", [True, False])
def test_left_hand_is_mirror_of_right(right_pkl, left_pkl, flat):
    right = MANOLayer(right_pkl, flat_hand_mean=flat, dtype=F64)
    left = MANOLayer(left_pkl, side="left", flat_hand_mean=flat, dtype=F64)
    assert left.left_shapedirs_fixed
    pose, shape, trans = _random_inputs(2, 7)
    r = right(pose, shape, trans)
    mirror = torch.tensor([-1.0, 1.0, 1.0], dtype=F64)  # x -> -x
    lo = left(_mirror_pose(pose), shape, trans * mirror)
    torch.testing.assert_close(lo.vertices, r.vertices * mirror, rtol=0, atol=1e-10)
    # every joint mirrors, except the middle tip: manopth takes it from vertex 445 on the left, 444 on the right
    middle = JOINT_INDEX["middle_tip"]
    others = [j for j in range(21) if j != middle]
    torch.testing.assert_close(lo.joints[:, others], r.joints[:, others] * mirror, rtol=0, atol=1e-10)
    torch.testing.assert_close(lo.joints[:, middle], r.vertices[:, 445] * mirror, rtol=0, atol=1e-10)
    # Without the fix the official-style left file is wrong as soon as the shape is not zero.
    unfixed = MANOLayer(left_pkl, side="left", fix_left_shapedirs=False, flat_hand_mean=flat, dtype=F64)
    bad = unfixed(_mirror_pose(pose), shape, trans * mirror)
    assert (bad.vertices - r.vertices * mirror).abs().max() > 1e-4


def test_left_fix_is_not_applied_twice(right_pkl, left_pkl, tmp_path):
    # A left model whose shapedirs were already mirrored sits next to the right one: auto mode keeps it.
    to_npz(right_pkl, tmp_path / "MANO_RIGHT.npz")
    arrays = load_mano_arrays(left_pkl)
    arrays["shapedirs"][:, 0] *= -1.0
    np.savez(tmp_path / "MANO_LEFT.npz", **arrays)
    fixed_file = MANOLayer(tmp_path / "MANO_LEFT.npz", side="left", dtype=F64)
    assert not fixed_file.left_shapedirs_fixed
    official = MANOLayer(left_pkl, side="left", dtype=F64)  # next to MANO_RIGHT.pkl, same x: fix
    pose, shape, _ = _random_inputs(1, 8)
    torch.testing.assert_close(fixed_file(pose, shape).vertices, official(pose, shape).vertices, rtol=0, atol=1e-12)


def test_npz_and_pkl_layers_agree(right_pkl, tmp_path):
    npz = MANOLayer.to_npz(right_pkl, tmp_path / "MANO_RIGHT.npz")
    pose, shape, trans = _random_inputs(2, 9)
    a = MANOLayer(right_pkl, dtype=F64)(pose, shape, trans)
    b = MANOLayer(npz, dtype=F64)(pose, shape, trans)
    torch.testing.assert_close(a.vertices, b.vertices, rtol=0, atol=0)


@pytest.mark.parametrize(("use_pca", "flat", "comps"), [(False, True, 45), (False, False, 45), (True, False, 12)])
def test_matches_smplx(right_pkl, use_pca, flat, comps):
    smplx = pytest.importorskip("smplx")
    from smplx.utils import Struct

    arrays = load_mano_arrays(right_pkl)
    ref = smplx.MANO(str(right_pkl.parent), data_struct=Struct(**arrays), is_rhand=True, use_pca=use_pca,
                     num_pca_comps=comps, flat_hand_mean=flat, dtype=F64, num_betas=10)  # fmt: skip
    ours = MANOLayer(right_pkl, use_pca=use_pca, num_pca_comps=comps, flat_hand_mean=flat, dtype=F64)
    pose, shape, trans = _random_inputs(4, 10)
    hand = torch.randn(4, comps, dtype=F64, generator=torch.Generator().manual_seed(11)) if use_pca else None
    hand_pose = hand if use_pca else pose[:, 1:].reshape(4, 45)
    theirs = ref(betas=shape, global_orient=pose[:, 0], hand_pose=hand_pose, transl=trans)
    ours_pose = torch.cat([pose[:, 0], hand], dim=1) if use_pca else pose
    out = ours(ours_pose, shape, trans)
    torch.testing.assert_close(out.vertices, theirs.vertices, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.mano_joints, theirs.joints[:, :16], rtol=0, atol=1e-6)
    tips = theirs.vertices[:, list(FINGERTIP_VERTEX_IDS["manopth"])]
    torch.testing.assert_close(out.joints[:, TIPS], tips, rtol=0, atol=1e-6)


def test_manotorch_adapter_when_installed(right_pkl):
    pytest.importorskip("manotorch")
    from hoimask.hand.manotorch_backend import ManotorchLayer

    layer = ManotorchLayer(right_pkl.parent, side="right")
    out = layer(torch.zeros(1, 16, 3), torch.zeros(1, 10))
    assert out.vertices.shape == (1, 778, 3) and out.joints.shape == (1, 21, 3)


def test_bad_inputs_raise_typed_errors(right, right_pkl):
    pose, shape, trans = _random_inputs(2, 12)
    with pytest.raises(ShapeError, match="'pose'"):
        right(pose[:, :15], shape)
    with pytest.raises(DTypeError, match="'pose'"):
        right(pose.long(), shape)
    with pytest.raises(ShapeError, match="'shape'"):
        right(pose, shape[:, :9])
    with pytest.raises(ShapeError, match="'shape'"):
        right(pose, shape[:1])
    with pytest.raises(ShapeError, match="'trans'"):
        right(pose, shape, trans[:, :2])
    with pytest.raises(DTypeError, match="'shape'"):
        right(pose, shape.long())
    with pytest.raises(ValueRangeError, match="'side'"):
        MANOLayer(right_pkl, side="left")
    with pytest.raises(ValueRangeError, match="'num_pca_comps'"):
        MANOLayer(right_pkl, use_pca=True, num_pca_comps=0)
    pca = MANOLayer(right_pkl, use_pca=True, num_pca_comps=6, dtype=F64)
    with pytest.raises(ShapeError, match="'pose'"):
        pca(pose, shape)


def test_manotorch_adapter_reports_missing_package(right_pkl):
    import importlib.util

    from hoimask._checks import HoimaskError
    from hoimask.hand.manotorch_backend import ManotorchLayer

    if importlib.util.find_spec("manotorch") is not None:
        pytest.skip("manotorch is installed")
    with pytest.raises(HoimaskError, match="manotorch"):
        ManotorchLayer(right_pkl.parent)


def test_runs_on_every_device(right_pkl, device):
    layer = MANOLayer(right_pkl, dtype=F64).to(device)
    pose, shape, trans = _random_inputs(2, 13)
    out = layer(pose.to(device), shape.to(device), trans.to(device))
    assert out.vertices.device.type == device.type and layer.faces.device.type == device.type
    ref = MANOLayer(right_pkl, dtype=F64)(pose, shape, trans)
    torch.testing.assert_close(out.vertices.cpu(), ref.vertices)


def test_manotorch_adapter_checks_the_pose_layout(monkeypatch, tmp_path):
    """A pose of 48 numbers in the wrong layout is refused, not silently reshaped (fake manotorch)."""
    import sys
    import types

    from hoimask.hand.manotorch_backend import ManotorchLayer

    class FakeManoLayer(torch.nn.Module):
        def __init__(self, **kwargs):
            super().__init__()

        def forward(self, pose, shape):
            batch = pose.shape[0]
            transforms = torch.eye(4).expand(batch, 16, 4, 4)
            return types.SimpleNamespace(
                verts=torch.zeros(batch, 778, 3), joints=torch.zeros(batch, 21, 3), transforms_abs=transforms
            )

    fake = types.ModuleType("manotorch")
    fake.manolayer = types.SimpleNamespace(ManoLayer=FakeManoLayer)
    monkeypatch.setitem(sys.modules, "manotorch", fake)
    monkeypatch.setitem(sys.modules, "manotorch.manolayer", fake.manolayer)
    layer = ManotorchLayer(tmp_path)
    assert layer(torch.zeros(2, 16, 3), torch.zeros(2, 10)).vertices.shape == (2, 778, 3)
    assert layer(torch.zeros(2, 48), torch.zeros(2, 10)).mano_joints.shape == (2, 16, 3)
    with pytest.raises(ShapeError, match="'pose'"):
        layer(torch.zeros(2, 3, 16), torch.zeros(2, 10))
    with pytest.raises(ShapeError, match="'pose'"):
        layer(torch.zeros(2, 8, 6), torch.zeros(2, 10))
    with pytest.raises(DTypeError, match="'pose'"):
        layer(torch.zeros(2, 48, dtype=torch.long), torch.zeros(2, 10))
    pca = ManotorchLayer(tmp_path, use_pca=True, num_pca_comps=6)
    assert pca(torch.zeros(2, 9), torch.zeros(2, 10)).joints.shape == (2, 21, 3)
    with pytest.raises(ShapeError, match="'pose'"):
        pca(torch.zeros(2, 16, 3), torch.zeros(2, 10))
