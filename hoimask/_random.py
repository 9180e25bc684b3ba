"""Seeds for per-index random draws, shared by the datasets and the engine (no dependency on either)."""

from __future__ import annotations

__all__ = ["index_seed"]


def index_seed(seed: int, index: int) -> int:
    """A well-mixed 63-bit seed for ``(seed, index)`` (SplitMix64 of their combination).

    ``torch.Generator.manual_seed`` on the CPU keeps only the low 32 bits of a
    seed, so ``seed * 2**32 + index`` would give every ``seed`` the same draws;
    the mixing spreads both numbers over all bits.

    Example:
        >>> index_seed(0, 1) != index_seed(1, 0) and index_seed(0, 1) == index_seed(0, 1)
        True
    """
    z = (int(seed) * 0x9E3779B97F4A7C15 + int(index) + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFF
