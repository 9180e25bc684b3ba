"""Numba kernels of the ``any`` patch-labelling rule (imported only when numba is importable).

One pass over the segmentation gives every patch's label and whether any value
lies outside ``{0, 1, 2}`` (the torch path reads the map twice: a ``max`` for the
check, then the labelling). Used by :func:`hoimask.masking.regions.segmentation_labels`
on CPU; results equal the torch path's.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_JIT = {"cache": True, "nogil": True}
#: 0x80 in every byte lane, and 0x7D: a byte ``b`` sets bit 7 of ``b + 0x7D`` exactly when ``b >= 3`` (bytes of
#: 0x83 and more, whose sum carries into the next lane, have bit 7 set themselves).
_HIGH = np.int64(-0x7F7F7F7F7F7F7F80)  # 0x8080808080808080 as a signed 64-bit word
_ADD = np.int64(0x7D7D7D7D7D7D7D7D)


@njit(**_JIT)
def any_labels_words(b0, b1, words, gh, gw, out):
    """Labels of samples ``b0 .. b1`` from a byte map read as ``words (B, H, W / 8)`` int64; True if a byte is > 2.

    The patch width must be a multiple of 8 bytes. ``out (B, gh * gw)`` int64
    receives hand (1) if a byte of the patch is 1, else object (2) if one is 2,
    else background (0). Each band of patch rows is OR-ed column by column (a
    loop the compiler vectorises), then each patch's words and byte lanes.
    """
    H, C = words.shape[1], words.shape[2]
    ph, wpp = H // gh, C // gw
    acc = np.zeros(C, np.int64)
    bad = np.int64(0)
    for b in range(b0, b1):
        for i in range(gh):
            acc[:] = 0
            for r in range(i * ph, (i + 1) * ph):
                for c in range(C):
                    w = words[b, r, c]
                    acc[c] |= w
                    bad |= (w | (w + _ADD)) & _HIGH
            for j in range(gw):
                a = np.int64(0)
                for c in range(j * wpp, (j + 1) * wpp):
                    a |= acc[c]
                a |= a >> 32  # every byte lane into the lowest (valid bytes have bit 7 clear)
                a |= a >> 16
                a |= a >> 8
                out[b, i * gw + j] = 1 if a & 1 else (2 if a & 2 else 0)
    return bad != 0


@njit(**_JIT)
def any_labels_pixels(b0, b1, seg, gh, gw, out):
    """Labels of samples ``b0 .. b1`` from an integer map ``seg (B, H, W)`` (any integer dtype); True if a value
    is outside ``{0, 1, 2}``. ``out`` as in :func:`any_labels_words`."""
    H, W = seg.shape[1], seg.shape[2]
    ph, pw = H // gh, W // gw
    acc = np.zeros(W, np.int64)
    bad = np.zeros(W, np.int64)
    for b in range(b0, b1):
        for i in range(gh):
            acc[:] = 0
            for r in range(i * ph, (i + 1) * ph):
                for c in range(W):
                    v = np.int64(seg[b, r, c])
                    acc[c] |= v
                    bad[c] |= (v & ~3) | (v & (v >> 1))  # negative, >= 4, or 3
            for j in range(gw):
                a = np.int64(0)
                for c in range(j * pw, (j + 1) * pw):
                    a |= acc[c]
                out[b, i * gw + j] = 1 if a & 1 else (2 if a & 2 else 0)
    return bad.any()
