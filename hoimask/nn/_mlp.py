"""Private helper: the plain ReLU perceptrons HOISDF uses for its point-side read-outs."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def relu_mlp(
    widths: Sequence[int],
    *,
    relu_last: bool = False,
    device=None,
    dtype=None,
) -> nn.Sequential:
    """``Linear -> ReLU -> ... -> Linear`` through ``widths`` (input first, output last).

    ``relu_last`` also puts a ReLU after the last layer (HOISDF's
    ``is_activation_last``, used for the feature MLPs whose output is scaled
    by a density).
    """
    layers: list[nn.Module] = []
    for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(w_in, w_out, device=device, dtype=dtype))
        if i < len(widths) - 2 or relu_last:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)
