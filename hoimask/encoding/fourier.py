"""Fourier (NeRF) positional encoding of coordinates.

``γ(x) = [x, sin(π f_1 x), …, sin(π f_F x), cos(π f_1 x), …, cos(π f_F x)]``
applied to every input coordinate, with ``F = num_bands`` frequencies ``f_k``
spaced logarithmically (``2^0 … max_freq``, NeRF) or linearly (``1 … max_freq``).
The layout of the output is ``[input (optional), sin (D·F), cos (D·F)]`` where
the sin block is ordered dimension-major: ``sin(π f_1 x_1), …, sin(π f_F x_1),
sin(π f_1 x_2), …``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hoimask._checks import (
    ValueRangeError,
    check_choice,
    check_floating,
    check_in_range,
    check_shape,
)

__all__ = ["FourierEncoder", "fourier_encode", "fourier_frequencies"]


def fourier_frequencies(
    num_bands: int,
    max_freq: float | None = None,
    spacing: str = "log",
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The ``num_bands`` frequencies ``f_k`` (multiplied by π in the encoding).

    Args:
        num_bands: F >= 1.
        max_freq: highest frequency; default ``2**(num_bands - 1)`` (NeRF).
        spacing: ``"log"`` (geometric, NeRF) or ``"linear"``.

    Returns:
        ``(F,)`` tensor, ascending.
    """
    if isinstance(num_bands, bool) or not isinstance(num_bands, int) or num_bands < 1:
        raise ValueRangeError(f"fourier_frequencies(): argument 'num_bands' expected an int >= 1, got {num_bands!r}")
    check_choice(spacing, ("log", "linear"), name="spacing")
    top = float(2 ** (num_bands - 1)) if max_freq is None else check_in_range(max_freq, name="max_freq", low=1.0)
    if spacing == "log":
        return torch.logspace(0.0, math.log2(top), num_bands, base=2.0, dtype=dtype, device=device)
    return torch.linspace(1.0, top, num_bands, dtype=dtype, device=device)


def fourier_encode(x: torch.Tensor, freqs: torch.Tensor, *, include_input: bool = True) -> torch.Tensor:
    """Encode coordinates with the given frequencies.

    Args:
        x: ``(..., D)`` coordinates.
        freqs: ``(F,)`` frequencies (see :func:`fourier_frequencies`).
        include_input: prepend ``x`` itself.

    Returns:
        ``(..., D * (2F + include_input))``.

    Example:
        >>> fourier_encode(torch.zeros(2, 3), fourier_frequencies(4)).shape
        torch.Size([2, 27])
    """
    check_shape(x, "... D", name="x")
    check_floating(x, name="x")
    check_shape(freqs, "F", name="freqs")
    arg = math.pi * x.unsqueeze(-1) * freqs.to(x.dtype)  # (..., D, F)
    enc = [torch.sin(arg).flatten(-2), torch.cos(arg).flatten(-2)]
    if include_input:
        enc.insert(0, x)
    return torch.cat(enc, dim=-1)


class FourierEncoder(nn.Module):
    """Module form of :func:`fourier_encode` with fixed frequencies.

    Args:
        in_dim: D, number of input coordinates (3 for points).
        num_bands: F, number of frequencies.
        max_freq: highest frequency (default ``2**(F-1)``).
        spacing: ``"log"`` or ``"linear"``.
        include_input: prepend the raw input.

    Shape:
        ``(..., in_dim)`` -> ``(..., out_dim)`` with ``out_dim = in_dim * (2F + include_input)``.

    Example:
        >>> enc = FourierEncoder(3, num_bands=6)
        >>> enc(torch.rand(4, 100, 3)).shape[-1] == enc.out_dim == 39
        True
    """

    def __init__(
        self,
        in_dim: int = 3,
        num_bands: int = 8,
        max_freq: float | None = None,
        spacing: str = "log",
        include_input: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(in_dim, bool) or not isinstance(in_dim, int) or in_dim < 1:
            raise ValueRangeError(f"FourierEncoder(): argument 'in_dim' expected an int >= 1, got {in_dim!r}")
        self.in_dim = in_dim
        self.num_bands = int(num_bands)
        self.include_input = bool(include_input)
        self.spacing = spacing
        self.register_buffer(
            "freqs", fourier_frequencies(num_bands, max_freq, spacing, dtype=torch.float32), persistent=False
        )

    @property
    def out_dim(self) -> int:
        """Size of the encoding's last dimension."""
        return self.in_dim * (2 * self.num_bands + int(self.include_input))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, f"... {self.in_dim}", name="x")
        return fourier_encode(x, self.freqs, include_input=self.include_input)

    def extra_repr(self) -> str:
        return (f"in_dim={self.in_dim}, num_bands={self.num_bands}, spacing={self.spacing!r}, "
                f"include_input={self.include_input}")
