"""FreiHAND loader on tiny fixtures in the official v2 layout (four backgrounds, hidden evaluation ground truth)."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest
import torch

from hoimask._checks import FileFormatError, ValueRangeError
from hoimask.data import FreiHAND, collate, read_freihand_ground_truth, validate_sample
from hoimask.data.testing import FREIHAND_FIXTURE_BACKGROUNDS, write_freihand_fixture
from hoimask.engine.datasets import DATASETS, build_dataset
from hoimask.geometry import project
from hoimask.hand import MANOLayer, load_mano_arrays
from hoimask.metrics import freihand_metrics

N = 3  # unique training samples of the fixture


@pytest.fixture(scope="module")
def freihand_root(tmp_path_factory, mano_root):
    return write_freihand_fixture(tmp_path_factory.mktemp("freihand"), mano_root, num_samples=N)


@pytest.fixture(scope="module")
def freihand_annotated(tmp_path_factory, mano_root):
    return write_freihand_fixture(tmp_path_factory.mktemp("freihand_eval"), mano_root, num_samples=2,
                                  evaluation_annotations=True, seed=1)


def _json(path):
    return json.loads(path.read_text())


def test_train_samples_follow_the_contract(freihand_root, mano_root):
    ds = FreiHAND(freihand_root, mano_root=mano_root, num_sdf_points=64, num_object_points=16)
    assert len(ds) == 4 * N and ds.num_unique == N
    s = ds[0]
    dims = validate_sample(s)
    assert dims == {"H": 48, "W": 48, "P": 16, "Q": 64}
    assert not bool(s["has_object"]) and not bool(s["grasped"]) and "object_name" not in s
    assert torch.equal(s["object_rotation"], torch.eye(3)) and not s["object_points"].any()
    assert not s["object_translation"].any() and torch.isnan(s["sdf_object"]).all() and not s["depth"].any()
    assert torch.isfinite(s["sdf_hand"]).all() and (s["sdf_hand"] < 0).any() and (s["sdf_hand"] > 0).any()
    assert torch.equal(s["box"], torch.tensor([0.0, 0.0, 48.0, 48.0])) and s["reference_bone_length"].shape == ()
    # The hand mask, the MANO silhouette (amodal mask) and the projected joints agree.
    assert (s["segmentation"] == 1).sum() > 100
    assert ((s["segmentation"] == 1) == s["amodal_hand_mask"]).float().mean() > 0.95
    uv = s["joints_2d"].floor().long().clamp(0, 47)
    assert s["amodal_hand_mask"][uv[:, 1], uv[:, 0]].float().mean() > 0.8
    again = pickle.loads(pickle.dumps(ds))  # DataLoader workers: the MANO layer is rebuilt there
    assert torch.equal(again[0]["image"], s["image"]) and torch.equal(again[0]["sdf_points"], s["sdf_points"])
    batch = collate([ds[0], ds[N + 1]])
    assert batch["image"].shape == (2, 3, 48, 48) and batch["reference_bone_length"].shape == (2,)


def test_values_round_trip_from_the_json_files(freihand_root, mano_root):
    ds = FreiHAND(freihand_root, mano_root=mano_root, num_sdf_points=0, num_object_points=1)
    K_file, xyz = _json(freihand_root / "training_K.json"), _json(freihand_root / "training_xyz.json")
    mano, scale = _json(freihand_root / "training_mano.json"), _json(freihand_root / "training_scale.json")
    verts = _json(freihand_root / "training_verts.json")
    hands_mean = torch.from_numpy(load_mano_arrays(mano_root / "MANO_RIGHT.pkl")["hands_mean"]).double()
    flat = MANOLayer(mano_root / "MANO_RIGHT.pkl", flat_hand_mean=True, dtype=torch.float64)
    for j in (1, 2 * N + 1):  # sample 1 in two background versions
        s = ds[j]
        assert torch.equal(s["joints_3d"], torch.tensor(xyz[1], dtype=torch.float32))
        K = torch.tensor(K_file[1], dtype=torch.float32)
        K[:2, 2] += 0.5  # OpenCV pixel centres -> the library's
        assert torch.equal(s["K"], K)
        assert torch.allclose(s["joints_2d"], project(s["joints_3d"].double(), s["K"].double()).float(), atol=1e-4)
        assert float(s["reference_bone_length"]) == pytest.approx(scale[1], rel=1e-6)
        theta = torch.tensor(mano[1][0], dtype=torch.float64)
        assert torch.allclose(s["hand_shape"].double(), theta[48:58], atol=1e-6)
        # FreiHAND's pose is relative to MANO's mean pose; hand_pose is the full rotation (zero = flat hand).
        expected = theta[:48].clone()
        expected[3:] += hands_mean
        assert torch.allclose(s["hand_pose"].double().flatten(), expected, atol=1e-6)
    # Placed by uv_root and scale at the middle MCP, the mesh is FreiHAND's: equal to training_verts.json ...
    mesh = ds.frame_meshes(1)
    assert torch.allclose(mesh.hand_vertices, torch.tensor(verts[1], dtype=torch.float64), atol=1e-9)
    # ... and hand_pose in the flat-hand convention gives the same shape up to a translation.
    posed = flat(ds[1]["hand_pose"].double()[None], ds[1]["hand_shape"].double()[None]).vertices[0]
    offset = torch.tensor(verts[1], dtype=torch.float64) - posed
    assert (offset - offset.mean(0)).abs().max() < 1e-5


def test_background_versions_follow_the_file_arithmetic(freihand_root, mano_root):
    def corner(sample):
        return (sample["image"][:, 0, 0] * 255).round()

    every = FreiHAND(freihand_root, mano_root=mano_root, num_sdf_points=0, num_object_points=1)
    for j in range(4 * N):
        i, v = every.source(j)
        assert (i, v) == (j % N, j // N)  # with all four versions, item j is file j
        assert (corner(every[j]) - torch.tensor(FREIHAND_FIXTURE_BACKGROUNDS[v])).abs().max() <= 6
    two = FreiHAND(freihand_root, mano_root=mano_root, backgrounds=("auto", 1), num_sdf_points=0, num_object_points=1)
    assert len(two) == 2 * N and two.backgrounds == (3, 1)
    assert two.source(0) == (0, 3) and two.source(N + 2) == (2, 1)
    assert torch.equal(two[0]["image"], every[3 * N]["image"]) and torch.equal(two[N + 2]["image"], every[N + 2]["image"])
    # One mask per unique sample serves all versions; the targets do not depend on the version.
    assert torch.equal(two[0]["segmentation"], every[0]["segmentation"])
    assert torch.equal(two[0]["joints_3d"], every[0]["joints_3d"])
    green = FreiHAND(freihand_root, mano_root=mano_root, backgrounds=0, num_sdf_points=0, num_object_points=1)
    assert len(green) == N and torch.equal(green[2]["image"], every[2]["image"])
    assert FreiHAND(freihand_root, mano_root=mano_root, backgrounds="all").backgrounds == (0, 1, 2, 3)
    for bad in (4, (0, 0), (), "green", (1.0,)):
        with pytest.raises((ValueRangeError, TypeError), match="backgrounds"):
            FreiHAND(freihand_root, mano_root=mano_root, backgrounds=bad)
    with pytest.raises(ValueRangeError, match="evaluation split has only background version 0"):
        FreiHAND(freihand_root, mano_root=mano_root, split="evaluation", backgrounds=(1,))


def test_evaluation_without_annotations_gives_nan_targets(freihand_root, tmp_path):
    no_mano = tmp_path / "empty"  # hidden ground truth: MANO is never needed
    ds = FreiHAND(freihand_root, mano_root=no_mano, split="evaluation", num_sdf_points=8, num_object_points=4)
    assert len(ds) == 2 and ds.backgrounds == (0,)
    s = ds[1]
    validate_sample(s)
    for key in ("joints_3d", "joints_2d", "hand_pose", "hand_shape", "sdf_hand"):
        assert torch.isnan(s[key]).all(), key
    assert not s["segmentation"].any() and not s["amodal_hand_mask"].any()
    scale = _json(freihand_root / "evaluation_scale.json")[1]
    assert float(s["reference_bone_length"]) == pytest.approx(scale, rel=1e-6)
    assert ds.frame_meshes(1).hand_vertices is None


def test_evaluation_with_annotations_uses_them(freihand_annotated, mano_root):
    ds = FreiHAND(freihand_annotated, mano_root=mano_root, split="evaluation", num_sdf_points=8, num_object_points=4)
    s = ds[0]
    validate_sample(s)
    xyz = _json(freihand_annotated / "evaluation_xyz.json")
    assert torch.equal(s["joints_3d"], torch.tensor(xyz[0], dtype=torch.float32))
    assert torch.isfinite(s["hand_pose"]).all() and torch.isfinite(s["sdf_hand"]).all()
    # segmap part labels 1-5: every non-zero pixel is hand
    from PIL import Image

    parts = np.asarray(Image.open(freihand_annotated / "evaluation" / "segmap" / "00000000.png"))
    assert len(np.unique(parts)) > 2
    assert torch.equal(s["segmentation"], torch.from_numpy(parts > 0).long())
    gt_xyz, gt_verts = read_freihand_ground_truth(freihand_annotated, "evaluation")
    mesh = ds.frame_meshes(1).hand_vertices
    assert np.allclose(mesh.numpy(), gt_verts[1], atol=1e-9)
    scores = freihand_metrics(gt_xyz, gt_xyz, gt_verts, gt_verts)
    assert scores["xyz_mean3d"] == 0.0 and scores["f_score_5"] == 1.0 and scores["num_samples"] == 2


def _copy(root, tmp_path):
    out = tmp_path / "fh"
    shutil.copytree(root, out)
    return out


def test_missing_and_malformed_files_are_named(freihand_root, mano_root, tmp_path):
    root = _copy(freihand_root, tmp_path)

    def load(**kw):
        return FreiHAND(root, mano_root=mano_root, num_sdf_points=0, num_object_points=1, **kw)

    def edit(name, change):
        path = root / name
        original = path.read_text()
        data = json.loads(original)
        path.write_text(json.dumps(change(data)))
        return lambda: path.write_text(original)

    for name in ("training_K.json", "training_xyz.json", "training_mano.json", "training_scale.json"):
        (root / name).rename(root / "moved.json")
        with pytest.raises(FileFormatError, match=f"{name}: file not found"):
            load()
        (root / "moved.json").rename(root / name)
    (root / "training_xyz.json").write_text("[[[0.0, 0.0")
    with pytest.raises(FileFormatError, match="training_xyz.json: not valid JSON"):
        load()
    shutil.copy(freihand_root / "training_xyz.json", root / "training_xyz.json")
    cases = [
        ("training_xyz.json", lambda d: d[:1] + [d[1][:20]] + d[2:], r"training_xyz.json: field '\[1\]' expected shape \(21, 3\)"),
        ("training_xyz.json", lambda d: d[:2] + [[[0.0, "x", 0.0]] * 21], r"training_xyz.json: field '\[2\]'.*dtype"),
        ("training_xyz.json", lambda d: d[:2] + [[[0.0, float("nan"), 0.0]] * 21], r"training_xyz.json: field '\[2\]'.*non-finite"),
        ("training_K.json", lambda d: d[:2] + [[[0.0, 0.0, 24.0], [0.0, 90.0, 24.0], [0.0, 0.0, 1.0]]], r"training_K.json: field '\[2\]'.*fx"),
        ("training_mano.json", lambda d: [[e[0][:60]] for e in d], r"training_mano.json: field '\[0\]' expected 61 numbers"),
        ("training_mano.json", lambda d: d[:1] + [[d[1][0][:60] + [0.0]]] + d[2:], r"training_mano.json: entry \[1\].*scale"),
        ("training_scale.json", lambda d: d[:1] + [-0.01] + d[2:], r"training_scale.json: entry \[1\].*> 0"),
        ("training_scale.json", lambda d: {"scale": d}, r"training_scale.json: expected .* got dict"),
        ("training_scale.json", lambda d: d[:2], r"training_scale.json: holds 2 entries but .*training_K.json holds 3"),
        ("training_mano.json", lambda d: d + d[:1], r"training_mano.json: holds 4 entries but .*training_K.json holds 3"),
    ]
    for name, change, message in cases:
        undo = edit(name, change)
        with pytest.raises(FileFormatError, match=message):
            load()
        undo()
    undo = edit("training_scale.json", lambda d: [[v] for v in d])  # a 1-element list per sample is a number too
    assert float(load()[0]["reference_bone_length"]) > 0
    undo()
    ds = load()
    (root / "training" / "rgb" / f"{2 + 3 * N:08d}.jpg").unlink()  # sample 2, version 3
    with pytest.raises(FileFormatError, match=rf"rgb/{2 + 3 * N:08d}\.jpg: file not found.*sample 2, background version 3"):
        ds[2 + 3 * N]
    (root / "training" / "mask" / "00000001.jpg").unlink()
    with pytest.raises(FileFormatError, match=r"mask/00000001\.jpg: file not found"):
        ds[N + 1]
    from PIL import Image

    Image.new("RGB", (10, 12)).save(root / "training" / "mask" / "00000001.jpg")
    with pytest.raises(FileFormatError, match=r"mask/00000001\.jpg: mask is \(12, 10\), but .*00000001\.jpg is \(48, 48\)"):
        ds[1]
    (root / "training" / "rgb" / "00000000.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(FileFormatError, match=r"rgb/00000000\.jpg: could not decode"):
        ds[0]
    with pytest.raises(FileFormatError, match="MANO_RIGHT.pkl: file not found"):
        FreiHAND(freihand_root, mano_root=tmp_path / "no_mano", num_sdf_points=0)[1]
    with pytest.raises(FileFormatError, match="evaluation_xyz.json: file not found"):
        read_freihand_ground_truth(freihand_root, "evaluation")


def test_build_dataset_freihand(freihand_root, mano_root):
    assert "freihand" in DATASETS
    common = dict(image_size=32, root=freihand_root, mano_dir=mano_root, num_sdf_points=0, num_object_points=8)
    train = build_dataset("freihand", train=True, **common)
    test = build_dataset("freihand", train=False, **common)
    assert len(train) == 4 * N and len(test) == 2
    s, t = train[0], test[0]
    validate_sample(s)
    validate_sample(t)
    assert s["image"].shape == (3, 32, 32) and t["image"].shape == (3, 32, 32)
    assert torch.allclose(project(s["joints_3d"].double(), s["K"].double()).float(), s["joints_2d"], atol=1e-3)
    # The evaluation crop is the whole frame resized (the box is the frame: no joints needed).
    assert torch.allclose(t["K"][:2], FreiHAND(freihand_root, mano_root=mano_root, split="evaluation",
                                               num_sdf_points=0)[0]["K"][:2] * (32 / 48), atol=1e-5)
    with pytest.raises(ValueRangeError, match="--data-root"):
        build_dataset("freihand", image_size=32)
