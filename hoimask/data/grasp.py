"""Grasp labels from object motion (UniHOPE eq. 1).

UniHOPE labels a frame *grasping* when its object has moved away from where it
rested: the isotropic relative rotation error (RRE) or the relative
translation error (RTE) between the object's pose in the current frame and in
the sequence's first frame exceeds a threshold (5° and 5 cm in the released
``data_creation/prepare_grasp_dexycb.py``; the paper follows HandBooster)::

    RRE = arccos((trace(R_firstᵀ R) − 1) / 2)        (degrees)
    RTE = ‖t − t_first‖₂                              (metres)
    grasped = (RRE > rre_deg) ∨ (RTE > rte)

The rule needs a *rest pose*: DexYCB sequences start with the hand away from
the object, so the first frame's pose is it (:class:`hoimask.data.DexYCB`,
``grasp_rule="motion"``). docs/data.md says what the ``grasped`` label means
for HO3D and for synthetic scenes, where there is no such first frame.
"""

from __future__ import annotations

import math

import torch

from hoimask._checks import (
    DTypeError,
    ShapeError,
    ValueRangeError,
    check_finite,
    check_in_range,
    check_shape,
)

__all__ = [
    "GRASP_RRE_DEG",
    "GRASP_RTE",
    "grasp_labels_from_motion",
    "relative_rotation_error",
    "relative_translation_error",
]

#: UniHOPE's rotation threshold in degrees (released ``prepare_grasp_dexycb.py``).
GRASP_RRE_DEG: float = 5.0
#: UniHOPE's translation threshold in metres.
GRASP_RTE: float = 0.05

_ROTATION_TOL = 1e-3  # |RᵀR − I| and |det R − 1| allowed (float32 annotations are orthonormal to ~1e-6)


def _check_rotations(R: torch.Tensor, name: str, fn: str) -> None:
    """``R`` is a finite floating ``(..., 3, 3)`` stack of rotation matrices (to ``_ROTATION_TOL``)."""
    check_shape(R, "... 3 3", name=name, fn=fn)
    if not R.is_floating_point():
        raise DTypeError(f"{fn}(): argument '{name}' expected a floating-point tensor, got dtype {R.dtype}")
    check_finite(R, name=name, fn=fn)
    if R.numel() == 0:
        return
    R64 = R.detach().to(torch.float64)
    eye = torch.eye(3, dtype=torch.float64, device=R.device)
    off = (R64.transpose(-1, -2) @ R64 - eye).abs().amax(dim=(-1, -2))
    det = torch.linalg.det(R64)
    bad = (off > _ROTATION_TOL) | ((det - 1).abs() > _ROTATION_TOL)
    if bool(bad.any()):
        first = tuple(int(i) for i in bad.nonzero()[0].tolist())
        raise ValueRangeError(
            f"{fn}(): argument '{name}' expected rotation matrices (RᵀR = I, det R = 1, to {_ROTATION_TOL}), "
            f"got {int(bad.sum())} that are not, the first at batch index {first} "
            f"(|RᵀR − I| = {float(off[bad][0]):.3g}, det = {float(det[bad][0]):.4g})"
        )


def _check_translations(t: torch.Tensor, name: str, fn: str) -> None:
    check_shape(t, "... 3", name=name, fn=fn)
    if not t.is_floating_point():
        raise DTypeError(f"{fn}(): argument '{name}' expected a floating-point tensor, got dtype {t.dtype}")
    check_finite(t, name=name, fn=fn)


def _batch_shape(shapes: dict[str, torch.Size], fn: str) -> torch.Size:
    """The broadcast of the leading (batch) shapes; the error names the first argument that does not broadcast."""
    out = torch.Size([])
    for name, shape in shapes.items():
        try:
            out = torch.broadcast_shapes(out, shape)
        except RuntimeError:
            raise ShapeError(
                f"{fn}(): argument '{name}' has batch shape {tuple(shape)}, which does not broadcast with "
                f"{tuple(out)} of the arguments before it ({', '.join(shapes)} must share or broadcast their "
                "leading dimensions)"
            ) from None
    return out


def _rre(R: torch.Tensor, R_first: torch.Tensor) -> torch.Tensor:
    """Unchecked :func:`relative_rotation_error` (same dtype)."""
    trace = (R * R_first).sum(dim=(-1, -2))  # trace(R_firstᵀ R) = Σ_ij R_first_ij R_ij
    return torch.rad2deg(torch.arccos(((trace - 1) / 2).clamp(-1.0, 1.0)))


def _rte(t: torch.Tensor, t_first: torch.Tensor) -> torch.Tensor:
    """Unchecked :func:`relative_translation_error` (same dtype)."""
    return torch.linalg.vector_norm(t - t_first, dim=-1)


def relative_rotation_error(R: torch.Tensor, R_first: torch.Tensor) -> torch.Tensor:
    """Isotropic relative rotation error ``arccos((trace(R_firstᵀ R) − 1) / 2)`` in degrees (UniHOPE eq. 1).

    The cosine is clamped to ``[−1, 1]`` before ``arccos`` (rounding can push
    it just outside), as the released code does with ``np.clip``. The value
    is symmetric in its arguments and does not depend on the camera (a fixed
    change of frame ``C`` cancels in ``(C R_first)ᵀ (C R)``).

    Args:
        R: ``(..., 3, 3)`` rotation matrices of the current frame.
        R_first: ``(..., 3, 3)`` rotation matrices of the reference frame;
            the leading dimensions broadcast with ``R``'s.

    Returns:
        ``(...)`` angles in degrees, in ``[0, 180]``, in the promoted dtype of the inputs.

    Raises:
        ShapeError: not ``(..., 3, 3)``, or batch shapes that do not broadcast.
        DTypeError: not floating point.
        ValueRangeError: a non-finite entry, or a matrix that is not a rotation.

    Shape:
        ``(..., 3, 3), (..., 3, 3) -> (...)``

    Example:
        >>> Rz = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90° about z
        >>> relative_rotation_error(Rz, torch.eye(3))
        tensor(90.)
    """
    fn = "relative_rotation_error"
    _check_rotations(R, "R", fn)
    _check_rotations(R_first, "R_first", fn)
    _batch_shape({"R": R.shape[:-2], "R_first": R_first.shape[:-2]}, fn)
    dtype = torch.promote_types(R.dtype, R_first.dtype)
    return _rre(R.to(dtype), R_first.to(dtype))


def relative_translation_error(t: torch.Tensor, t_first: torch.Tensor) -> torch.Tensor:
    """Relative translation error ``‖t − t_first‖₂`` in the unit of the inputs (metres in hoimask).

    The released code takes the norm of the translation of ``T⁻¹ ∘ T_first``,
    i.e. ``‖Rᵀ (t_first − t)‖``, which is the same number (a rotation keeps lengths).

    Args:
        t: ``(..., 3)`` translations of the current frame.
        t_first: ``(..., 3)`` translations of the reference frame (broadcasts with ``t``).

    Returns:
        ``(...)`` distances, in the promoted dtype of the inputs.

    Raises:
        ShapeError: not ``(..., 3)``, or batch shapes that do not broadcast.
        DTypeError: not floating point.
        ValueRangeError: a non-finite entry.

    Shape:
        ``(..., 3), (..., 3) -> (...)``

    Example:
        >>> relative_translation_error(torch.tensor([0.03, 0.04, 0.5]), torch.tensor([0.0, 0.0, 0.5]))
        tensor(0.0500)
    """
    fn = "relative_translation_error"
    _check_translations(t, "t", fn)
    _check_translations(t_first, "t_first", fn)
    _batch_shape({"t": t.shape[:-1], "t_first": t_first.shape[:-1]}, fn)
    dtype = torch.promote_types(t.dtype, t_first.dtype)
    return _rte(t.to(dtype), t_first.to(dtype))


def grasp_labels_from_motion(
    R: torch.Tensor,
    t: torch.Tensor,
    R_first: torch.Tensor,
    t_first: torch.Tensor,
    rre_deg: float = GRASP_RRE_DEG,
    rte: float = GRASP_RTE,
) -> torch.Tensor:
    """UniHOPE's grasp label: the object moved from its rest pose by more than ``rre_deg`` or ``rte``.

    ``grasped = RRE(R, R_first) > rre_deg  or  RTE(t, t_first) > rte``
    (:func:`relative_rotation_error`, :func:`relative_translation_error`).
    The comparisons are strict, as in the paper ("exceeds") and the released
    code: an error exactly at a threshold is **not** grasping. Errors and
    thresholds are compared in the promoted dtype of the poses (outputs follow
    the inputs), so "exactly 5 cm" means 5 cm in that precision: a float32
    offset of ``0.05`` is at the threshold, not 0.7 nm above it.

    Args:
        R: ``(..., 3, 3)`` object rotation (model → camera) in the current frame.
        t: ``(..., 3)`` object translation in the current frame, metres.
        R_first: ``(..., 3, 3)`` rotation in the reference (rest) frame, e.g. a sequence's first frame.
        t_first: ``(..., 3)`` translation in the reference frame.
        rre_deg: rotation threshold in degrees, in ``[0, 180]`` (default 5°).
        rte: translation threshold in metres, ``>= 0`` (default 0.05 m).

    Returns:
        ``(...)`` bool, True = grasping; the leading dimensions of all four
        inputs broadcast (e.g. one ``R_first (3, 3)`` for a whole sequence).

    Raises:
        ShapeError: a pose of the wrong shape, or batch shapes that do not broadcast.
        DTypeError: a non-floating pose or a threshold that is not a real number.
        ValueRangeError: a non-finite pose, a matrix that is not a rotation, a
            negative (or NaN) threshold, ``rre_deg`` above 180.

    Shape:
        ``(..., 3, 3), (..., 3), (..., 3, 3), (..., 3) -> (...)``

    Example:
        >>> R0, t0 = torch.eye(3), torch.zeros(3)
        >>> t = torch.tensor([[0.0, 0.0, 0.0], [0.05, 0.0, 0.0], [0.0, 0.051, 0.0]])
        >>> grasp_labels_from_motion(R0.expand(3, 3, 3), t, R0, t0)  # exactly 5 cm is not grasping
        tensor([False, False,  True])
    """
    fn = "grasp_labels_from_motion"
    _check_rotations(R, "R", fn)
    _check_translations(t, "t", fn)
    _check_rotations(R_first, "R_first", fn)
    _check_translations(t_first, "t_first", fn)
    rre_deg = check_in_range(rre_deg, name="rre_deg", low=0.0, high=180.0, fn=fn)
    rte = check_in_range(rte, name="rte", low=0.0, high=math.inf, fn=fn)
    shape = _batch_shape({"R": R.shape[:-2], "t": t.shape[:-1], "R_first": R_first.shape[:-2],
                          "t_first": t_first.shape[:-1]}, fn)  # fmt: skip
    dtype = torch.promote_types(torch.promote_types(R.dtype, R_first.dtype), torch.promote_types(t.dtype, t_first.dtype))
    rot = _rre(R.to(dtype), R_first.to(dtype))
    trans = _rte(t.to(dtype), t_first.to(dtype))
    return ((rot > rot.new_tensor(rre_deg)) | (trans > trans.new_tensor(rte))).expand(shape)
