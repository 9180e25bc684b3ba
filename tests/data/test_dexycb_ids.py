"""dexycb_toolkit_ids: the DexYCB toolkit's HPE image index and BOP ids of hoimask's DexYCB frames.

The reference below re-states how the toolkit's ``DexYCBDataset`` (``dex_ycb_toolkit/dex_ycb.py``)
enumerates the s0 test split and ``get_bop_id_from_idx`` names BOP images, on a
skeleton of the DexYCB folders (every subject of s0 test with 100 sequence
folders; ``meta.yml`` where the split reads it; no images, which the ids do not need).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import yaml

from hoimask._checks import FileFormatError
from hoimask.data import DexYCB
from hoimask.data.dexycb import DEXYCB_SERIALS, DEXYCB_SUBJECTS
from hoimask.data.dexycb_ids import dexycb_toolkit_ids

# The toolkit's s0 test split: subjects 2..9, all 8 cameras, sequences with i % 5 == 4.
S0_TEST_SUBJECTS = [DEXYCB_SUBJECTS[i] for i in range(2, 10)]
S0_TEST_SEQUENCES = [i for i in range(100) if i % 5 == 4]


@pytest.fixture(scope="module")
def s0_test_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("dexycb_s0_test")
    rng = np.random.default_rng(0)
    for s in DEXYCB_SERIALS:
        p = root / "calibration" / "intrinsics" / f"{s}_640x480.yml"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(yaml.safe_dump({"color": {"fx": 600.0, "fy": 600.0, "ppx": 319.5, "ppy": 239.5}}))
    calib = root / "calibration" / "mano_calib0" / "mano.yml"
    calib.parent.mkdir(parents=True)
    calib.write_text(yaml.safe_dump({"betas": [0.0] * 10}))
    for subject in S0_TEST_SUBJECTS:
        for q in range(100):
            qdir = root / subject / f"2020{q:04d}_{q:06d}"
            qdir.mkdir(parents=True)
            if q % 5 != 4:
                continue  # the split never reads these
            meta = {"serials": list(DEXYCB_SERIALS), "num_frames": int(rng.integers(1, 9)),
                    "ycb_ids": [int(i) for i in rng.choice(np.arange(1, 22), 3, replace=False)],
                    "ycb_grasp_ind": int(rng.integers(0, 3)), "mano_sides": [str(rng.choice(["right", "left"]))],
                    "mano_calib": ["calib0"]}  # fmt: skip
            (qdir / "meta.yml").write_text(yaml.safe_dump(meta))
    return root


def toolkit_index(root):
    """(sequence dir, camera, frame) -> (HPE index, (scene_id, im_id)), enumerated as the toolkit does."""
    sequences, mapping = [], []
    for subject in S0_TEST_SUBJECTS:
        names = sorted(p.name for p in (root / subject).iterdir())
        assert len(names) == 100
        sequences += [root / subject / names[i] for i in S0_TEST_SEQUENCES]
    for s, qdir in enumerate(sequences):
        num_frames = yaml.safe_load((qdir / "meta.yml").read_text())["num_frames"]
        f, c = np.meshgrid(np.arange(num_frames), np.arange(len(DEXYCB_SERIALS)))  # cameras outer, frames inner
        mapping.append(np.stack([np.full(c.size, s), c.ravel(), f.ravel()], 1))
    mapping = np.concatenate(mapping)
    return {
        (sequences[s].resolve(), c, f): (idx, (s * len(DEXYCB_SERIALS) + c, f))
        for idx, (s, c, f) in enumerate(mapping.tolist())
    }


def _dataset(root, hands):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skipped left-hand sequences
        return DexYCB(root, mano_root=root, setup="s0", split="test", hands=hands)


@pytest.mark.parametrize("hands", ["mirror", "right"])
def test_ids_follow_the_toolkit_enumeration(s0_test_root, hands):
    ds = _dataset(s0_test_root, hands)
    ids = dexycb_toolkit_ids(ds)
    reference = toolkit_index(s0_test_root)
    assert all(len(v) == len(ds) for v in ids.values())
    for i, (k, c, f) in enumerate(ds.frames.tolist()):
        seq = ds.sequences[k]
        idx, (scene_id, im_id) = reference[(seq["dir"].resolve(), c, f)]
        assert ids["image_id"][i] == idx
        assert (ids["scene_id"][i], ids["im_id"][i]) == (scene_id, im_id)
        assert ids["obj_id"][i] == seq["ycb_ids"][seq["grasp"]]
        assert ids["mirrored"][i] == (seq["side"] == "left")
        assert ids["is_bop_target"][i] == (f % 4 == 0)
    assert len(np.unique(ids["image_id"])) == len(ds)
    if hands == "mirror":  # every frame of the split, so every toolkit index once
        assert sorted(ids["image_id"].tolist()) == list(range(len(reference)))
        assert ids["mirrored"].any() and not ids["mirrored"].all()
    else:  # left-hand sequences skipped: their indices are missing, the others unchanged
        assert len(ds) < len(reference) and not ids["mirrored"].any()


def test_incomplete_split_is_refused(dexycb_root, mano_root):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = DexYCB(dexycb_root, mano_root=mano_root, setup="s0", split="val", num_sdf_points=0)
    with pytest.raises(FileFormatError, match="100 sequences"):
        dexycb_toolkit_ids(ds)
