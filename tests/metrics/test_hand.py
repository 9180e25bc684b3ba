"""Hand metrics: known values, invariances, official-code agreement, types and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.metrics import joint_index, mpjpe, mpvpe, pa_mpjpe, pa_mpvpe, st_mpjpe
from hoimask.skeleton import JOINT_NAMES, convert_joint_order


def _random_rotation(g: torch.Generator, dtype=torch.float64, reflect: bool = False) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=dtype))
    q = q * torch.sign(torch.diagonal(r))
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    if reflect:
        q = q @ torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=dtype))
    return q


def _hand(g: torch.Generator, B: int = 3, dtype=torch.float64) -> torch.Tensor:
    return torch.rand(B, 21, 3, generator=g, dtype=dtype) * 0.1 + torch.tensor([0.0, 0.0, 0.5], dtype=dtype)


# ---------------------------------------------------------------- known values
def test_mpjpe_known_translation():
    gt = torch.zeros(2, 21, 3)
    pred = gt + torch.tensor([0.003, 0.004, 0.0])  # every joint 5 mm off
    assert torch.allclose(mpjpe(pred, gt), torch.full((2,), 0.005))
    # root-relative removes a global translation
    assert torch.allclose(mpjpe(pred, gt, root_relative=True), torch.zeros(2))


def test_mpjpe_known_single_joint():
    gt = torch.zeros(1, 21, 3)
    pred = gt.clone()
    pred[0, 5, 2] = 0.021  # one joint 21 mm off -> mean 1 mm
    assert torch.allclose(mpjpe(pred, gt), torch.tensor([0.001]))


def test_mpjpe_root_by_name_and_index_agree(generator):
    gt, pred = _hand(generator), _hand(generator)
    a = mpjpe(pred, gt, root_relative=True, root="middle_mcp")
    b = mpjpe(pred, gt, root_relative=True, root=JOINT_NAMES.index("middle_mcp"))
    assert torch.equal(a, b)


def test_st_mpjpe_known_value():
    # gt: wrist at origin, middle MCP 10 cm along x; the rest at the wrist.
    gt = torch.zeros(1, 21, 3, dtype=torch.float64)
    mid = JOINT_NAMES.index("middle_mcp")
    gt[0, mid] = torch.tensor([0.1, 0.0, 0.0])
    # pred: twice as large and shifted, plus one joint off by 2 cm after rescale.
    pred = 2 * gt + torch.tensor([1.0, 2.0, 3.0])
    tip = JOINT_NAMES.index("index_tip")
    pred[0, tip] += torch.tensor([0.0, 0.04, 0.0])  # 4 cm in pred scale = 2 cm after halving
    assert torch.allclose(st_mpjpe(pred, gt), torch.tensor([0.02 / 21], dtype=torch.float64))


def test_st_mpjpe_zero_bone_follows_official_code():
    # HO3D align_sc_tr: a zero-length predicted bone is not normalised, the
    # prediction is multiplied by the gt bone length and moved to the gt wrist.
    gt = torch.zeros(1, 21, 3, dtype=torch.float64)
    gt[0, JOINT_NAMES.index("middle_mcp"), 0] = 0.5
    pred = torch.zeros(1, 21, 3, dtype=torch.float64)
    pred[0, JOINT_NAMES.index("index_tip")] = torch.tensor([0.0, 1.0, 0.0])
    expected = pred * 0.5
    err = (expected - gt).norm(dim=-1).mean(-1)
    assert torch.allclose(st_mpjpe(pred, gt), err)


def test_pa_mpjpe_reflection_handling(generator):
    gt = _hand(generator, B=2)
    mirror = gt * torch.tensor([1.0, 1.0, -1.0], dtype=gt.dtype)  # a mirror image
    assert torch.allclose(pa_mpjpe(mirror, gt, allow_reflection=True), torch.zeros(2, dtype=gt.dtype), atol=1e-9)
    assert bool((pa_mpjpe(mirror, gt, allow_reflection=False) > 1e-3).all())


def test_pa_mpjpe_hand_worked_collinear():
    # gt x = (-1, 0, 1); pred x = (-1, 0.3, 1) on one line. Centred pred: (-1.1, 0.2, 0.9);
    # best rotation is the identity, scale s = <p, g> / <p, p> = 2 / 2.06, errors |s p - g|.
    gt = torch.tensor([[[-1.0, 0, 0], [0.0, 0, 0], [1.0, 0, 0]]], dtype=torch.float64)
    pred = torch.tensor([[[-1.0, 0, 0], [0.3, 0, 0], [1.0, 0, 0]]], dtype=torch.float64)
    s = 2 / 2.06
    expected = (abs(-1.1 * s + 1) + abs(0.2 * s) + abs(0.9 * s - 1)) / 3
    for reflect in (True, False):
        assert float(pa_mpjpe(pred, gt, allow_reflection=reflect)) == pytest.approx(expected, rel=1e-9)


def test_mpvpe_known_and_root_relative():
    gt = torch.zeros(2, 778, 3)
    pred = gt + torch.tensor([0.0, 0.0, 0.01])
    assert torch.allclose(mpvpe(pred, gt), torch.full((2,), 0.01))
    roots = torch.zeros(2, 3)
    assert torch.allclose(mpvpe(pred, gt, pred_root=roots + torch.tensor([0.0, 0.0, 0.01]), gt_root=roots), torch.zeros(2))


# ----------------------------------------------------------------- invariances
@given(B=st.integers(1, 4), J=st.integers(3, 30), seed=st.integers(0, 10_000))
def test_zero_on_identical(B, J, seed):
    x = torch.randn(B, J, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    assert torch.allclose(mpjpe(x, x), torch.zeros(B, dtype=x.dtype))
    assert torch.allclose(pa_mpjpe(x, x), torch.zeros(B, dtype=x.dtype), atol=1e-9)
    assert torch.allclose(mpvpe(x, x), torch.zeros(B, dtype=x.dtype))
    assert torch.allclose(pa_mpvpe(x, x, allow_reflection=False), torch.zeros(B, dtype=x.dtype), atol=1e-9)


@given(seed=st.integers(0, 10_000), reflect=st.booleans(), scale=st.floats(0.2, 5.0))
def test_pa_mpjpe_invariant_to_similarity_of_prediction(seed, reflect, scale):
    g = torch.Generator().manual_seed(seed)
    gt, pred = _hand(g), _hand(g)
    R = _random_rotation(g, reflect=reflect)
    t = torch.randn(3, generator=g, dtype=torch.float64)
    moved = scale * pred @ R.T + t
    base = pa_mpjpe(pred, gt, allow_reflection=True)
    assert torch.allclose(pa_mpjpe(moved, gt, allow_reflection=True), base, atol=1e-9)
    if not reflect:  # proper rotations leave the det=+1 variant invariant too
        base_p = pa_mpjpe(pred, gt, allow_reflection=False)
        assert torch.allclose(pa_mpjpe(moved, gt, allow_reflection=False), base_p, atol=1e-9)


@given(seed=st.integers(0, 10_000), scale=st.floats(0.1, 10.0))
def test_st_mpjpe_invariant_to_scale_and_translation(seed, scale):
    g = torch.Generator().manual_seed(seed)
    gt, pred = _hand(g), _hand(g)
    t = torch.randn(3, generator=g, dtype=torch.float64)
    assert torch.allclose(st_mpjpe(scale * pred + t, gt), st_mpjpe(pred, gt), atol=1e-10)


def test_pa_le_st_le_plain_on_average(generator):
    gt = _hand(generator, B=16)
    pred = gt + 0.01 * torch.randn(gt.shape, generator=generator, dtype=gt.dtype) + 0.02
    assert pa_mpjpe(pred, gt).mean() <= st_mpjpe(pred, gt).mean() <= mpjpe(pred, gt).mean()


def test_st_mpjpe_joint_order(generator):
    gt, pred = _hand(generator), _hand(generator)
    a = st_mpjpe(pred, gt)
    b = st_mpjpe(convert_joint_order(pred, "canonical", "mano"), convert_joint_order(gt, "canonical", "mano"),
                 joint_order="mano")
    assert torch.allclose(a, b)


# --------------------------------------------------------- official-code agreement
def _ho3d_align_w_scale(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """HO3D/FreiHAND align_w_scale, re-derived: normalise, SciPy orthogonal Procrustes."""
    from scipy.linalg import orthogonal_procrustes

    t1, t2 = gt.mean(0), pred.mean(0)
    a, b = gt - t1, pred - t2
    s1, s2 = np.linalg.norm(a) + 1e-8, np.linalg.norm(b) + 1e-8
    R, s = orthogonal_procrustes(a / s1, b / s2)
    return (b / s2) @ R.T * s * s1 + t1


def _hoisdf_rigid_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """HOISDF rigid_align, re-derived: Umeyama with a proper rotation."""
    ca, cb = pred.mean(0), gt.mean(0)
    H = (pred - ca).T @ (gt - cb) / len(pred)
    U, S, Vt = np.linalg.svd(H)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(Vt.T @ U.T))])
    R = Vt.T @ D @ U.T
    c = (S * np.diag(D)).sum() / np.var(pred, axis=0).sum()
    return (c * R @ pred.T).T + (cb - c * R @ ca)


@pytest.mark.parametrize("mirror", [False, True])
def test_pa_mpjpe_matches_official_codes(generator, mirror):
    pytest.importorskip("scipy")
    gt = _hand(generator, B=6).numpy()
    pred = gt + 0.02 * np.random.default_rng(0).standard_normal(gt.shape)
    if mirror:
        pred = pred * np.array([-1.0, 1.0, 1.0])
    ours_ho3d = pa_mpjpe(pred, gt, allow_reflection=True)
    ours_hoisdf = pa_mpjpe(pred, gt, allow_reflection=False)
    ref_ho3d = np.array([np.linalg.norm(_ho3d_align_w_scale(g, p) - g, axis=1).mean() for p, g in zip(pred, gt)])
    ref_hoisdf = np.array([np.linalg.norm(_hoisdf_rigid_align(p, g) - g, axis=1).mean() for p, g in zip(pred, gt)])
    assert isinstance(ours_ho3d, np.ndarray)
    np.testing.assert_allclose(ours_ho3d, ref_ho3d, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours_hoisdf, ref_hoisdf, rtol=1e-6, atol=1e-9)
    if mirror:
        assert (ours_ho3d < ours_hoisdf).all()


def test_st_mpjpe_matches_ho3d_align_sc_tr(generator):
    gt = _hand(generator, B=4).numpy()
    pred = _hand(generator, B=4).numpy() * 1.7
    gt_h = convert_joint_order(torch.from_numpy(gt), "canonical", "ho3d").numpy()
    pred_h = convert_joint_order(torch.from_numpy(pred), "canonical", "ho3d").numpy()
    ref = []
    for p, g in zip(pred_h, gt_h):  # HO3D indices: 0 = wrist, 4 = middle MCP
        q = p / np.linalg.norm(p[4] - p[0]) * np.linalg.norm(g[4] - g[0])
        q = q - q[0:1] + g[0:1]
        ref.append(np.linalg.norm(q - g, axis=1).mean())
    np.testing.assert_allclose(st_mpjpe(pred, gt), np.array(ref), rtol=1e-10)


# ---------------------------------------------------------------- types, errors
def test_numpy_in_numpy_out_and_dtype(generator):
    gt, pred = _hand(generator, dtype=torch.float32), _hand(generator, dtype=torch.float32)
    out = mpjpe(pred.numpy(), gt.numpy())
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    t = mpjpe(pred, gt)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_allclose(out, t.numpy())


def test_device_and_dtype_follow_input(device, dtype):
    g = torch.Generator().manual_seed(1)
    gt, pred = _hand(g, dtype=dtype).to(device), _hand(g, dtype=dtype).to(device)
    for fn in (mpjpe, pa_mpjpe, st_mpjpe):
        out = fn(pred, gt)
        assert out.device.type == device.type and out.dtype == dtype and out.shape == (3,)


def test_gradcheck_mpjpe_and_pa():
    g = torch.Generator().manual_seed(2)
    gt = _hand(g, B=2)
    pred = _hand(g, B=2).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: mpjpe(p, gt), (pred,))
    assert torch.autograd.gradcheck(lambda p: pa_mpjpe(p, gt, allow_reflection=False), (pred,))


def test_errors():
    x = torch.zeros(2, 21, 3)
    with pytest.raises(ShapeError, match="pred"):
        mpjpe(torch.zeros(2, 21), x)
    with pytest.raises(ShapeError, match="gt"):
        mpjpe(x, torch.zeros(3, 21, 3))
    with pytest.raises(ShapeError, match="pred"):
        st_mpjpe(torch.zeros(2, 20, 3), torch.zeros(2, 20, 3))
    with pytest.raises(DTypeError, match="pred"):
        mpjpe([[0.0]], x)
    with pytest.raises(DTypeError, match="gt"):
        mpjpe(x, torch.zeros(2, 21, 3, dtype=torch.int64))
    with pytest.raises(ValueRangeError, match="joint"):
        mpjpe(x, x, root_relative=True, root="thumb_nail")
    with pytest.raises(ValueRangeError, match="joint"):
        mpjpe(x, x, root_relative=True, root=21)
    with pytest.raises(ValueRangeError, match="pred_root"):
        mpvpe(x, x, pred_root=torch.zeros(2, 3))
    assert joint_index("middle_mcp", "mano") == 4
    assert math.isclose(float(mpjpe(x, x).sum()), 0.0)
