"""De-occluded twins of DexYCB / HO3D frames (``deoccluded_root=``), on fixtures written in the real layouts."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from hoimask._checks import DTypeError, FileFormatError, ValueRangeError
from hoimask.data import HO3D, CenterCrop, DexYCB, RandomCropResize, collate, validate_sample
from hoimask.data.testing import write_dexycb_fixture, write_ho3d_fixture


@pytest.fixture(scope="module")
def dexycb_pairs(tmp_path_factory, mano_root):
    """A DexYCB fixture whose sequences 0 and 1 (left-handed) have twins, and the twins' folder."""
    tmp = tmp_path_factory.mktemp("dexycb-pairs")
    write_dexycb_fixture(tmp / "dex", mano_root, deoccluded_root=tmp / "deoccluded")
    return tmp / "dex", tmp / "deoccluded"


@pytest.fixture(scope="module")
def ho3d_pairs(tmp_path_factory, mano_root):
    """An HO3D fixture whose training frame SEQA/0000 has a twin (SEQA/0001 has none)."""
    tmp = tmp_path_factory.mktemp("ho3d-pairs")
    write_ho3d_fixture(tmp / "ho3d", mano_root, deoccluded_root=tmp / "deoccluded")
    return tmp / "ho3d", tmp / "deoccluded"


def _dexycb(root, mano_root, twins, **kwargs):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(sequences|subjects)")  # the fixture is smaller than the release
        return DexYCB(root, mano_root=mano_root, num_sdf_points=0, num_object_points=16, deoccluded_root=twins,
                      **kwargs)


def _agree_on_hand(sample) -> tuple[float, float]:
    """Mean |image − twin| on the visible hand pixels and on the object pixels (the twin shows no object)."""
    diff = (sample["image"] - sample["deoccluded_image"]).abs().mean(0)
    seg = sample["segmentation"]
    return float(diff[seg == 1].mean()), float(diff[seg == 2].mean())


def test_dexycb_pairs_frames_with_their_twins_and_counts_the_rest(dexycb_pairs, mano_root):
    root, twins = dexycb_pairs
    with pytest.warns(UserWarning, match=r"16 of 32 frames have no de-occluded twin") as record:
        ds = _dexycb(root, mano_root, twins)
    assert any("color_000000.png" in str(w.message) for w in record)  # the warning shows the expected layout
    assert ds.deoccluded.count == 16 and len(ds) == 32
    flags = [bool(ds[i]["has_deoccluded"]) for i in range(len(ds))]
    assert flags == [int(ds.frames[i][0]) == 0 for i in range(len(ds))]  # sequence 0 only (1 is left-handed)
    paired = ds[0]
    validate_sample(paired)
    assert paired["deoccluded_image"].shape == paired["image"].shape and paired["deoccluded_image"].dtype == torch.float32
    hand, obj = _agree_on_hand(paired)
    assert hand < 0.05 and obj > 0.2  # the same frame, object removed (jpg vs png: small differences)
    alone = ds[len(ds) - 1]
    assert not bool(alone["has_deoccluded"]) and bool((alone["deoccluded_image"] == 0).all())
    validate_sample(alone)
    batch = collate([paired, alone])
    assert batch["has_deoccluded"].tolist() == [True, False] and batch["deoccluded_image"].shape == (2, 3, 48, 64)
    plain = _dexycb(root, mano_root, None)
    assert "deoccluded_image" not in plain[0] and "has_deoccluded" not in plain[0]
    assert torch.equal(plain[0]["image"], paired["image"])


def test_dexycb_twins_follow_the_crop_and_the_mirror(dexycb_pairs, mano_root, quiet):
    root, twins = dexycb_pairs
    cropped = _dexycb(root, mano_root, twins, transform=RandomCropResize(40))[0]
    assert cropped["deoccluded_image"].shape == (3, 40, 40)
    hand, obj = _agree_on_hand(cropped)
    assert hand < 0.08 and obj > 0.2
    mirrored = _dexycb(root, mano_root, twins, hands="mirror")
    left = [i for i in range(len(mirrored)) if mirrored.sequences[int(mirrored.frames[i][0])]["side"] == "left"]
    s = mirrored[left[0]]
    assert bool(s["has_deoccluded"])
    hand, obj = _agree_on_hand(s)
    assert hand < 0.05 and obj > 0.2  # flipped with the image (unflipped, the hand pixels would disagree)


def test_dexycb_bad_pairs_and_arguments_are_named(dexycb_pairs, mano_root, tmp_path, quiet):
    root, twins = dexycb_pairs
    bad = tmp_path / "twins"
    shutil.copytree(twins, bad)
    ds = _dexycb(root, mano_root, bad)
    stem = ds._color_stem(ds.frames[0])
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(bad / f"{stem}.png")
    with pytest.raises(FileFormatError, match=r"color_000000\.png: de-occluded image is \(24, 32\).*color_000000\.jpg "
                                              r"is \(48, 64\)"):
        ds[0]
    (bad / f"{stem}.png").write_bytes(b"not an image")
    with pytest.raises(FileFormatError, match=r"color_000000\.png: could not decode"):
        ds[0]
    with pytest.raises(FileFormatError, match="argument 'deoccluded_root' .* is not a directory"):
        _dexycb(root, mano_root, tmp_path / "nowhere")
    with pytest.raises(FileFormatError, match="argument 'deoccluded_root' .* is the dataset root"):
        _dexycb(root, mano_root, root)
    with pytest.raises(DTypeError, match="argument 'deoccluded_root' expected a folder"):
        _dexycb(root, mano_root, 3)


def test_ho3d_pairs_any_image_suffix_and_counts_the_rest(ho3d_pairs, mano_root, tmp_path):
    root, twins = ho3d_pairs
    with pytest.warns(UserWarning, match=r"HO3D: 1 of 2 frames have no de-occluded twin"):
        ds = HO3D(root, mano_root=mano_root, num_sdf_points=0, num_object_points=16, deoccluded_root=twins,
                  transform=CenterCrop(32))
    first, second = ds[0], ds[1]
    validate_sample(first)
    assert bool(first["has_deoccluded"]) and not bool(second["has_deoccluded"])
    assert first["deoccluded_image"].shape == (3, 32, 32) and bool((second["deoccluded_image"] == 0).all())
    hand, obj = _agree_on_hand(first)
    assert hand < 0.08 and obj > 0.2
    moved = tmp_path / "twins"
    shutil.copytree(twins, moved)
    (moved / "train" / "SEQA" / "rgb" / "0000.png").rename(moved / "train" / "SEQA" / "rgb" / "0000.JPG")
    Image.open(twins / "train" / "SEQA" / "rgb" / "0000.png").save(moved / "train" / "SEQA" / "rgb" / "0000.JPG",
                                                                   format="JPEG")
    with pytest.warns(UserWarning, match="1 of 2"):
        upper = HO3D(root, mano_root=mano_root, num_sdf_points=0, num_object_points=16, deoccluded_root=moved)
    assert bool(upper[0]["has_deoccluded"]) and upper.deoccluded.path(0, "train/SEQA/rgb/0000").name == "0000.JPG"


def test_collate_completes_batches_where_only_some_samples_have_a_twin():
    image = torch.rand(3, 4, 4)
    twin = torch.rand(3, 4, 4)
    synthetic = {"image": image, "deoccluded_image": twin}  # SyntheticHOI(deoccluded=True): no flag
    real_missing = {"image": image, "deoccluded_image": torch.zeros(3, 4, 4), "has_deoccluded": torch.tensor(False)}
    unpaired = {"image": image}
    batch = collate([synthetic, real_missing, unpaired])
    assert batch["has_deoccluded"].tolist() == [True, False, False]
    assert torch.equal(batch["deoccluded_image"][0], twin) and not batch["deoccluded_image"][1:].any()
    assert set(collate([synthetic, synthetic])) == {"image", "deoccluded_image"}  # unchanged when all agree
    with pytest.raises(ValueRangeError, match="sample 1 has has_deoccluded=True but no 'deoccluded_image'"):
        collate([synthetic, {"image": image, "has_deoccluded": torch.tensor(True)}])
