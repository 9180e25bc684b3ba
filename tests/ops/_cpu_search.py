"""Shared helpers of the op tests: run a block with one CPU search of ``hoimask::mesh_sdf``."""

from __future__ import annotations

import contextlib
import os
from unittest import mock

from hoimask.ops.mesh_sdf.bvh import numba_available

#: The CPU searches of the op: the numba BVH (when numba is installed) and the pure-torch path.
CPU_SEARCHES = ["torch"] + (["bvh"] if numba_available() else [])


@contextlib.contextmanager
def cpu_search(name: str):
    """Within the block, ``hoimask::mesh_sdf`` on CPU uses ``name`` (``"bvh"`` or ``"torch"``)."""
    with mock.patch.dict(os.environ, {"HOIMASK_DISABLE_NUMBA": "0" if name == "bvh" else "1"}):
        yield
