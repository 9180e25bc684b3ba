"""Errors and resource limits of the restricted unpickler: memory, object count, nesting depth and time.

A pickle is a program for a small stack machine. Even with every dangerous
global refused, a few hundred bytes can still ask for gigabytes
(``bytearray(1_650_000_000)``, an array of shape ``(10**10,)``, a length
prefix larger than the file), or for exponential work (fifty tuples, each
holding the previous one twice, take 101 bytes; hashing or walking the last
visits ``2**50`` nodes). :class:`PickleBudget` is charged by every operation of the
unpickler in :mod:`hoimask.hand._unpickle` and raises :class:`PickleLimitError`
as soon as one of the :class:`PickleLimits` is exceeded, before the memory is
allocated or the work is done.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from hoimask._checks import FileFormatError, ValueRangeError

__all__ = ["DEFAULT_PICKLE_LIMITS", "PickleBudget", "PickleLimitError", "PickleLimits", "UnsafePickleError"]

#: Bytes charged per unpickling operation: an upper estimate of one object's
#: overhead plus the references that containers hold to it.
OP_BYTES = 128
#: Longest decimal text accepted for an ``INT``/``LONG``/``PUT``/``GET`` opcode
#: (CPython's own ``int`` limit; decimal parsing is quadratic beyond it).
MAX_INT_DIGITS = 4300
#: Dict keys and set items must be atoms: ``str``/``bytes`` (randomised hash,
#: cached), ``bool``, ``None`` or an ``int`` below this magnitude (distinct
#: such ints have distinct hashes, so crafted hash collisions are impossible).
MAX_KEY_INT = 2**60


class PickleLimitError(FileFormatError):
    """A pickle asks for more memory, objects, nesting or time than the unpickler allows."""


class UnsafePickleError(FileFormatError):
    """A pickle names a global, or asks for an operation, that the restricted unpickler does not allow."""


@dataclass(frozen=True)
class PickleLimits:
    """Upper bounds for one :func:`~hoimask.hand._unpickle.restricted_load` call.

    The defaults leave ample room for the official MANO files (3.5 MB, about
    500 pickle operations, nesting depth 5, ~7 MB of arrays) and HO3D's
    ``meta/*.pkl`` (a few kB), and refuse any file within about a second.

    Args:
        max_file_bytes: size of the pickle itself.
        max_memory_bytes: memory the unpickler may allocate: the file, a fixed
            charge per operation and every array, string or container built;
            also the data held by the result when expanded as a tree.
        max_objects: unpickling operations (each creates at most one object),
            and nodes of the result expanded as a tree.
        max_depth: nesting of ``MARK`` frames and of the result.
        max_seconds: wall-clock time of loading and checking.
    """

    max_file_bytes: int = 64 * 2**20
    max_memory_bytes: int = 256 * 2**20
    max_objects: int = 250_000
    max_depth: int = 64
    max_seconds: float = 10.0

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_memory_bytes", "max_objects", "max_depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueRangeError(f"PickleLimits(): argument '{name}' expected an int >= 1, got {value!r}")
        seconds = self.max_seconds
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds < math.inf:
            raise ValueRangeError(f"PickleLimits(): argument 'max_seconds' expected a finite number > 0, got {seconds!r}")


DEFAULT_PICKLE_LIMITS = PickleLimits()


class PickleBudget:
    """Running totals of one load, checked against :class:`PickleLimits` on every charge.

    Args:
        limits: the bounds.
    """

    def __init__(self, limits: PickleLimits) -> None:
        self.limits = limits
        self.memory = 0
        self.operations = 0
        self.deadline = time.monotonic() + limits.max_seconds

    def memory_left(self) -> int:
        """Bytes that may still be allocated."""
        return self.limits.max_memory_bytes - self.memory

    def charge(self, nbytes: int, what: str) -> None:
        """Account for ``nbytes`` about to be allocated for ``what``; refuse past the limit."""
        if nbytes > self.memory_left():
            raise PickleLimitError(
                f"pickle refused: {what} needs {nbytes} bytes, more than the {self.memory_left()} left of "
                f"max_memory_bytes={self.limits.max_memory_bytes}"
            )
        self.memory += nbytes

    def operation(self) -> None:
        """Account for one unpickling operation (object count, memory; time every 256 operations).

        Every operation does work bounded by the memory it is charged for, so
        checking the clock every 256 operations still bounds the time.
        """
        self.operations += 1
        self.memory += OP_BYTES
        if self.operations > self.limits.max_objects:
            raise PickleLimitError(
                f"pickle refused: more than max_objects={self.limits.max_objects} unpickling operations"
            )
        if self.memory > self.limits.max_memory_bytes:
            self.memory -= OP_BYTES
            self.charge(OP_BYTES, "an unpickling operation")
        if not self.operations & 255:
            self.check_time()

    def check_time(self) -> None:
        """Refuse once ``max_seconds`` have passed since the budget was created."""
        if time.monotonic() > self.deadline:
            raise PickleLimitError(f"pickle refused: loading took longer than max_seconds={self.limits.max_seconds}")

    def check_depth(self, depth: int, what: str) -> None:
        """Refuse a nesting ``depth`` beyond ``max_depth``."""
        if depth > self.limits.max_depth:
            raise PickleLimitError(f"pickle refused: {what} nested deeper than max_depth={self.limits.max_depth}")
