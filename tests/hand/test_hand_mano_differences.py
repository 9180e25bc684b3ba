"""Where MANOLayer differs from smplx and manopth by design (docs/hand.md, "Differences from smplx and manopth").

1. smplx's ``MANO(use_pca=True, num_pca_comps=45)`` switches PCA off and reads
   the 45 "PCA coefficients" as the 15 finger axis-angles; MANOLayer (like
   manopth) projects them through ``hands_components``.
2. manopth's ``ManoLayer(center_idx=...)`` centres only when no translation is
   given (``th_trans`` None or ``torch.norm(th_trans) == 0`` over the whole
   batch); a non-zero translation anywhere in the batch turns centring off for
   every sample. MANOLayer's ``center_root=True`` always subtracts the posed
   wrist, then adds ``trans``.

Each difference is shown against the real package when it is installed (smplx
is in the dev extra; manopth is not on PyPI), and against MANOLayer's own
options that reproduce the other behaviour.
"""

from __future__ import annotations

import pytest
import torch

from hoimask.hand import MANOLayer, load_mano_arrays

F64 = torch.float64


def _inputs(batch: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    pose = 0.6 * torch.randn(batch, 16, 3, generator=g, dtype=F64)
    shape = torch.randn(batch, 10, generator=g, dtype=F64)
    trans = 0.1 * torch.randn(batch, 3, generator=g, dtype=F64)
    return pose, shape, trans


def _smplx_mano(right_pkl, **kwargs):
    smplx = pytest.importorskip("smplx")
    from smplx.utils import Struct

    return smplx.MANO(str(right_pkl.parent), data_struct=Struct(**load_mano_arrays(right_pkl)), is_rhand=True,
                      dtype=F64, num_betas=10, **kwargs)  # fmt: skip


@pytest.mark.parametrize("flat", [True, False])
def test_smplx_reads_45_pca_coefficients_as_axis_angles(right_pkl, flat):
    ref = _smplx_mano(right_pkl, use_pca=True, num_pca_comps=45, flat_hand_mean=flat)
    assert ref.use_pca is False  # smplx's own switch: num_pca_comps == 45 turns PCA off
    pose, shape, trans = _inputs(3, 20)
    coeffs = pose[:, 1:].reshape(3, 45)
    theirs = ref(betas=shape, global_orient=pose[:, 0], hand_pose=coeffs, transl=trans).vertices
    as_axis_angle = MANOLayer(right_pkl, use_pca=False, flat_hand_mean=flat, dtype=F64)
    as_pca = MANOLayer(right_pkl, use_pca=True, num_pca_comps=45, flat_hand_mean=flat, dtype=F64)
    flat_pose = torch.cat([pose[:, 0], coeffs], dim=1)  # (B, 48): global axis-angle, then the 45 numbers
    # smplx = hoimask with the 45 numbers taken as axis-angles ...
    torch.testing.assert_close(as_axis_angle(flat_pose, shape, trans).vertices, theirs, rtol=0, atol=1e-6)
    # ... and not hoimask's (and manopth's) PCA reading of the same numbers: centimetres apart.
    pca = as_pca(flat_pose, shape, trans).vertices
    assert (pca - theirs).norm(dim=-1).amax() > 0.01
    # To give smplx hoimask's PCA reading: project the coefficients yourself.
    projected = coeffs @ as_pca.hands_components
    theirs_projected = ref(betas=shape, global_orient=pose[:, 0], hand_pose=projected, transl=trans).vertices
    torch.testing.assert_close(pca, theirs_projected, rtol=0, atol=1e-6)


def test_smplx_projects_fewer_than_45_components_like_hoimask(right_pkl):
    ref = _smplx_mano(right_pkl, use_pca=True, num_pca_comps=44, flat_hand_mean=False)
    assert ref.use_pca is True
    pose, shape, trans = _inputs(2, 21)
    coeffs = pose[:, 1:].reshape(2, 45)[:, :44]
    theirs = ref(betas=shape, global_orient=pose[:, 0], hand_pose=coeffs, transl=trans).vertices
    ours = MANOLayer(right_pkl, use_pca=True, num_pca_comps=44, flat_hand_mean=False, dtype=F64)
    torch.testing.assert_close(ours(torch.cat([pose[:, 0], coeffs], 1), shape, trans).vertices, theirs,
                               rtol=0, atol=1e-6)  # fmt: skip


def manopth_translation_rule(uncentred: torch.Tensor, reference: torch.Tensor, trans, center_idx):
    """manopth's last step as documented (``ManoLayer.forward``), re-stated on metres.

    ``uncentred``: points posed about the rest wrist, no translation; ``reference``: its 21
    joints (canonical order, like manopth's output). Centre on ``reference[:, center_idx]``
    only when ``trans`` is None or all zero over the whole batch; otherwise add ``trans``.
    """
    if trans is None or bool(torch.norm(trans) == 0):
        if center_idx is not None:
            return uncentred - reference[:, center_idx : center_idx + 1]
        return uncentred
    return uncentred + trans[:, None]


def test_center_root_differs_from_manopth_when_a_translation_is_given(right_pkl):
    pose, shape, trans = _inputs(3, 22)
    plain = MANOLayer(right_pkl, center_root=False, dtype=F64)
    centred = MANOLayer(right_pkl, center_root=True, dtype=F64)
    raw = plain(pose, shape)
    manopth_like = manopth_translation_rule(raw.joints, raw.joints, trans, center_idx=0)
    # hoimask: centre, then translate. The wrist lands exactly on trans ...
    ours = centred(pose, shape, trans).joints
    torch.testing.assert_close(ours[:, 0], trans, rtol=0, atol=1e-12)
    # ... manopth with center_idx=0 and the same trans: no centring, the wrist is at J0 + trans.
    gap = (ours - manopth_like).norm(dim=-1)
    torch.testing.assert_close(gap, raw.joints[:, :1].norm(dim=-1).expand(-1, 21), rtol=0, atol=1e-12)
    assert gap.amin() > 1e-3
    # What reproduces manopth: center_root=False with the translation (x 1000 for manopth's mm) ...
    torch.testing.assert_close(plain(pose, shape, trans).joints, manopth_like, rtol=0, atol=1e-12)
    # ... and center_root=True without one (manopth centres only then).
    no_trans = manopth_translation_rule(raw.joints, raw.joints, torch.zeros_like(trans), center_idx=0)
    torch.testing.assert_close(centred(pose, shape).joints, no_trans, rtol=0, atol=1e-12)
    # One non-zero translation in the batch turns manopth's centring off for every sample.
    mixed = torch.zeros_like(trans)
    mixed[0] = trans[0]
    torch.testing.assert_close(manopth_translation_rule(raw.joints, raw.joints, mixed, 0), plain(pose, shape, mixed).joints,
                               rtol=0, atol=1e-12)  # fmt: skip


@pytest.mark.parametrize("center_idx", [0, 9])
def test_manopth_skips_root_centring_when_given_a_translation(mano_dir, center_idx):
    pytest.importorskip("chumpy")
    manolayer = pytest.importorskip("manopth.manolayer")
    ref = manolayer.ManoLayer(center_idx=center_idx, mano_root=str(mano_dir), use_pca=False, flat_hand_mean=True)
    ref = ref.double()
    plain = MANOLayer(mano_dir / "MANO_RIGHT.pkl", center_root=False, dtype=F64)
    pose, shape, trans = _inputs(2, 23)
    raw = plain(pose, shape)
    for t in (None, torch.zeros_like(trans), trans):
        args = (pose.reshape(2, 48), shape) if t is None else (pose.reshape(2, 48), shape, t)
        _, joints_mm = ref(*args)
        expected = manopth_translation_rule(raw.joints, raw.joints, t, center_idx)
        torch.testing.assert_close(joints_mm, expected * 1000, rtol=0, atol=1e-3)  # mm, to 1 micrometre
    # The documented hoimask equivalents.
    _, joints_mm = ref(pose.reshape(2, 48), shape, trans)
    torch.testing.assert_close(plain(pose, shape, trans).joints * 1000, joints_mm, rtol=0, atol=1e-3)
    if center_idx == 0:
        centred = MANOLayer(mano_dir / "MANO_RIGHT.pkl", center_root=True, dtype=F64)
        _, joints_mm = ref(pose.reshape(2, 48), shape)
        torch.testing.assert_close(centred(pose, shape).joints * 1000, joints_mm, rtol=0, atol=1e-3)
        _, joints_mm = ref(pose.reshape(2, 48), shape, trans)
        assert (centred(pose, shape, trans).joints * 1000 - joints_mm).norm(dim=-1).amin() > 1.0  # > 1 mm apart
