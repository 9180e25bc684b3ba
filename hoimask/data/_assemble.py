"""Building the sample dictionary of a real frame from its hand mesh and object model (shared by loaders)."""

from __future__ import annotations

import operator
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from hoimask._checks import (
    DTypeError,
    FileFormatError,
    ValueRangeError,
    check_finite,
    check_in_range,
    check_int,
    check_shape,
)
from hoimask.geometry import project

from ._io import read_obj
from .raster import mesh_silhouette
from .targets import mesh_sdf_targets

__all__ = ["FrameMeshes", "ObjectModels", "frame_sample", "posed_model_sdf"]


class FrameMeshes(NamedTuple):
    """The hand and object meshes of one real frame, in the dataset's camera frame (metres, OpenCV axes).

    Returned by ``DexYCB.frame_meshes`` / ``HO3D.frame_meshes`` for exporters
    (:mod:`hoimask.data.export_sdf`). DexYCB left hands are *not* mirrored here
    (HOISDF's files store the original frame); ``mirrored`` says whether the
    loader's samples are (``x -> -x``).

    Shape:
        - hand_vertices ``(V, 3)`` float64 (``None``: no hand annotation); hand_faces ``(T, 3)`` int64;
          hand_weights ``(V, 16)`` MANO skinning weights
        - object_vertices ``(V', 3)`` float64 posed (``None``: no object or no pose); object_faces ``(T', 3)``
    """

    hand_vertices: torch.Tensor | None
    hand_faces: torch.Tensor
    hand_weights: torch.Tensor
    object_vertices: torch.Tensor | None
    object_faces: torch.Tensor | None
    mirrored: bool
    source: Path


class ObjectModels:
    """Lazily loaded object meshes with fixed model points (``P`` area-uniform samples per model).

    Args:
        paths: name -> mesh file.
        num_points: ``P``, at least 1.
    """

    def __init__(self, paths: dict, num_points: int) -> None:
        self.paths = dict(paths)
        self.num_points = check_int(num_points, name="num_points", low=1)
        self._cache: dict = {}
        self._trees: dict = {}

    def __getstate__(self) -> dict:
        return {"paths": self.paths, "num_points": self.num_points, "_cache": {}, "_trees": {}}

    def bvh(self, name):
        """A :class:`hoimask.ops.MeshBVH` of model ``name`` in its own frame, built once per process.

        ``None`` when the BVH is unavailable (numba not installed, or
        ``HOIMASK_DISABLE_NUMBA=1``): the SDF targets then run
        :func:`hoimask.ops.mesh_sdf` on the posed model every frame.
        """
        from hoimask.ops.mesh_sdf.bvh import MeshBVH, bvh_enabled

        if not bvh_enabled(torch.device("cpu")):
            return None
        if name not in self._trees:
            v, f, _ = self[name]
            self._trees[name] = MeshBVH(v, f)
        return self._trees[name]

    def __getitem__(self, name) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(vertices (V, 3), faces (T, 3), model points (P, 3))`` of model ``name``, model frame."""
        if name not in self._cache:
            if name not in self.paths:
                raise FileFormatError(f"unknown object model {name!r}; known: {sorted(self.paths)}")
            from hoimask.sdf.samplers import sample_surface

            v, f = read_obj(self.paths[name])
            seed = sum(ord(c) * (i + 1) for i, c in enumerate(str(name)))  # fixed points per model
            pts = sample_surface(v[None], f, self.num_points, generator=torch.Generator().manual_seed(seed))[0][0]
            self._cache[name] = (v, f, pts)
        return self._cache[name]


def posed_model_sdf(
    bvh, rotation: torch.Tensor, translation: torch.Tensor, mirror: torch.Tensor | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Signed distance to a posed (and possibly mirrored) model from a BVH built in the model frame.

    The posed model is ``x M R^T + t`` (``M`` the mirror, identity when
    ``None``; faces flipped with it), so a camera point ``p`` lies at
    ``(p - t) R M`` in the model frame, where distances are the same.

    Args:
        bvh: a :class:`hoimask.ops.MeshBVH` of the model in its own frame.
        rotation: ``R``, ``(3, 3)``.
        translation: ``t``, ``(3,)``.
        mirror: ``M``, a diagonal ``(3, 3)`` of +-1, or ``None``.

    Returns:
        ``(Q, 3) camera-frame points -> (Q,)`` signed distances (the points' dtype).

    Raises:
        ShapeError: wrong shapes.
        ValueRangeError: a non-finite pose, a ``rotation`` that is not a
            rotation (``R R^T = I``, ``det R = 1``, to 1e-5), or a ``mirror``
            that is not a diagonal of +-1.
    """
    fn = "posed_model_sdf"
    check_shape(rotation, "3 3", name="rotation", fn=fn)
    check_shape(translation, "3", name="translation", fn=fn)
    R, t = rotation.to(torch.float64), translation.to(torch.float64)
    check_finite(R, name="rotation", fn=fn)
    check_finite(t, name="translation", fn=fn)
    if not torch.allclose(R @ R.T, torch.eye(3, dtype=R.dtype), atol=1e-5) or float(torch.det(R)) < 0:
        raise ValueRangeError(f"{fn}(): argument 'rotation' expected a rotation matrix (R R^T = I, det R = 1), "
                              f"got {R.tolist()}")  # fmt: skip
    frame = R
    if mirror is not None:
        check_shape(mirror, "3 3", name="mirror", fn=fn)
        M = mirror.to(torch.float64)
        if not torch.equal(M, torch.diag(torch.diagonal(M))) or not bool((torch.diagonal(M).abs() == 1).all()):
            raise ValueRangeError(f"{fn}(): argument 'mirror' expected a diagonal matrix of +-1, got {M.tolist()}")
        frame = R @ M

    def sdf(points: torch.Tensor) -> torch.Tensor:
        return bvh.sdf((points.to(torch.float64) - t) @ frame).to(points.dtype)

    return sdf


def check_frame_options(num_object_points: int, num_sdf_points: int, contact_threshold: float, *,
                        fn: str) -> tuple[int, int, float]:
    """Validate the options every real-data loader takes.

    Args:
        num_object_points: ``P``, at least 1.
        num_sdf_points: ``Q``, at least 0 (0 skips the SDF computation).
        contact_threshold: metres, at least 0.
        fn: the loader's name for error messages (e.g. ``"HO3D.__init__"``).

    Returns:
        ``(num_object_points, num_sdf_points, contact_threshold)`` as ``(int, int, float)``.

    Raises:
        ValueRangeError: a value below its bound. DTypeError: a count that is
        not an int (``2.5`` is refused, never truncated), a threshold that is
        not a real number.
    """
    return (check_int(num_object_points, name="num_object_points", low=1, fn=fn),
            check_int(num_sdf_points, name="num_sdf_points", low=0, fn=fn),
            check_in_range(contact_threshold, name="contact_threshold", low=0.0, fn=fn))


def frame_index(index: int, n: int, *, who: str) -> int:
    """``index`` (negative counts from the end) as a position in ``[0, n)``.

    Args:
        index: the requested frame: an ``int``, a NumPy integer or a 0-d
            integer tensor (what samplers hand out); never a float or a bool.
        n: the number of frames.
        who: the calling method for the error message (e.g. ``"DexYCB.__getitem__"``).

    Returns:
        ``index % n``.

    Raises:
        DTypeError: ``index`` is not an integer (``2.5`` or ``2.0``).
        IndexError: ``index`` outside ``[-n, n)`` (the sequence protocol's error, which ends iteration).
    """
    try:
        if isinstance(index, (bool, np.bool_)):
            raise TypeError
        i = operator.index(index)
    except TypeError:
        raise DTypeError(f"{who}(): argument 'index' expected an int, got {index!r} ({type(index).__name__})") from None
    if not -n <= i < n:
        raise IndexError(f"{who}(): index {i} out of range for {n} frames")
    return i % n


def model_path(root: str | os.PathLike, name: str) -> Path:
    """``root/models/<name>/textured_simple.obj`` (the YCB layout both datasets use)."""
    return Path(root) / "models" / name / "textured_simple.obj"


def frame_sample(
    *,
    image: torch.Tensor,
    depth: torch.Tensor,
    segmentation: torch.Tensor,
    K: torch.Tensor,
    joints_3d: torch.Tensor,
    hand_pose: torch.Tensor,
    hand_shape: torch.Tensor,
    hand_vertices: torch.Tensor | None,
    hand_faces: torch.Tensor,
    rotation: torch.Tensor,
    translation: torch.Tensor,
    model: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
    num_sdf_points: int,
    contact_threshold: float,
    generator: torch.Generator,
    object_name: str,
    sdf_targets: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    grasped: bool | None = None,
    object_sdf: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, torch.Tensor | str]:
    """Assemble a sample; hand targets are NaN when ``hand_vertices`` is ``None`` (no annotation).

    ``model`` is ``(vertices, faces, model points)`` in the model frame, or
    ``None`` when the object's shape is unknown (its SDF is then NaN).
    ``object_name`` is the object's model name (YCB: ``"019_pitcher_base"``),
    ``""`` when the frame names none; it becomes the sample's ``object_name``.
    ``sdf_targets`` ``(points (Q, 3), sdf_hand (Q,), sdf_object (Q,))``, when
    given (read from exported files), replace the on-the-fly SDF computation.
    ``object_sdf``: the posed object's SDF from a cached tree
    (:func:`posed_model_sdf`), passed to :func:`mesh_sdf_targets`.

    ``grasped``: the sample's label when the loader computed it (DexYCB's
    motion rule, :func:`hoimask.data.grasp.grasp_labels_from_motion`); ``None``
    applies the *contact rule*: True when the hand mesh comes within
    ``contact_threshold`` of the object's model points (False without a hand
    annotation or an object pose).
    """
    from hoimask.ops import mesh_sdf

    H, W = image.shape[1:]
    q = num_sdf_points
    nan = float("nan")
    R, t = rotation.to(torch.float64), translation.to(torch.float64)
    obj_verts = None if model is None else model[0].to(torch.float64) @ R.T + t
    if hand_vertices is not None:
        amodal = mesh_silhouette(hand_vertices, hand_faces, K, H, W)
        if sdf_targets is not None:
            sdf_points, sdf_hand, sdf_obj = sdf_targets
        elif q > 0:
            sdf_points, sdf_hand, sdf_obj = mesh_sdf_targets(
                hand_vertices, hand_faces, obj_verts, None if model is None else model[1], q, generator=generator,
                object_sdf=None if model is None else object_sdf,
            )
        else:
            sdf_points, sdf_hand, sdf_obj = torch.zeros(0, 3), torch.zeros(0), torch.zeros(0)
        if grasped is None:  # the contact rule
            grasped = False
            if model is not None and torch.isfinite(R).all():
                pts = (model[2].to(torch.float64) @ R.T + t)[None].float()
                grasped = bool(mesh_sdf(pts, hand_vertices[None].float(), hand_faces)[0].min() < contact_threshold)
    else:
        amodal = segmentation == 1
        sdf_points, sdf_hand, sdf_obj = torch.zeros(q, 3), torch.full((q,), nan), torch.full((q,), nan)
        grasped = False if grasped is None else grasped
    amodal = amodal | (segmentation == 1)
    visible, total = int((segmentation == 1).sum()), int(amodal.sum())
    points = torch.full((1, 3), nan) if model is None else model[2]
    return {
        "image": image.float(),
        "segmentation": segmentation.long(),
        "amodal_hand_mask": amodal,
        "depth": depth.float(),
        "joints_3d": joints_3d.float(),
        "joints_2d": project(joints_3d.to(torch.float64), K.to(torch.float64)).float(),
        "K": K.float(),
        "hand_pose": hand_pose.float(),
        "hand_shape": hand_shape.float(),
        "object_rotation": R.float(),
        "object_translation": t.float(),
        "object_points": points.float(),
        "sdf_points": sdf_points.float(),
        "sdf_hand": sdf_hand.float(),
        "sdf_object": sdf_obj.float(),
        "grasped": torch.tensor(bool(grasped)),
        "occlusion_ratio": torch.tensor(1.0 - visible / total if total else 0.0, dtype=torch.float32),
        "has_object": torch.tensor(True),
        "object_name": str(object_name),
    }
