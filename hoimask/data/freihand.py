"""FreiHAND (v2) loader reading the official layout: four background versions, hidden evaluation ground truth.

Layout read (``N`` unique samples; the release has 32,560 for training and 3,960 for evaluation)::

    ROOT/training_K.json          N x (3, 3)   intrinsics, OpenCV pixel centres (integers)
    ROOT/training_xyz.json        N x (21, 3)  joints, metres, camera frame, canonical order
    ROOT/training_mano.json       N x (1, 61)  pose (48), shape (10), uv_root (2), scale (1)
    ROOT/training_scale.json      N            metric length of FreiHAND's reference bone
    ROOT/training/rgb/%08d.jpg    4 N images: sample i in background version v is file i + v N
    ROOT/training/mask/%08d.jpg   N hand masks (white hand), one per unique sample
    ROOT/evaluation_K.json, ROOT/evaluation_scale.json, ROOT/evaluation/rgb/%08d.jpg
    optional (the release with evaluation annotations):
    ROOT/evaluation_xyz.json, ROOT/evaluation_mano.json, ROOT/evaluation/segmap/%08d.png
    (part labels, every non-zero pixel is hand) or ROOT/evaluation/mask/%08d.jpg

``*_verts.json`` (778 vertices per sample, about 1.5 GB of JSON for the
training split) is not read by the loader: the mesh is computed with MANO from
``*_mano.json`` exactly as FreiHAND's toolbox does (``utils/model.py``:
``HandModel(use_mean_pose=True).pose_by_root``), and
:func:`read_freihand_ground_truth` reads ``*_xyz.json`` and ``*_verts.json``
for the evaluation (:mod:`hoimask.metrics.freihand`).

Conventions (see ``docs/data.md``, "FreiHAND"):

* **Joint order.** FreiHAND's 21 joints are wrist, then thumb, index, middle,
  ring, little, each from the knuckle to the tip: hoimask's canonical order, so
  ``*_xyz.json`` is used as it is. The camera frame is OpenCV's already.
* **MANO pose.** The 48 pose numbers are MANO axis-angles (global rotation,
  then 15 finger joints, no PCA) *relative to MANO's mean pose* (the toolbox
  loads MANO with ``flat_hand_mean=False``). ``hand_pose`` is the full
  rotation with the flat hand as zero, as in every hoimask sample:
  ``hand_pose[1:] = pose[3:] + hands_mean``, ``hand_pose[0] = pose[:3]``.
* **Mesh placement.** ``uv_root`` and ``scale`` place the hand: the toolbox
  back-projects ``xyz_root = ((u - c_x) / s, (v - c_y) / s, f / s)`` with
  ``f = (f_x + f_y) / 2`` and translates the MANO mesh so that its middle-finger
  MCP joint (canonical joint 9) lands there.
* **Background versions.** ``training/rgb`` holds every unique sample four
  times: version ``v`` of sample ``i`` is file ``i + v N`` with ``v`` = 0 green
  screen (``"gs"``), 1 ``"hom"`` (homogenised), 2 ``"sample"`` (colourised with
  sample points), 3 ``"auto"`` (automatic colourisation). Masks exist for the
  ``N`` unique samples only and serve all four versions. With
  ``backgrounds=(b_0, ..., b_{k-1})`` the dataset has ``k N`` items; item ``j``
  is sample ``j mod N`` in version ``b_{j div N}`` (so with all four, item ``j``
  is file ``j``). The evaluation split has one version (0).
* **Hidden ground truth.** Without ``evaluation_xyz.json`` /
  ``evaluation_mano.json`` the unknown targets are NaN (joints, pose, shape,
  SDF values), segmentation is 0 without a mask folder, as HO3D's evaluation split.
* **Hand only.** No object: ``object_rotation = I``, ``object_translation`` and
  ``object_points`` are 0, ``sdf_object`` NaN, ``has_object`` and ``grasped``
  False, no ``object_name`` key (as :class:`~hoimask.data.SyntheticHOI`'s
  hand-only scenes), depth 0 (no depth is recorded).
* **Crop.** Images are already 224 x 224 crops around the hand, so every sample
  carries ``box = (0, 0, W, H)``: :class:`~hoimask.data.RandomCropResize` and
  :class:`~hoimask.data.CenterCrop` then crop around the whole frame
  (``padding=1.0`` resizes it exactly), also where the joints are hidden.
* Extra key ``reference_bone_length`` (``()``, metres): the sample's entry of ``*_scale.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from hoimask._checks import DTypeError, FileFormatError, ValueRangeError, check_choice, check_int

from ._assemble import FrameMeshes, check_frame_options, frame_index, frame_sample
from ._io import array_field, intrinsics_field, read_image, read_mask_png, read_text, require_file
from .cache import _index_seed

__all__ = ["FREIHAND_BACKGROUNDS", "FreiHAND", "freihand_root_position", "read_freihand_ground_truth"]

#: FreiHAND's background versions in file order (``fh_utils.sample_version``): green screen,
#: homogenised, colourised with sample points, automatic colourisation.
FREIHAND_BACKGROUNDS: tuple[str, ...] = ("gs", "hom", "sample", "auto")

_SPLIT_NAMES = {"train": "training", "evaluation": "evaluation"}
_MIDDLE_MCP = 9  # canonical (and FreiHAND) index of the middle-finger MCP: the toolbox's root_id


def _read_json(path: Path, what: str):
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise FileFormatError(f"{path}: not valid JSON ({e}); expected {what}") from e


def _json_arrays(path: Path, shape: tuple[int, ...], what: str, *, any_layout: bool = False) -> np.ndarray:
    """A JSON list with one array of ``shape`` per sample, as float64 ``(N, *shape)``.

    Raises:
        FileFormatError: missing, not JSON, not a non-empty list, or an entry
            that is not a finite numeric array of ``shape`` (its index ``[i]`` is named).
    """
    data = _read_json(path, what)
    if not isinstance(data, list) or not data:
        got = "[]" if isinstance(data, list) else type(data).__name__
        raise FileFormatError(f"{path}: expected {what} (a non-empty JSON list), got {got}")
    size = int(np.prod(shape))
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError):  # ragged nested lists: found entry by entry below
        arr = None
    if (arr is not None and arr.dtype.kind in "iuf" and arr.ndim >= 1 and arr.shape[0] == len(data)
            and (arr.shape[1:] == shape or (any_layout and int(np.prod(arr.shape[1:])) == size))):
        arr = arr.astype(np.float64).reshape((len(data), *shape))
        if np.isfinite(arr).all():
            return arr
    # Slow path: the first bad entry raises, named by its index.
    return np.stack([array_field(path, entry, f"[{i}]", shape, any_layout=any_layout) for i, entry in enumerate(data)])


def _check_positive(path: Path, values: np.ndarray, what: str) -> None:
    bad = np.flatnonzero(~(values > 0))
    if bad.size:
        i = int(bad[0])
        raise FileFormatError(f"{path}: entry [{i}] has {what} {values[i]!r}; expected a number > 0")


def _read_intrinsics(path: Path) -> np.ndarray:
    K = _json_arrays(path, (3, 3), "one 3x3 intrinsics matrix per sample")
    ok = (K[:, 0, 0] > 0) & (K[:, 1, 1] > 0) & (K[:, 1, 0] == 0) & (K[:, 2] == np.array([0.0, 0.0, 1.0])).all(-1)
    for i in np.flatnonzero(~ok)[:1]:
        intrinsics_field(path, K[i], f"[{i}]")  # raises, naming the entry
    return K


def _same_length(arrays: dict[Path, np.ndarray]) -> int:
    """The common number of entries of the given files (mismatches name both files)."""
    (first, a), *rest = arrays.items()
    for path, b in rest:
        if len(b) != len(a):
            raise FileFormatError(f"{path}: holds {len(b)} entries but {first} holds {len(a)}; expected one entry "
                                  "per sample in both")
    return len(a)


def _backgrounds(value, split: str) -> tuple[int, ...]:
    """``backgrounds`` as a tuple of version numbers (see :class:`FreiHAND`)."""
    if value is None:
        return (0, 1, 2, 3) if split == "train" else (0,)
    if isinstance(value, str) and value == "all":
        value = (0, 1, 2, 3)
    if isinstance(value, (str, int)):
        value = (value,)
    if not isinstance(value, Sequence):
        raise DTypeError(f"FreiHAND(): argument 'backgrounds' expected None, 'all', a version (0-3 or a name of "
                         f"{FREIHAND_BACKGROUNDS}) or a sequence of them, got {type(value).__name__}")
    out = []
    for v in value:
        if isinstance(v, str):
            v = FREIHAND_BACKGROUNDS.index(check_choice(v, FREIHAND_BACKGROUNDS, name="backgrounds", fn="FreiHAND"))
        out.append(check_int(v, name="backgrounds", low=0, high=3, fn="FreiHAND"))
    if not out or len(set(out)) != len(out):
        raise ValueRangeError(f"FreiHAND(): argument 'backgrounds' expected distinct versions, at least one, got {value!r}")
    if split == "evaluation" and out != [0]:
        raise ValueRangeError(f"FreiHAND(): the evaluation split has only background version 0 (real backgrounds), "
                              f"got backgrounds={value!r}")
    return tuple(out)


def freihand_root_position(uv_root: torch.Tensor, scale: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """The 3D root (middle-finger MCP) of FreiHAND's MANO parameters, as the toolbox's ``recover_root``.

    ``xyz_root = ((u - c_x) / s, (v - c_y) / s, f / s)`` with ``f = (f_x + f_y) / 2``:
    ``uv_root`` is the root's projection and ``s = f / z`` its inverse depth
    in focal units (``K`` in FreiHAND's own pixel convention, as in the file).

    Args:
        uv_root: ``(..., 2)`` entries 58-59 of a ``*_mano.json`` row.
        scale: ``(...)`` entry 60.
        K: ``(..., 3, 3)`` the sample's ``*_K.json`` entry.

    Returns:
        ``(..., 3)`` metres, camera frame.

    Example:
        >>> K = torch.tensor([[200.0, 0, 100], [0, 200, 100], [0, 0, 1]])
        >>> freihand_root_position(torch.tensor([120.0, 100.0]), torch.tensor(400.0), K)
        tensor([0.0500, 0.0000, 0.5000])
    """
    focal = (K[..., 0, 0] + K[..., 1, 1]) / 2
    xy = (uv_root - K[..., :2, 2]) / scale[..., None]
    return torch.cat([xy, (focal / scale)[..., None]], dim=-1)


def read_freihand_ground_truth(root: str | os.PathLike, split: str = "evaluation") -> tuple[np.ndarray, np.ndarray]:
    """The joints and MANO vertices FreiHAND's ``eval.py`` compares with (``<split>_xyz.json``, ``<split>_verts.json``).

    Args:
        root: the FreiHAND root.
        split: ``"evaluation"`` (the release with evaluation annotations) or ``"train"``.

    Returns:
        ``(joints (N, 21, 3), vertices (N, 778, 3))`` float64, metres, canonical order.

    Raises:
        FileFormatError: a missing or malformed file, or lengths that differ (both files named).
    """
    check_choice(split, tuple(_SPLIT_NAMES), name="split", fn="read_freihand_ground_truth")
    name = _SPLIT_NAMES[split]
    xyz_path, verts_path = Path(root) / f"{name}_xyz.json", Path(root) / f"{name}_verts.json"
    xyz = _json_arrays(xyz_path, (21, 3), "21 joints (x, y, z) per sample")
    verts = _json_arrays(verts_path, (778, 3), "778 MANO vertices (x, y, z) per sample")
    _same_length({xyz_path: xyz, verts_path: verts})
    return xyz, verts


class FreiHAND(Dataset):
    """FreiHAND samples as hoimask samples (see :mod:`hoimask.data.sample` and the module docstring).

    Args:
        root: the FreiHAND root (holding ``training/``, ``evaluation/`` and the ``*.json`` files).
        mano_root: folder with ``MANO_RIGHT.pkl`` (the mesh of the amodal mask
            and the SDF targets, and MANO's mean pose for ``hand_pose``); read
            only when a split has MANO annotations.
        split: ``"train"`` (FreiHAND's ``training``) or ``"evaluation"``.
        backgrounds: which background versions of the training images to
            include: ``None`` (all four for ``"train"``, version 0 for
            ``"evaluation"``), ``"all"``, one version or a sequence of them, each
            an index 0-3 or a name of :data:`FREIHAND_BACKGROUNDS`.
        num_object_points: ``P`` (rows of the all-zero ``object_points``: no object).
        num_sdf_points: ``Q`` (0 skips the SDF computation).
        transform: ``t(sample, generator=None) -> sample``.
        seed: seed of the per-index generators.

    Raises:
        FileFormatError: a missing or malformed file (named in the message;
            annotation files at construction, images and masks when read).

    Example:
        >>> import tempfile, pathlib
        >>> from hoimask.data.testing import write_freihand_fixture, write_mano_fixture
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> mano = write_mano_fixture(tmp / "mano")
        >>> root = write_freihand_fixture(tmp / "FreiHAND", mano, num_samples=2)
        >>> ds = FreiHAND(root, mano_root=mano, backgrounds=("gs", "auto"), num_sdf_points=0)
        >>> len(ds), ds.source(3)             # item 3: sample 1, version 3 ("auto"), file 00000007.jpg
        (4, (1, 3))
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        mano_root: str | os.PathLike,
        split: str = "train",
        backgrounds=None,
        num_object_points: int = 1000,
        num_sdf_points: int = 2048,
        transform: Callable | None = None,
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        self.mano_root = Path(mano_root)
        self.split = check_choice(split, tuple(_SPLIT_NAMES), name="split", fn="FreiHAND")
        self.backgrounds = _backgrounds(backgrounds, self.split)
        self.num_object_points, self.num_sdf_points, _ = check_frame_options(
            num_object_points, num_sdf_points, 0.0, fn="FreiHAND.__init__")
        self.transform = transform
        self.seed = check_int(seed, name="seed", fn="FreiHAND.__init__")
        name = _SPLIT_NAMES[self.split]
        self.folder = self.root / name
        path = {k: self.root / f"{name}_{k}.json" for k in ("K", "xyz", "mano", "scale")}
        train = self.split == "train"
        arrays = {path["K"]: _read_intrinsics(path["K"])}
        arrays[path["scale"]] = _json_arrays(path["scale"], (), "one reference bone length (metres) per sample",
                                             any_layout=True)  # a number, or a 1-element list
        _check_positive(path["scale"], arrays[path["scale"]], "reference bone length")
        for key, shape, what in (("xyz", (21, 3), "21 joints (x, y, z) per sample"),
                                 ("mano", (61,), "61 MANO numbers per sample (pose 48, shape 10, uv_root 2, scale 1)")):
            if train or path[key].is_file():  # evaluation: present only in the release with annotations
                arrays[path[key]] = _json_arrays(path[key], shape, what, any_layout=key == "mano")
        self.num_unique = _same_length(arrays)
        self._K = arrays[path["K"]]
        self._scale = arrays[path["scale"]]
        self._xyz = arrays.get(path["xyz"])
        self._mano = arrays.get(path["mano"])
        if self._mano is not None:
            _check_positive(path["mano"], self._mano[:, 60], "scale (number 60, after pose 0-47, shape 48-57, uv_root 58-59)")
        self._paths = path
        if train:
            self.mask_folder, self.mask_ext = self.folder / "mask", ".jpg"
        elif (self.folder / "segmap").is_dir():
            self.mask_folder, self.mask_ext = self.folder / "segmap", ".png"
        elif (self.folder / "mask").is_dir():
            self.mask_folder, self.mask_ext = self.folder / "mask", ".jpg"
        else:
            self.mask_folder, self.mask_ext = None, ""
        self._layer_cache = None

    def __len__(self) -> int:
        return self.num_unique * len(self.backgrounds)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_layer_cache"] = None  # rebuilt lazily in each worker
        return state

    def source(self, index: int) -> tuple[int, int]:
        """``(sample, version)`` of item ``index``: the unique sample ``i`` and its background version ``v``.

        The image is ``rgb/%08d.jpg % (i + v * num_unique)``; the mask (training) is ``mask/%08d.jpg % i``.
        """
        index = frame_index(index, len(self), who="FreiHAND.source")
        return index % self.num_unique, self.backgrounds[index // self.num_unique]

    def _layer(self):
        if self._layer_cache is None:
            from hoimask.hand import MANOLayer

            path = self.mano_root / "MANO_RIGHT.pkl"
            if not path.is_file() and path.with_suffix(".npz").is_file():
                path = path.with_suffix(".npz")
            require_file(path, "the official MANO right-hand model")
            # FreiHAND's poses are relative to MANO's mean pose (the toolbox's use_mean_pose=True).
            self._layer_cache = MANOLayer(path, side="right", use_pca=False, flat_hand_mean=False, dtype=torch.float64)
        return self._layer_cache

    def _hand(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(hand_pose (16, 3) flat-hand zero, shape (10,), vertices (778, 3))`` of sample ``i``, float64."""
        theta = torch.from_numpy(self._mano[i])
        pose, shape, uv_root, scale = theta[:48], theta[48:58], theta[58:60], theta[60]
        layer = self._layer()
        out = layer(pose[None], shape[None])
        root = freihand_root_position(uv_root, scale, torch.from_numpy(self._K[i]))
        vertices = out.vertices[0] + (root - out.joints[0, _MIDDLE_MCP])
        mean = torch.cat([layer.hands_mean.new_zeros(3), layer.hands_mean]).to(pose.dtype)
        return (pose + mean).view(16, 3), shape, vertices

    def frame_meshes(self, index: int) -> FrameMeshes:
        """The MANO mesh of item ``index`` in the camera frame (``hand_vertices`` ``None`` without MANO annotation).

        Raises:
            FileFormatError: the MANO model is missing.
        """
        i, _ = self.source(index)
        if self._mano is None:
            return FrameMeshes(None, torch.zeros(0, 3, dtype=torch.int64), torch.zeros(0, 16, dtype=torch.float64),
                               None, None, False, self._paths["mano"])  # fmt: skip
        layer = self._layer()
        return FrameMeshes(self._hand(i)[2], layer.faces, layer.weights, None, None, False, self._paths["mano"])

    def _segmentation(self, i: int, size: tuple[int, int], rgb_path: Path) -> torch.Tensor:
        """Hand = 1 from the sample's mask (white hand) or segmentation map (non-zero parts); 0 without either."""
        if self.mask_folder is None:
            return torch.zeros(size, dtype=torch.int64)
        path = require_file(self.mask_folder / f"{i:08d}{self.mask_ext}", f"the FreiHAND hand mask of sample {i}")
        arr = read_mask_png(path)
        if arr.shape[:2] != size:
            raise FileFormatError(f"{path}: mask is {arr.shape[:2]}, but {rgb_path} is {size}")
        arr = arr.max(axis=-1) if arr.ndim == 3 else arr
        hand = arr > 0 if self.mask_ext == ".png" else arr > 127  # jpg masks: 0/255 with compression noise
        return torch.from_numpy(hand).to(torch.int64)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """Load item ``index`` (see the class and module docstrings)."""
        index = frame_index(index, len(self), who="FreiHAND.__getitem__")
        i, version = self.source(index)
        rgb_path = self.folder / "rgb" / f"{i + version * self.num_unique:08d}.jpg"
        image = read_image(require_file(rgb_path, f"the FreiHAND image of sample {i}, background version {version} "
                                                  f"({FREIHAND_BACKGROUNDS[version]})"))
        H, W = image.shape[1:]
        K = torch.from_numpy(self._K[i]).clone()
        K[:2, 2] += 0.5  # OpenCV's pixel-centre convention -> the library's
        nan = float("nan")
        joints = torch.full((21, 3), nan, dtype=torch.float64) if self._xyz is None else torch.from_numpy(self._xyz[i])
        if self._mano is None:
            pose, shape, vertices = torch.full((16, 3), nan), torch.full((10,), nan), None
            faces = torch.zeros(0, 3, dtype=torch.int64)
        else:
            pose, shape, vertices = self._hand(i)
            faces = self._layer().faces
        g = torch.Generator().manual_seed(_index_seed(self.seed, index))
        sample = frame_sample(
            image=image, depth=torch.zeros(H, W), segmentation=self._segmentation(i, (H, W), rgb_path), K=K,
            joints_3d=joints, hand_pose=pose, hand_shape=shape, hand_vertices=vertices, hand_faces=faces,
            rotation=torch.eye(3, dtype=torch.float64), translation=torch.zeros(3, dtype=torch.float64), model=None,
            num_sdf_points=self.num_sdf_points, contact_threshold=0.0, generator=g, object_name="",
        )  # fmt: skip
        sample.pop("object_name", None)  # no object, no name (as SyntheticHOI's hand-only scenes)
        sample["object_points"] = torch.zeros(self.num_object_points, 3)
        sample["has_object"] = torch.tensor(False)
        sample["box"] = torch.tensor([0.0, 0.0, float(W), float(H)])
        sample["reference_bone_length"] = torch.tensor(self._scale[i], dtype=torch.float32)
        if self.transform is not None:
            sample = self.transform(sample, generator=g)
        return sample
