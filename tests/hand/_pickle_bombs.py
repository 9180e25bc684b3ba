"""Hand-assembled denial-of-service pickles for the restricted unpickler's tests.

Each builder returns raw pickle bytes written opcode by opcode (see
``pickletools``), so the tests do not depend on what a pickler would emit.
None of them runs code; each asks for too much memory, too many objects, too
deep a nesting or unbounded time. ``PAYLOADS`` maps a name to its builder.
"""

from __future__ import annotations

import io
import pickle
import struct

P2 = b"\x80\x02"  # PROTO 2 (what MANO files use)


def _int(n: int) -> bytes:
    """BININT of a signed 32-bit value."""
    return b"J" + struct.pack("<i", n)


def _text(s: str) -> bytes:
    """BINUNICODE."""
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def bytearray_alloc() -> bytes:
    """33 bytes: ``bytearray(1_650_000_000)`` (1.65 GB of zeros)."""
    return P2 + b"c__builtin__\nbytearray\n" + _int(1_650_000_000) + b"\x85R."


def ndarray_called() -> bytes:
    """``numpy.ndarray((n,), 'O')`` called directly: an object array of 1.65 GB filled with None."""
    return P2 + b"cnumpy\nndarray\n" + _int(1_650_000_000 // 8) + b"\x85" + _text("O") + b"\x86R."


def reconstruct_huge_shape() -> bytes:
    """``numpy.core.multiarray._reconstruct(ndarray, (n,), 'O')`` with a 1.65 GB shape."""
    return (P2 + b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + _int(1_650_000_000 // 8)
            + b"\x85" + _text("O") + b"\x87R.")  # fmt: skip


def array_state_lies() -> bytes:
    """An array whose state claims shape (10**9,) float64 but carries 8 bytes."""
    head = P2 + b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _text("b") + b"\x87R"
    dtype = b"cnumpy\ndtype\n" + _text("f8") + b"\x89\x88\x87R"  # dtype('f8', False, True)
    state = b"(K\x01" + _int(10**9) + b"\x85" + dtype + b"\x89" + b"U\x08" + b"\x00" * 8 + b"t"
    return head + state + b"b."


def binbytes8_huge_length() -> bytes:
    """BINBYTES8 claiming 1.65 GB, followed by 8 bytes."""
    return b"\x80\x04\x8e" + struct.pack("<Q", 1_650_000_000) + b"x" * 8 + b"."


def bytearray8_huge_length() -> bytes:
    """BYTEARRAY8 claiming 1.65 GB (the pure-Python unpickler allocates before reading)."""
    return b"\x80\x05\x96" + struct.pack("<Q", 1_650_000_000) + b"x" * 8 + b"."


def long4_huge_length() -> bytes:
    """LONG4 claiming a 2 GB integer."""
    return P2 + b"\x8b" + struct.pack("<i", 2**31 - 1) + b"\x01."


def frame_huge_length() -> bytes:
    """FRAME claiming a terabyte."""
    return b"\x80\x04\x95" + struct.pack("<Q", 2**40) + b"N."


def _doubling_tuple(levels: int) -> bytes:
    """``t_k = (t_{k-1}, t_{k-1})``, ``t_0 = None`` (DUP, TUPLE2: 2 bytes a level); walked, 2**levels leaves."""
    return b"N" + b"2\x86" * levels


def doubling_tuple_walk() -> bytes:
    """121 bytes: ``{"v_template": t_50}``; walking it (as ``resolve`` does) never ends."""
    return P2 + b"}" + _text("v_template") + _doubling_tuple(50) + b"s."


def doubling_tuple_dict_key() -> bytes:
    """``{t_50: None}``: hashing the key takes ``2**50`` steps inside the unpickler."""
    return P2 + b"}" + _doubling_tuple(50) + b"Ns."


def doubling_tuple_frozenset() -> bytes:
    """``frozenset([t_50])`` through the allowed builtin."""
    return P2 + b"c__builtin__\nfrozenset\n]" + _doubling_tuple(50) + b"a\x85R."


def deep_tuple_nesting() -> bytes:
    """100,000 nested 1-tuples (100 kB)."""
    return P2 + b"N" + b"\x85" * 100_000 + b"."


def deep_mark_nesting() -> bytes:
    """100,000 nested MARK frames (lists of lists)."""
    return P2 + b"(" * 100_000 + b"l" * 100_000 + b"."


def many_objects() -> bytes:
    """4,000,000 empty lists (4 MB)."""
    return P2 + b"(" + b"]" * 4_000_000 + b"l."


def encode_amplification() -> bytes:
    """One 1 MiB string encoded 2,000 times by ``_codecs.encode``: 2 GiB from 1 MiB."""
    big = b"X" + struct.pack("<I", 2**20) + b"a" * 2**20
    setup = P2 + b"c_codecs\nencode\nq\x01" + big + b"q\x02" + _text("latin1") + b"q\x030"
    return setup + b"(" + b"h\x01h\x02h\x03\x86R" * 2000 + b"l."


def list_amplification() -> bytes:
    """``list(b)`` of a 1 MiB bytes object, 300 times: 8 MiB of references per call."""
    big = b"B" + struct.pack("<I", 2**20) + b"a" * 2**20  # BINBYTES (protocol 3)
    setup = b"\x80\x03c__builtin__\nlist\nq\x01" + big + b"q\x020"
    return setup + b"(" + b"h\x01h\x02\x85R" * 300 + b"l."


def bytearray_slice_doubling() -> bytes:
    """``b[0:0] = b`` forty times through SETITEM: a terabyte from 1 byte."""
    ba = b"\x80\x03c__builtin__\nbytearray\nC\x01x\x85Rq\x00"
    sl = b"c__builtin__\nslice\nK\x00K\x00\x86Rq\x010"
    return ba + sl + b"h\x01h\x00s" * 40 + b"."


def colliding_int_keys() -> bytes:
    """A dict of 60,000 int keys with one hash value (``k * (2**61 - 1) + 1``): quadratic insertion."""
    out = io.BytesIO()
    out.write(P2 + b"}")
    keys = [k * (2**61 - 1) + 1 for k in range(1, 60_001)]
    for start in range(0, len(keys), 1000):
        out.write(b"(")
        for key in keys[start:start + 1000]:
            raw = pickle.encode_long(key)
            out.write(b"\x8a" + bytes([len(raw)]) + raw + b"N")
        out.write(b"u")
    out.write(b".")
    return out.getvalue()


def _sparse_stand_in(shape: tuple[int, int]) -> bytes:
    import numpy as np

    from hoimask.hand.testing import _pickled_as, _Py2Pickler

    state = {"_shape": shape, "data": np.zeros(0), "indices": np.zeros(0, dtype=np.int32),
             "indptr": np.zeros(shape[1] + 1, dtype=np.int32)}  # fmt: skip
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump({"J_regressor": _pickled_as("scipy.sparse.csc", "csc_matrix", state)})
    return buf.getvalue()


def sparse_huge_shape() -> bytes:
    """A CSC matrix of shape 20,000 x 20,000 with no entries: densified, 3.2 GB."""
    return _sparse_stand_in((20_000, 20_000))


PAYLOADS = {
    f.__name__: f
    for f in (
        bytearray_alloc, ndarray_called, reconstruct_huge_shape, array_state_lies, binbytes8_huge_length,
        bytearray8_huge_length, long4_huge_length, frame_huge_length, doubling_tuple_walk,
        doubling_tuple_dict_key, doubling_tuple_frozenset, deep_tuple_nesting, deep_mark_nesting, many_objects,
        encode_amplification, list_amplification, bytearray_slice_doubling, colliding_int_keys, sparse_huge_shape,
    )
}
