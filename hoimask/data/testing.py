"""Tiny DexYCB, HO3D and FreiHAND datasets in the official layouts, with synthetic content, for tests.

The real datasets and MANO are licensed downloads, so the loaders are tested
(here and in other subpackages) on fixtures written by these functions: a few
frames of a synthetic MANO hand (:func:`hoimask.hand.testing.write_synthetic_mano`)
and simple mesh objects, rendered by ray casting so that images, segmentation,
depth and labels agree. Everything is written in each dataset's own
conventions (OpenCV principal points for DexYCB, OpenGL 3D frame and MANO joint
order for HO3D), so a loader that forgets a conversion fails its tests.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from hoimask.geometry import axis_angle_to_matrix, matrix_to_axis_angle, project

from .dexycb import DEXYCB_SERIALS, DEXYCB_SUBJECTS, YCB_CLASSES
from .ho3d import HO3D_DEPTH_SCALE, OPENGL_TO_OPENCV
from .raycast import camera_rays, intersect_mesh

__all__ = ["FREIHAND_FIXTURE_BACKGROUNDS", "write_dexycb_fixture", "write_freihand_fixture", "write_ho3d_fixture",
           "write_mano_fixture"]

_SIZE = (48, 64)  # H, W
_FOCAL = 90.0


def write_mano_fixture(mano_root: str | os.PathLike) -> Path:
    """Write synthetic ``MANO_RIGHT.pkl`` and ``MANO_LEFT.pkl`` into ``mano_root``; return it."""
    from hoimask.hand.testing import write_synthetic_mano

    root = Path(mano_root)
    root.mkdir(parents=True, exist_ok=True)
    write_synthetic_mano(root / "MANO_RIGHT.pkl", "right", seed=0)
    write_synthetic_mano(root / "MANO_LEFT.pkl", "left", seed=0)
    return root


def _box_mesh(half: float):
    from hoimask.sdf.meshes import box_mesh

    v, f = box_mesh((half, half * 1.5, half * 0.8), dtype=torch.float32)
    return v, f


def _ball_mesh(radius: float):
    from hoimask.sdf.meshes import icosphere

    v, f = icosphere(2, radius, dtype=torch.float32)
    return v, f


def _write_obj(path: Path, v: torch.Tensor, f: torch.Tensor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in v.tolist()]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in f.tolist()]
    path.write_text("\n".join(lines) + "\n")


def _render(meshes: list[tuple[torch.Tensor, torch.Tensor, int]], K: torch.Tensor, size: tuple[int, int] = _SIZE):
    """Nearest-surface label and depth per pixel for camera-frame meshes ``(verts, faces, label)``; ``size = (H, W)``."""
    H, W = size
    dirs = camera_rays(K.double(), H, W)
    best = torch.full((H * W,), float("inf"), dtype=torch.float64)
    label = torch.zeros(H * W, dtype=torch.int64)
    for v, f, lab in meshes:
        t, _ = intersect_mesh(dirs, v.double(), f)
        closer = t < best
        best[closer], label[closer] = t[closer], lab
    depth = torch.where(torch.isfinite(best), best * dirs[:, 2], torch.zeros_like(best))
    return label.reshape(H, W), depth.reshape(H, W)


def _colour(label: torch.Tensor, palette: dict[int, tuple[int, int, int]]) -> np.ndarray:
    img = np.zeros(label.shape + (3,), dtype=np.uint8)
    img[...] = (40, 90, 60)
    for lab, rgb in palette.items():
        img[label.numpy() == lab] = rgb
    return img


def _save_png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _posed_hand(layer, pose: torch.Tensor, betas: torch.Tensor, depth: float):
    """Hand mesh placed with its centroid ``depth`` m in front of the camera (OpenCV frame)."""
    out = layer(pose[None], betas[None])
    trans = torch.tensor([0.0, 0.0, depth], dtype=torch.float64) - out.vertices[0].mean(0)
    out = layer(pose[None], betas[None], trans[None])
    return out, trans


def _moved_pose(pose_y: np.ndarray, degrees: float, lift: float) -> np.ndarray:
    """``pose_y (O, 3, 4)`` with object 0 turned by ``degrees`` about the camera z axis (through its centre)
    and moved ``lift`` metres along camera −y."""
    a = np.deg2rad(degrees)
    Rz = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    out = pose_y.astype(np.float64)
    out[0, :, :3] = Rz @ out[0, :, :3]
    out[0, :, 3] = out[0, :, 3] + np.array([0.0, -lift, 0.0])
    return out.astype(np.float32)


def write_dexycb_fixture(root: str | os.PathLike, mano_root: str | os.PathLike, *, seed: int = 0,
                         object_motion: Sequence[tuple[float, float]] = (),
                         deoccluded_root: str | os.PathLike | None = None) -> Path:
    """Write a tiny DexYCB: subject 01 with 5 sequences (the 2nd left-handed) of one frame each
    (sequence 0 has a 2nd frame without hand annotation), 8 cameras, 64×48 images, two YCB objects.

    Args:
        root: output folder (the fake ``$DEX_YCB_DIR``).
        mano_root: folder holding the MANO files (see :func:`write_mano_fixture`).
        seed: NumPy/torch seed of the content.
        object_motion: ``(degrees, metres)`` per extra frame of sequence 0
            (frames 2, 3, ...; hand as in frame 0, re-rendered): the grasped
            object turned by ``degrees`` about the camera's z axis through its
            centre and lifted by ``metres`` (camera −y), so its UniHOPE errors
            to frame 0 are exactly these (up to float32 storage). The default
            ``()`` writes the same files as before; the extra frames draw no
            random numbers.
        deoccluded_root: also write de-occluded twins there, in the layout of
            :mod:`hoimask.data.deoccluded` (``.png``): the hand rendered without
            the objects, for every frame and camera of sequences 0 and 1 (the
            left-handed one); sequences 2–4 get none.

    Returns:
        ``root``.
    """
    import yaml
    from PIL import Image

    from hoimask.hand import MANOLayer

    root = Path(root)
    g = torch.Generator().manual_seed(seed)
    H, W = _SIZE
    for s in DEXYCB_SERIALS:
        p = root / "calibration" / "intrinsics" / f"{s}_640x480.yml"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(yaml.safe_dump({"color": {"fx": _FOCAL, "fy": _FOCAL, "ppx": W / 2 - 0.5, "ppy": H / 2 - 0.5}}))
    K = torch.tensor([[_FOCAL, 0, W / 2], [0, _FOCAL, H / 2], [0, 0, 1]], dtype=torch.float64)
    models = {2: _box_mesh(0.025), 10: _ball_mesh(0.02)}
    for ycb_id, (v, f) in models.items():
        _write_obj(root / "models" / YCB_CLASSES[ycb_id] / "textured_simple.obj", v, f)
    subject = DEXYCB_SUBJECTS[0]
    calib = f"{subject}_calib"
    betas = (0.5 * torch.randn(10, generator=g, dtype=torch.float64)).tolist()
    cpath = root / "calibration" / f"mano_{calib}" / "mano.yml"
    cpath.parent.mkdir(parents=True, exist_ok=True)
    cpath.write_text(yaml.safe_dump({"betas": betas}))
    layers = {side: MANOLayer(Path(mano_root) / f"MANO_{side.upper()}.pkl", side=side, use_pca=True,
                              num_pca_comps=45, flat_hand_mean=False, dtype=torch.float64)
              for side in ("right", "left")}  # fmt: skip
    for q in range(5):
        side = "left" if q == 1 else "right"
        num_frames = 2 + len(object_motion) if q == 0 else 1
        qdir = root / subject / f"20200709_1417{q:02d}"
        qdir.mkdir(parents=True, exist_ok=True)
        meta = {"serials": list(DEXYCB_SERIALS), "num_frames": num_frames, "ycb_ids": [2, 10], "ycb_grasp_ind": 0,
                "mano_sides": [side], "mano_calib": [calib]}  # fmt: skip
        (qdir / "meta.yml").write_text(yaml.safe_dump(meta))
        pose48 = torch.cat([0.3 * torch.randn(3, generator=g, dtype=torch.float64),
                            0.5 * torch.randn(45, generator=g, dtype=torch.float64)])  # fmt: skip
        out, trans = _posed_hand(layers[side], pose48, torch.tensor(betas, dtype=torch.float64), 0.45)
        verts, joints = out.vertices[0], out.joints[0]
        centre = verts.mean(0)
        R = axis_angle_to_matrix(torch.randn(3, generator=g, dtype=torch.float64))
        t_grasp = centre + torch.tensor([0.02, 0.0, -0.04], dtype=torch.float64)
        t_other = torch.tensor([0.09, -0.05, 0.6], dtype=torch.float64)
        pose_y = np.stack([np.concatenate([R.numpy(), t[:, None].numpy()], 1) for t in (t_grasp, t_other)]).astype(np.float32)
        meshes = [(verts, layers[side].faces, 255)]
        for k, ycb_id in enumerate((2, 10)):
            v, f = models[ycb_id]
            meshes.append((v.double() @ torch.from_numpy(pose_y[k, :, :3]).double().T + torch.from_numpy(pose_y[k, :, 3]).double(), f, ycb_id))
        label, depth = _render(meshes, K)
        palette = {255: (220, 170, 140), 2: (200, 40, 40), 10: (230, 220, 40)}
        color = _colour(label, palette)
        twin = _colour(_render(meshes[:1], K)[0], palette) if deoccluded_root is not None and q < 2 else None
        for fr in range(num_frames):
            annotated = fr != 1
            frame_pose = pose_y
            if fr >= 2:  # sequence 0's extra frames: the grasped object moved, the scene re-rendered
                frame_pose = _moved_pose(pose_y, *object_motion[fr - 2])
                label, depth = _render([meshes[0]] + [
                    (models[i][0].double() @ torch.from_numpy(frame_pose[k, :, :3]).double().T
                     + torch.from_numpy(frame_pose[k, :, 3]).double(), models[i][1], i) for k, i in enumerate((2, 10))
                ], K)  # fmt: skip
                color = _colour(label, palette)
            lab = {
                "seg": label.numpy().astype(np.uint8),
                "pose_y": frame_pose,
                "pose_m": np.concatenate([pose48.numpy(), trans.numpy()])[None].astype(np.float32)
                if annotated else np.zeros((1, 51), np.float32),
                "joint_3d": joints.numpy()[None].astype(np.float32) if annotated else -np.ones((1, 21, 3), np.float32),
                "joint_2d": (project(joints, K) - 0.5).numpy()[None].astype(np.float32)
                if annotated else -np.ones((1, 21, 2), np.float32),
            }  # fmt: skip
            for serial in DEXYCB_SERIALS:
                d = qdir / serial
                d.mkdir(parents=True, exist_ok=True)
                Image.fromarray(color).save(d / f"color_{fr:06d}.jpg", quality=95)
                Image.fromarray((depth.numpy() * 1000).round().astype(np.uint16)).save(d / f"aligned_depth_to_color_{fr:06d}.png")
                np.savez_compressed(d / f"labels_{fr:06d}.npz", **lab)
                if twin is not None:
                    _save_png(Path(deoccluded_root) / d.relative_to(root) / f"color_{fr:06d}.png", twin)
    return root


def write_ho3d_fixture(root: str | os.PathLike, mano_root: str | os.PathLike, *, seed: int = 0,
                       evaluation_object_pose: bool = False, deoccluded_root: str | os.PathLike | None = None) -> Path:
    """Write a tiny HO3D (v3 style, jpg images): 2 training frames of ``SEQA``, 1 evaluation frame of ``SEQB``.

    3D annotations are in HO3D's OpenGL frame and MANO joint order; ``camMat``
    uses OpenCV's pixel-centre convention.

    Args:
        root: output folder (the fake HO3D root).
        mano_root: folder holding ``MANO_RIGHT.pkl``.
        seed: torch seed of the content.
        evaluation_object_pose: give the evaluation frame its object pose
            (``objRot``, ``objTrans``, as HO3D's evaluation meta files do where
            the object is annotated); ``None`` for both otherwise.
        deoccluded_root: also write a de-occluded twin there for training frame
            ``SEQA/0000`` (the hand rendered without the object, ``.png``, in the
            layout of :mod:`hoimask.data.deoccluded`); the other frames get none.

    Returns:
        ``root``.
    """
    from PIL import Image

    from hoimask.hand import MANOLayer
    from hoimask.skeleton import convert_joint_order

    root = Path(root)
    g = torch.Generator().manual_seed(seed)
    H, W = _SIZE
    C = OPENGL_TO_OPENCV
    K = torch.tensor([[_FOCAL, 0, W / 2], [0, _FOCAL, H / 2], [0, 0, 1]], dtype=torch.float64)
    cam_mat = K.clone()
    cam_mat[:2, 2] -= 0.5
    layer = MANOLayer(Path(mano_root) / "MANO_RIGHT.pkl", side="right", dtype=torch.float64)
    v_obj, f_obj = _box_mesh(0.02)
    _write_obj(root / "models" / "003_cracker_box" / "textured_simple.obj", v_obj, f_obj)
    beta = 0.5 * torch.randn(10, generator=g, dtype=torch.float64)
    entries = {"train": [("SEQA", "0000"), ("SEQA", "0001")], "evaluation": [("SEQB", "0000")]}
    for split, frames in entries.items():
        (root / f"{split}.txt").write_text("\n".join(f"{s}/{f}" for s, f in frames) + "\n")
        for seq, frame in frames:
            pose_cv = 0.4 * torch.randn(16, 3, generator=g, dtype=torch.float64)
            out, trans_cv = _posed_hand(layer, pose_cv, beta, 0.4)
            verts_cv, joints_cv = out.vertices[0], out.joints[0]
            # The same hand in HO3D's OpenGL frame: R_gl = C R_cv, trans_gl = C (j0 + t_cv) - j0.
            j0 = layer(torch.zeros(1, 16, 3, dtype=torch.float64), beta[None]).mano_joints[0, 0]
            pose_gl = pose_cv.clone()
            pose_gl[0] = matrix_to_axis_angle(C @ axis_angle_to_matrix(pose_cv[0]))
            trans_gl = C @ (j0 + trans_cv) - j0
            R_cv = axis_angle_to_matrix(torch.randn(3, generator=g, dtype=torch.float64))
            t_cv = verts_cv.mean(0) + torch.tensor([-0.02, 0.01, -0.03], dtype=torch.float64)
            obj_cv = v_obj.double() @ R_cv.T + t_cv
            label, depth = _render([(verts_cv, layer.faces, 1), (obj_cv, f_obj, 2)], K)
            folder = root / split / seq
            img = _colour(label, {1: (220, 170, 140), 2: (60, 60, 200)})
            (folder / "rgb").mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / "rgb" / f"{frame}.jpg", quality=95)
            if deoccluded_root is not None and (split, frame) == ("train", "0000"):
                twin = _colour(_render([(verts_cv, layer.faces, 1)], K)[0], {1: (220, 170, 140)})
                _save_png(Path(deoccluded_root) / split / seq / "rgb" / f"{frame}.png", twin)
            value = np.round(depth.numpy() / HO3D_DEPTH_SCALE).astype(np.int64)
            packed = np.stack([value % 256, value // 256, np.zeros_like(value)], -1).astype(np.uint8)
            _save_png(folder / "depth" / f"{frame}.png", packed)
            mano21 = convert_joint_order(joints_cv, "canonical", "ho3d") @ C.T  # HO3D order, OpenGL
            meta = {"camMat": cam_mat.numpy(), "objName": "003_cracker_box"}
            if split == "train":
                seg = np.zeros((H, W, 3), np.uint8)
                seg[label.numpy() == 1, 2] = 255
                seg[label.numpy() == 2, 1] = 255
                _save_png(folder / "seg" / f"{frame}.png", seg)
                meta.update({
                    "handPose": pose_gl.reshape(-1).numpy().astype(np.float32), "handBeta": beta.numpy().astype(np.float32),
                    "handTrans": trans_gl.numpy().astype(np.float32), "handJoints3D": mano21.numpy().astype(np.float32),
                    "objRot": matrix_to_axis_angle(C @ R_cv).numpy()[:, None].astype(np.float32),
                    "objTrans": (C @ t_cv).numpy().astype(np.float32),
                    "objCorners3D": np.zeros((8, 3), np.float32),
                })  # fmt: skip
            else:
                uv = project(verts_cv, K) - 0.5
                pose = ({"objRot": matrix_to_axis_angle(C @ R_cv).numpy()[:, None].astype(np.float32),
                         "objTrans": (C @ t_cv).numpy().astype(np.float32)} if evaluation_object_pose
                        else {"objRot": None, "objTrans": None})
                meta.update({"handJoints3D": mano21[0].numpy().astype(np.float32), **pose,
                             "handBoundingBox": np.concatenate([uv.min(0).values.numpy(), uv.max(0).values.numpy()]).astype(np.float32)})  # fmt: skip
            (folder / "meta").mkdir(parents=True, exist_ok=True)
            with open(folder / "meta" / f"{frame}.pkl", "wb") as fh:
                pickle.dump(meta, fh, protocol=2)
    return root


#: Background colour of each FreiHAND version written by :func:`write_freihand_fixture`
#: (0 green screen, 1 "hom", 2 "sample", 3 "auto"), and of its evaluation images.
FREIHAND_FIXTURE_BACKGROUNDS: tuple[tuple[int, int, int], ...] = ((0, 180, 60), (128, 128, 128), (200, 90, 40), (40, 60, 200))
_FREIHAND_EVALUATION_BACKGROUND = (90, 70, 50)


def _freihand_split(layer, n: int, size: int, g: torch.Generator):
    """``n`` random right hands for a FreiHAND split: file rows and rendered labels, FreiHAND's conventions."""
    K = torch.tensor([[_FOCAL, 0, size / 2], [0, _FOCAL, size / 2], [0, 0, 1]], dtype=torch.float64)
    K_file = K.clone()
    K_file[:2, 2] -= 0.5  # FreiHAND's K puts pixel centres on integers (OpenCV)
    rows: dict[str, list] = {"K": [], "xyz": [], "mano": [], "scale": [], "verts": []}
    labels = []
    for _ in range(n):
        pose = torch.cat([0.3 * torch.randn(3, generator=g, dtype=torch.float64),  # relative to MANO's mean pose
                          0.3 * torch.randn(45, generator=g, dtype=torch.float64)])  # fmt: skip
        beta = 0.5 * torch.randn(10, generator=g, dtype=torch.float64)
        out = layer(pose[None], beta[None])
        trans = torch.tensor([0.0, 0.0, 0.55], dtype=torch.float64) - out.vertices[0].mean(0)
        verts, joints = out.vertices[0] + trans, out.joints[0] + trans
        root = joints[9]  # the middle MCP: FreiHAND's uv_root and scale place it
        uv_root = _FOCAL * root[:2] / root[2] + K_file[:2, 2]
        theta = torch.cat([pose, beta, uv_root, (_FOCAL / root[2]).reshape(1)])
        rows["K"].append(K_file.tolist())
        rows["xyz"].append(joints.tolist())
        rows["mano"].append([theta.tolist()])  # (1, 61), as released
        rows["scale"].append(float((joints[9] - joints[10]).norm()))  # middle MCP -> PIP
        rows["verts"].append(verts.tolist())
        labels.append(_render([(verts, layer.faces, 1)], K, (size, size))[0].numpy())
    return rows, labels


def write_freihand_fixture(root: str | os.PathLike, mano_root: str | os.PathLike, *, num_samples: int = 3,
                           num_evaluation: int = 2, evaluation_annotations: bool = False, size: int = 48,
                           seed: int = 0) -> Path:
    """Write a tiny FreiHAND (v2 layout): ``num_samples`` training samples in 4 background versions, and an evaluation split.

    Each sample is a random right MANO hand (pose relative to MANO's mean pose,
    as FreiHAND stores it) placed by ``uv_root`` and ``scale`` as FreiHAND's
    toolbox places it, rendered by ray casting into ``size`` x ``size`` jpg
    images whose background is :data:`FREIHAND_FIXTURE_BACKGROUNDS` ``[v]`` in
    version ``v`` (file ``i + v * num_samples``), with white-hand jpg masks.
    ``*_xyz.json`` holds ``MANOLayer``'s joints (fingertips from its default
    vertex ids, not FreiHAND's own ids: the loader reads the joints as given),
    ``*_scale.json`` the middle MCP -> PIP length, ``*_verts.json`` the mesh.

    Args:
        root: output folder (the fake FreiHAND root).
        mano_root: folder holding ``MANO_RIGHT.pkl`` (see :func:`write_mano_fixture`).
        num_samples: unique training samples ``N``.
        num_evaluation: evaluation samples.
        evaluation_annotations: also write ``evaluation_xyz.json``,
            ``evaluation_mano.json``, ``evaluation_verts.json`` and
            ``evaluation/segmap/*.png`` (part labels 1-5, 0 = background), as
            the release with evaluation annotations; otherwise only
            ``evaluation_K.json``, ``evaluation_scale.json`` and the images.
        size: image side in pixels (the release: 224).
        seed: torch seed of the content.

    Returns:
        ``root``.
    """
    import json

    from PIL import Image

    from hoimask.hand import MANOLayer

    root = Path(root)
    g = torch.Generator().manual_seed(seed)
    layer = MANOLayer(Path(mano_root) / "MANO_RIGHT.pkl", side="right", flat_hand_mean=False, dtype=torch.float64)
    skin = np.array((220, 170, 140), np.uint8)
    for split, n in (("training", num_samples), ("evaluation", num_evaluation)):
        rows, labels = _freihand_split(layer, n, size, g)
        keys = ("K", "xyz", "mano", "scale", "verts") if split == "training" or evaluation_annotations else ("K", "scale")
        root.mkdir(parents=True, exist_ok=True)
        for key in keys:
            (root / f"{split}_{key}.json").write_text(json.dumps(rows[key]))
        (root / split / "rgb").mkdir(parents=True, exist_ok=True)
        for i, label in enumerate(labels):
            hand = label == 1
            versions = FREIHAND_FIXTURE_BACKGROUNDS if split == "training" else (_FREIHAND_EVALUATION_BACKGROUND,)
            for v, colour in enumerate(versions):
                img = np.empty(hand.shape + (3,), np.uint8)
                img[...] = colour
                img[hand] = skin
                Image.fromarray(img).save(root / split / "rgb" / f"{i + v * n:08d}.jpg", quality=95)
            if split == "training":
                (root / split / "mask").mkdir(exist_ok=True)
                Image.fromarray(np.where(hand, 255, 0).astype(np.uint8)).convert("RGB").save(
                    root / split / "mask" / f"{i:08d}.jpg", quality=95)
            elif evaluation_annotations:
                parts = np.where(hand, 1 + np.arange(size)[None, :] * 5 // size, 0).astype(np.uint8)
                _save_png(root / split / "segmap" / f"{i:08d}.png", parts)
    return root
