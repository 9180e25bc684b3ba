"""The restricted unpickler's resource limits: denial-of-service pickles are refused, real files still load.

The hand-made payloads of ``_pickle_bombs.py`` run in one child process with an
address-space limit, so a regression fails with a timeout or a ``MemoryError``
instead of hanging the test run or exhausting the machine.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from _pickle_bombs import PAYLOADS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hoimask._checks import FileFormatError, ValueRangeError
from hoimask.hand import PickleLimitError, PickleLimits, UnsafePickleError, load_mano_arrays
from hoimask.hand._pickle_budget import DEFAULT_PICKLE_LIMITS
from hoimask.hand._unpickle import resolve, restricted_load

LOADERS = ("load_mano_arrays", "read_pickle")

_RUNNER = r"""
import json, resource, sys, time, tracemalloc
from pathlib import Path

sys.path.insert(0, sys.argv[1])
from _pickle_bombs import PAYLOADS
from hoimask._checks import FileFormatError
from hoimask.data._io import read_pickle
from hoimask.hand import load_mano_arrays

try:  # a regression must fail with MemoryError, not take the machine's memory
    vm = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + 2 * 2**30, vm + 2 * 2**30))
except (OSError, ValueError, StopIteration):
    pass
loaders = {"load_mano_arrays": load_mano_arrays, "read_pickle": read_pickle}
for name in sys.argv[3:]:
    path = Path(sys.argv[2]) / f"{name}.pkl"
    path.write_bytes(PAYLOADS[name]())
    for loader, load in loaders.items():
        tracemalloc.start()
        start = time.perf_counter()
        try:
            load(path)
            error, typed, message = None, False, ""
        except BaseException as exc:
            error, typed, message = type(exc).__name__, isinstance(exc, FileFormatError), str(exc)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(json.dumps({"name": name, "loader": loader, "error": error, "typed": typed, "bytes": path.stat().st_size,
                          "message": message[:400], "seconds": seconds, "peak": peak}), flush=True)
"""


@pytest.fixture(scope="module")
def bomb_results(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict]:
    """Outcome of every payload under both loaders, from one child process (a hang leaves entries missing)."""
    out = tmp_path_factory.mktemp("bombs")
    cmd = [sys.executable, "-c", _RUNNER, str(Path(__file__).parent), str(out), *PAYLOADS]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    try:
        stdout = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, check=False).stdout
    except subprocess.TimeoutExpired as exc:  # a payload hung: the ones before it still count
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
    results = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return {(r["name"], r["loader"]): r for r in results}


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_denial_of_service_pickle_is_refused_with_bounded_memory_and_time(bomb_results, name, loader):
    result = bomb_results.get((name, loader))
    assert result is not None, f"{loader} did not finish on {name} within the runner's 300 s (a hang)"
    assert result["typed"], f"{loader} on {name}: expected a FileFormatError, got {result['error']}: {result['message']}"
    assert result["error"] in ("PickleLimitError", "UnsafePickleError", "FileFormatError"), result
    assert f"{name}.pkl" in result["message"]  # the error names the file
    # traced allocations, arrays included: what the budget charges is capped at max_memory_bytes, the rest
    # is the interpreter's own overhead
    assert result["peak"] < DEFAULT_PICKLE_LIMITS.max_memory_bytes + 32 * 2**20, result
    assert result["seconds"] < DEFAULT_PICKLE_LIMITS.max_seconds, result


def test_the_issue_payloads_are_as_small_as_reported():
    assert len(PAYLOADS["bytearray_alloc"]()) == 33
    assert len(PAYLOADS["doubling_tuple_walk"]()) < 400


# ----------------------------------------------------------------------------- legitimate files
def test_synthetic_mano_loads_well_inside_the_default_limits(right_pkl, left_pkl):
    for path in (right_pkl, left_pkl):
        arrays = load_mano_arrays(path)
        assert arrays["J_regressor"].shape == (16, 778) and arrays["posedirs"].shape == (778, 3, 135)
    # limits barely above what the file needs (3.4 MB, ~10 MB charged, 466 operations, depth 5)
    tight = PickleLimits(max_file_bytes=4 * 2**20, max_memory_bytes=16 * 2**20, max_objects=1000, max_depth=8)
    with open(right_pkl, "rb") as fh:
        out = resolve(restricted_load(fh, limits=tight), limits=tight)
    assert out["J_regressor"].shape == (16, 778)


@pytest.mark.parametrize(
    ("limit", "value", "message"),
    [("max_file_bytes", 1000, "max_file_bytes"), ("max_memory_bytes", 2 * 2**20, "max_memory_bytes"),
     ("max_objects", 100, "max_objects"), ("max_depth", 3, "max_depth"), ("max_seconds", 1e-9, "max_seconds")],
)  # fmt: skip
def test_each_limit_refuses_a_legitimate_file_that_exceeds_it(right_pkl, limit, value, message):
    limits = PickleLimits(**{limit: value})
    with open(right_pkl, "rb") as fh, pytest.raises(PickleLimitError, match=message):
        restricted_load(fh, limits=limits)


def test_resolve_bounds_the_dense_sparse_matrix(right_pkl):
    with open(right_pkl, "rb") as fh:
        raw = restricted_load(fh)
    with pytest.raises(PickleLimitError, match="dense 16x778"):
        resolve(raw, limits=PickleLimits(max_memory_bytes=16 * 778 * 8 - 1))


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_ordinary_numpy_pickles_round_trip(protocol):
    data = {
        "handJoints3D": np.arange(63, dtype=np.float32).reshape(21, 3),
        "objRot": np.asfortranarray(np.eye(3)),
        "camMat": np.eye(3)[:, :2],  # not contiguous
        "objName": "021_bleach_cleanser",
        "objLabel": np.int64(7),
        "scale": np.float32(0.5),
        "mixed": np.array([None, "x", 3], dtype=object),
        "record": np.zeros(2, dtype=[("x", "<f4"), ("y", "<i8")]),
        "ordered": OrderedDict(a=1, b=[1.5, None]),
        "tags": {"left", "right"},
        "frozen": frozenset({1, 2}),
        "raw": bytearray(b"\x00\x01"),
        "nested": [(1, 2.5), {"k": b"v"}, slice(0, 3), 1 + 2j, 2**100, True, None],
    }
    out = restricted_load(io.BytesIO(pickle.dumps(data, protocol=protocol)))
    assert out.keys() == data.keys()
    for key, value in data.items():
        if isinstance(value, np.ndarray):
            assert out[key].dtype == value.dtype and np.array_equal(out[key], value), key
        else:
            assert out[key] == value and type(out[key]) is type(value), key


def test_refused_operations_are_typed():
    cases = {
        # SETITEM on a list, APPEND on a dict, BUILD on a set, NEWOBJ of a builtin, a tuple as dict key
        b"\x80\x02]K\x00K\x01s.": "SETITEM on a list",
        b"\x80\x02}K\x01a.": "APPEND on a dict",
        b"\x80\x02c__builtin__\nset\n)R}b.": "BUILD of a set",
        b"\x80\x02c__builtin__\nobject\n)\x81.": "NEWOBJ of a type",
        b"\x80\x02}K\x01K\x02\x86Ns.": "key of type tuple",
        b"\x80\x02c__builtin__\nbytearray\nK\x05\x85R.": "never a length",
        b"\x80\x02cnumpy\ndtype\ncnumpy\nndarray\n\x85R.": "numpy.dtype",
    }
    for payload, message in cases.items():
        with pytest.raises(UnsafePickleError, match=message):
            restricted_load(io.BytesIO(payload))


def test_pickle_limits_reject_nonsense():
    for bad in ({"max_objects": 0}, {"max_depth": -1}, {"max_file_bytes": 2.5}, {"max_seconds": 0},
                {"max_seconds": float("nan")}, {"max_memory_bytes": True}):  # fmt: skip
        with pytest.raises(ValueRangeError):
            PickleLimits(**bad)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), protocol=st.sampled_from([2, 5]))
def test_damaged_pickles_load_or_raise_a_typed_error(data, protocol):
    blob = bytearray(pickle.dumps({"a": np.arange(6.0).reshape(2, 3), "b": [1, "x", None], "c": {"d": 2}}, protocol))
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert"]), label="kind")
        at = data.draw(st.integers(0, max(len(blob) - 1, 0)), label="at")
        if kind == "flip" and blob:
            blob[at] = data.draw(st.integers(0, 255), label="byte")
        elif kind == "cut":
            del blob[at:]
        else:
            blob[at:at] = data.draw(st.binary(min_size=1, max_size=9), label="bytes")
    try:
        restricted_load(io.BytesIO(bytes(blob)), limits=PickleLimits(max_seconds=5.0))
    except FileFormatError:
        pass
