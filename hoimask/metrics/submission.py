"""The HO3D CodaLab submission file (``pred.json``).

The HO3D server (``eval.py`` of the official ``ho3d`` repository) loads one
JSON document ``[xyz_pred_list, verts_pred_list]``: two lists with one entry
per evaluation image, in the order of ``evaluation.txt``; each entry is the
``21 x 3`` joints or ``778 x 3`` MANO vertices in metres, in the **OpenGL**
camera frame (x right, y up, z towards the viewer, so visible points have
``z < 0``) and in HO3D's joint order (MANO's 16 joints, then the tips thumb,
index, middle, ring, little -- :data:`hoimask.skeleton.JOINT_ORDERS` ``"ho3d"``).
The official ``pred.py`` refuses predictions whose points all have ``z > 0``.
hoimask keeps OpenCV (y down, z forward) and the canonical joint order, so the
writer flips y and z (``diag(1, -1, -1)``, the ``coord_change_mat`` of
HO3D/HOISDF) and reorders the joints. CodaLab takes a zip of ``pred.json``:
give a path ending in ``.zip`` to get one.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from hoimask._checks import ShapeError, ValueRangeError, check_choice, check_shape
from hoimask._io import atomic_replace
from hoimask.metrics._arrays import ArrayLike, to_tensors
from hoimask.metrics._finite import check_prediction
from hoimask.skeleton.joints import JOINT_ORDERS, order_indices

__all__ = ["ho3d_submission_arrays", "write_ho3d_submission", "OPENCV_TO_OPENGL"]

#: Diagonal change of basis between OpenCV and OpenGL camera frames (its own inverse).
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0])


def ho3d_submission_arrays(
    joints: ArrayLike, vertices: ArrayLike, *, joint_order: str = "canonical"
) -> tuple[np.ndarray, np.ndarray]:
    """Convert OpenCV-frame predictions to the HO3D server's frame and joint order.

    Args:
        joints: ``(N, 21, 3)`` predicted joints in metres, OpenCV frame, in ``joint_order``.
        vertices: ``(N, 778, 3)`` predicted MANO vertices in metres, OpenCV frame.
        joint_order: order of ``joints`` (a key of ``JOINT_ORDERS``).

    Returns:
        ``(xyz, verts)`` float64 NumPy arrays ``(N, 21, 3)`` and ``(N, 778, 3)``,
        OpenGL frame, HO3D joint order.

    Raises:
        ValueRangeError: a joint or vertex is NaN or infinite (JSON has no such
            numbers: ``json.dumps`` would write ``NaN``, which the server
            rejects), or a sample has every joint or every vertex at ``z <= 0``
            before conversion (it looks like it is already in the OpenGL frame;
            the official ``pred.py`` rejects such files).

    Shape:
        - joints: ``(N, 21, 3)``; vertices: ``(N, 778, 3)``
        - outputs: the same shapes
    """
    return _submission_arrays(joints, vertices, joint_order, "ho3d_submission_arrays")


def _submission_arrays(joints, vertices, joint_order: str, fn: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`ho3d_submission_arrays`, its errors naming the public function ``fn``."""
    check_choice(joint_order, JOINT_ORDERS, name="joint_order", fn=fn)
    _, t = to_tensors(fn, joints=joints, vertices=vertices)
    dims = check_shape(t["joints"], "N 21 3", name="joints", fn=fn)
    check_shape(t["vertices"], "N 778 3", name="vertices", dims=dims, fn=fn)
    check_prediction(t["joints"], name="joints", fn=fn)
    check_prediction(t["vertices"], name="vertices", fn=fn)
    xyz = t["joints"].detach().cpu().double().numpy()
    verts = t["vertices"].detach().cpu().double().numpy()
    bad = np.all(xyz[..., 2] <= 0, axis=1) | np.all(verts[..., 2] <= 0, axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueRangeError(
            f"{fn}(): expected OpenCV-frame predictions (z > 0 in front of the "
            f"camera), but sample {first} has all points at z <= 0 ({int(bad.sum())} such samples); "
            "are they already in the OpenGL frame?"
        )
    xyz = xyz[:, order_indices(joint_order, "ho3d")] @ OPENCV_TO_OPENGL  # (N, 21, 3)
    verts = verts @ OPENCV_TO_OPENGL  # (N, 778, 3)
    return xyz, verts


def write_ho3d_submission(
    path: str | os.PathLike,
    joints: ArrayLike,
    vertices: ArrayLike,
    *,
    joint_order: str = "canonical",
    expected_num_samples: int | None = None,
) -> str:
    """Write the HO3D CodaLab submission ``[xyz_pred_list, verts_pred_list]``.

    The file is written atomically (temporary file, then ``os.replace``). A
    path ending in ``.zip`` gets a zip archive holding ``pred.json``, which is
    what CodaLab accepts; any other path gets the JSON itself.

    Args:
        path: output file.
        joints: ``(N, 21, 3)`` joints in metres, OpenCV frame, in ``joint_order``,
            in the order of HO3D's ``evaluation.txt``.
        vertices: ``(N, 778, 3)`` MANO vertices in metres, OpenCV frame.
        joint_order: order of ``joints``.
        expected_num_samples: if given, ``N`` must equal it (HO3D v2: 11524
            evaluation images; v3: 20137).

    Returns:
        The path written, as a string.

    Raises:
        ValueRangeError: a non-finite joint or vertex (named, with the index of
            the first one), or predictions that look like OpenGL already; no
            file is written.

    Shape:
        - joints: ``(N, 21, 3)``; vertices: ``(N, 778, 3)``
    """
    xyz, verts = _submission_arrays(joints, vertices, joint_order, "write_ho3d_submission")
    if expected_num_samples is not None and xyz.shape[0] != expected_num_samples:
        raise ShapeError(
            f"write_ho3d_submission(): expected {expected_num_samples} samples, got {xyz.shape[0]}"
        )
    payload = json.dumps([xyz.tolist(), verts.tolist()]).encode("utf-8")
    path = os.fspath(path)
    if path.endswith(".zip"):

        def write(f):
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                zf.writestr("pred.json", payload)

    else:

        def write(f):
            f.write(payload)

    with atomic_replace(path) as tmp, open(tmp, "wb") as f:
        write(f)
    return path
