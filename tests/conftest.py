"""Shared fixtures: devices, dtypes, a seeded generator, and hypothesis profiles."""

from __future__ import annotations

import os
from fnmatch import fnmatch

# Before torch loads: on a busy 2-core machine spinning OpenMP threads make
# torch ops many times slower (docs/training.md); idle threads should sleep.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# Hypothesis: derandomised (reproducible) under CI=true, deadline off everywhere
# because the first call of a torch op can be slow.
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=25,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") == "true" else "dev"))

# Keep tests deterministic and light on a 2-core machine: two threads in a single process; one per
# worker when pytest-xdist runs the suite in parallel (setup.cfg: one worker per core), so the workers
# never oversubscribe the cores.
_XDIST_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
torch.set_num_threads(1 if _XDIST_WORKERS > 1 else max(1, min(2, torch.get_num_threads())))

_DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=_DEVICES)
def device(request) -> torch.device:
    """Every available device: CPU always, CUDA when present."""
    return torch.device(request.param)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request) -> torch.dtype:
    """The floating dtypes every numeric component must support."""
    return request.param


@pytest.fixture
def generator() -> torch.Generator:
    """A CPU generator with a fixed seed."""
    return torch.Generator().manual_seed(0)


def pytest_ignore_collect(collection_path, config):
    """Keep helper files under tests/ out of collection.

    ``--doctest-modules`` (setup.cfg) imports every ``.py`` file it is given;
    here only test modules are modules, the rest are helpers, some of them
    scripts that run on import (``engine/engine_run_toy_training.py``);
    conftest files hold no doctests.
    """
    name = collection_path.name
    if name == "conftest.py":
        # Loaded as plugins all the same; collected as doctest modules, the several tests/**/conftest.py
        # (same basename, no packages) clash when more than one folder is named on the command line.
        return True
    if collection_path.suffix == ".py":
        if not any(fnmatch(name, pattern) for pattern in config.getini("python_files")):
            return True
    return None
