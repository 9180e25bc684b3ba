"""Weighted sum of named loss terms: MaskHOI eq. (1), ``L = λ1 L2D + λ2 L3D + λ3 Lh + λ4 Lo``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import nn

from hoimask._checks import ValueRangeError, check_positive, check_shape

__all__ = ["LossOutput", "WeightedLoss", "weighted_sum", "MASKHOI_WEIGHTS"]

#: Default λ1..λ4 of eq. (1). The paper does not publish its values; see docs/losses.md.
MASKHOI_WEIGHTS: dict[str, float] = {"loss_2d": 1.0, "loss_3d": 1.0, "loss_hand": 1.0, "loss_object": 1.0}


class LossOutput(NamedTuple):
    """Total loss and every term (detached copies are the caller's choice)."""

    total: torch.Tensor  #: () weighted sum
    terms: dict[str, torch.Tensor]  #: name -> () unweighted term, only those present


def weighted_sum(terms: Mapping[str, torch.Tensor | None], weights: Mapping[str, float]) -> LossOutput:
    """Sum ``weights[name] * terms[name]`` over the terms that are present (not None).

    Args:
        terms: name -> scalar tensor, or None for a term that could not be
            computed (e.g. its target is absent from the batch).
        weights: name -> λ (>= 0). Every term must have a weight.

    Returns:
        :class:`LossOutput`; ``terms`` holds only the present terms, unweighted.

    Raises:
        ValueRangeError: a term without a weight, a negative weight, or no term
            present at all.

    Shape:
        scalars -> scalar.
    """
    unknown = sorted(set(terms) - set(weights))
    if unknown:
        raise ValueRangeError(f"weighted_sum(): argument 'terms' has names without a weight: {unknown}; known {sorted(weights)}")
    present = {k: v for k, v in terms.items() if v is not None}
    if not present:
        raise ValueRangeError(f"weighted_sum(): argument 'terms' has no present term (all of {sorted(terms)} are None)")
    total = None
    for name, value in present.items():
        check_shape(value, "", name=f"terms[{name!r}]")
        check_positive(weights[name], name=f"weights[{name!r}]", strict=False)
        part = weights[name] * value
        total = part if total is None else total + part
    return LossOutput(total, present)


class WeightedLoss(nn.Module):
    """Module holding the weights of :func:`weighted_sum`.

    Args:
        weights: name -> λ >= 0; defaults to :data:`MASKHOI_WEIGHTS` (eq. 1).

    Shape:
        dict of scalars -> :class:`LossOutput`.

    Example:
        >>> loss = WeightedLoss({"a": 1.0, "b": 0.5})
        >>> loss({"a": torch.tensor(2.0), "b": torch.tensor(2.0)}).total
        tensor(3.)
    """

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        super().__init__()
        weights = dict(MASKHOI_WEIGHTS if weights is None else weights)
        for name, value in weights.items():
            check_positive(value, name=f"weights[{name!r}]", strict=False)
        self.weights = weights

    def forward(self, terms: Mapping[str, torch.Tensor | None]) -> LossOutput:
        """See :func:`weighted_sum`."""
        return weighted_sum(terms, self.weights)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.weights.items())
