"""Seeding and capture/restore of every random-number state a run depends on.

The library's stochastic functions take an explicit ``torch.Generator``; the
training script additionally seeds the global generators (model initialisation,
dropout) with :func:`seed_everything`. A checkpoint stores
:func:`capture_rng_state` so that a resumed run draws exactly the numbers an
uninterrupted run would have drawn. Every entry is a tensor, int, tuple or
None, so checkpoints load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

import numpy as np
import torch

from hoimask._checks import DTypeError, FileFormatError

__all__ = ["seed_everything", "capture_rng_state", "restore_rng_state"]


def seed_everything(seed: int, *, deterministic: bool = False) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and all CUDA devices).

    Args:
        seed: a non-negative int.
        deterministic: also ask torch for deterministic algorithms
            (``torch.use_deterministic_algorithms(True, warn_only=True)``) and
            disable cuDNN benchmarking.

    Returns:
        A new CPU ``torch.Generator`` seeded with ``seed`` for the caller's own use.

    Shape:
        Not applicable.

    Example:
        >>> g = seed_everything(0)
        >>> a = torch.rand(1); _ = seed_everything(0); bool(a == torch.rand(1))
        True
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DTypeError(f"seed_everything(): argument 'seed' expected an int >= 0, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeds third-party code that uses the legacy global state
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


def capture_rng_state(generators: Mapping[str, torch.Generator] | None = None) -> dict:
    """Snapshot the global RNGs and the given named generators.

    Args:
        generators: extra generators to snapshot (e.g. the masker's), by name.

    Returns:
        A dict with ``python``, ``numpy``, ``torch``, ``cuda`` (list, one per
        device, empty without CUDA) and ``generators``.

    Shape:
        Not applicable.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    return {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }


def restore_rng_state(state: Mapping, generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Restore a snapshot made by :func:`capture_rng_state`.

    Args:
        state: the snapshot.
        generators: the live generators to restore, by the same names.

    Raises:
        FileFormatError: the snapshot lacks an entry or a named generator.

    Shape:
        Not applicable.
    """
    for key in ("python", "numpy", "torch", "cuda", "generators"):
        if key not in state:
            raise FileFormatError(f"restore_rng_state(): argument 'state' lacks the '{key}' entry")
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, g in (generators or {}).items():
        if name not in state["generators"]:
            raise FileFormatError(
                f"restore_rng_state(): the snapshot has no generator '{name}' (has {sorted(state['generators'])})"
            )
        g.set_state(state["generators"][name])
