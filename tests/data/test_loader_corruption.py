"""Corruption battery of the DexYCB and HO3D loaders (issue 15 item 7).

Every file kind the loaders read is damaged in the fake trees of
:mod:`hoimask.data.testing` (truncated, random bytes, empty, wrong value
types, empty lists, wrong shapes, NaN / inf, bad frame counts, missing keys,
names that leave the dataset). Each damage must raise a ``FileFormatError``
whose message holds the damaged file's path and, where there is one, the
field — at construction or at ``__getitem__``, whichever reads the file:
never a silent sample and never a raw ``KeyError`` / ``ValueError`` /
``IndexError`` from inside. ``battery_counts`` tallies the outcomes (the
before / after table of docs/reliability.md).
"""

from __future__ import annotations

import pickle
import shutil
import warnings
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from hoimask._checks import DTypeError, FileFormatError, HoimaskError, ValueRangeError
from hoimask.data import HO3D, DexYCB
from hoimask.data._assemble import ObjectModels, check_frame_options, frame_index
from hoimask.data.dexycb import DEXYCB_SERIALS, DEXYCB_SUBJECTS

# ---------------------------------------------------------------------------------------------
# Damage applied to one file (paths relative to the case folder: data/ = dataset, mano/ = MANO)
# ---------------------------------------------------------------------------------------------


def truncate(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def random_bytes(p: Path) -> None:
    n = max(64, p.stat().st_size)
    p.write_bytes(np.random.default_rng(zlib.crc32(p.name.encode())).bytes(n))


def empty(p: Path) -> None:
    p.write_bytes(b"")


def yaml_edit(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    """Change the loaded mapping in place (``edit``'s return value is ignored) and write it back."""

    def apply(p: Path) -> None:
        data = yaml.safe_load(p.read_text())
        edit(data)
        p.write_text(yaml.safe_dump(data))

    return apply


def yaml_set(value, *keys: str) -> Callable[[Path], None]:
    def edit(data):
        for k in keys[:-1]:
            data = data[k]
        data[keys[-1]] = value

    return yaml_edit(edit)


def yaml_text(text: str) -> Callable[[Path], None]:
    return lambda p: p.write_text(text)


def npz_edit(key: str, change: Callable[[np.ndarray], np.ndarray | None]) -> Callable[[Path], None]:
    def apply(p: Path) -> None:
        with np.load(p) as z:
            data = {k: z[k] for k in z.files}
        new = change(data[key].copy())
        if new is None:
            del data[key]
        else:
            data[key] = new
        np.savez(p, **data)

    return apply


def nan_at(index, value=float("nan")) -> Callable[[np.ndarray], np.ndarray]:
    def change(a):
        a = a.astype(np.float32)
        a[index] = value
        return a

    return change


def pkl_edit(edit: Callable[[dict], object], *, replace: bool = False) -> Callable[[Path], None]:
    """Change the loaded dict in place, or (``replace``) write what ``edit`` returns instead."""

    def apply(p: Path) -> None:
        with open(p, "rb") as fh:
            data = pickle.load(fh)  # our own fixture: trusted
        out = edit(data)
        with open(p, "wb") as fh:
            pickle.dump(out if replace else data, fh, protocol=2)

    return apply


def pkl_set(key: str, value) -> Callable[[Path], None]:
    def edit(data):
        data[key] = value(data[key]) if callable(value) else value

    return pkl_edit(edit)


def pkl_nan(key: str, value=float("nan")) -> Callable[[Path], None]:
    def change(a):
        a = np.array(a, dtype=np.float32)
        a.reshape(-1)[1] = value
        return a

    return pkl_set(key, change)


def image_resized(size: tuple[int, int], mode: str | None = None) -> Callable[[Path], None]:
    def apply(p: Path) -> None:
        from PIL import Image

        with Image.open(p) as im:
            im.load()
            out = im.convert(mode) if mode else im.copy()
        out.resize((size[1], size[0])).save(p, format=Image.registered_extensions()[p.suffix])

    return apply


def text_edit(change: Callable[[str], str]) -> Callable[[Path], None]:
    return lambda p: p.write_text(change(p.read_text()))


def first_vertex(text: str, new: str) -> str:
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("v "))
    lines[i] = new
    return "\n".join(lines) + "\n"


def mano_npz_nan(p: Path) -> None:
    """Replace the MANO pickle by an ``.npz`` (the loaders' second choice) with a NaN in ``v_template``."""
    from hoimask.hand import load_mano_arrays

    arrays = load_mano_arrays(p)
    arrays["v_template"][3, 1] = np.nan
    np.savez(p.with_suffix(".npz"), **arrays)
    p.unlink()


# ---------------------------------------------------------------------------------------------
# The cases
# ---------------------------------------------------------------------------------------------

SUBJECT = DEXYCB_SUBJECTS[0]
SEQ = f"data/{SUBJECT}/20200709_141700"
CAM = f"{SEQ}/{DEXYCB_SERIALS[0]}"
DEX = {
    "intrinsics": f"data/calibration/intrinsics/{DEXYCB_SERIALS[0]}_640x480.yml",
    "mano.yml": f"data/calibration/mano_{SUBJECT}_calib/mano.yml",
    "meta.yml": f"{SEQ}/meta.yml",
    "labels": f"{CAM}/labels_000000.npz",
    "color": f"{CAM}/color_000000.jpg",
    "depth": f"{CAM}/aligned_depth_to_color_000000.png",
    "model": "data/models/003_cracker_box/textured_simple.obj",
    "mano": "mano/MANO_RIGHT.pkl",
}
HO = {
    "train.txt": "data/train.txt",
    "evaluation.txt": "data/evaluation.txt",
    "meta": "data/train/SEQA/meta/0000.pkl",
    "eval meta": "data/evaluation/SEQB/meta/0000.pkl",
    "rgb": "data/train/SEQA/rgb/0000.jpg",
    "depth": "data/train/SEQA/depth/0000.png",
    "seg": "data/train/SEQA/seg/0000.png",
    "model": "data/models/003_cracker_box/textured_simple.obj",
    "mano": "mano/MANO_RIGHT.pkl",
}


@dataclass(frozen=True)
class Case:
    """One damaged file: ``dataset`` ``"dexycb"``, ``"ho3d"`` or ``"ho3d-eval"``; ``field`` must be named."""

    dataset: str
    file: str
    kind: str
    damage: Callable[[Path], None]
    field: str | None = None
    index: int = 0
    named: str | None = None  # the file the message must name, when the damage replaces ``path`` by another

    @property
    def path(self) -> str:
        return (DEX if self.dataset == "dexycb" else HO)[self.file]

    @property
    def id(self) -> str:
        return f"{self.dataset}:{self.file}:{self.kind}"


def _bytes(dataset: str, file: str, index: int = 0) -> list[Case]:
    return [Case(dataset, file, k, f, index=index) for k, f in
            (("truncated", truncate), ("random bytes", random_bytes), ("empty", empty))]  # fmt: skip


COLOR = ("color",)
CASES: list[Case] = [
    # --- DexYCB: calibration/intrinsics/<serial>_640x480.yml (construction)
    *_bytes("dexycb", "intrinsics"),
    Case("dexycb", "intrinsics", "list instead of mapping", yaml_text("- 1\n- 2\n")),
    Case("dexycb", "intrinsics", "color is a list", yaml_set([90.0, 90.0, 31.5, 23.5], "color"), "color"),
    Case("dexycb", "intrinsics", "color is a string", yaml_set("fx fy ppx ppy", "color"), "color"),
    Case("dexycb", "intrinsics", "missing ppy", yaml_edit(lambda d: d["color"].pop("ppy")), "ppy"),
    Case("dexycb", "intrinsics", "fx is a string", yaml_set("ninety", *COLOR, "fx"), "fx"),
    Case("dexycb", "intrinsics", "fx is a quoted number", yaml_set("90.0", *COLOR, "fx"), "fx"),
    Case("dexycb", "intrinsics", "fx is a list", yaml_set([90.0], *COLOR, "fx"), "fx"),
    Case("dexycb", "intrinsics", "fx is NaN", yaml_set(float("nan"), *COLOR, "fx"), "fx"),
    Case("dexycb", "intrinsics", "fy is inf", yaml_set(float("inf"), *COLOR, "fy"), "fy"),
    Case("dexycb", "intrinsics", "fx is 0", yaml_set(0.0, *COLOR, "fx"), "fx"),
    Case("dexycb", "intrinsics", "fy is negative", yaml_set(-90.0, *COLOR, "fy"), "fy"),
    Case("dexycb", "intrinsics", "ppx is NaN", yaml_set(float("nan"), *COLOR, "ppx"), "ppx"),
    Case("dexycb", "intrinsics", "ppy is a bool", yaml_set(True, *COLOR, "ppy"), "ppy"),
    # --- DexYCB: calibration/mano_<calib>/mano.yml (construction)
    *_bytes("dexycb", "mano.yml"),
    Case("dexycb", "mano.yml", "missing betas", yaml_text("beta: [0, 0]\n"), "betas"),
    Case("dexycb", "mano.yml", "betas empty", yaml_set([], "betas"), "betas"),
    Case("dexycb", "mano.yml", "betas 9 numbers", yaml_edit(lambda d: d["betas"].pop()), "betas"),
    Case("dexycb", "mano.yml", "betas a number", yaml_set(0.5, "betas"), "betas"),
    Case("dexycb", "mano.yml", "betas a mapping", yaml_set({"a": 1}, "betas"), "betas"),
    Case("dexycb", "mano.yml", "betas a string entry", yaml_edit(lambda d: d["betas"].__setitem__(2, "x")), "betas"),
    Case("dexycb", "mano.yml", "betas nested", yaml_edit(lambda d: d.__setitem__("betas", [[b, b] for b in d["betas"]])), "betas"),
    Case("dexycb", "mano.yml", "betas NaN", yaml_edit(lambda d: d["betas"].__setitem__(4, float("nan"))), "betas"),
    Case("dexycb", "mano.yml", "betas inf", yaml_edit(lambda d: d["betas"].__setitem__(0, float("-inf"))), "betas"),
    # --- DexYCB: <subject>/<sequence>/meta.yml (construction)
    *_bytes("dexycb", "meta.yml"),
    Case("dexycb", "meta.yml", "list instead of mapping", yaml_text("- num_frames\n- 2\n")),
    Case("dexycb", "meta.yml", "missing num_frames", yaml_edit(lambda d: d.pop("num_frames")), "num_frames"),
    Case("dexycb", "meta.yml", "num_frames negative", yaml_set(-2, "num_frames"), "num_frames"),
    Case("dexycb", "meta.yml", "num_frames zero", yaml_set(0, "num_frames"), "num_frames"),
    Case("dexycb", "meta.yml", "num_frames 2.5", yaml_set(2.5, "num_frames"), "num_frames"),
    Case("dexycb", "meta.yml", "num_frames a string", yaml_set("two", "num_frames"), "num_frames"),
    Case("dexycb", "meta.yml", "num_frames a quoted number", yaml_set("2", "num_frames"), "num_frames"),
    Case("dexycb", "meta.yml", "num_frames NaN", yaml_set(float("nan"), "num_frames"), "num_frames"),
    Case("dexycb", "meta.yml", "ycb_ids empty", yaml_set([], "ycb_ids"), "ycb_ids"),
    Case("dexycb", "meta.yml", "ycb_ids a number", yaml_set(2, "ycb_ids"), "ycb_ids"),
    Case("dexycb", "meta.yml", "ycb_ids a string entry", yaml_set(["two", 10], "ycb_ids"), "ycb_ids"),
    Case("dexycb", "meta.yml", "ycb_ids unknown id", yaml_set([99, 10], "ycb_ids"), "ycb_ids"),
    Case("dexycb", "meta.yml", "ycb_ids one more than pose_y", yaml_set([2, 10, 3], "ycb_ids"), "ycb_ids"),
    Case("dexycb", "meta.yml", "ycb_grasp_ind out of range", yaml_set(2, "ycb_grasp_ind"), "ycb_grasp_ind"),
    Case("dexycb", "meta.yml", "ycb_grasp_ind negative", yaml_set(-1, "ycb_grasp_ind"), "ycb_grasp_ind"),
    Case("dexycb", "meta.yml", "ycb_grasp_ind 0.5", yaml_set(0.5, "ycb_grasp_ind"), "ycb_grasp_ind"),
    Case("dexycb", "meta.yml", "ycb_grasp_ind a list", yaml_set([0], "ycb_grasp_ind"), "ycb_grasp_ind"),
    Case("dexycb", "meta.yml", "mano_sides empty", yaml_set([], "mano_sides"), "mano_sides"),
    Case("dexycb", "meta.yml", "mano_sides unknown side", yaml_set(["up"], "mano_sides"), "mano_sides"),
    Case("dexycb", "meta.yml", "mano_sides a string", yaml_set("right", "mano_sides"), "mano_sides"),
    Case("dexycb", "meta.yml", "mano_calib empty", yaml_set([], "mano_calib"), "mano_calib"),
    Case("dexycb", "meta.yml", "mano_calib a list entry", yaml_set([[1]], "mano_calib"), "mano_calib"),
    Case("dexycb", "meta.yml", "mano_calib names nothing", yaml_set(["nobody"], "mano_calib"), "mano_calib"),
    Case("dexycb", "meta.yml", "mano_calib leaves the root", yaml_set(["../../x"], "mano_calib"), "mano_calib"),
    Case("dexycb", "meta.yml", "serials empty", yaml_set([], "serials"), "serials"),
    # --- DexYCB: labels_<frame>.npz (__getitem__)
    *_bytes("dexycb", "labels"),
    Case("dexycb", "labels", "missing pose_m", npz_edit("pose_m", lambda a: None), "pose_m"),
    Case("dexycb", "labels", "pose_y wrong shape", npz_edit("pose_y", lambda a: a[:, :, :3]), "pose_y"),
    Case("dexycb", "labels", "pose_y one pose short", npz_edit("pose_y", lambda a: a[:1]), "pose_y"),
    Case("dexycb", "labels", "pose_y empty", npz_edit("pose_y", lambda a: a[:0]), "pose_y"),
    Case("dexycb", "labels", "pose_y NaN", npz_edit("pose_y", nan_at((0, 1, 3))), "pose_y"),
    Case("dexycb", "labels", "pose_y inf (other object)", npz_edit("pose_y", nan_at((1, 0, 0), np.inf)), "pose_y"),
    Case("dexycb", "labels", "pose_y strings", npz_edit("pose_y", lambda a: a.astype(str)), "pose_y"),
    Case("dexycb", "labels", "pose_m NaN", npz_edit("pose_m", nan_at((0, 10))), "pose_m"),
    Case("dexycb", "labels", "pose_m wrong shape", npz_edit("pose_m", lambda a: a[:, :48]), "pose_m"),
    Case("dexycb", "labels", "joint_3d NaN", npz_edit("joint_3d", nan_at((0, 4, 2))), "joint_3d"),
    Case("dexycb", "labels", "joint_3d one row -1", npz_edit("joint_3d", nan_at((0, 7), -1.0)), "joint_3d"),
    Case("dexycb", "labels", "joint_3d wrong shape", npz_edit("joint_3d", lambda a: a[:, :20]), "joint_3d"),
    Case("dexycb", "labels", "joint_2d inf", npz_edit("joint_2d", nan_at((0, 3, 0), np.inf)), "joint_2d"),
    Case("dexycb", "labels", "seg wrong shape", npz_edit("seg", lambda a: a[:10]), "seg"),
    Case("dexycb", "labels", "seg float", npz_edit("seg", lambda a: a.astype(np.float32)), "seg"),
    # --- DexYCB: color / depth images (__getitem__)
    *_bytes("dexycb", "color"),
    Case("dexycb", "color", "other size than the labels", image_resized((24, 32))),
    *_bytes("dexycb", "depth"),
    Case("dexycb", "depth", "other size than the image", image_resized((24, 32))),
    Case("dexycb", "depth", "RGB instead of 16-bit", image_resized((48, 64), "RGB")),
    Case("dexycb", "depth", "8-bit instead of 16-bit", image_resized((48, 64), "L")),
    # --- DexYCB: models/<name>/textured_simple.obj (__getitem__)
    *_bytes("dexycb", "model"),
    Case("dexycb", "model", "NaN vertex", text_edit(lambda t: first_vertex(t, "v nan 0.1 0.2"))),
    Case("dexycb", "model", "inf vertex", text_edit(lambda t: first_vertex(t, "v 0.1 inf 0.2"))),
    Case("dexycb", "model", "vertex with 2 coordinates", text_edit(lambda t: first_vertex(t, "v 0.1 0.2"))),
    Case("dexycb", "model", "vertex not a number", text_edit(lambda t: first_vertex(t, "v 0.1 x 0.2"))),
    Case("dexycb", "model", "face index out of range", text_edit(lambda t: t + "f 1 2 999\n")),
    Case("dexycb", "model", "face index 0", text_edit(lambda t: t + "f 0 1 2\n")),
    Case("dexycb", "model", "face with 2 vertices", text_edit(lambda t: t + "f 1 2\n")),
    Case("dexycb", "model", "no faces", text_edit(lambda t: "".join(x for x in t.splitlines(True) if x[0] != "f"))),
    # --- DexYCB: MANO_RIGHT.pkl (__getitem__)
    *_bytes("dexycb", "mano"),
    Case("dexycb", "mano", "npz with NaN", mano_npz_nan, "v_template", named="mano/MANO_RIGHT.npz"),
    # --- HO3D: train.txt / evaluation.txt (construction; a bad entry at __getitem__)
    Case("ho3d", "train.txt", "truncated mid-line", text_edit(lambda t: t.rstrip()[:-2]), index=1),
    Case("ho3d", "train.txt", "random bytes", random_bytes),
    Case("ho3d", "train.txt", "empty", empty),
    Case("ho3d", "train.txt", "no slash", yaml_text("SEQA0000\n")),
    Case("ho3d", "train.txt", "three parts", yaml_text("SEQA/0000/x\n")),
    Case("ho3d", "train.txt", "parent folder", yaml_text("../SEQA/0000\n")),
    Case("ho3d", "train.txt", "dot-dot sequence", yaml_text("../0000\n")),
    Case("ho3d", "train.txt", "unknown frame", yaml_text("SEQA/0000\nSEQA/0042\n"), index=1),
    Case("ho3d-eval", "evaluation.txt", "random bytes", random_bytes),
    # --- HO3D: meta/<frame>.pkl, training split (__getitem__)
    *_bytes("ho3d", "meta"),
    Case("ho3d", "meta", "list instead of dict", pkl_edit(lambda d: list(d), replace=True)),
    Case("ho3d", "meta", "missing camMat", pkl_edit(lambda d: d.pop("camMat")), "camMat"),
    Case("ho3d", "meta", "camMat NaN", pkl_nan("camMat"), "camMat"),
    Case("ho3d", "meta", "camMat zero focal", pkl_set("camMat", lambda a: a * [[0, 1, 1], [1, 1, 1], [1, 1, 1]]), "camMat"),
    Case("ho3d", "meta", "camMat last row", pkl_set("camMat", lambda a: a + [[0, 0, 0], [0, 0, 0], [0, 0, 1]]), "camMat"),
    Case("ho3d", "meta", "camMat strings", pkl_set("camMat", lambda a: np.asarray(a).astype(str)), "camMat"),
    Case("ho3d", "meta", "camMat wrong shape", pkl_set("camMat", lambda a: np.asarray(a)[:2, :2]), "camMat"),
    Case("ho3d", "meta", "camMat None", pkl_set("camMat", None), "camMat"),
    Case("ho3d", "meta", "camMat a string", pkl_set("camMat", "K"), "camMat"),
    Case("ho3d", "meta", "handJoints3D NaN", pkl_nan("handJoints3D"), "handJoints3D"),
    Case("ho3d", "meta", "handJoints3D wrong shape", pkl_set("handJoints3D", lambda a: a[:20]), "handJoints3D"),
    Case("ho3d", "meta", "handPose NaN", pkl_nan("handPose"), "handPose"),
    Case("ho3d", "meta", "handPose empty", pkl_set("handPose", []), "handPose"),
    Case("ho3d", "meta", "handBeta inf", pkl_nan("handBeta", np.inf), "handBeta"),
    Case("ho3d", "meta", "handTrans wrong size", pkl_set("handTrans", lambda a: a[:2]), "handTrans"),
    Case("ho3d", "meta", "handTrans strings", pkl_set("handTrans", ["a", "b", "c"]), "handTrans"),
    Case("ho3d", "meta", "objRot NaN", pkl_nan("objRot"), "objRot"),
    Case("ho3d", "meta", "objTrans inf", pkl_nan("objTrans", -np.inf), "objTrans"),
    Case("ho3d", "meta", "objTrans None, objRot given", pkl_set("objTrans", None), "objTrans"),
    Case("ho3d", "meta", "objName a number", pkl_set("objName", 3), "objName"),
    Case("ho3d", "meta", "objName empty", pkl_set("objName", ""), "objName"),
    Case("ho3d", "meta", "objName leaves the root", pkl_set("objName", "../../003_cracker_box"), "objName"),
    Case("ho3d", "meta", "objName without a model", pkl_set("objName", "999_unknown"), "objName"),
    # --- HO3D: meta/<frame>.pkl, evaluation split (__getitem__)
    *_bytes("ho3d-eval", "eval meta"),
    Case("ho3d-eval", "eval meta", "missing handBoundingBox", pkl_edit(lambda d: d.pop("handBoundingBox")), "handBoundingBox"),
    Case("ho3d-eval", "eval meta", "handBoundingBox NaN", pkl_nan("handBoundingBox"), "handBoundingBox"),
    Case("ho3d-eval", "eval meta", "handJoints3D NaN", pkl_nan("handJoints3D"), "handJoints3D"),
    Case("ho3d-eval", "eval meta", "handJoints3D 21 joints", pkl_set("handJoints3D", np.zeros((21, 3))), "handJoints3D"),
    Case("ho3d-eval", "eval meta", "camMat inf", pkl_nan("camMat", np.inf), "camMat"),
    Case("ho3d-eval", "eval meta", "objRot NaN", pkl_set("objRot", np.full((3, 1), np.nan)), "objRot"),
    # --- HO3D: rgb / depth / seg images (__getitem__)
    *_bytes("ho3d", "rgb"),
    *_bytes("ho3d", "depth"),
    Case("ho3d", "depth", "other size than the image", image_resized((24, 32))),
    Case("ho3d", "depth", "grayscale instead of RGB", image_resized((48, 64), "L")),
    *_bytes("ho3d", "seg"),
    Case("ho3d", "seg", "grayscale instead of RGB", image_resized((48, 64), "L")),
    Case("ho3d", "seg", "not a whole fraction of the image", image_resized((20, 7))),
    # --- HO3D: models/<objName>/textured_simple.obj and MANO_RIGHT.pkl (__getitem__)
    *_bytes("ho3d", "model"),
    Case("ho3d", "model", "NaN vertex", text_edit(lambda t: first_vertex(t, "v 0.1 0.2 nan"))),
    *_bytes("ho3d", "mano"),
]


# ---------------------------------------------------------------------------------------------
# Running a case
# ---------------------------------------------------------------------------------------------


def build(case: Case, folder: Path):
    """Construct the loader of ``case`` on ``folder`` and read its frame (what a training loop does)."""
    kw = dict(mano_root=folder / "mano", num_sdf_points=0, num_object_points=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixture is smaller than the release
        if case.dataset == "dexycb":
            ds = DexYCB(folder / "data", **kw)
        else:
            ds = HO3D(folder / "data", split="train" if case.dataset == "ho3d" else "evaluation", **kw)
        return ds[case.index]


def outcome(case: Case, folder: Path, trees: dict[str, Path]) -> tuple[str, str]:
    """``("named" | "unnamed" | "silent" | "raw", message)`` of ``case`` on a fresh copy of its tree in ``folder``."""
    shutil.copytree(trees["dexycb" if case.dataset == "dexycb" else "ho3d"], folder / "data")
    shutil.copytree(trees["mano"], folder / "mano")
    path = folder / case.path
    case.damage(path)
    try:
        build(case, folder)
    except HoimaskError as err:
        msg = str(err)
        named = str(folder / (case.named or case.path)) in msg and (case.field is None or case.field in msg)
        return ("named" if named and isinstance(err, FileFormatError) else "unnamed"), f"{type(err).__name__}: {msg}"
    except Exception as err:  # noqa: BLE001 - that is the outcome being counted
        return "raw", f"{type(err).__name__}: {err}"
    return "silent", ""


def battery_counts(trees: dict[str, Path], folder: Path) -> tuple[Counter, dict[str, tuple[str, str]]]:
    """Run every case; the tally of outcomes and each case's outcome and message."""
    results = {}
    for i, case in enumerate(CASES):
        results[case.id] = outcome(case, folder / f"case{i:03d}", trees)
    return Counter(kind for kind, _ in results.values()), results


@pytest.fixture(scope="module")
def trees(dexycb_root, ho3d_root, mano_root):
    return {"dexycb": dexycb_root, "ho3d": ho3d_root, "mano": mano_root}


@pytest.mark.parametrize("dataset", ["dexycb", "ho3d", "ho3d-eval"])
def test_the_undamaged_trees_load(trees, tmp_path, dataset):
    """Control: the battery's harness reads the pristine copies without error."""
    case = Case(dataset, "mano", "none", lambda p: None)
    assert outcome(case, tmp_path, trees) == ("silent", "")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_damaged_file_is_named(trees, tmp_path, case):
    kind, message = outcome(case, tmp_path, trees)
    where = f" and field {case.field!r}" if case.field else ""
    assert kind == "named", f"{case.id}: expected a FileFormatError naming {case.path}{where}, got {kind}: {message}"


def test_the_battery_covers_every_file_kind_and_damage():
    files = {(c.dataset.split("-")[0], c.file) for c in CASES}
    assert {("dexycb", f) for f in DEX} <= files and {("ho3d", f) for f in HO} <= files
    kinds = " ".join(c.kind for c in CASES)
    for damage in ("truncated", "random bytes", "empty", "NaN", "inf", "string", "empty", "wrong shape", "negative",
                   "zero", "missing", "list instead of", "leaves the root"):
        assert damage in kinds, damage


# ---------------------------------------------------------------------------------------------
# Where non-finite ground truth stays legitimate (docs/conventions.md, "Non-finite values")
# ---------------------------------------------------------------------------------------------


def test_unannotated_frames_still_load(trees, tmp_path):
    """DexYCB's ``joint_3d == -1`` frame and HO3D's evaluation frame without object pose are not corruption."""
    import torch

    kw = dict(mano_root=trees["mano"], num_sdf_points=0, num_object_points=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dex = DexYCB(trees["dexycb"], **kw)
    s = dex[1]  # sequence 0, camera 0, frame 1: joint_3d == -1 everywhere
    assert torch.isnan(s["joints_3d"]).all() and torch.isfinite(s["K"]).all()
    ev = HO3D(trees["ho3d"], split="evaluation", **kw)[0]  # objRot / objTrans are None
    assert torch.isnan(ev["object_rotation"]).all() and torch.isfinite(ev["joints_3d"][0]).all()


# ---------------------------------------------------------------------------------------------
# Arguments that used to be truncated
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, kwargs", [
    ("num_object_points", dict(num_object_points=2.5)),
    ("num_sdf_points", dict(num_sdf_points=16.5)),
    ("seed", dict(seed=1.5)),
    ("seed", dict(seed="1")),
])  # fmt: skip
@pytest.mark.parametrize("loader", ["dexycb", "ho3d"])
def test_float_counts_and_seeds_are_refused(trees, loader, name, kwargs):
    root = trees[loader]
    cls = DexYCB if loader == "dexycb" else HO3D
    with pytest.raises(DTypeError, match=rf"{cls.__name__}.__init__\(\): argument '{name}' expected an int"):
        cls(root, mano_root=trees["mano"], **kwargs)


def test_frame_options_keep_ints_and_bounds():
    assert check_frame_options(3, 0, 0.01, fn="f") == (3, 0, 0.01)
    assert type(check_frame_options(3, 0, 0.01, fn="f")[0]) is int
    with pytest.raises(ValueRangeError, match="num_object_points"):
        check_frame_options(0, 0, 0.01, fn="f")
    with pytest.raises(ValueRangeError, match="num_sdf_points"):
        check_frame_options(1, -1, 0.01, fn="f")
    with pytest.raises(DTypeError, match="num_points"):
        ObjectModels({}, 2.5)


def test_frame_index_refuses_non_integers_and_keeps_index_error():
    import torch

    who = "DexYCB.__getitem__"
    assert frame_index(-1, 4, who=who) == 3
    assert frame_index(np.int64(2), 4, who=who) == 2 and frame_index(torch.tensor(1), 4, who=who) == 1
    for bad in (2.5, 2.0, np.float64(1.0), "1", True, None):
        with pytest.raises(DTypeError, match=r"DexYCB.__getitem__\(\): argument 'index' expected an int"):
            frame_index(bad, 4, who=who)
    with pytest.raises(IndexError, match="out of range"):  # the sequence protocol: iteration stops here
        frame_index(4, 4, who=who)


def test_loaders_refuse_a_float_index(trees):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = HO3D(trees["ho3d"], mano_root=trees["mano"], num_sdf_points=0, num_object_points=8)
    with pytest.raises(DTypeError, match=r"HO3D.__getitem__\(\): argument 'index' expected an int, got 0.5"):
        ds[0.5]
    with pytest.raises(DTypeError, match=r"HO3D.frame_name\(\): argument 'index'"):
        ds.frame_name(1.0)
