"""Hand pose and mesh errors: MPJPE, PA-MPJPE, ST-MPJPE, MPVPE, PA-MPVPE.

All functions take a batch of predictions and ground truths ``(B, N, 3)`` as
torch tensors or NumPy arrays and return one value per sample ``(B,)`` in the
input's units and array type (see ``docs/metrics.md``). Which official code
each one reproduces:

* :func:`mpjpe` -- ``EvalUtil.feed`` + ``get_measures`` mean (HO3D/FreiHAND
  ``eval.py``; DexYCB ``hpe_eval.py`` "absolute" and, with
  ``root_relative=True``, "root-relative").
* :func:`pa_mpjpe` -- HO3D/FreiHAND/DexYCB ``align_w_scale`` (SciPy
  ``orthogonal_procrustes``: reflections allowed) by default;
  ``allow_reflection=False`` is HOISDF ``rigid_align`` (proper rotation).
* :func:`st_mpjpe` -- HO3D ``align_sc_tr``.
* :func:`mpvpe` / :func:`pa_mpvpe` -- the same on MANO vertices (HO3D mesh
  error, HOISDF DexYCB MME).

Non-finite values (docs/conventions.md): a NaN or infinite prediction raises
``ValueRangeError``; a non-finite ground-truth joint or vertex is unannotated
and left out of its sample's mean (and of the Procrustes fit); a sample with
nothing left to measure gets NaN.
"""

from __future__ import annotations

import torch

from hoimask._checks import DTypeError, ValueRangeError, check_choice, check_int, check_shape
from hoimask.metrics._arrays import ArrayLike, like_input, to_tensors
from hoimask.metrics._finite import (
    annotated,
    check_prediction,
    masked_mean,
    masked_procrustes_align,
    sanitise,
)
from hoimask.skeleton.joints import JOINT_ORDERS

__all__ = ["mpjpe", "pa_mpjpe", "st_mpjpe", "st_align", "mpvpe", "pa_mpvpe", "joint_index"]


def joint_index(joint: int | str, joint_order: str = "canonical", *, num_joints: int | None = None) -> int:
    """Resolve a joint given by name (in ``joint_order``) or by index.

    Args:
        joint: a joint name such as ``"wrist"`` or an integer index.
        joint_order: a key of :data:`hoimask.skeleton.JOINT_ORDERS`
            (``"canonical"``, ``"mano"``, ``"ho3d"``).
        num_joints: when given, an integer index must lie in ``[0, num_joints)``.

    Returns:
        The integer index of the joint in that order.
    """
    check_choice(joint_order, JOINT_ORDERS, name="joint_order", fn="joint_index")
    if isinstance(joint, str):
        names = JOINT_ORDERS[joint_order]
        check_choice(joint, names, name="joint", fn="joint_index")
        return names.index(joint)
    if isinstance(joint, bool) or not isinstance(joint, int):
        raise DTypeError(f"joint_index(): argument 'joint' expected a joint name or an int, got {type(joint).__name__}")
    return check_int(joint, name="joint", low=0, high=None if num_joints is None else num_joints - 1, fn="joint_index")


def _mean_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, N, 3), (B, N, 3) -> (B,) mean Euclidean distance over N."""
    return torch.linalg.vector_norm(a - b, dim=-1).mean(dim=-1)


def _check_pair(pred: torch.Tensor, gt: torch.Tensor, letter: str, fn: str) -> dict[str, int]:
    dims = check_shape(pred, f"B {letter} 3", name="pred", fn=fn)
    check_shape(gt, f"B {letter} 3", name="gt", dims=dims, fn=fn)
    check_prediction(pred, name="pred", fn=fn)
    return dims


def _pa_error(pred: torch.Tensor, gt: torch.Tensor, allow_reflection: bool) -> torch.Tensor:
    """(B, N) per-point error after Procrustes on the annotated points -> (B,) masked mean."""
    valid = annotated(gt)  # (B, N)
    aligned = masked_procrustes_align(pred, gt, valid, allow_reflection=bool(allow_reflection))
    return masked_mean(torch.linalg.vector_norm(aligned - sanitise(gt, valid), dim=-1), valid)


def mpjpe(
    pred: ArrayLike,
    gt: ArrayLike,
    *,
    root_relative: bool = False,
    root: int | str = "wrist",
    joint_order: str = "canonical",
) -> ArrayLike:
    """Mean per-joint position error (MJE / MPJPE), one value per sample.

    ``mean_j || pred_j - gt_j ||``; with ``root_relative=True`` both skeletons
    are first translated so that their ``root`` joints sit at the origin
    (DexYCB "root-relative", UniHOPE J-PE).

    Args:
        pred: predicted joints, finite.
        gt: ground-truth joints, same shape; non-finite joints are unannotated
            and excluded (with ``root_relative``, a sample whose root is not
            annotated has nothing to measure).
        root_relative: subtract each skeleton's root joint first.
        root: the root joint, by name in ``joint_order`` or by index.
        joint_order: joint order of the inputs, used to resolve ``root`` by name.

    Returns:
        ``(B,)`` errors in the input's units and type; NaN for a sample without
        an annotated joint.

    Raises:
        ValueRangeError: ``pred`` holds a NaN or infinity.

    Shape:
        - pred, gt: ``(B, J, 3)``
        - output: ``(B,)``

    Example:
        >>> import torch
        >>> gt = torch.zeros(1, 21, 3)
        >>> mpjpe(gt + torch.tensor([0.0, 0.0, 0.01]), gt)
        tensor([0.0100])
    """
    was_numpy, t = to_tensors(pred=pred, gt=gt)
    p, g = t["pred"], t["gt"]
    dims = _check_pair(p, g, "J", "mpjpe")
    valid = annotated(g)  # (B, J)
    g = sanitise(g, valid)
    if root_relative:
        r = joint_index(root, joint_order, num_joints=dims["J"])
        p = p - p[:, r : r + 1]
        g = g - g[:, r : r + 1]
        valid = valid & valid[:, r : r + 1]
    return like_input(was_numpy, masked_mean(torch.linalg.vector_norm(p - g, dim=-1), valid))


def pa_mpjpe(pred: ArrayLike, gt: ArrayLike, *, allow_reflection: bool = True) -> ArrayLike:
    """Procrustes-aligned mean per-joint error (PA-MJE / PA-MPJPE).

    Each prediction is aligned to its ground truth by the least-squares
    similarity transform (scale, orthogonal matrix, translation; Umeyama), then
    :func:`mpjpe` is taken. The alignment comes from
    :func:`hoimask.geometry.procrustes_align`.

    Args:
        pred: predicted joints, finite.
        gt: ground-truth joints; non-finite joints are unannotated: the fit
            and the mean use the annotated joints only.
        allow_reflection: ``True`` (default) lets the orthogonal matrix be a
            reflection, exactly as SciPy ``orthogonal_procrustes`` in
            HO3D/FreiHAND ``align_w_scale`` (also used by DexYCB
            ``hpe_eval.py``); ``False`` forces a proper rotation (det = +1) as
            HOISDF ``rigid_align``. The two agree unless the best fit is a
            mirror image, where the reflecting one gives the smaller error.

    Returns:
        ``(B,)`` errors in the input's units and type; NaN for a sample without
        an annotated joint.

    Raises:
        ValueRangeError: ``pred`` holds a NaN or infinity.

    Shape:
        - pred, gt: ``(B, J, 3)``
        - output: ``(B,)``
    """
    was_numpy, t = to_tensors(pred=pred, gt=gt)
    _check_pair(t["pred"], t["gt"], "J", "pa_mpjpe")
    return like_input(was_numpy, _pa_error(t["pred"], t["gt"], allow_reflection))


def st_align(
    pred: torch.Tensor,
    gt: torch.Tensor,
    *,
    root: int | str = "wrist",
    bone_end: int | str = "middle_mcp",
    joint_order: str = "canonical",
) -> torch.Tensor:
    """Scale-translation alignment of HO3D ``align_sc_tr`` (torch tensors).

    The prediction is scaled about the origin so that its ``root -> bone_end``
    bone (wrist -> middle MCP) has the ground-truth length, then translated so
    its root joint coincides with the ground-truth root. As in the official
    code, a prediction whose bone has zero length is not normalised (it is
    multiplied by the ground-truth bone length only).

    Args:
        pred: predicted joints (torch).
        gt: ground-truth joints (torch).
        root: the root joint (wrist), by name in ``joint_order`` or index.
        bone_end: the other end of the scale bone (middle MCP).
        joint_order: order of the joints.

    Returns:
        The aligned prediction.

    Shape:
        - pred, gt: ``(B, J, 3)``
        - output: ``(B, J, 3)``
    """
    dims = check_shape(pred, "B J 3", name="pred")
    check_shape(gt, "B J 3", name="gt", dims=dims)
    check_choice(joint_order, JOINT_ORDERS, name="joint_order")
    J = dims["J"]
    for name, joint in (("root", root), ("bone_end", bone_end)):  # named in the error, not as 'joint'
        if isinstance(joint, str):
            check_choice(joint, JOINT_ORDERS[joint_order], name=name)
        else:
            check_int(joint, name=name, low=0, high=J - 1)
    r = joint_index(root, joint_order, num_joints=J)
    e = joint_index(bone_end, joint_order, num_joints=J)
    s_pred = torch.linalg.vector_norm(pred[:, e] - pred[:, r], dim=-1)  # (B,)
    s_gt = torch.linalg.vector_norm(gt[:, e] - gt[:, r], dim=-1)  # (B,)
    norm = torch.where(s_pred > 0, s_pred, torch.ones_like(s_pred))  # HO3D: `if s > 0`
    scaled = pred * (s_gt / norm)[:, None, None]  # (B, J, 3)
    return scaled - scaled[:, r : r + 1] + gt[:, r : r + 1]


def st_mpjpe(
    pred: ArrayLike,
    gt: ArrayLike,
    *,
    joint_order: str = "canonical",
) -> ArrayLike:
    """Scale-translation aligned mean joint error (ST-MJE), HO3D ``align_sc_tr``.

    The prediction is scaled so that its wrist -> middle-MCP bone matches the
    ground truth's length, translated so its wrist lands on the ground-truth
    wrist, then :func:`mpjpe` is taken. Joints are found by name in
    ``joint_order`` (HO3D's own code uses indices 0 and 4 of its MANO order,
    which are the same two joints).

    Args:
        pred: predicted joints, finite.
        gt: ground-truth joints; non-finite joints are unannotated and
            excluded; a sample whose wrist or middle MCP is not annotated
            cannot be aligned and has nothing to measure.
        joint_order: order of the 21 joints of both inputs (``"canonical"``,
            ``"mano"`` or ``"ho3d"``).

    Returns:
        ``(B,)`` errors in the input's units and type; NaN for a sample that
        cannot be measured.

    Raises:
        ValueRangeError: ``pred`` holds a NaN or infinity.

    Shape:
        - pred, gt: ``(B, 21, 3)``
        - output: ``(B,)``
    """
    was_numpy, t = to_tensors(pred=pred, gt=gt)
    check_shape(t["pred"], "B 21 3", name="pred")
    check_shape(t["gt"], "B 21 3", name="gt", dims={"B": t["pred"].shape[0]})
    check_prediction(t["pred"], name="pred", fn="st_mpjpe")
    valid = annotated(t["gt"])  # (B, 21)
    g = sanitise(t["gt"], valid)
    r, e = joint_index("wrist", joint_order), joint_index("middle_mcp", joint_order)
    valid = valid & valid[:, r : r + 1] & valid[:, e : e + 1]  # the ST bone must be annotated
    aligned = st_align(t["pred"], g, joint_order=joint_order)
    return like_input(was_numpy, masked_mean(torch.linalg.vector_norm(aligned - g, dim=-1), valid))


def mpvpe(
    pred: ArrayLike,
    gt: ArrayLike,
    *,
    pred_root: ArrayLike | None = None,
    gt_root: ArrayLike | None = None,
) -> ArrayLike:
    """Mean per-vertex position error (MME / MPVPE), one value per sample.

    ``mean_v || pred_v - gt_v ||`` over corresponding vertices (MANO's 778).
    For the root-relative variant (UniHOPE V-PE) pass each mesh's root joint:
    the vertices are translated by ``-pred_root`` and ``-gt_root`` first.

    Args:
        pred: predicted vertices, finite.
        gt: ground-truth vertices; non-finite vertices are unannotated and excluded.
        pred_root: optional ``(B, 3)`` root of the prediction (give both or
            neither), finite.
        gt_root: optional ``(B, 3)`` root of the ground truth; a non-finite
            root leaves its sample nothing to measure.

    Returns:
        ``(B,)`` errors in the input's units and type; NaN for a sample that
        cannot be measured.

    Raises:
        ValueRangeError: ``pred`` or ``pred_root`` holds a NaN or infinity.

    Shape:
        - pred, gt: ``(B, V, 3)``
        - pred_root, gt_root: ``(B, 3)``
        - output: ``(B,)``
    """
    was_numpy, t = to_tensors(pred=pred, gt=gt, pred_root=pred_root, gt_root=gt_root)
    p, g = t["pred"], t["gt"]
    dims = _check_pair(p, g, "V", "mpvpe")
    if (t["pred_root"] is None) != (t["gt_root"] is None):
        raise ValueRangeError("mpvpe(): give both 'pred_root' and 'gt_root' or neither")
    valid = annotated(g)  # (B, V)
    g = sanitise(g, valid)
    if t["pred_root"] is not None:
        check_shape(t["pred_root"], "B 3", name="pred_root", dims=dims)
        check_shape(t["gt_root"], "B 3", name="gt_root", dims=dims)
        check_prediction(t["pred_root"], name="pred_root", fn="mpvpe")
        root_ok = annotated(t["gt_root"])  # (B,)
        p = p - t["pred_root"][:, None]
        g = g - sanitise(t["gt_root"], root_ok)[:, None]
        valid = valid & root_ok[:, None]
    return like_input(was_numpy, masked_mean(torch.linalg.vector_norm(p - g, dim=-1), valid))


def pa_mpvpe(pred: ArrayLike, gt: ArrayLike, *, allow_reflection: bool = True) -> ArrayLike:
    """Procrustes-aligned mean per-vertex error (PA-MME / PA-MPVPE).

    The vertices are aligned with their own similarity Procrustes fit, as
    HO3D ``eval.py`` does for MANO-shaped meshes (``align_w_scale(verts,
    verts_pred)``) and HOISDF does on DexYCB (``rigid_align``). See
    :func:`pa_mpjpe` for ``allow_reflection``.

    Args:
        pred: predicted vertices, finite.
        gt: ground-truth vertices (corresponding to ``pred``); non-finite
            vertices are unannotated: the fit and the mean use the others.
        allow_reflection: reflections allowed in the fit (official HO3D: ``True``).

    Returns:
        ``(B,)`` errors in the input's units and type; NaN for a sample without
        an annotated vertex.

    Raises:
        ValueRangeError: ``pred`` holds a NaN or infinity.

    Shape:
        - pred, gt: ``(B, V, 3)``
        - output: ``(B,)``
    """
    was_numpy, t = to_tensors(pred=pred, gt=gt)
    _check_pair(t["pred"], t["gt"], "V", "pa_mpvpe")
    return like_input(was_numpy, _pa_error(t["pred"], t["gt"], allow_reflection))
