"""HO3D loader on a tiny fixture in the official layout (OpenGL frame, MANO joint order)."""

from __future__ import annotations

import pickle
import shutil
import warnings

import pytest
import torch

from hoimask._checks import FileFormatError
from hoimask.data import HO3D, CenterCrop, RandomCropResize, collate, validate_sample
from hoimask.geometry import project


def test_train_frames_convert_to_opencv_and_canonical_order(ho3d_root, mano_root):
    ds = HO3D(ho3d_root, mano_root=mano_root, num_sdf_points=128, num_object_points=64)
    assert len(ds) == 2
    for i in range(2):
        s = ds[i]
        validate_sample(s)
        assert (s["joints_3d"][:, 2] > 0).all()  # in front of an OpenCV camera
        uv = s["joints_2d"].floor().long()
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < 64) & (uv[:, 1] >= 0) & (uv[:, 1] < 48)
        assert inside.sum() > 15
        assert s["amodal_hand_mask"][uv[inside, 1], uv[inside, 0]].float().mean() > 0.9
        # Canonical order: the wrist is the root of the fingers' chains (shortest bones from it are MCPs).
        bones = (s["joints_3d"][[1, 5, 9, 13, 17]] - s["joints_3d"][0]).norm(dim=-1)
        assert (bones < 0.2).all()
        cam = s["object_points"] @ s["object_rotation"].T + s["object_translation"]
        ouv = project(cam, s["K"]).floor().long()
        seg = s["segmentation"][ouv[:, 1].clamp(0, 47), ouv[:, 0].clamp(0, 63)]
        assert ((seg == 1) | (seg == 2)).float().mean() > 0.9
        assert ((s["depth"] > 0) == (s["segmentation"] > 0)).float().mean() > 0.97
        assert not ((s["segmentation"] == 1) & ~s["amodal_hand_mask"]).any()
    collate([ds[0], ds[1]])


def test_evaluation_frames_have_only_root_and_box(ho3d_root, mano_root):
    ds = HO3D(ho3d_root, mano_root=mano_root, split="evaluation", num_sdf_points=32, num_object_points=16)
    s = ds[0]
    assert torch.isfinite(s["joints_3d"][0]).all() and torch.isnan(s["joints_3d"][1:]).all()
    assert torch.isnan(s["hand_pose"]).all() and torch.isnan(s["object_rotation"]).all()
    assert s["box"].shape == (4,) and (s["segmentation"] == 0).all()
    cropped = RandomCropResize(32)(s, generator=torch.Generator().manual_seed(0))
    assert cropped["image"].shape == (3, 32, 32)
    root_uv = project(cropped["joints_3d"][:1], cropped["K"])
    assert torch.allclose(root_uv, cropped["joints_2d"][:1], atol=1e-3)


def test_missing_and_malformed_files_are_named(ho3d_root, mano_root, tmp_path):
    root = tmp_path / "ho3d"
    shutil.copytree(ho3d_root, root)
    ds = HO3D(root, mano_root=mano_root, num_sdf_points=16, num_object_points=16)
    (root / "train" / "SEQA" / "meta" / "0001.pkl").unlink()
    with pytest.raises(FileFormatError, match="0001.pkl"):
        ds[1]
    (root / "train" / "SEQA" / "rgb" / "0000.jpg").unlink()
    with pytest.raises(FileFormatError, match=r"rgb/0000\.jpg"):
        ds[0]
    (root / "train.txt").write_text("SEQA-0000\n")
    with pytest.raises(FileFormatError, match=r"train.txt:1"):
        HO3D(root, mano_root=mano_root)
    with pytest.raises(FileFormatError, match="evaluation.txt"):
        HO3D(tmp_path, mano_root=mano_root, split="evaluation")


def test_v2_layout_png_images_and_half_resolution_jpg_segmentation(ho3d_root, mano_root, tmp_path):
    from PIL import Image

    root = tmp_path / "v2"
    shutil.copytree(ho3d_root, root)
    for frame in ("0000", "0001"):
        seq = root / "train" / "SEQA"
        rgb = seq / "rgb" / f"{frame}.jpg"
        Image.open(rgb).save(seq / "rgb" / f"{frame}.png")
        rgb.unlink()
        seg = seq / "seg" / f"{frame}.png"
        Image.open(seg).resize((32, 24), Image.NEAREST).save(seq / "seg" / f"{frame}.jpg", quality=100)
        seg.unlink()
    v3 = HO3D(ho3d_root, mano_root=mano_root, num_sdf_points=16, num_object_points=16)[0]
    v2 = HO3D(root, mano_root=mano_root, num_sdf_points=16, num_object_points=16)[0]
    validate_sample(v2)
    assert v2["segmentation"].shape == (48, 64)
    # Upsampled half-resolution labels agree with the full-resolution ones on most pixels.
    assert (v2["segmentation"] == v3["segmentation"]).float().mean() > 0.9
    assert torch.equal(v2["joints_3d"], v3["joints_3d"])


def _set_object_name(meta_path, name) -> None:
    """Rewrite ``objName`` of one HO3D meta file (``None``: the meta names no object)."""
    with open(meta_path, "rb") as f:
        meta = pickle.load(f)
    meta["objName"] = name
    with open(meta_path, "wb") as f:
        pickle.dump(meta, f, protocol=2)


def test_samples_carry_the_object_name(ho3d_root, mano_root, tmp_path):
    """``object_name`` is the meta's ``objName`` ("" without one), kept by transforms, caches and collate."""
    from hoimask.engine.data import MemoryCache

    root = tmp_path / "ho3d"
    shutil.copytree(ho3d_root, root)
    shutil.copytree(root / "models" / "003_cracker_box", root / "models" / "019_pitcher_base")
    _set_object_name(root / "train" / "SEQA" / "meta" / "0001.pkl", "019_pitcher_base")
    _set_object_name(root / "evaluation" / "SEQB" / "meta" / "0000.pkl", None)
    opts = dict(mano_root=mano_root, num_sdf_points=0, num_object_points=16)
    train = HO3D(root, **opts, transform=CenterCrop(32))
    samples = [train[0], train[1]]
    assert [s["object_name"] for s in samples] == ["003_cracker_box", "019_pitcher_base"]
    for s in samples:
        validate_sample(s)
    assert collate(samples)["object_name"] == ["003_cracker_box", "019_pitcher_base"]
    cropped = RandomCropResize(24)(samples[1], generator=torch.Generator().manual_seed(0))
    assert cropped["object_name"] == "019_pitcher_base"
    assert MemoryCache(train)[1]["object_name"] == "019_pitcher_base"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no object model: object_points are NaN, with a warning
        unnamed = HO3D(root, **opts, split="evaluation")[0]
    assert unnamed["object_name"] == ""
    assert HO3D(ho3d_root, **opts, split="evaluation")[0]["object_name"] == "003_cracker_box"
