"""Sharded cache: atomic writes, reading back, the CLI, and errors naming the file."""

from __future__ import annotations

import json

import pytest
import torch

from hoimask._checks import FileFormatError, ShapeError
from hoimask.data import CachedHOI, SyntheticHOI, write_cache
from hoimask.data.synthetic import main


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    ds = SyntheticHOI(num_samples=5, image_size=32, seed=9, num_sdf_points=64, num_object_points=32)
    out = tmp_path_factory.mktemp("cache")
    write_cache(ds, out, shard_size=2, config=ds.config(), progress=False)
    return out, ds


def test_cache_reads_back_what_was_written(cache_dir):
    out, ds = cache_dir
    files = sorted(p.name for p in out.iterdir())
    assert files == ["manifest.json", "shard_00000.pt", "shard_00001.pt", "shard_00002.pt"]  # no temporary left
    cached = CachedHOI(out)
    assert len(cached) == 5
    for i in (0, 3, 4, 1):  # out of order: shards are reloaded as needed
        a, b = cached[i], ds[i]
        assert set(a) == set(b)
        assert (a["image"] - b["image"]).abs().max() <= 0.5 / 255 + 1e-7
        for key in b:
            if key != "image":
                assert torch.equal(torch.nan_to_num(a[key].float()), torch.nan_to_num(b[key].float())), key
    assert json.loads((out / "manifest.json").read_text())["config"]["seed"] == 9


class _Named(torch.utils.data.Dataset):
    """Samples with a string key, as HO3D / DexYCB give (``object_name``)."""

    def __init__(self, names):
        self.names = names

    def __len__(self):
        return len(self.names)

    def __getitem__(self, i):
        return {"joints_3d": torch.full((21, 3), float(i)), "object_name": self.names[i]}


def test_string_keys_are_cached_as_strings(tmp_path):
    names = ["019_pitcher_base", "", "006_mustard_bottle"]
    write_cache(_Named(names), tmp_path, shard_size=2, progress=False)
    cached = CachedHOI(tmp_path)
    assert [cached[i]["object_name"] for i in (2, 0, 1)] == [names[2], names[0], names[1]]
    assert torch.equal(cached[2]["joints_3d"], torch.full((21, 3), 2.0))


def test_a_key_mixing_strings_and_tensors_is_refused(tmp_path):
    class Mixed(_Named):
        def __getitem__(self, i):
            sample = super().__getitem__(i)
            sample["object_name"] = torch.zeros(1) if i else sample["object_name"]
            return sample

    with pytest.raises(ShapeError, match="object_name"):
        write_cache(Mixed(["a", "b"]), tmp_path, progress=False)


def test_cached_dataset_applies_transforms_deterministically(cache_dir):
    from hoimask.data import RandomCropResize

    out, _ = cache_dir
    cached = CachedHOI(out, transform=RandomCropResize(24), seed=1)
    assert cached[2]["image"].shape == (3, 24, 24)
    assert torch.equal(cached[2]["image"], CachedHOI(out, transform=RandomCropResize(24), seed=1)[2]["image"])


def test_cli_writes_a_cache(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "c"), "--num", "3", "--size", "24", "--sdf-points", "32",
                 "--object-points", "16", "--shard-size", "2", "--no-progress", "--deoccluded"]) == 0  # fmt: skip
    assert "wrote 3 samples" in capsys.readouterr().out
    cached = CachedHOI(tmp_path / "c")
    assert cached[2]["image"].shape == (3, 24, 24) and cached[2]["deoccluded_image"].shape == (3, 24, 24)


def test_cache_errors_name_the_file(cache_dir, tmp_path):
    with pytest.raises(FileFormatError, match="manifest.json"):
        CachedHOI(tmp_path)
    out, _ = cache_dir
    broken = tmp_path / "broken"
    broken.mkdir()
    manifest = json.loads((out / "manifest.json").read_text())
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FileFormatError, match="shard_00000.pt"):
        CachedHOI(broken)
    for shard in manifest["shards"]:
        (broken / shard["file"]).write_bytes(b"not a torch file")
    ds = CachedHOI(broken)
    with pytest.raises(FileFormatError, match="could not read shard"):
        ds[0]
    (broken / "manifest.json").write_text(json.dumps(dict(manifest, version=99)))
    with pytest.raises(FileFormatError, match="version"):
        CachedHOI(broken)


@pytest.mark.parametrize("name", ["/etc/hostname", "../shard_00000.pt", "sub/../../shard_00000.pt", 3])
def test_manifest_cannot_name_a_shard_outside_the_cache(cache_dir, tmp_path, name):
    out, _ = cache_dir
    inner = tmp_path / "inner"
    inner.mkdir()
    (tmp_path / "shard_00000.pt").write_bytes((out / "shard_00000.pt").read_bytes())
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["shards"][0]["file"] = name
    for shard in manifest["shards"][1:]:
        (inner / shard["file"]).write_bytes((out / shard["file"]).read_bytes())
    (inner / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FileFormatError, match="manifest.json"):
        CachedHOI(inner)


def test_atomic_writes_leave_the_old_file_on_failure(tmp_path):
    from hoimask.data.cache import atomic_save, atomic_write_text

    path = tmp_path / "f.txt"
    atomic_write_text(path, "old")
    with pytest.raises(Exception):  # noqa: B017 - whatever torch.save raises for a lambda
        atomic_save({"f": lambda: 0}, path)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]  # no temporary left
