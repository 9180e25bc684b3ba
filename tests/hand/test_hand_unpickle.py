"""MANO file loading: restricted unpickler, layout checks, npz conversion."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest

from hoimask._checks import FileFormatError
from hoimask.hand import UnsafePickleError, load_mano_arrays, to_npz
from hoimask.hand._unpickle import resolve, restricted_load
from hoimask.hand.testing import synthetic_mano_arrays


def test_synthetic_pickle_round_trips(right_pkl):
    loaded = load_mano_arrays(right_pkl)
    ref = synthetic_mano_arrays("right", 0)
    for key, value in loaded.items():
        np.testing.assert_array_equal(value, np.asarray(ref[key]).astype(value.dtype), err_msg=key)
    assert loaded["f"].dtype == np.int64
    assert loaded["J_regressor"].shape == (16, 778)


def test_synthetic_pickle_has_official_layout(right_pkl):
    import pickletools

    globals_used = {
        arg for op, arg, _ in pickletools.genops(right_pkl.read_bytes()) if op.name == "GLOBAL"
    }
    assert "chumpy.ch Ch" in globals_used
    assert "scipy.sparse.csc csc_matrix" in globals_used
    assert "numpy.core.multiarray _reconstruct" in globals_used


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Evals:
    def __reduce__(self):
        return eval, ("1 + 1",)


def test_refuses_pickle_that_runs_code(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "MANO_RIGHT.pkl"
    bad.write_bytes(pickle.dumps({"v_template": _RunsShell(marker)}, protocol=2))
    with pytest.raises(UnsafePickleError, match="posix.system|os.system|nt.system") as info:
        load_mano_arrays(bad)
    assert str(bad) in str(info.value)
    assert not marker.exists()
    with pytest.raises(UnsafePickleError, match="eval"):
        restricted_load(io.BytesIO(pickle.dumps(_Evals())))


def test_refuses_reconstructor_of_foreign_class():
    # copyreg._reconstructor(os._wrap_close, object, None): a real class outside the allow-list.
    payload = b"\x80\x02ccopy_reg\n_reconstructor\nq\x00cos\n_wrap_close\nq\x01c__builtin__\nobject\nq\x02N\x87q\x03Rq\x04."
    with pytest.raises(UnsafePickleError):
        restricted_load(io.BytesIO(payload))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_real_scipy_sparse_pickles_become_dense(protocol):
    sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(1)
    dense = rng.normal(size=(6, 9)) * (rng.random((6, 9)) < 0.3)
    blob = pickle.dumps(
        {"csc": sparse.csc_matrix(dense), "csr": sparse.csr_matrix(dense), "coo": sparse.coo_matrix(dense)},
        protocol=protocol,
    )
    out = resolve(restricted_load(io.BytesIO(blob)))
    for key in ("csc", "csr", "coo"):
        np.testing.assert_array_equal(out[key], dense, err_msg=key)


def test_missing_file_names_path(tmp_path):
    path = tmp_path / "nowhere" / "MANO_RIGHT.pkl"
    with pytest.raises(FileFormatError, match="does not exist") as info:
        load_mano_arrays(path)
    assert str(path) in str(info.value)


def test_corrupt_file(tmp_path):
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(b"\x80\x02this is not a pickle at all")
    with pytest.raises(FileFormatError, match="not a readable pickle"):
        load_mano_arrays(path)
    npz = tmp_path / "MANO_RIGHT.npz"
    npz.write_bytes(b"garbage")
    with pytest.raises(FileFormatError, match=r"\.npz"):
        load_mano_arrays(npz)


def test_wrong_layout(tmp_path):
    arrays = synthetic_mano_arrays()
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps({"v_template": arrays["v_template"]}, protocol=2))
    with pytest.raises(FileFormatError, match="lacks the key"):
        load_mano_arrays(path)
    bad = dict(arrays, shapedirs=arrays["shapedirs"][:, :, :5])
    path.write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(FileFormatError, match="'shapedirs' expected shape"):
        load_mano_arrays(path)
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(FileFormatError, match="dict"):
        load_mano_arrays(path)


def test_to_npz_is_pickle_free_and_equal(right_pkl, tmp_path):
    out = to_npz(right_pkl, tmp_path / "conv" / "MANO_RIGHT")
    assert out.name == "MANO_RIGHT.npz" and out.is_file()
    with np.load(out, allow_pickle=False) as data:  # would raise if anything needed pickle
        keys = set(data.files)
    assert {"v_template", "shapedirs", "J_regressor", "f"} <= keys
    a, b = load_mano_arrays(right_pkl), load_mano_arrays(out)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert not list(out.parent.glob("*.tmp*"))


def test_chumpy_state_with_builtin_containers_loads(tmp_path):
    from hoimask.hand.testing import _pickled_as, _Py2Pickler

    def dumps(obj):
        buf = io.BytesIO()
        _Py2Pickler(buf, protocol=2).dump(obj)
        return buf.getvalue()

    x = np.arange(6.0).reshape(2, 3)
    ch = _pickled_as("chumpy.ch", "Ch", {"x": x, "_dirty_vars": {"a", "b"}, "_slices": [slice(0, 2)]})
    out = resolve(restricted_load(io.BytesIO(dumps({"shapedirs": ch}))))
    np.testing.assert_array_equal(out["shapedirs"], x)
    unknown = _pickled_as("chumpy.ch_ops", "add", {"a": x, "b": x})
    with pytest.raises(FileFormatError, match="chumpy.ch_ops.add"):
        resolve(restricted_load(io.BytesIO(dumps(unknown))))
