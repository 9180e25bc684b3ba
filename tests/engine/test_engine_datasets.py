import sys

import pytest
import torch

from hoimask._checks import ValueRangeError
from hoimask.engine import MemoryCache
from hoimask.engine.datasets import build_dataset


class Counting(torch.utils.data.Dataset):
    def __init__(self):
        self.calls = 0

    def __len__(self):
        return 3

    def __getitem__(self, i):
        self.calls += 1
        return {"x": torch.tensor(float(i))}


def test_memory_cache_renders_each_index_once():
    base = Counting()
    cache = MemoryCache(base)
    assert len(cache) == 3
    for _ in range(3):
        assert [float(cache[i]["x"]) for i in range(3)] == [0.0, 1.0, 2.0]
    assert base.calls == 3


def test_synthetic_splits_are_disjoint_and_hand_only_has_no_object():
    common = dict(image_size=32, num_samples=2, num_sdf_points=16, num_object_points=16)
    train = build_dataset("synthetic", train=True, **common)
    test = build_dataset("synthetic", train=False, **common)
    assert not torch.equal(train[0]["image"], test[0]["image"])
    hand_only = build_dataset("synthetic", train=False, hand_only_prob=1.0, cache_in_memory=True, **common)
    assert isinstance(hand_only, MemoryCache)
    assert not bool(hand_only[0]["has_object"]) and not bool(hand_only[1]["has_object"])


def test_synthetic_crop_frames_hand_and_object_like_real_frames():
    from hoimask.data.transforms import hand_object_box
    from hoimask.engine.datasets import synthetic_render_size
    from hoimask.geometry import project

    common = dict(image_size=32, num_samples=3, num_sdf_points=8, num_object_points=16, train=False)
    whole = build_dataset("synthetic", **common)
    cropped = build_dataset("synthetic", crop_padding=1.25, **common)
    assert synthetic_render_size(32, 1.25) == 52
    for i in range(3):
        a, b = whole[i], cropped[i]
        assert b["image"].shape == (3, 32, 32)
        assert torch.allclose(a["joints_3d"], b["joints_3d"])  # the same scene; only the camera changes
        assert torch.allclose(project(b["joints_3d"][None], b["K"][None])[0], b["joints_2d"], atol=1e-3)
        box = hand_object_box(b)  # the tight box fills the crop but its margin
        assert max(float(box[2] - box[0]), float(box[3] - box[1])) == pytest.approx(32 / 1.25, rel=1e-3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(crop_padding=0.5), "argument 'crop_padding'"),
    (dict(crop_padding=1.3, name="dexycb", root=".", mano_dir="."), "is for dataset 'synthetic'"),
])
def test_crop_padding_is_checked(kwargs, message):
    with pytest.raises(ValueRangeError, match=message):
        build_dataset(**{"name": "synthetic", "image_size": 32, **kwargs})


@pytest.mark.parametrize("name", ["dexycb", "ho3d"])
def test_real_datasets_need_paths(name):
    with pytest.raises(ValueRangeError, match="--data-root"):
        build_dataset(name, image_size=32)


def test_engine_import_stays_light():
    import subprocess

    code = "import sys, hoimask.engine; print(sorted(m for m in ('hoimask.models', 'hoimask.data', 'trimesh') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_dexycb_require_hand_drops_unannotated_frames(tmp_path):
    """Fine-tuning and evaluation read DexYCB with require_hand=True: frames without a hand label are dropped."""
    import warnings

    from hoimask.data.testing import write_dexycb_fixture, write_mano_fixture

    mano = write_mano_fixture(tmp_path / "mano")
    root = write_dexycb_fixture(tmp_path / "dexycb", mano)
    common = dict(image_size=32, root=root, mano_dir=mano, num_sdf_points=0, num_object_points=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        every = build_dataset("dexycb", **common)
        annotated = build_dataset("dexycb", require_hand=True, **common)
    assert len(annotated) < len(every)
    assert all(torch.isfinite(annotated[i]["joints_3d"]).all() for i in range(len(annotated)))


def test_constant_baselines_do_not_depend_on_the_loader_workers():
    from hoimask.engine.datasets import fit_constant_baselines

    ds = build_dataset("synthetic", image_size=32, num_samples=6, seed=4, num_sdf_points=8, num_object_points=8)
    one = fit_constant_baselines(ds, max_samples=5, batch_size=2).state_dict()
    two = fit_constant_baselines(ds, max_samples=5, batch_size=2, num_workers=2).state_dict()
    assert one.keys() == two.keys()
    for key in one:
        assert torch.equal(torch.as_tensor(one[key]), torch.as_tensor(two[key])), key
