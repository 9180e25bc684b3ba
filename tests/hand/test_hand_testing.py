"""hoimask.hand.testing: the synthetic MANO file has the official layout, and the usual readers accept it.

The official ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` are read by smplx
(``pickle.load(f, encoding="latin1")``) and by manopth's ``ready_arguments``
(the same, then chumpy operations on the result). Both need chumpy importable
because the files hold ``chumpy.ch.Ch`` objects. chumpy 0.70 does not import on
NumPy >= 1.24, so where it is missing the tests below give the unpickler a
minimal ``chumpy.ch.Ch`` (it restores ``x`` from the state the way chumpy's
``Ch.__setstate__`` needs it, and converts to an array); where chumpy or manopth
are installed, the real ones are used.
"""

from __future__ import annotations

import importlib.util
import pickle
import pickletools
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from hoimask.hand import MANOLayer, load_mano_arrays
from hoimask.hand.testing import synthetic_mano_arrays, write_synthetic_mano
from hoimask.skeleton import JOINT_INDEX

F64 = torch.float64
TIPS = [JOINT_INDEX[f"{f}_tip"] for f in ("thumb", "index", "middle", "ring", "little")]
#: The keys of the official files, and what each holds there.
OFFICIAL_TYPES = {
    "hands_components": "ndarray", "f": "ndarray", "J_regressor": "csc_matrix", "kintree_table": "ndarray",
    "J": "ndarray", "bs_style": "str", "hands_coeffs": "ndarray", "weights": "ndarray", "posedirs": "ndarray",
    "hands_mean": "ndarray", "v_template": "ndarray", "shapedirs": "Ch", "bs_type": "str",
}  # fmt: skip
#: The globals a MANO pickle names (Python 2 module names).
OFFICIAL_GLOBALS = {
    "numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype", "chumpy.ch Ch",
    "scipy.sparse.csc csc_matrix", "__builtin__ set",
}  # fmt: skip
#: Keys of ``chumpy.ch.Ch.__getstate__()`` for an evaluated ``Ch(x)``.
CHUMPY_STATE_KEYS = {"_dirty_vars", "_itr", "_make_dense", "_make_sparse", "_depends_on_deps", "x", "_status"}


class _MinimalCh:
    """What smplx and this test need of ``chumpy.ch.Ch``: unpickling (like chumpy's) and array conversion."""

    def __setstate__(self, state: dict) -> None:
        # chumpy's Ch.__setstate__ re-sets every dterm ('x') through __setattr__, which needs these two.
        missing = {"_dirty_vars", "_itr", "x"} - set(state)
        if missing:
            raise AttributeError(f"'Ch' object has no attribute {sorted(missing)[0]!r}")
        self.__dict__.update(state)

    @property
    def r(self) -> np.ndarray:
        return np.asarray(self.x, dtype=np.float64)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.r.shape

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.r if dtype is None else self.r.astype(dtype)

    def __getitem__(self, key):
        return self.r[key]


@pytest.fixture
def chumpy_importable(monkeypatch: pytest.MonkeyPatch) -> bool:
    """Make ``chumpy.ch.Ch`` importable for ``pickle.load``; True when the real chumpy is used."""
    if importlib.util.find_spec("chumpy") is not None:
        return True
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    module.Ch = _MinimalCh
    _MinimalCh.__module__ = "chumpy.ch"
    _MinimalCh.__qualname__ = _MinimalCh.__name__ = "Ch"
    package.ch = module
    monkeypatch.setitem(sys.modules, "chumpy", package)
    monkeypatch.setitem(sys.modules, "chumpy.ch", module)
    return False


@pytest.fixture(scope="module")
def smplx_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<root>/mano/MANO_RIGHT.pkl`` and ``MANO_LEFT.pkl``: the folder layout ``smplx.create`` expects."""
    root = tmp_path_factory.mktemp("smplx_models")
    write_synthetic_mano(root / "mano" / "MANO_RIGHT.pkl", side="right", seed=3)
    write_synthetic_mano(root / "mano" / "MANO_LEFT.pkl", side="left", seed=3)
    return root


def _ops(path: Path) -> list[tuple[str, object]]:
    return [(op.name, arg) for op, arg, _ in pickletools.genops(path.read_bytes())]


@pytest.mark.parametrize("side", ["right", "left"])
def test_pickle_stream_is_python2_protocol2_with_the_official_globals(mano_dir, side):
    ops = _ops(mano_dir / f"MANO_{side.upper()}.pkl")
    assert ops[0] == ("PROTO", 2)
    names = {name for name, _ in ops}
    # Python 2 wrote str as (SHORT_)BINSTRING; a unicode opcode would make the keys unicode there.
    assert not names & {"UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES"}
    assert {arg for name, arg in ops if name == "GLOBAL"} == OFFICIAL_GLOBALS
    assert not names & {"STACK_GLOBAL", "FRAME", "MEMOIZE", "NEWOBJ_EX"}  # protocol 4+ opcodes
    # numpy.dtype('f8', 0, 1) as Python 2 NumPy wrote it: ints, not bools, after the type code.
    dtype_calls = [i for i, (name, arg) in enumerate(ops) if name == "GLOBAL" and arg == "numpy dtype"]
    i = dtype_calls[0]
    assert [n for n, _ in ops[i + 1: i + 6]] == ["BINPUT", "SHORT_BINSTRING", "BINPUT", "BININT1", "BININT1"]


@pytest.mark.filterwarnings("ignore:Please import `csc_matrix`:DeprecationWarning")  # scipy.sparse.csc, as named
@pytest.mark.parametrize("side", ["right", "left"])
def test_plain_pickle_load_gives_the_official_types(mano_dir, chumpy_importable, side):
    path = mano_dir / f"MANO_{side.upper()}.pkl"
    with open(path, "rb") as fh:
        data = pickle.load(fh, encoding="latin1")  # what smplx and manopth do
    assert {k: type(v).__name__ for k, v in data.items()} == OFFICIAL_TYPES
    assert type(data["shapedirs"]).__module__ == "chumpy.ch"
    import scipy.sparse

    assert isinstance(data["J_regressor"], scipy.sparse.csc_matrix)
    assert data["J_regressor"].shape == (16, 778) and data["J_regressor"].format == "csc"
    assert data["bs_style"] == "lbs" and data["bs_type"] == "lrotmin"
    assert data["f"].dtype == np.uint32 and data["kintree_table"].dtype == np.int64
    assert data["kintree_table"][0, 0] == 2**32 - 1  # uint32(-1): the root has no parent
    assert CHUMPY_STATE_KEYS <= set(vars(data["shapedirs"]))  # chumpy adds _parents and _cache itself
    # The same numbers through the real readers' path and through hoimask's restricted unpickler.
    ours = load_mano_arrays(path)
    np.testing.assert_array_equal(np.asarray(data["shapedirs"].r), ours["shapedirs"])
    np.testing.assert_array_equal(data["J_regressor"].toarray(), ours["J_regressor"])
    for key in ("v_template", "posedirs", "weights", "hands_components", "hands_mean", "kintree_table", "f"):
        np.testing.assert_array_equal(data[key], ours[key])
    np.testing.assert_array_equal(ours["J_regressor"], synthetic_mano_arrays(side, 0)["J_regressor"])


def test_chumpy_state_is_what_chumpy_writes(mano_dir):
    """The Ch state holds the keys of ``Ch.__getstate__`` (without the unpicklable ``_cache``/``_parents``)."""
    from hoimask.hand._unpickle import restricted_load

    with open(mano_dir / "MANO_RIGHT.pkl", "rb") as fh:
        raw = restricted_load(fh)
    state = raw["shapedirs"].state_dict()
    assert set(state) == CHUMPY_STATE_KEYS
    assert state["_dirty_vars"] == set() and state["_itr"] is None and state["_depends_on_deps"] == {}
    # chumpy's __setstate__ without these raises AttributeError (the previous synthetic file did).
    with pytest.raises(AttributeError, match="_dirty_vars"):
        _MinimalCh().__setstate__({"x": np.zeros(3), "_cache": {}, "_itr": None})


@pytest.mark.parametrize(("side", "flat", "use_create"), [("right", True, True), ("right", False, False),
                                                         ("left", True, False)])  # fmt: skip
def test_smplx_loads_the_synthetic_file_and_matches_manolayer(smplx_root, chumpy_importable, side, flat, use_create):
    smplx = pytest.importorskip("smplx")
    kwargs = {"is_rhand": side == "right", "use_pca": False, "flat_hand_mean": flat, "dtype": F64, "num_betas": 10}
    if use_create:
        ref = smplx.create(str(smplx_root), model_type="mano", **kwargs)
    else:
        ref = smplx.MANO(str(smplx_root / "mano"), **kwargs)
    # smplx does not fix the official left file's shapedirs: compare with the file as it is.
    ours = MANOLayer(smplx_root / "mano" / f"MANO_{side.upper()}.pkl", side=side, flat_hand_mean=flat,
                     fix_left_shapedirs=False, dtype=F64)  # fmt: skip
    g = torch.Generator().manual_seed(5)
    pose = 0.6 * torch.randn(3, 16, 3, generator=g, dtype=F64)
    shape, trans = torch.randn(3, 10, generator=g, dtype=F64), 0.1 * torch.randn(3, 3, generator=g, dtype=F64)
    theirs = ref(betas=shape, global_orient=pose[:, 0], hand_pose=pose[:, 1:].reshape(3, 45), transl=trans)
    out = ours(pose, shape, trans)
    # smplx casts the arrays to float32 first (the synthetic numbers are float32-exact) and its
    # Rodrigues adds 1e-8 to the angle: agreement to 1 micrometre.
    torch.testing.assert_close(out.vertices, theirs.vertices, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.mano_joints, theirs.joints[:, :16], rtol=0, atol=1e-6)
    torch.testing.assert_close(out.joints[:, TIPS], theirs.vertices[:, ours.tip_vertex_ids], rtol=0, atol=1e-6)
    assert torch.equal(ref.faces_tensor.long(), ours.faces)


def test_real_chumpy_reads_the_synthetic_file(mano_dir):
    ch = pytest.importorskip("chumpy")
    with open(mano_dir / "MANO_RIGHT.pkl", "rb") as fh:
        data = pickle.load(fh, encoding="latin1")
    assert isinstance(data["shapedirs"], ch.Ch)
    np.testing.assert_array_equal(data["shapedirs"].r, load_mano_arrays(mano_dir / "MANO_RIGHT.pkl")["shapedirs"])
    v_shaped = data["shapedirs"].dot(ch.array(np.ones(10))) + data["v_template"]  # chumpy graph on the loaded Ch
    assert v_shaped.r.shape == (778, 3)


@pytest.mark.parametrize("side", ["right", "left"])
def test_manopth_reads_the_synthetic_file_and_matches_manolayer(mano_dir, side):
    pytest.importorskip("chumpy")
    manolayer = pytest.importorskip("manopth.manolayer")
    ref = manolayer.ManoLayer(mano_root=str(mano_dir), side=side, use_pca=True, ncomps=45, flat_hand_mean=False)
    ref = ref.double()
    ours = MANOLayer(mano_dir / f"MANO_{side.upper()}.pkl", side=side, use_pca=True, num_pca_comps=45,
                     flat_hand_mean=False, fix_left_shapedirs=False, dtype=F64)  # fmt: skip
    g = torch.Generator().manual_seed(6)
    pose = torch.randn(2, 48, generator=g, dtype=F64)
    shape, trans = torch.randn(2, 10, generator=g, dtype=F64), 0.1 * torch.randn(2, 3, generator=g, dtype=F64)
    verts_mm, joints_mm = ref(pose, shape, trans)  # DexYCB's call: a non-zero translation, millimetres
    out = ours(pose, shape, trans)
    # manopth's buffers are float32 (torch.Tensor(...)), the synthetic numbers float32-exact, and its
    # Rodrigues adds an epsilon to the angle: agreement to 1 micrometre (1e-3 mm).
    torch.testing.assert_close(out.vertices * 1000, verts_mm, rtol=0, atol=1e-3)
    torch.testing.assert_close(out.joints * 1000, joints_mm, rtol=0, atol=1e-3)
