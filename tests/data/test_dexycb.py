"""DexYCB loader on a tiny fixture in the official layout."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from hoimask._checks import FileFormatError
from hoimask.data import DexYCB, RandomCropResize, dexycb_split, validate_sample
from hoimask.geometry import project
from hoimask.ops.mesh_sdf import bvh_enabled


def test_split_definitions_match_the_toolkit():
    subj, ser, seq = dexycb_split("s0", "train")
    assert subj == list(range(10)) and ser == list(range(8)) and len(seq) == 80 and 4 not in seq
    assert dexycb_split("s0", "test")[0] == list(range(2, 10)) and dexycb_split("s0", "test")[2][:2] == [4, 9]
    assert dexycb_split("s1", "val")[0] == [6]
    assert dexycb_split("s2", "test")[1] == [7]
    assert dexycb_split("s3", "val")[2] == [15, 16, 17, 18, 19, 95, 96, 97, 98, 99]


def test_loads_right_hands_and_counts_what_it_skips(dexycb_root, mano_root):
    with pytest.warns(UserWarning) as record:
        ds = DexYCB(dexycb_root, mano_root=mano_root, num_sdf_points=128, num_object_points=64)
    messages = " | ".join(str(w.message) for w in record)
    assert "skipped 1 left-hand sequences" in messages and "9 of 10 subjects" in messages
    # Train sequences 0, 2, 3 (1 is left-handed, 4 is held out), 8 cameras, frames 2 + 1 + 1.
    assert len(ds) == 8 * 4
    s = ds[0]
    validate_sample(s)
    assert s["image"].shape == (3, 48, 64)
    assert set(s["segmentation"].unique().tolist()) <= {0, 1, 2} and (s["segmentation"] == 2).any()


def test_labels_agree_with_the_files(dexycb_root, mano_root, quiet):
    from hoimask.hand import MANOLayer

    ds = DexYCB(dexycb_root, mano_root=mano_root, num_sdf_points=256, num_object_points=64)
    s = ds[0]
    lab = np.load(ds._frame_dir(ds.frames[0])[2] / "labels_000000.npz")
    # joint_2d in the file uses OpenCV's pixel centres: ours are shifted by +0.5.
    assert torch.allclose(s["joints_2d"], torch.from_numpy(lab["joint_2d"][0]) + 0.5, atol=1e-3)
    assert torch.allclose(project(s["joints_3d"], s["K"]), s["joints_2d"], atol=1e-3)
    # hand_pose is the full axis-angle: a flat-mean, non-PCA MANO reproduces the joints.
    flat = MANOLayer(mano_root / "MANO_RIGHT.pkl", dtype=torch.float64)
    trans = torch.from_numpy(lab["pose_m"][0, 48:]).double()
    joints = flat(s["hand_pose"][None].double(), s["hand_shape"][None].double(), trans[None]).joints[0]
    assert torch.allclose(joints.float(), s["joints_3d"], atol=1e-4)
    # Hand pixels ⊆ amodal silhouette; object model points land on object/hand pixels.
    assert not ((s["segmentation"] == 1) & ~s["amodal_hand_mask"]).any()
    cam = s["object_points"] @ s["object_rotation"].T + s["object_translation"]
    uv = project(cam, s["K"]).floor().long()
    seg = s["segmentation"][uv[:, 1].clamp(0, 47), uv[:, 0].clamp(0, 63)]
    assert ((seg == 1) | (seg == 2)).float().mean() > 0.9
    # UniHOPE's motion rule (the default): a sequence's first frame is the object's rest pose, never grasping
    assert not bool(s["grasped"])
    contact = DexYCB(dexycb_root, mano_root=mano_root, num_sdf_points=16, num_object_points=16, grasp_rule="contact")
    assert bool(contact[0]["grasped"])  # the fixture puts the object against the hand
    # Query points near the surfaces have small distances, SDF signs are finite.
    assert torch.isfinite(s["sdf_hand"]).all() and torch.isfinite(s["sdf_object"]).all()
    assert (s["sdf_hand"].abs() < 0.01).float().mean() > 0.3


def test_unannotated_frames_give_nan_or_are_dropped(dexycb_root, mano_root, quiet):
    ds = DexYCB(dexycb_root, mano_root=mano_root, num_sdf_points=16, num_object_points=16)
    s = ds[1]  # sequence 0, camera 0, frame 1: joint_3d == -1
    assert torch.isnan(s["joints_3d"]).all() and torch.isnan(s["sdf_hand"]).all()
    with pytest.warns(UserWarning, match="skipped 8 of 32 frames without a hand"):
        kept = DexYCB(dexycb_root, mano_root=mano_root, num_sdf_points=16, num_object_points=16, require_hand=True)
    assert len(kept) == 24


def test_left_hands_are_mirrored(dexycb_root, mano_root, quiet):
    ds = DexYCB(dexycb_root, mano_root=mano_root, hands="mirror", num_sdf_points=64, num_object_points=64)
    assert len(ds) == 8 * 5
    left = [i for i in range(len(ds)) if ds.sequences[int(ds.frames[i][0])]["side"] == "left"]
    s = ds[left[0]]
    validate_sample(s)
    uv = s["joints_2d"].floor().long()
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < 64) & (uv[:, 1] >= 0) & (uv[:, 1] < 48)
    assert s["amodal_hand_mask"][uv[inside, 1], uv[inside, 0]].float().mean() > 0.9
    assert not ((s["segmentation"] == 1) & ~s["amodal_hand_mask"]).any()
    assert torch.allclose(torch.det(s["object_rotation"]), torch.tensor(1.0), atol=1e-5)


def test_transforms_apply(dexycb_root, mano_root, quiet):
    ds = DexYCB(dexycb_root, mano_root=mano_root, num_sdf_points=32, num_object_points=32, transform=RandomCropResize(40))
    s = ds[2]
    assert s["image"].shape == (3, 40, 40)
    assert torch.allclose(project(s["joints_3d"], s["K"]), s["joints_2d"], atol=1e-3)


def test_missing_and_malformed_files_are_named(dexycb_root, mano_root, tmp_path, quiet):
    root = tmp_path / "dex"
    shutil.copytree(dexycb_root, root)
    ds = DexYCB(root, mano_root=mano_root, num_sdf_points=16, num_object_points=16)
    d = ds._frame_dir(ds.frames[0])[2]
    (d / "labels_000000.npz").unlink()
    with pytest.raises(FileFormatError, match="labels_000000.npz"):
        ds[0]
    np.savez(d / "labels_000000.npz", seg=np.zeros((48, 64), np.uint8))
    with pytest.raises(FileFormatError, match="missing array 'pose_y'"):
        ds[0]
    with pytest.raises(FileFormatError, match="MANO"):
        DexYCB(root, mano_root=tmp_path, num_sdf_points=16)[2]
    (root / "calibration" / "intrinsics" / "836212060125_640x480.yml").write_text("color: {fx: 1}\n")
    with pytest.raises(FileFormatError, match="836212060125_640x480.yml"):
        DexYCB(root, mano_root=mano_root)
    with pytest.raises(FileFormatError, match="not a directory"):
        DexYCB(tmp_path / "nowhere", mano_root=mano_root)


def test_samples_carry_the_grasped_objects_name(dexycb_root, mano_root, tmp_path, quiet):
    """``object_name`` is the YCB name of ``ycb_ids[ycb_grasp_ind]``, kept by transforms and collate."""
    import yaml

    from hoimask.data import collate
    from hoimask.data.dexycb import YCB_CLASSES

    ds = DexYCB(dexycb_root, mano_root=mano_root, num_sdf_points=0, num_object_points=16,
                transform=RandomCropResize(32))
    assert ds[0]["object_name"] == YCB_CLASSES[2] == "003_cracker_box"
    validate_sample(ds[0])
    assert collate([ds[0], ds[2]])["object_name"] == ["003_cracker_box", "003_cracker_box"]
    root = tmp_path / "dex"
    shutil.copytree(dexycb_root, root)
    for meta_path in root.glob("*-subject-*/*/meta.yml"):
        meta = yaml.safe_load(meta_path.read_text())
        meta["ycb_grasp_ind"] = 1  # the other object of the fixture, the ball
        meta_path.write_text(yaml.safe_dump(meta))
    other = DexYCB(root, mano_root=mano_root, num_sdf_points=0, num_object_points=16)
    assert other[0]["object_name"] == YCB_CLASSES[10] == "011_banana"


@pytest.mark.skipif(not bvh_enabled(torch.device("cpu")), reason="needs numba (the 'fast' extra)")
def test_cached_object_tree_gives_the_per_frame_sdf(dexycb_root, mano_root, quiet, monkeypatch):
    """The object SDF from the tree built once per model (moved points) equals mesh_sdf on the posed
    model, for right hands and mirrored left hands."""
    ds = DexYCB(dexycb_root, mano_root=mano_root, hands="mirror", num_sdf_points=128, num_object_points=16)
    left = next(i for i in range(len(ds)) if ds.sequences[int(ds.frames[i][0])]["side"] == "left")
    for index in (0, left):
        cached = ds[index]
        assert ds._models._trees  # the tree was built and kept
        with monkeypatch.context() as m:
            m.setenv("HOIMASK_DISABLE_NUMBA", "1")
            fresh = ds[index]
        assert torch.equal(cached["sdf_points"], fresh["sdf_points"])
        torch.testing.assert_close(cached["sdf_object"], fresh["sdf_object"], atol=1e-6, rtol=0)
        torch.testing.assert_close(cached["sdf_hand"], fresh["sdf_hand"], atol=1e-6, rtol=0)
