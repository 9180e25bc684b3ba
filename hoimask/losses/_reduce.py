"""Private helpers of the losses: a mean over the entries that count, and unannotated targets made harmless."""

from __future__ import annotations

import torch


def masked_mean(values: torch.Tensor, use: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``use`` (broadcast to ``values``); an exact 0, still in the graph, when nothing counts.

    Entries that do not count may hold anything, NaN included: they are
    replaced before the sum, so neither the value nor the gradient sees them.
    """
    use = use.expand_as(values)
    kept = torch.where(use, values, torch.zeros_like(values))
    return kept.sum() / use.sum().clamp(min=1).to(values.dtype)


def finite_rows(x: torch.Tensor) -> torch.Tensor:
    """``(B,)``: the samples of ``x (B, ...)`` whose values are all finite (NaN marks an unannotated target)."""
    return torch.isfinite(x).flatten(1).all(dim=1)


def zero_unknown(x: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """``x`` with the entries outside ``known`` (its leading dimensions) set to 0.

    A masked-out NaN target would still send NaN gradients (0 × NaN), so
    unannotated targets are replaced before any arithmetic (docs/conventions.md).
    """
    mask = known.reshape(known.shape + (1,) * (x.dim() - known.dim()))
    return torch.where(mask, x, torch.zeros_like(x))
