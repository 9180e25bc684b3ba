"""Volume density from signed distances (HOISDF §3.2.2, after StyleSDF).

``sigma(d) = alpha^-1 * sigmoid(-d / alpha)``: close to ``1 / alpha`` inside,
``1 / (2 alpha)`` on the surface, decaying to 0 outside; ``alpha`` sets how
tightly the density hugs the surface. HOISDF multiplies the pixel-aligned
image feature of a query point by ``sigma`` of its predicted SDF.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import ValueRangeError, check_floating, check_positive, compiling

__all__ = ["volume_density", "VolumeDensity"]


def volume_density(d: Tensor, alpha: Tensor | float) -> Tensor:
    """Volume density ``sigmoid(-d / alpha) / alpha``.

    Args:
        d: signed distances (negative inside).
        alpha: tightness, > 0, in the units of ``d`` (tensor broadcast against ``d``).

    Returns:
        Densities in ``(0, 1 / alpha)``.

    Shape:
        - d: ``(...)``; alpha: ``()`` or broadcastable; output: broadcast shape

    Example:
        >>> volume_density(torch.tensor([0.0]), 0.5)
        tensor([1.])
    """
    check_floating(d, name="d", fn="volume_density")
    if isinstance(alpha, Tensor):
        if not compiling() and bool((alpha <= 0).any()):  # a value check: skipped while torch.compile traces
            raise ValueRangeError(f"volume_density(): argument 'alpha' expected values > 0, got min {float(alpha.min())}")
        a = alpha.to(d.dtype)
    else:
        a = check_positive(alpha, name="alpha", fn="volume_density")
    return torch.sigmoid(-d / a) / a


class VolumeDensity(nn.Module):
    """Learnable volume density ``sigma(d) = alpha^-1 sigmoid(-d / alpha)`` with a floor on alpha.

    ``alpha = alpha_min + softplus(raw)`` so that it stays above ``alpha_min``
    during training without clamping (gradients never vanish at the floor).

    Args:
        alpha_init: initial ``alpha`` (> alpha_min); 0.1 as in StyleSDF. With
            SDFs in metres on hand-sized objects, values around 0.01 give a
            sharper density.
        alpha_min: lower bound of ``alpha``, >= 0.
        learnable: whether ``alpha`` is a trained parameter.
        device: device of the parameter.
        dtype: dtype of the parameter.

    Shape:
        - input: ``(...)``; output: ``(...)``

    Example:
        >>> m = VolumeDensity(alpha_init=0.5)
        >>> torch.allclose(m(torch.zeros(2)), torch.full((2,), 1.0))
        True
    """

    def __init__(
        self,
        alpha_init: float = 0.1,
        alpha_min: float = 1e-4,
        *,
        learnable: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.alpha_min = check_positive(alpha_min, name="alpha_min", strict=False)
        check_positive(alpha_init, name="alpha_init")
        if not alpha_init > alpha_min:
            raise ValueRangeError(
                f"VolumeDensity.__init__(): argument 'alpha_init' expected > alpha_min={alpha_min}, got {alpha_init}"
            )
        excess = alpha_init - alpha_min
        raw = excess + math.log(-math.expm1(-excess))  # inverse softplus
        value = torch.tensor(raw, device=device, dtype=dtype or torch.get_default_dtype())
        if learnable:
            self.raw_alpha = nn.Parameter(value)
        else:
            self.register_buffer("raw_alpha", value, persistent=True)

    @property
    def alpha(self) -> Tensor:
        """Current ``alpha`` (always > ``alpha_min``)."""
        return self.alpha_min + F.softplus(self.raw_alpha)

    def forward(self, d: Tensor) -> Tensor:
        """Density of signed distances ``d`` (see :func:`volume_density`)."""
        return volume_density(d, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={float(self.alpha.detach()):.4g}, alpha_min={self.alpha_min:g}"
