"""Private helpers shared by the maskers: argument checks, devices, noise, the Masker base."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch

from hoimask._checks import (
    DTypeError,
    ValueRangeError,
    check_finite,
    check_in_range,
    check_int,
    check_shape,
)
from hoimask.masking.base import MaskOutput

__all__ = [
    "Masker",
    "check_ratio",
    "check_grid",
    "check_counts",
    "check_labels",
    "resolve_device",
    "uniform",
    "blob_scores",
    "keep_count",
]

#: Region labels of the segmentation maps (background, hand, object).
BACKGROUND, HAND, OBJECT = 0, 1, 2
NUM_REGIONS = 3


def check_ratio(value: float, name: str) -> float:
    """A mask ratio must lie in ``[0, 1)`` (1 would leave nothing for the encoder)."""
    return check_in_range(value, name=name, low=0.0, high=1.0, high_inclusive=False)


def check_batch_size(batch_size: int) -> int:
    return check_int(batch_size, name="batch_size", low=1)


def check_grid(grid_size: Sequence[int]) -> tuple[int, int]:
    """``grid_size`` must be a pair of positive ints ``(gh, gw)``."""
    try:
        gh, gw = grid_size
    except (TypeError, ValueError):
        raise DTypeError(f"argument 'grid_size': expected a pair of ints (gh, gw), got {grid_size!r}") from None
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (gh, gw)):
        raise DTypeError(f"argument 'grid_size': expected a pair of ints (gh, gw), got {grid_size!r}")
    if gh < 1 or gw < 1:
        raise ValueRangeError(f"argument 'grid_size': expected positive sizes, got {grid_size!r}")
    return int(gh), int(gw)


_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def check_counts(x: torch.Tensor, spec: str, *, name: str, fn: str, dims: dict[str, int] | None = None
                 ) -> dict[str, int]:
    """``x`` must be a tensor of whole, non-negative counts of shape ``spec``.

    Integer tensors are accepted as they are; floating tensors must hold finite
    whole numbers (a NaN, an infinity or ``2.5`` is refused, never rounded).

    Returns:
        The bound dimension sizes (``dims`` if given).

    Raises:
        ShapeError: wrong shape.
        DTypeError: not a real tensor (bool, complex).
        ValueRangeError: a negative, non-finite or fractional count (the message
            gives the first offending index and its value).
    """
    out = check_shape(x, spec, name=name, dims=dims, fn=fn)
    if x.is_floating_point():
        check_finite(x, name=name, fn=fn)
        frac = x != x.round()
        if bool(frac.any()):
            first = tuple(frac.nonzero()[0].tolist())
            raise ValueRangeError(
                f"{fn}(): argument '{name}' expected whole-number counts, got {float(x[first])!r} at index {first}"
            )
    elif x.dtype not in _INTEGER_DTYPES:
        raise DTypeError(f"{fn}(): argument '{name}' expected an integer (or whole-number float) tensor, got {x.dtype}")
    negative = x < 0
    if x.numel() and bool(negative.any()):
        first = tuple(negative.nonzero()[0].tolist())
        raise ValueRangeError(
            f"{fn}(): argument '{name}' expected counts >= 0, got {x[first].item()!r} at index {first}"
        )
    return out


def check_labels(labels: torch.Tensor, num_labels: int, *, name: str, fn: str,
                 dims: dict[str, int] | None = None) -> dict[str, int]:
    """``labels`` must be a ``(B, N)`` integer tensor with values in ``[0, num_labels)``.

    Returns:
        The bound sizes ``{"B", "N"}`` (``dims`` if given).
    """
    out = check_shape(labels, "B N", name=name, dims=dims, fn=fn)
    if labels.dtype not in _INTEGER_DTYPES:
        raise DTypeError(f"{fn}(): argument '{name}' expected an integer label tensor, got {labels.dtype}")
    if labels.numel():
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_labels:
            raise ValueRangeError(
                f"{fn}(): argument '{name}' expected labels in [0, {num_labels - 1}], got values in [{lo}, {hi}]"
            )
    return out


def resolve_device(device: torch.device | str | None, *tensors: torch.Tensor | None) -> torch.device:
    """``device`` if given, else the device of the first tensor given, else CPU."""
    if device is not None:
        return torch.device(device)
    for t in tensors:
        if t is not None:
            return t.device
    return torch.device("cpu")


def uniform(shape: Sequence[int], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """``U[0, 1)`` float32 noise drawn from ``generator`` (on its device), returned on ``device``.

    Drawing on the generator's own device makes the same seed give the same
    masks whatever ``device`` the masks are wanted on.
    """
    draw_device = generator.device if generator is not None else device
    return torch.rand(tuple(shape), generator=generator, device=draw_device).to(device)


def blob_scores(noise: torch.Tensor, region: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Scores in ``[0, 2)`` that fall with the grid distance to a seed patch of ``region`` (a blob).

    The seed of each row is the ``region`` patch with the largest noise (any patch
    when the row's region is empty); higher score = nearer the seed, with a little
    noise to break ties.

    Args:
        noise: ``(B, N)`` ``U[0, 1)`` noise.
        region: ``(B, N)`` bool, where the seed may lie.
        grid: ``(gh, gw)`` with ``gh * gw = N``.

    Returns:
        ``(B, N)`` scores, dtype of ``noise``.
    """
    gh, gw = grid
    N = noise.shape[1]
    seed = (noise + 2.0 * region.to(noise.dtype)).argmax(dim=1)  # (B,)
    rows = torch.arange(N, device=noise.device) // gw
    cols = torch.arange(N, device=noise.device) % gw
    dist = torch.hypot((rows - (seed // gw).unsqueeze(1)).float(), (cols - (seed % gw).unsqueeze(1)).float())
    diag = float((gh * gh + gw * gw) ** 0.5) + 1.0
    return (1.0 - dist / diag) * 1.98 + 0.01 * noise  # (B, N)


def keep_count(num_patches: int, mask_ratio: float) -> int:
    """``L = floor(N * (1 - mask_ratio))`` as in MAE, but at least one token.

    Args:
        num_patches: ``N``.
        mask_ratio: fraction masked, in ``[0, 1)``.

    Returns:
        ``L`` with ``1 <= L <= N``.
    """
    if isinstance(num_patches, bool) or not isinstance(num_patches, int) or num_patches < 1:
        raise ValueRangeError(f"argument 'num_patches': expected a positive int, got {num_patches!r}")
    return max(1, min(num_patches, math.floor(num_patches * (1.0 - mask_ratio) + 1e-9)))


class Masker(ABC):
    """Base class of the maskers: a callable holding configuration, no state that changes results.

    Subclasses implement :meth:`__call__` with the common signature
    ``(batch_size, grid_size, *, segmentation=None, joints_2d=None, device=None,
    generator=None) -> MaskOutput`` and :meth:`num_keep`.
    """

    mask_ratio: float

    def num_keep(self, num_patches: int) -> int:
        """``L``, the number of visible tokens every sample keeps on a grid of ``num_patches``.

        Args:
            num_patches: ``N = gh * gw``.

        Returns:
            ``L`` with ``1 <= L <= N``.
        """
        return keep_count(num_patches, self.mask_ratio)

    @abstractmethod
    def __call__(
        self,
        batch_size: int,
        grid_size: tuple[int, int],
        *,
        segmentation: torch.Tensor | None = None,
        joints_2d: torch.Tensor | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> MaskOutput:
        """Draw masks for a batch (see the subclass for what it needs)."""

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"
