"""HO3D (v2 / v3) loader reading the official layout, converted to OpenCV and the canonical joint order.

Layout read::

    ROOT/train.txt, ROOT/evaluation.txt          one "SEQ/FRAME" per line
    ROOT/<split>/<SEQ>/rgb/<FRAME>.png|.jpg      (v2 png, v3 jpg)
    ROOT/<split>/<SEQ>/depth/<FRAME>.png         depth = (R + 256 G) * 0.00012498664727900177 m
    ROOT/<split>/<SEQ>/seg/<FRAME>.png|.jpg      hand = blue channel, object = green channel
                                                 (train only; may be half resolution)
    ROOT/<split>/<SEQ>/meta/<FRAME>.pkl          handPose (48), handBeta (10), handTrans (3),
                                                 handJoints3D (21, 3), camMat (3, 3), objRot (3, 1),
                                                 objTrans (3), objName, objCorners3D (8, 3)
    ROOT/models/<objName>/textured_simple.obj    YCB models

HO3D's 3D annotations live in an OpenGL camera frame (y up, z backwards);
the loader applies ``C = diag(1, -1, -1)`` to every 3D quantity (points,
object rotation ``R' = C R``, translation, the hand's global rotation) so
samples use OpenCV's frame. Joints are reordered from HO3D's (MANO + tips)
order to the canonical order. ``handPose`` is MANO's full axis-angle pose
with the flat hand as zero (``flat_hand_mean=True``). Samples carry the
meta's ``objName`` as ``object_name`` (``""`` when the meta names none), e.g.
for HOISDF's exclusion of ``019_pitcher_base`` from the object metrics.

The evaluation split has no hand pose, shape or segmentation: its meta gives
the root (wrist) joint ``handJoints3D (3,)`` and ``handBoundingBox``. Those
samples carry NaN for every unknown target (only ``joints_3d[0]`` is set),
segmentation 0 everywhere, and an extra key ``box`` (4,) with the hand box,
which :class:`hoimask.data.transforms.RandomCropResize` crops around.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from hoimask._checks import FileFormatError, check_choice, check_int
from hoimask.geometry import axis_angle_to_matrix, matrix_to_axis_angle
from hoimask.skeleton import convert_joint_order

from ._assemble import (
    FrameMeshes,
    ObjectModels,
    check_frame_options,
    frame_index,
    frame_sample,
    model_path,
    posed_model_sdf,
)
from ._io import (
    array_field,
    intrinsics_field,
    name_field,
    read_image,
    read_mask_png,
    read_pickle,
    read_text,
    require_file,
)
from .cache import _index_seed
from .deoccluded import DeoccludedPairs

__all__ = ["HO3D", "HO3D_DEPTH_SCALE", "OPENGL_TO_OPENCV", "read_ho3d_depth"]

#: Metres per unit of HO3D's depth encoding ``R + 256 G``.
HO3D_DEPTH_SCALE = 0.00012498664727900177
#: HO3D's OpenGL camera frame -> OpenCV camera frame.
OPENGL_TO_OPENCV = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))

_TRAIN_KEYS = ("handPose", "handBeta", "handTrans", "handJoints3D", "camMat", "objRot", "objTrans", "objName")
_EVAL_KEYS = ("handJoints3D", "camMat", "handBoundingBox")


def read_ho3d_depth(path: str | os.PathLike) -> torch.Tensor:
    """Decode HO3D's RGB-packed depth PNG to metres: ``(R + 256 G) * HO3D_DEPTH_SCALE``.

    Args:
        path: the ``depth/<frame>.png`` file.

    Returns:
        ``(H, W)`` float32 depth in metres (0 = no reading).

    Raises:
        FileFormatError: missing, undecodable or not RGB.
    """
    arr = read_mask_png(path)
    if arr.ndim != 3:
        raise FileFormatError(f"{path}: HO3D depth is an RGB PNG, got an array of shape {arr.shape}")
    return torch.from_numpy((arr[..., 0].astype(np.float32) + 256 * arr[..., 1].astype(np.float32)) * HO3D_DEPTH_SCALE)


def _first_existing(folder: Path, stem: str, exts: tuple[str, ...], what: str) -> Path:
    for ext in exts:
        p = folder / f"{stem}{ext}"
        if p.is_file():
            return p
    return require_file(folder / f"{stem}{exts[0]}", f"{what} ({' or '.join(exts)})")


def _array(meta: dict, key: str, shape: tuple[int, ...], path: Path) -> torch.Tensor:
    """``meta[key]`` as a finite float64 tensor of ``shape`` (any layout with as many numbers: HO3D stores
    ``handPose`` as ``(48,)``, ``objRot`` as ``(3, 1)``); a missing, ``None``, non-numeric or non-finite value raises."""
    value = meta.get(key)
    if value is None:
        raise FileFormatError(f"{path}: field {key!r} is None; expected an array of shape {shape}")
    return torch.from_numpy(array_field(path, value, key, shape, any_layout=True))


class HO3D(Dataset):
    """HO3D frames as hoimask samples (see :mod:`hoimask.data.sample` and the module docstring).

    Args:
        root: the HO3D root (holding ``train/``, ``evaluation/``, ``train.txt``, ``evaluation.txt``).
        mano_root: folder with ``MANO_RIGHT.pkl`` (for the amodal mask and SDF targets).
        split: ``"train"`` or ``"evaluation"``.
        load_depth: read the depth maps (otherwise ``depth`` is all 0).
        num_object_points: ``P``.
        num_sdf_points: ``Q`` (0 skips the SDF computation).
        contact_threshold: metres, for ``grasped``.
        transform: ``t(sample, generator=None) -> sample``.
        seed: seed of the per-index generators.
        sdf_source: read the SDF targets from exported files
            (:class:`hoimask.data.SDFSampleFiles`, written by
            ``python -m hoimask.data.export_sdf``) instead of computing them.
        deoccluded_root: folder of UniHOPE's de-occluded twins mirroring the
            RGB images (``<deoccluded_root>/<split>/<SEQ>/rgb/<FRAME>.png``, or
            ``.jpg``; :mod:`hoimask.data.deoccluded`): adds ``deoccluded_image``
            (cropped and resized with ``image``) and ``has_deoccluded`` to every
            sample; frames without a twin get ``False`` and a black placeholder
            (counted in a warning at construction).

    Raises:
        FileFormatError: missing or malformed files (named in the message);
            ``deoccluded_root`` not a directory, a twin of another size than its RGB image.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        mano_root: str | os.PathLike,
        split: str = "train",
        load_depth: bool = True,
        num_object_points: int = 1000,
        num_sdf_points: int = 2048,
        contact_threshold: float = 0.005,
        transform: Callable | None = None,
        seed: int = 0,
        sdf_source=None,
        deoccluded_root: str | os.PathLike | None = None,
    ) -> None:
        self.root = Path(root)
        self.mano_root = Path(mano_root)
        self.split = check_choice(split, ("train", "evaluation"), name="split")
        self.sdf_source = sdf_source
        self.load_depth = bool(load_depth)
        self.num_object_points, self.num_sdf_points, self.contact_threshold = check_frame_options(
            num_object_points, num_sdf_points, contact_threshold, fn="HO3D.__init__")
        self.transform = transform
        self.seed = check_int(seed, name="seed", fn="HO3D.__init__")
        listing = self.root / f"{split}.txt"
        frames, lines = [], []
        for n, line in enumerate(read_text(listing, f"the HO3D {split} list (lines 'SEQ/FRAME')").splitlines(), start=1):
            line = line.strip()
            if not line:
                continue
            parts = line.split("/")
            if len(parts) != 2 or not all(parts) or any(p in (".", "..") or "\\" in p or "\0" in p for p in parts):
                raise FileFormatError(f"{listing}:{n}: expected 'SEQ/FRAME' (two folder / file names), got {line!r}")
            frames.append((parts[0], parts[1]))
            lines.append(n)
        if not frames:
            raise FileFormatError(f"{listing}: lists no frame")
        self.frames = frames
        self._listing, self._lines = listing, lines
        self._mano = None
        self._models = ObjectModels({}, self.num_object_points)
        self.deoccluded = None if deoccluded_root is None else DeoccludedPairs(
            deoccluded_root, [f"{split}/{seq}/rgb/{frame}" for seq, frame in frames], dataset_root=self.root, who="HO3D")

    def __len__(self) -> int:
        return len(self.frames)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_mano"] = None
        return state

    def _layer(self):
        if self._mano is None:
            from hoimask.hand import MANOLayer

            path = self.mano_root / "MANO_RIGHT.pkl"
            if not path.is_file() and path.with_suffix(".npz").is_file():
                path = path.with_suffix(".npz")
            require_file(path, "the official MANO right-hand model")
            self._mano = MANOLayer(path, side="right", use_pca=False, flat_hand_mean=True, dtype=torch.float64)
        return self._mano

    def _segmentation(self, folder: Path, frame: str, size: tuple[int, int]) -> torch.Tensor:
        path = _first_existing(folder / "seg", frame, (".png", ".jpg"), "an HO3D segmentation image")
        arr = read_mask_png(path)
        if arr.ndim != 3:
            raise FileFormatError(f"{path}: expected an RGB segmentation (hand blue, object green), got shape {arr.shape}")
        (h, w), (H, W) = arr.shape[:2], size
        if H % h or W % w or H // h != W // w:
            raise FileFormatError(f"{path}: segmentation is {(h, w)}, not the image's size {(H, W)} divided by a "
                                  "whole number (HO3D's maps are full or half resolution)")
        seg = torch.zeros(arr.shape[:2], dtype=torch.int64)
        seg[torch.from_numpy(arr[..., 1] > 127)] = 2
        seg[torch.from_numpy(arr[..., 2] > 127)] = 1
        if tuple(seg.shape) != size:
            seg = torch.nn.functional.interpolate(seg[None, None].float(), size=size, mode="nearest")[0, 0].long()
        return seg

    def frame_name(self, index: int, naming: str = "hoisdf") -> str:
        """The file stem of frame ``index`` in HOISDF's SDF layout: ``SEQ_FRAME`` (e.g. ``ABF10_0000``).

        ``naming`` is accepted for symmetry with :meth:`DexYCB.frame_name`;
        HOISDF's ``data/ho3d.py`` is the only HO3D convention.
        """
        seq, frame = self.frames[frame_index(index, len(self), who="HO3D.frame_name")]
        return f"{seq}_{frame}"

    def _object_pose(self, meta: dict, meta_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
        """Object rotation and translation in OpenCV's frame (NaN when the meta has neither: ``None``, not NaN,
        is how HO3D says "no pose"; a NaN in a given pose is corruption)."""
        C = OPENGL_TO_OPENCV
        given = [meta.get(k) is not None for k in ("objRot", "objTrans")]
        if all(given):
            return (C @ axis_angle_to_matrix(_array(meta, "objRot", (3,), meta_path)),
                    C @ _array(meta, "objTrans", (3,), meta_path))  # fmt: skip
        if any(given):
            have, missing = ("objRot", "objTrans") if given[0] else ("objTrans", "objRot")
            raise FileFormatError(f"{meta_path}: field {missing!r} is None but {have!r} is given; expected both "
                                  "halves of the object pose or neither")
        nan = float("nan")
        return torch.full((3, 3), nan, dtype=torch.float64), torch.full((3,), nan, dtype=torch.float64)

    @staticmethod
    def _object_name(meta: dict, meta_path: Path) -> str:
        """The meta's ``objName``, checked (``""`` when the meta names none)."""
        return "" if meta.get("objName") is None else name_field(meta_path, meta["objName"], "objName")

    def _model_of(self, meta: dict, meta_path: Path):
        """The model named by ``objName`` (``None`` when the meta names none)."""
        name = self._object_name(meta, meta_path)
        if not name:
            return None
        if name not in self._models.paths:
            path = model_path(self.root, name)
            if not path.is_file():
                raise FileFormatError(f"{meta_path}: field 'objName' names {name!r}, but its model {path} is not a file")
            self._models.paths[name] = path
        return self._models[name]

    def _posed_sdf(self, meta: dict, meta_path: Path, R: torch.Tensor, t: torch.Tensor):
        """The posed model's SDF from its cached tree (``None`` without numba or without SDF points)."""
        bvh = self._models.bvh(self._object_name(meta, meta_path)) if self.num_sdf_points else None
        return None if bvh is None else posed_model_sdf(bvh, R, t)

    def _hand_mesh(self, meta: dict, meta_path: Path) -> torch.Tensor:
        """MANO vertices of a training frame in OpenCV's frame."""
        pose = _array(meta, "handPose", (16, 3), meta_path)
        beta = _array(meta, "handBeta", (10,), meta_path)
        trans = _array(meta, "handTrans", (3,), meta_path)
        return self._layer()(pose[None], beta[None], trans[None]).vertices[0] @ OPENGL_TO_OPENCV.T

    def frame_meshes(self, index: int) -> FrameMeshes:
        """The MANO mesh and the posed object mesh of frame ``index`` in OpenCV's camera frame, for SDF exporters.

        ``hand_vertices`` is ``None`` on the evaluation split (no hand
        annotation); ``object_vertices`` is ``None`` without an object name or pose.

        Raises:
            FileFormatError: a missing or malformed file (named).
        """
        seq, frame = self.frames[frame_index(index, len(self), who="HO3D.frame_meshes")]
        meta_path = self.root / self.split / seq / "meta" / f"{frame}.pkl"
        train = self.split == "train"
        meta = read_pickle(meta_path, _TRAIN_KEYS if train else _EVAL_KEYS)
        R, t = self._object_pose(meta, meta_path)
        model = self._model_of(meta, meta_path)
        layer = self._layer()
        obj = None if model is None or not torch.isfinite(R).all() else model[0].to(torch.float64) @ R.T + t
        return FrameMeshes(
            hand_vertices=self._hand_mesh(meta, meta_path) if train else None, hand_faces=layer.faces,
            hand_weights=layer.weights, object_vertices=obj, object_faces=None if obj is None else model[1],
            mirrored=False, source=meta_path,
        )  # fmt: skip

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        """Load frame ``index`` (see the class and module docstrings)."""
        index = frame_index(index, len(self), who="HO3D.__getitem__")
        seq, frame = self.frames[index]
        folder = self.root / self.split / seq
        listed = f"{seq}/{frame}, listed at {self._listing}:{self._lines[index]}"
        rgb_path = _first_existing(folder / "rgb", frame, (".jpg", ".png"), f"the HO3D RGB image of {listed}")
        image = read_image(rgb_path)
        twin = None if self.deoccluded is None else self.deoccluded.read(
            index, f"{self.split}/{seq}/rgb/{frame}", image, rgb_path)
        H, W = image.shape[1:]
        depth_path = folder / "depth" / f"{frame}.png"
        depth = read_ho3d_depth(depth_path) if self.load_depth else torch.zeros(H, W)
        if tuple(depth.shape) != (H, W):
            raise FileFormatError(f"{depth_path}: depth is {tuple(depth.shape)}, but {rgb_path} is {(H, W)}")
        train = self.split == "train"
        meta_path = folder / "meta" / f"{frame}.pkl"
        meta = read_pickle(meta_path, _TRAIN_KEYS if train else _EVAL_KEYS)
        C = OPENGL_TO_OPENCV
        K = torch.from_numpy(intrinsics_field(meta_path, _array(meta, "camMat", (3, 3), meta_path).numpy(), "camMat"))
        K = K.clone()
        K[0, 2] += 0.5  # OpenCV's pixel-centre convention -> the library's
        K[1, 2] += 0.5
        g = torch.Generator().manual_seed(_index_seed(self.seed, index))
        nan = float("nan")
        R, t = self._object_pose(meta, meta_path)
        model = self._model_of(meta, meta_path)
        layer = self._layer() if train else None
        if train:
            joints = convert_joint_order(_array(meta, "handJoints3D", (21, 3), meta_path) @ C.T, "ho3d", "canonical")
            pose = _array(meta, "handPose", (16, 3), meta_path)
            beta = _array(meta, "handBeta", (10,), meta_path)
            verts = self._hand_mesh(meta, meta_path)
            pose = pose.clone()
            pose[0] = matrix_to_axis_angle(C @ axis_angle_to_matrix(pose[0]))
            segmentation = self._segmentation(folder, frame, (H, W))
            faces = layer.faces
        else:
            joints = torch.full((21, 3), nan, dtype=torch.float64)
            joints[0] = C @ _array(meta, "handJoints3D", (3,), meta_path)
            pose, beta, verts = torch.full((16, 3), nan), torch.full((10,), nan), None
            segmentation = torch.zeros(H, W, dtype=torch.int64)
            faces = torch.zeros(0, 3, dtype=torch.int64)
        if model is not None and not torch.isfinite(R).all():
            model = None  # shape known but pose unknown: no object SDF
        sdf_targets = None
        if self.sdf_source is not None and train:
            sdf_targets = self.sdf_source.targets(self.frame_name(index), self.num_sdf_points, generator=g)
        sample = frame_sample(
            image=image, depth=depth, segmentation=segmentation, K=K, joints_3d=joints, hand_pose=pose,
            hand_shape=beta, hand_vertices=verts, hand_faces=faces, rotation=R, translation=t, model=model,
            num_sdf_points=self.num_sdf_points, contact_threshold=self.contact_threshold, generator=g,
            object_name=self._object_name(meta, meta_path), sdf_targets=sdf_targets,
            object_sdf=self._posed_sdf(meta, meta_path, R, t) if train and model is not None and sdf_targets is None
            else None,
        )  # fmt: skip
        if model is None and meta.get("objName") is not None:
            sample["object_points"] = self._models[sample["object_name"]][2].float()
        if not train:
            box = _array(meta, "handBoundingBox", (4,), meta_path)
            sample["box"] = box.float()
        sample.update(twin or {})
        if self.num_object_points and sample["object_points"].shape[0] != self.num_object_points:
            sample["object_points"] = torch.full((self.num_object_points, 3), nan)
            warnings.warn(f"HO3D: {meta_path} names no object model; object_points are NaN", stacklevel=2)
        if self.transform is not None:
            sample = self.transform(sample, generator=g)
        return sample
