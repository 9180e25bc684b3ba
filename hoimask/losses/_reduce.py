"""Private helper of the losses: a mean over the entries that count."""

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
