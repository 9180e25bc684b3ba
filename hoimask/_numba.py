"""Optional numba kernels (the ``fast`` extra): whether they run, and running one over ranges in threads.

A numba kernel runs where numba is importable and the environment variable
``HOIMASK_DISABLE_NUMBA`` is not ``1``; otherwise a pure-torch path runs (the
patch labels: the same labels; ``mesh_sdf``: the clustered search, equal to
float64 rounding), except where numba is documented as required
(:class:`hoimask.ops.MeshBVH`). The kernels are compiled with
``nogil=True``, so ranges of independent work (the BVH's query points) run on
several threads at once: one contiguous range per torch thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

__all__ = ["numba_available", "numba_enabled", "run_ranges", "split_ranges"]


def numba_available() -> bool:
    """Whether numba is importable (the ``fast`` extra)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def numba_enabled() -> bool:
    """Whether numba kernels run: numba importable and ``HOIMASK_DISABLE_NUMBA`` not ``1``."""
    return os.environ.get("HOIMASK_DISABLE_NUMBA", "0") != "1" and numba_available()


def split_ranges(count: int, min_parallel: int) -> list[tuple[int, int]]:
    """Split ``range(count)`` into one contiguous range per torch thread; one range below ``min_parallel``."""
    threads = torch.get_num_threads()
    if threads <= 1 or count < min_parallel:
        return [(0, count)]
    step = -(-count // threads)
    return [(s, min(s + step, count)) for s in range(0, count, step)]


def run_ranges(kernel: Callable[..., object], count: int, min_parallel: int, *args) -> list:
    """Run ``kernel(start, stop, *args)`` over :func:`split_ranges` ``(count, min_parallel)``; its results in order.

    The ranges run in threads when there are several (the kernels release the GIL).
    """
    ranges = split_ranges(count, min_parallel)
    if len(ranges) == 1:
        return [kernel(0, count, *args)]
    with ThreadPoolExecutor(max_workers=len(ranges)) as pool:
        futures = [pool.submit(kernel, start, stop, *args) for start, stop in ranges]
        return [future.result() for future in futures]
