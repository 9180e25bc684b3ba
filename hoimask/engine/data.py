"""Resumable data order: a ``DistributedSampler`` that can start mid-epoch, and a step-indexed batch stream.

The order of samples depends only on ``(seed, epoch)`` and the rank, as in
``torch.utils.data.DistributedSampler``. Given the global step, the stream
knows the epoch and the position inside it, so resuming at step ``k`` yields
exactly the batches ``k, k + 1, ...`` of an uninterrupted run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from hoimask._checks import DTypeError, ValueRangeError, check_int
from hoimask._random import index_seed

__all__ = ["ResumableSampler", "steps_per_epoch", "iterate_batches", "MemoryCache", "AugmentedViews"]


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that skips the first ``start_index`` indices of its epoch.

    Works without a process group when ``num_replicas`` and ``rank`` are given
    (single-process runs use ``num_replicas=1, rank=0``).

    Args:
        dataset: the dataset.
        num_replicas: processes sharing the data (as ``DistributedSampler``).
        rank: this process's index among them.
        shuffle: reshuffle every epoch.
        seed: shuffling seed (the same on every process).
        drop_last: drop the tail that does not divide evenly among the processes.

    Shape:
        Not applicable.
    """

    def __init__(self, dataset: Dataset, *, num_replicas: int = 1, rank: int = 0, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = True) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.start_index = 0

    def set_start(self, start_index: int) -> None:
        """Skip this many of the rank's indices in the current epoch."""
        if not 0 <= start_index <= self.num_samples:
            raise ValueRangeError(
                f"ResumableSampler.set_start(): argument 'start_index' expected [0, {self.num_samples}], "
                f"got {start_index}"
            )
        self.start_index = start_index

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start_index:])

    def __len__(self) -> int:
        return self.num_samples - self.start_index


def steps_per_epoch(dataset_len: int, batch_size: int, world_size: int) -> int:
    """Full batches per rank per epoch (incomplete batches are dropped so batches stay dense).

    Raises:
        ValueRangeError: the dataset is too small for one batch per rank.
    """
    per_rank = dataset_len // world_size
    steps = per_rank // batch_size
    if steps < 1:
        raise ValueRangeError(
            f"steps_per_epoch(): a dataset of {dataset_len} samples cannot give one batch of {batch_size} to each of "
            f"{world_size} processes; lower --batch-size or use more samples"
        )
    return steps


def iterate_batches(
    dataset: Dataset,
    *,
    batch_size: int,
    start_step: int = 0,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    collate_fn: Callable[[list], Any] | None = None,
    num_workers: int = 0,
    shuffle: bool = True,
    pin_memory: bool = False,
) -> Iterator[tuple[int, Any]]:
    """Endless ``(step, batch)`` stream starting at global step ``start_step``.

    Epoch ``e`` shuffles with ``seed + e`` (``DistributedSampler`` semantics);
    each rank gets its own shard. Workers are seeded from a generator derived
    from ``(seed, epoch)``, never from the global RNG.

    Args:
        dataset: a map-style dataset.
        batch_size: per-process batch size.
        start_step: first global step to produce.
        seed: shuffling seed.
        rank: this process's index in the job.
        world_size: number of processes in the job.
        collate_fn: batch collation (default: torch's).
        num_workers: ``DataLoader`` workers.
        shuffle: shuffle each epoch.
        pin_memory: pin host memory (for CUDA).

    Returns:
        An iterator of ``(step, batch)``.

    Shape:
        Not applicable.
    """
    spe = steps_per_epoch(len(dataset), batch_size, world_size)
    step = start_step
    while True:
        epoch, offset = divmod(step, spe)
        sampler = ResumableSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed)
        sampler.set_epoch(epoch)
        sampler.set_start(offset * batch_size)
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=True,
            collate_fn=collate_fn,
            num_workers=num_workers,
            pin_memory=pin_memory,
            generator=torch.Generator().manual_seed(seed * 100_003 + epoch),
            persistent_workers=False,
        )
        for batch in loader:
            yield step, batch
            step += 1


class MemoryCache(Dataset):
    """Keep every sample of ``dataset`` in memory after its first access.

    For small, expensive datasets (the CPU demo renders a few dozen synthetic
    scenes once and trains on them many times). Samples must be deterministic
    functions of the index (true of every hoimask dataset). With
    ``num_workers > 0`` each worker holds its own cache.

    Args:
        dataset: the map-style dataset.

    Shape:
        Not applicable.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._cache: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        if index not in self._cache:
            self._cache[index] = self.dataset[index]
        return self._cache[index]


class AugmentedViews(Dataset):
    """``repeats`` views of every sample: the sample itself, then ``repeats - 1`` randomly transformed copies.

    Index ``i`` is sample ``i % N`` of ``dataset`` (``N = len(dataset)``):
    unchanged for ``i < N``, else passed through ``transform`` with a generator
    seeded by ``(seed, i)``. Every view is a fixed function of its index, as
    :class:`ResumableSampler` (bit-identical resume) and :class:`MemoryCache`
    below it require, while a shuffled epoch over ``N * repeats`` indices shows
    the model many different views of a small cached pool. Fitting statistics of
    the data (e.g. the constant baselines) should read :attr:`dataset`, the
    un-augmented pool.

    A ``DataLoader`` fetches whole batches through :meth:`__getitems__`: when
    the transform batches (:func:`hoimask.data.batched.supports_batching`:
    ``RandomRotateScale``, ``ColorJitter`` or a ``Compose`` of them) the views
    of a batch are made together (:func:`~hoimask.data.batched.batched_views`,
    the same views to float rounding, ~4x less time per view on a CPU); with
    ``batched=False``, or another transform, one sample at a time as
    :meth:`__getitem__` does.

    Args:
        dataset: the map-style dataset (e.g. a :class:`MemoryCache` of rendered scenes).
        transform: ``t(sample, generator=None) -> sample`` (:mod:`hoimask.data.transforms`).
        repeats: views per sample (>= 1; 1 = the dataset unchanged).
        seed: seed of the views (>= 0).
        batched: make a batch's views together where the transform allows it (default).

    Shape:
        Not applicable (samples keep their shapes when the transform does).

    Example:
        >>> from hoimask.data import RandomRotateScale, SyntheticHOI
        >>> views = AugmentedViews(SyntheticHOI(2, image_size=32, num_sdf_points=4), RandomRotateScale(), repeats=3)
        >>> len(views), views[4]["image"].shape
        (6, torch.Size([3, 32, 32]))
    """

    def __init__(self, dataset: Dataset, transform: Callable[..., Any], *, repeats: int, seed: int = 0,
                 batched: bool = True) -> None:
        fn = "AugmentedViews"
        if not callable(transform):
            raise DTypeError(f"{fn}(): argument 'transform' expected a callable, got {type(transform).__name__}")
        if not isinstance(batched, bool):
            raise DTypeError(f"{fn}(): argument 'batched' expected a bool, got {type(batched).__name__}")
        self.dataset = dataset
        self.transform = transform
        self.repeats = check_int(repeats, name="repeats", low=1, fn=fn)
        self.seed = check_int(seed, name="seed", low=0, fn=fn)
        if batched:  # (imported here: importing the engine loads no data module)
            from hoimask.data.batched import supports_batching

            batched = supports_batching(transform)
        self.batched = batched

    def __len__(self) -> int:
        return len(self.dataset) * self.repeats

    def __getitem__(self, index: int) -> Any:
        n = len(self.dataset)
        if not -len(self) <= index < len(self):
            raise IndexError(f"AugmentedViews: index {index} out of range for {len(self)} views")
        index %= len(self)
        sample = self.dataset[index % n]
        if index < n:
            return sample
        return self.transform(sample, generator=self._generator(index))

    def _generator(self, index: int) -> torch.Generator:
        # well mixed: torch's CPU generator keeps only the low 32 bits of a seed
        return torch.Generator().manual_seed(index_seed(self.seed, index))

    def __getitems__(self, indices: list[int]) -> list[Any]:
        """The views ``indices`` (what a ``DataLoader`` fetches for one batch), made together where possible."""
        if not self.batched:
            return [self[i] for i in indices]
        from hoimask.data.batched import batched_views
        from hoimask.data.sample import collate, uncollate

        n, total = len(self.dataset), len(self)
        for i in indices:
            if not -total <= i < total:
                raise IndexError(f"AugmentedViews: index {i} out of range for {total} views")
        indices = [i % total for i in indices]
        samples = [self.dataset[i % n] for i in indices]
        rows = [k for k, i in enumerate(indices) if i >= n]
        if not rows:
            return samples
        batch = batched_views(collate(samples), self.transform, [self._generator(indices[k]) for k in rows], rows)
        return uncollate(batch, len(samples))
