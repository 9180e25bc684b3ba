"""A sharded on-disk cache of samples, and the dataset that reads it.

Layout of a cache directory::

    DIR/manifest.json         {"format": "hoimask-sample-cache", "version": 1,
                               "num_samples": N, "shard_size": S,
                               "shards": [{"file": "shard_00000.pt", "count": S}, ...],
                               "keys": [...], "config": {...}}
    DIR/shard_00000.pt        torch.save of {key: stacked tensor (count, ...), or a list of
                              count strings for a string key such as ``object_name``}

Every file is written to a temporary name in ``DIR`` and moved into place with
``os.replace``, and the manifest is written last, so an interrupted run never
leaves a cache that reads as complete. Images are stored as ``uint8``
(``round(255 * image)``) to cut the size by four; :class:`CachedHOI` returns
them as ``float32`` in ``[0, 1]``, so a cached image equals the generated one
to within ``1/510``. Everything else is stored exactly.
"""

from __future__ import annotations

import bisect
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from hoimask._checks import FileFormatError, ShapeError, check_positive
from hoimask._io import atomic_replace, contained_path
from hoimask._random import index_seed as _index_seed

__all__ = ["CACHE_FORMAT", "CachedHOI", "atomic_save", "atomic_write_text", "write_cache"]

CACHE_FORMAT = "hoimask-sample-cache"
_VERSION = 1
_UINT8_KEYS = ("image", "deoccluded_image")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file in the same folder, then ``os.replace``).

    Args:
        path: destination file.
        text: contents.

    Returns:
        None.
    """
    with atomic_replace(path) as tmp, open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def atomic_save(obj: object, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically (temporary file in the same folder, then ``os.replace``).

    Args:
        obj: what to save (here: a dict of tensors).
        path: destination file.

    Returns:
        None.
    """
    with atomic_replace(path) as tmp:
        torch.save(obj, tmp)


def _stack(samples: Sequence[Mapping[str, torch.Tensor | str]]) -> dict[str, torch.Tensor | list[str]]:
    out = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if all(isinstance(v, str) for v in values):  # e.g. HO3D / DexYCB ``object_name``
            out[key] = values
            continue
        if not all(isinstance(v, torch.Tensor) for v in values):
            raise ShapeError(f"write_cache(): sample key {key!r} is not a tensor (or a string) in every sample")
        stacked = torch.stack(values)
        if key in _UINT8_KEYS:
            stacked = (stacked * 255).round().clamp(0, 255).to(torch.uint8)
        out[key] = stacked
    return out


def write_cache(
    dataset: Dataset,
    out_dir: str | os.PathLike,
    *,
    num_samples: int | None = None,
    shard_size: int = 256,
    config: Mapping[str, object] | None = None,
    progress: bool = True,
) -> Path:
    """Render ``dataset[0:num_samples]`` into a sharded cache directory.

    Args:
        dataset: any map-style dataset returning sample dictionaries of tensors
            (and strings, such as ``object_name``, stored as lists).
        out_dir: target directory (created if needed).
        num_samples: how many samples (default ``len(dataset)``).
        shard_size: samples per shard file.
        config: JSON-serialisable description stored in the manifest.
        progress: show a tqdm progress bar.

    Returns:
        The path of the written ``manifest.json``.
    """
    n = len(dataset) if num_samples is None else int(num_samples)
    check_positive(n, name="num_samples")
    check_positive(shard_size, name="shard_size")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from tqdm.auto import tqdm

    shards, keys = [], None
    bar = tqdm(total=n, desc="caching samples", disable=not progress)
    for k, start in enumerate(range(0, n, shard_size)):
        samples = []
        for i in range(start, min(n, start + shard_size)):
            samples.append(dataset[i])
            bar.update(1)
        data = _stack(samples)
        keys = keys or sorted(data)
        name = f"shard_{k:05d}.pt"
        atomic_save(data, out / name)
        shards.append({"file": name, "count": len(samples)})
    bar.close()
    manifest = {
        "format": CACHE_FORMAT,
        "version": _VERSION,
        "num_samples": n,
        "shard_size": shard_size,
        "shards": shards,
        "keys": keys,
        "uint8_keys": [k for k in _UINT8_KEYS if k in (keys or [])],
        "config": dict(config or {}),
    }
    path = out / "manifest.json"
    atomic_write_text(path, json.dumps(manifest, indent=1))
    return path


class CachedHOI(Dataset):
    """Read a cache written by :func:`write_cache` (or ``python -m hoimask.data.synthetic``).

    Shards are loaded on first use and the most recent one is kept in memory
    (per process, so it is safe with ``DataLoader`` workers).

    Args:
        root: the cache directory.
        transform: optional ``t(sample, generator=None) -> sample`` applied after loading.
        seed: seed of the per-index generator passed to ``transform``.

    Raises:
        FileFormatError: the manifest or a shard is missing or malformed, or the
            manifest names a shard outside ``root`` (absolute path, ``..``, link out).
    """

    def __init__(self, root: str | os.PathLike, *, transform: Callable | None = None, seed: int = 0) -> None:
        self.root = Path(root)
        self.transform = transform
        self.seed = int(seed)
        path = self.root / "manifest.json"
        if not path.is_file():
            raise FileFormatError(f"CachedHOI(): {path} not found; expected a cache written by write_cache()")
        try:
            manifest = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise FileFormatError(f"CachedHOI(): {path} is not valid JSON ({e})") from e
        if manifest.get("format") != CACHE_FORMAT or manifest.get("version") != _VERSION:
            raise FileFormatError(
                f"CachedHOI(): {path} expected format {CACHE_FORMAT!r} version {_VERSION}, "
                f"got {manifest.get('format')!r} version {manifest.get('version')!r}"
            )
        self.manifest = manifest
        self._offsets = []
        self._files: list[Path] = []
        total = 0
        for shard in manifest["shards"]:
            file = contained_path(self.root, shard["file"], source=f"CachedHOI(): {path}")
            if not file.is_file():
                raise FileFormatError(f"CachedHOI(): shard {file} listed in {path} is missing")
            self._files.append(file)
            self._offsets.append(total)
            total += int(shard["count"])
        if total != manifest["num_samples"]:
            raise FileFormatError(f"CachedHOI(): {path} lists {total} samples in its shards but num_samples={manifest['num_samples']}")
        self._loaded: tuple[int, dict[str, torch.Tensor]] | None = None

    def __len__(self) -> int:
        return int(self.manifest["num_samples"])

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_loaded"] = None  # do not ship a loaded shard to workers
        return state

    def _shard(self, k: int) -> dict[str, torch.Tensor]:
        if self._loaded is None or self._loaded[0] != k:
            file = self._files[k]
            try:
                data = torch.load(file, map_location="cpu", weights_only=True)
            except Exception as e:  # noqa: BLE001 - any load failure is a format error of this file
                raise FileFormatError(f"CachedHOI(): could not read shard {file}: {e}") from e
            missing = set(self.manifest["keys"]) - set(data)
            if missing:
                raise FileFormatError(f"CachedHOI(): shard {file} lacks keys {sorted(missing)} listed in the manifest")
            self._loaded = (k, data)
        return self._loaded[1]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """Sample ``index`` (images back to float32 in ``[0, 1]``), transformed if configured."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"CachedHOI: index {index} out of range for {n} samples")
        index %= n
        k = bisect.bisect_right(self._offsets, index) - 1  # last shard starting at or before index
        data = self._shard(k)
        j = index - self._offsets[k]
        sample = {}
        for key, value in data.items():
            if isinstance(value, list):  # a string key
                sample[key] = value[j]
                continue
            v = value[j].clone()
            if key in self.manifest.get("uint8_keys", []):
                v = v.to(torch.float32) / 255
            sample[key] = v
        if self.transform is not None:
            g = torch.Generator().manual_seed(_index_seed(self.seed, index))
            sample = self.transform(sample, generator=g)
        return sample
