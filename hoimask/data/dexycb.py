"""DexYCB loader reading the official layout (``DEX_YCB_DIR``), splits S0–S3 of the DexYCB toolkit.

Layout read (as released by the DexYCB authors)::

    ROOT/calibration/intrinsics/<serial>_640x480.yml          color: {fx, fy, ppx, ppy}
    ROOT/calibration/mano_<mano_calib>/mano.yml               betas: [10]
    ROOT/<subject>/<sequence>/meta.yml                        serials, num_frames, ycb_ids,
                                                              ycb_grasp_ind, mano_sides, mano_calib
    ROOT/<subject>/<sequence>/<serial>/color_000000.jpg
    ROOT/<subject>/<sequence>/<serial>/aligned_depth_to_color_000000.png   (uint16, millimetres)
    ROOT/<subject>/<sequence>/<serial>/labels_000000.npz      seg (H,W), pose_y (O,3,4),
                                                              pose_m (1,51), joint_3d (1,21,3),
                                                              joint_2d (1,21,2)
    ROOT/models/<ycb name>/textured_simple.obj

Grasp labels (``grasped``): by default UniHOPE's *motion rule*
(``grasp_rule="motion"``, :func:`hoimask.data.grasp.grasp_labels_from_motion`):
a frame is grasping when the grasped object's pose has moved by more than 5°
or 5 cm from its pose in the sequence's first frame, read from the same
camera's ``labels_000000.npz`` (DexYCB sequences start with the hand away from
the object, so that pose is the object at rest). ``grasp_rule="contact"`` keeps
the earlier proxy: the MANO mesh within ``contact_threshold`` of the object.

Splits: ``setup`` ``s0`` (seen subjects, views and objects; sequences with
``i % 5 == 4`` held out, validation subjects 0–1, test subjects 2–9), ``s1``
(unseen subjects), ``s2`` (unseen cameras), ``s3`` (unseen grasped objects),
exactly the index lists of the toolkit's ``dex_ycb.py``. MaskHOI and HOISDF
use S0 with right hands only (``hands="right"``); ``hands="mirror"`` keeps
left hands and mirrors them into right hands (image flipped, ``x -> -x``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from hoimask._checks import FileFormatError, ValueRangeError, check_choice, check_int
from hoimask.geometry import matrix_to_axis_angle

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
    list_field,
    name_field,
    number_field,
    read_depth_png,
    read_image,
    read_npz,
    read_yaml,
)
from .cache import _index_seed
from .deoccluded import DeoccludedPairs
from .grasp import grasp_labels_from_motion

__all__ = ["DEXYCB_GRASP_RULES", "DEXYCB_SERIALS", "DEXYCB_SUBJECTS", "YCB_CLASSES", "DexYCB", "dexycb_split"]

#: Subject folders in the toolkit's order.
DEXYCB_SUBJECTS: tuple[str, ...] = tuple(
    f"{d}-subject-{i:02d}"
    for i, d in enumerate(
        ["20200709", "20200813", "20200820", "20200903", "20200908",
         "20200918", "20200928", "20201002", "20201015", "20201022"], start=1)
)  # fmt: skip
#: Camera serials in the toolkit's order.
DEXYCB_SERIALS: tuple[str, ...] = (
    "836212060125", "839512060362", "840412060917", "841412060263",
    "932122060857", "932122060861", "932122061900", "932122062010",
)  # fmt: skip
#: YCB object id -> model folder name.
YCB_CLASSES: dict[int, str] = {
    1: "002_master_chef_can", 2: "003_cracker_box", 3: "004_sugar_box", 4: "005_tomato_soup_can",
    5: "006_mustard_bottle", 6: "007_tuna_fish_can", 7: "008_pudding_box", 8: "009_gelatin_box",
    9: "010_potted_meat_can", 10: "011_banana", 11: "019_pitcher_base", 12: "021_bleach_cleanser",
    13: "024_bowl", 14: "025_mug", 15: "035_power_drill", 16: "036_wood_block", 17: "037_scissors",
    18: "040_large_marker", 19: "051_large_clamp", 20: "052_extra_large_clamp", 21: "061_foam_brick",
}  # fmt: skip

#: The rules :class:`DexYCB` can label ``grasped`` by (see its docstring).
DEXYCB_GRASP_RULES: tuple[str, ...] = ("motion", "contact")

_HAND_LABEL = 255  # value of hand pixels in DexYCB's ``seg``
_MIRROR = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
_META_KEYS = ("serials", "num_frames", "ycb_ids", "ycb_grasp_ind", "mano_sides", "mano_calib")
#: Arrays of ``labels_*.npz`` and their shapes (``None``: any size; ``seg`` is compared with the image).
_LABEL_SHAPES: dict[str, tuple[int | None, ...]] = {
    "seg": (None, None), "pose_y": (None, 3, 4), "pose_m": (1, 51), "joint_3d": (1, 21, 3), "joint_2d": (1, 21, 2),
}  # fmt: skip


def _read_intrinsics(path: Path) -> dict[str, float]:
    """``fx, fy, ppx, ppy`` of a camera's ``<serial>_640x480.yml`` (its ``color`` block), checked.

    Raises:
        FileFormatError: naming the file and the field (``color.fx`` ...): not a
            mapping, a value that is not a finite number, a focal length <= 0.
    """
    color = read_yaml(path, ("color",))["color"]
    if not isinstance(color, dict):
        raise FileFormatError(f"{path}: field 'color' expected a mapping with fx, fy, ppx, ppy, got "
                              f"{type(color).__name__}")
    missing = [k for k in ("fx", "fy", "ppx", "ppy") if k not in color]
    if missing:
        raise FileFormatError(f"{path}: 'color' lacks {missing}; expected fx, fy, ppx, ppy")
    return {k: number_field(path, color[k], f"color.{k}", positive=k in ("fx", "fy")) for k in ("fx", "fy", "ppx", "ppy")}


def _read_meta(path: Path) -> dict:
    """A sequence's ``meta.yml``, checked: every field the loader (or the toolkit's ids) uses, typed.

    Returns:
        ``num_frames`` (int >= 1), ``ycb_ids`` (non-empty list of known YCB ids),
        ``ycb_grasp_ind`` (an index into ``ycb_ids``), ``side`` (``mano_sides[0]``,
        ``"right"`` or ``"left"``), ``mano_calib`` (``mano_calib[0]``, a folder name).

    Raises:
        FileFormatError: naming the file and the field.
    """
    meta = read_yaml(path, _META_KEYS)
    list_field(path, meta["serials"], "serials")
    ycb_ids = [number_field(path, i, "ycb_ids", integer=True) for i in list_field(path, meta["ycb_ids"], "ycb_ids")]
    unknown = [i for i in ycb_ids if i not in YCB_CLASSES]
    if unknown:
        raise FileFormatError(f"{path}: field 'ycb_ids' holds unknown YCB id(s) {unknown}; expected ids 1..21")
    side = list_field(path, meta["mano_sides"], "mano_sides")[0]
    if side not in ("right", "left"):
        raise FileFormatError(f"{path}: field 'mano_sides' expected 'right' or 'left' first, got {side!r}")
    calib = list_field(path, meta["mano_calib"], "mano_calib")[0]
    if isinstance(calib, int) and not isinstance(calib, bool):  # YAML reads a name of digits as an int
        calib = str(calib)
    return {
        "num_frames": number_field(path, meta["num_frames"], "num_frames", integer=True, minimum=1),
        "ycb_ids": ycb_ids,
        "ycb_grasp_ind": number_field(path, meta["ycb_grasp_ind"], "ycb_grasp_ind", integer=True, minimum=0,
                                      maximum=len(ycb_ids) - 1),
        "side": side,
        "mano_calib": name_field(path, calib, "mano_calib"),
    }


def _hand_annotated(path: Path, joint_3d: np.ndarray) -> bool:
    """Whether a frame's ``joint_3d (1, 21, 3)`` is annotated: DexYCB marks a frame without a hand by -1 everywhere.

    Raises:
        FileFormatError: some joints are (-1, -1, -1) and others are not (the
            marker is per frame; a joint at exactly that point, behind the camera, is corruption).
    """
    marked = np.all(joint_3d[0] == -1, axis=-1)
    if marked.all():
        return False
    if marked.any():
        raise FileFormatError(f"{path}: array 'joint_3d' has joint(s) {np.flatnonzero(marked).tolist()} at (-1, -1, -1), "
                              "the marker of a frame without a hand, but the other joints are annotated")
    return True


def dexycb_split(setup: str, split: str) -> tuple[list[int], list[int], list[int]]:
    """Subject, camera and sequence indices of a DexYCB split (the toolkit's definition).

    Args:
        setup: ``"s0"``, ``"s1"``, ``"s2"`` or ``"s3"``.
        split: ``"train"``, ``"val"`` or ``"test"``.

    Returns:
        ``(subject_ind, serial_ind, sequence_ind)`` into :data:`DEXYCB_SUBJECTS`,
        :data:`DEXYCB_SERIALS` and each subject's sorted 100 sequences.
    """
    check_choice(setup, ("s0", "s1", "s2", "s3"), name="setup")
    check_choice(split, ("train", "val", "test"), name="split")
    every, cams, seqs = list(range(10)), list(range(8)), list(range(100))
    if setup == "s0":
        held = [i for i in seqs if i % 5 == 4]
        return {"train": (every, cams, [i for i in seqs if i % 5 != 4]),
                "val": ([0, 1], cams, held), "test": (list(range(2, 10)), cams, held)}[split]  # fmt: skip
    if setup == "s1":
        return {"train": ([0, 1, 2, 3, 4, 5, 9], cams, seqs), "val": ([6], cams, seqs),
                "test": ([7, 8], cams, seqs)}[split]  # fmt: skip
    if setup == "s2":
        return {"train": (every, list(range(6)), seqs), "val": (every, [6], seqs), "test": (every, [7], seqs)}[split]
    groups = {"train": [i for i in seqs if i // 5 not in (3, 7, 11, 15, 19)],
              "val": [i for i in seqs if i // 5 in (3, 19)], "test": [i for i in seqs if i // 5 in (7, 11, 15)]}  # fmt: skip
    return every, cams, groups[split]


class DexYCB(Dataset):
    """DexYCB frames as hoimask samples (see :mod:`hoimask.data.sample`).

    Per frame: the colour image, depth (metres, 0 = no reading), segmentation
    (hand = 1, the *grasped* object = 2, other objects and background = 0), the
    amodal hand mask (the MANO mesh's silhouette), 21 joints (DexYCB's order is
    the canonical order), ``K`` (the principal point shifted by +0.5 px to the
    library's pixel-centre convention), MANO pose as 16 axis-angles (``pose_m``'s
    45 PCA coefficients converted by :class:`hoimask.hand.MANOLayer` with
    ``flat_hand_mean=False``, so ``hand_pose`` is the full rotation, zero =
    flat hand), the subject's ``betas``, the grasped object's pose, ``P``
    model points, and SDF targets against the MANO mesh and the YCB mesh.
    ``grasped`` follows ``grasp_rule``: ``"motion"`` (default, UniHOPE eq. 1):
    the grasped object's rotation differs by more than 5° or its translation
    by more than 5 cm from the sequence's first frame (the object at rest; the
    same camera's ``labels_000000.npz``, read once per sequence and camera and
    kept), for every frame, hand-annotated or not; ``"contact"``: the hand
    mesh comes within ``contact_threshold`` of the object's model points
    (False for frames without a hand annotation).
    ``object_name`` is the grasped object's YCB name (:data:`YCB_CLASSES`, e.g. ``"019_pitcher_base"``).

    Args:
        root: the DexYCB root (``$DEX_YCB_DIR``).
        mano_root: folder with ``MANO_RIGHT.pkl`` (and ``MANO_LEFT.pkl`` for ``hands="mirror"``).
        setup: ``"s0"`` … ``"s3"``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        hands: ``"right"`` (drop left-hand sequences, MaskHOI's split) or ``"mirror"``.
        require_hand: drop frames whose hand is not annotated (``joint_3d == -1``);
            reads every label file once at construction. Otherwise such frames
            give NaN hand targets.
        num_object_points: ``P``.
        num_sdf_points: ``Q`` (0 skips the SDF computation).
        contact_threshold: metres, for ``grasped`` under ``grasp_rule="contact"``.
        grasp_rule: ``"motion"`` or ``"contact"`` (:data:`DEXYCB_GRASP_RULES`), see above.
        transform: ``t(sample, generator=None) -> sample``.
        seed: seed of the per-index generators (SDF points, transforms).
        sdf_source: read the SDF targets from exported files
            (:class:`hoimask.data.SDFSampleFiles`, written by
            ``python -m hoimask.data.export_sdf``) instead of computing them:
            ``num_sdf_points`` rows drawn from the frame's file (mirrored with
            the frame for mirrored left hands).
        deoccluded_root: folder of UniHOPE's de-occluded twins mirroring the
            colour images (``<deoccluded_root>/<subject>/<sequence>/<serial>/color_<frame>.png``,
            or ``.jpg``; :mod:`hoimask.data.deoccluded`): adds ``deoccluded_image``
            (mirrored, cropped and resized with ``image``) and ``has_deoccluded``
            to every sample; frames without a twin get ``False`` and a black
            placeholder (counted in a warning at construction).

    Raises:
        FileFormatError: missing or malformed files (named in the message);
            with ``grasp_rule="motion"``, a sequence's missing or malformed
            first-frame ``labels_000000.npz`` when one of its frames is read;
            ``deoccluded_root`` not a directory, a twin of another size than its colour image.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        mano_root: str | os.PathLike,
        setup: str = "s0",
        split: str = "train",
        hands: str = "right",
        require_hand: bool = False,
        num_object_points: int = 1000,
        num_sdf_points: int = 2048,
        contact_threshold: float = 0.005,
        transform: Callable | None = None,
        seed: int = 0,
        sdf_source=None,
        grasp_rule: str = "motion",
        deoccluded_root: str | os.PathLike | None = None,
    ) -> None:
        self.root = Path(root)
        self.mano_root = Path(mano_root)
        self.hands = check_choice(hands, ("right", "mirror"), name="hands")
        self.grasp_rule = check_choice(grasp_rule, DEXYCB_GRASP_RULES, name="grasp_rule", fn="DexYCB.__init__")
        self.sdf_source = sdf_source
        subj_ind, ser_ind, seq_ind = dexycb_split(setup, split)
        self.setup, self.split = setup, split
        self.num_object_points, self.num_sdf_points, self.contact_threshold = check_frame_options(
            num_object_points, num_sdf_points, contact_threshold, fn="DexYCB.__init__")
        self.transform = transform
        self.seed = check_int(seed, name="seed", fn="DexYCB.__init__")
        if not self.root.is_dir():
            raise FileFormatError(f"DexYCB(): root {self.root} is not a directory; expected the DexYCB root ($DEX_YCB_DIR)")
        self.serials = [DEXYCB_SERIALS[i] for i in ser_ind]
        self.intrinsics = {s: _read_intrinsics(self.root / "calibration" / "intrinsics" / f"{s}_640x480.yml")
                           for s in self.serials}
        self.sequences: list[dict] = []
        frames: list[tuple[int, int, int]] = []
        absent_subjects, left_sequences = [], 0
        for si in subj_ind:
            subject = DEXYCB_SUBJECTS[si]
            sdir = self.root / subject
            if not sdir.is_dir():
                absent_subjects.append(subject)
                continue
            seqs = sorted(p.name for p in sdir.iterdir() if p.is_dir())
            if len(seqs) != 100:
                warnings.warn(f"DexYCB: {sdir} holds {len(seqs)} sequences, the release has 100; "
                              "split indices refer to the sorted list found", stacklevel=2)
            for qi in seq_ind:
                if qi >= len(seqs):
                    continue
                qdir = sdir / seqs[qi]
                meta = _read_meta(qdir / "meta.yml")
                side = meta["side"]
                if side == "left" and hands == "right":
                    left_sequences += 1
                    continue
                calib = self.root / "calibration" / f"mano_{meta['mano_calib']}" / "mano.yml"
                if not calib.is_file():
                    raise FileFormatError(f"{qdir / 'meta.yml'}: field 'mano_calib' names {meta['mano_calib']!r}, "
                                          f"but {calib} is not a file")
                betas = array_field(calib, read_yaml(calib, ("betas",))["betas"], "betas", (10,))
                self.sequences.append({
                    "dir": qdir, "subject": subject, "ycb_ids": meta["ycb_ids"], "grasp": meta["ycb_grasp_ind"],
                    "side": side, "betas": torch.tensor(betas, dtype=torch.float32),
                })  # fmt: skip
                k = len(self.sequences) - 1
                for ci in range(len(self.serials)):
                    frames += [(k, ci, f) for f in range(meta["num_frames"])]
        if absent_subjects:
            warnings.warn(f"DexYCB: {len(absent_subjects)} of {len(subj_ind)} subjects of {setup}_{split} not found "
                          f"under {self.root}: {absent_subjects}", stacklevel=2)
        if left_sequences:
            warnings.warn(f"DexYCB: skipped {left_sequences} left-hand sequences (hands='right')", stacklevel=2)
        if require_hand:
            kept = [fr for fr in frames if self._hand_annotated(fr)]
            if len(kept) < len(frames):
                warnings.warn(f"DexYCB: skipped {len(frames) - len(kept)} of {len(frames)} frames without a hand "
                              "annotation (require_hand=True)", stacklevel=2)
            frames = kept
        if not frames:
            raise FileFormatError(f"DexYCB(): no frame of {setup}_{split} found under {self.root}")
        self.frames = np.asarray(frames, dtype=np.int64)
        self._mano: dict[str, object] = {}
        self._rest_poses: dict[tuple[int, int], np.ndarray] = {}  # (sequence, camera) -> first frame's pose_y
        self._models = ObjectModels({n: model_path(self.root, n) for n in YCB_CLASSES.values()}, self.num_object_points)
        self.deoccluded = None if deoccluded_root is None else DeoccludedPairs(
            deoccluded_root, [self._color_stem(fr) for fr in self.frames], dataset_root=self.root, who="DexYCB")

    def __len__(self) -> int:
        return len(self.frames)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_mano"] = {}  # rebuilt lazily in each worker
        state["_rest_poses"] = {}
        return state

    def _frame_dir(self, frame) -> tuple[dict, str, Path, int]:
        k, ci, f = (int(x) for x in frame)
        seq = self.sequences[k]
        serial = self.serials[ci]
        return seq, serial, seq["dir"] / serial, f

    def _color_stem(self, frame) -> str:
        """The colour image of ``frame`` relative to the root, without suffix (the twins' layout)."""
        seq, serial, _, f = self._frame_dir(frame)
        return f"{seq['subject']}/{seq['dir'].name}/{serial}/color_{f:06d}"

    def _hand_annotated(self, frame) -> bool:
        seq, _, d, f = self._frame_dir(frame)
        return self._labels(seq, d, f, ("joint_3d",))[1]

    def _layer(self, side: str):
        if side not in self._mano:
            from hoimask.hand import MANOLayer

            path = self.mano_root / f"MANO_{side.upper()}.pkl"
            if not path.is_file():
                alt = path.with_suffix(".npz")
                if not alt.is_file():
                    raise FileFormatError(f"DexYCB: MANO model {path} (or {alt.name}) not found; expected the official MANO file")
                path = alt
            self._mano[side] = MANOLayer(path, side=side, use_pca=True, num_pca_comps=45, flat_hand_mean=False,
                                         dtype=torch.float64)  # fmt: skip
        return self._mano[side]

    def _posed_sdf(self, ycb_id: int, R: torch.Tensor, t: torch.Tensor, *, mirrored: bool):
        """The posed model's SDF from its cached tree (``None`` without numba, or when no SDF is computed).

        ``R, t`` are the pose of the (mirrored, for left hands) model, as passed to ``frame_sample``.
        """
        if self.num_sdf_points == 0 or self.sdf_source is not None:
            return None
        bvh = self._models.bvh(YCB_CLASSES[ycb_id])
        return None if bvh is None else posed_model_sdf(bvh, R, t, _MIRROR if mirrored else None)

    def _model(self, ycb_id: int):
        if ycb_id not in YCB_CLASSES:
            raise FileFormatError(f"DexYCB: unknown YCB id {ycb_id}; expected 1..21")
        return self._models[YCB_CLASSES[ycb_id]]

    def frame_name(self, index: int, naming: str = "hoisdf") -> str:
        """The file stem of frame ``index`` in the SDF layouts of HOISDF or gSDF / AlignSDF.

        Args:
            index: the frame.
            naming: ``"hoisdf"`` — ``01_20200709_141754_836212060125_00``
                (subject number, sequence, camera serial, the last two digits
                of the frame number: HOISDF's ``data/dexycb.py`` for its S0
                split); ``"gsdf"`` — ``1_20200709_141754_836212060125_0``
                (gSDF's ``preprocess/cocoify_dexycb.py``, also read by AlignSDF).

        Returns:
            The name, without extension.
        """
        check_choice(naming, ("hoisdf", "gsdf"), name="naming", fn="DexYCB.frame_name")
        seq, serial, _, f = self._frame_dir(self.frames[frame_index(index, len(self), who="DexYCB.frame_name")])
        subject = seq["subject"].split("-")[-1]
        if naming == "hoisdf":
            return f"{subject}_{seq['dir'].name}_{serial}_{f % 100:02d}"  # HOISDF keeps 2 digits
        return f"{int(subject)}_{seq['dir'].name}_{serial}_{f}"

    def _labels(self, seq: dict, d: Path, f: int, keys: tuple[str, ...]) -> tuple[dict, bool]:
        """The arrays ``keys`` of ``labels_<f>.npz`` (checked: shapes, numbers, finite) and whether the hand is annotated.

        Raises:
            FileFormatError: naming the file and the array.
        """
        path = d / f"labels_{f:06d}.npz"
        lab = read_npz(path, {k: _LABEL_SHAPES[k] for k in keys}, finite=tuple(k for k in keys if k != "seg"),
                       integer=("seg",))  # fmt: skip
        if "pose_y" in keys and lab["pose_y"].shape[0] != len(seq["ycb_ids"]):
            raise FileFormatError(f"{path}: array 'pose_y' holds {lab['pose_y'].shape[0]} poses but "
                                  f"{seq['dir'] / 'meta.yml'} lists {len(seq['ycb_ids'])} objects in 'ycb_ids'")
        return lab, "joint_3d" in keys and _hand_annotated(path, lab["joint_3d"])

    def _rest_pose(self, frame) -> np.ndarray:
        """``pose_y`` ``(O, 3, 4)`` of the first frame of ``frame``'s sequence, seen by the same camera (cached).

        The motion rule is invariant to the camera (a fixed change of frame
        cancels in both errors); the frame's own camera folder is read, as the
        released UniHOPE code does, so the label never depends on which
        camera happened to be read first.

        Raises:
            FileFormatError: naming the missing or malformed ``labels_000000.npz``.
        """
        k, ci = int(frame[0]), int(frame[1])
        if (k, ci) not in self._rest_poses:
            seq, _, d, _ = self._frame_dir(frame)
            path = d / f"labels_{0:06d}.npz"
            if not path.is_file():
                raise FileFormatError(f"{path}: not found; DexYCB(grasp_rule='motion') reads the grasped object's "
                                      f"rest pose from the first frame of sequence {seq['dir']} (or use "
                                      "grasp_rule='contact')")
            self._rest_poses[(k, ci)] = self._labels(seq, d, 0, ("pose_y",))[0]["pose_y"]
        return self._rest_poses[(k, ci)]

    def _motion_grasped(self, frame, seq: dict, pose_y: np.ndarray) -> bool:
        """UniHOPE's label of a frame from its ``pose_y (O, 3, 4)`` and its sequence's first frame.

        Raises:
            FileFormatError: the grasped object's rotation in either file is not
                a rotation matrix (naming that file and ``pose_y``).
        """
        f = int(frame[2])
        first = pose_y if f == 0 else self._rest_pose(frame)
        now = torch.from_numpy(pose_y[seq["grasp"]]).to(torch.float64)
        rest = torch.from_numpy(first[seq["grasp"]]).to(torch.float64)
        try:
            return bool(grasp_labels_from_motion(now[:, :3], now[:, 3], rest[:, :3], rest[:, 3]))
        except ValueRangeError as err:
            d = self._frame_dir(frame)[2]
            path = d / f"labels_{0 if 'R_first' in str(err) else f:06d}.npz"
            raise FileFormatError(f"{path}: array 'pose_y' of the grasped object (index {seq['grasp']}) cannot be "
                                  f"compared with the rest pose: {err}") from None

    def _posed(self, seq: dict, lab: dict):
        """MANO output, layer and the grasped object's pose and model of one frame (original camera frame)."""
        pose_m = torch.from_numpy(lab["pose_m"][0]).to(torch.float64)
        layer = self._layer(seq["side"])
        betas = seq["betas"].to(torch.float64)
        out = layer(pose_m[None, :48], betas[None], pose_m[None, 48:])
        pose_y = torch.from_numpy(lab["pose_y"][seq["grasp"]]).to(torch.float64)
        return pose_m, layer, out, pose_y[:, :3], pose_y[:, 3], self._model(seq["ycb_ids"][seq["grasp"]])

    def frame_meshes(self, index: int) -> FrameMeshes:
        """The MANO mesh and the posed grasped-object mesh of frame ``index``, for SDF exporters.

        Both are in DexYCB's camera frame (left hands are not mirrored; see
        :class:`hoimask.data._assemble.FrameMeshes`); ``hand_vertices`` is
        ``None`` when the frame has no hand annotation.

        Raises:
            FileFormatError: a missing or malformed file (named).
        """
        index = frame_index(index, len(self), who="DexYCB.frame_meshes")
        seq, _, d, f = self._frame_dir(self.frames[index])
        lab, has_hand = self._labels(seq, d, f, ("pose_y", "pose_m", "joint_3d"))
        _, layer, out, R, t, (mv, mf, _) = self._posed(seq, lab)
        return FrameMeshes(
            hand_vertices=out.vertices[0] if has_hand else None, hand_faces=layer.faces, hand_weights=layer.weights,
            object_vertices=mv.to(torch.float64) @ R.T + t, object_faces=mf, mirrored=seq["side"] == "left",
            source=d / f"labels_{f:06d}.npz",
        )  # fmt: skip

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        """Load frame ``index`` (see the class docstring for the sample)."""
        index = frame_index(index, len(self), who="DexYCB.__getitem__")
        frame = self.frames[index]
        seq, serial, d, f = self._frame_dir(frame)
        color_path, depth_path = d / f"color_{f:06d}.jpg", d / f"aligned_depth_to_color_{f:06d}.png"
        image = read_image(color_path)
        twin = None if self.deoccluded is None else self.deoccluded.read(index, self._color_stem(frame), image, color_path)
        H, W = image.shape[1:]
        depth = read_depth_png(depth_path, 0.001)
        if tuple(depth.shape) != (H, W):
            raise FileFormatError(f"{depth_path}: depth is {tuple(depth.shape)}, but {color_path} is {(H, W)}")
        lab, has_hand = self._labels(seq, d, f, tuple(_LABEL_SHAPES))
        if lab["seg"].shape != (H, W):
            raise FileFormatError(f"{d / f'labels_{f:06d}.npz'}: array 'seg' is {lab['seg'].shape}, but {color_path} "
                                  f"is {(H, W)}")
        grasped = self._motion_grasped(frame, seq, lab["pose_y"]) if self.grasp_rule == "motion" else None
        intr = self.intrinsics[serial]
        K = torch.tensor([[intr["fx"], 0.0, intr["ppx"] + 0.5], [0.0, intr["fy"], intr["ppy"] + 0.5], [0.0, 0.0, 1.0]],
                         dtype=torch.float64)  # fmt: skip
        seg_raw = torch.from_numpy(lab["seg"].astype(np.int64))
        grasp_id = seq["ycb_ids"][seq["grasp"]]
        segmentation = torch.zeros_like(seg_raw)
        segmentation[seg_raw == _HAND_LABEL] = 1
        segmentation[seg_raw == grasp_id] = 2
        joints_3d = torch.from_numpy(lab["joint_3d"][0]).to(torch.float64)
        pose_m, layer, out, R, t, (mv, mf, mpts) = self._posed(seq, lab)
        verts = out.vertices[0]
        hand_pose = matrix_to_axis_angle(layer.pose_to_rotations(pose_m[None, :48])[0])  # (16, 3)
        faces = layer.faces
        mv, mpts = mv.to(torch.float64), mpts.to(torch.float64)
        if seq["side"] == "left":  # mirror into a right hand: x -> -x everywhere
            image, depth, segmentation = image.flip(-1), depth.flip(-1), segmentation.flip(-1)
            if twin is not None:
                twin["deoccluded_image"] = twin["deoccluded_image"].flip(-1)
            K = K.clone()
            K[0, 2] = W - K[0, 2]
            joints_3d = joints_3d @ _MIRROR
            verts = verts @ _MIRROR
            faces = faces.flip(-1)
            hand_pose = hand_pose * hand_pose.new_tensor([1.0, -1.0, -1.0])
            R, t = _MIRROR @ R @ _MIRROR, _MIRROR @ t
            mv, mpts, mf = mv @ _MIRROR, mpts @ _MIRROR, mf.flip(-1)
        g = torch.Generator().manual_seed(_index_seed(self.seed, index))
        if not has_hand:
            joints_3d = torch.full((21, 3), float("nan"), dtype=torch.float64)
            hand_pose = torch.full((16, 3), float("nan"), dtype=torch.float64)
        sdf_targets = None
        if self.sdf_source is not None and has_hand:
            name = self.frame_name(index, naming=self.sdf_source.naming)
            sdf_targets = self.sdf_source.targets(name, self.num_sdf_points, generator=g, mirror=seq["side"] == "left")
        sample = frame_sample(
            image=image, depth=depth, segmentation=segmentation, K=K, joints_3d=joints_3d,
            hand_pose=hand_pose, hand_shape=seq["betas"], hand_vertices=verts if has_hand else None,
            hand_faces=faces, rotation=R, translation=t, model=(mv, mf, mpts),
            num_sdf_points=self.num_sdf_points, contact_threshold=self.contact_threshold, generator=g,
            object_name=YCB_CLASSES[grasp_id], sdf_targets=sdf_targets, grasped=grasped,
            object_sdf=self._posed_sdf(grasp_id, R, t, mirrored=seq["side"] == "left"),
        )  # fmt: skip
        sample.update(twin or {})
        if self.transform is not None:
            sample = self.transform(sample, generator=g)
        return sample
