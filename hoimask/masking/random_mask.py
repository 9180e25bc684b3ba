"""MAE random masking, with HandMIM's per-batch ratio range."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hoimask._checks import DTypeError, ValueRangeError
from hoimask.masking._common import (
    Masker,
    check_batch_size,
    check_grid,
    check_ratio,
    keep_count,
    resolve_device,
    uniform,
)
from hoimask.masking.base import MaskOutput, _keep_to_output

__all__ = ["random_masking", "RandomMasker"]


def random_masking(
    batch_size: int,
    num_patches: int,
    num_keep: int,
    *,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> MaskOutput:
    """Uniformly random masks that keep exactly ``num_keep`` patches per sample (MAE).

    Args:
        batch_size: ``B``.
        num_patches: ``N``.
        num_keep: ``L``, ``0 <= L <= N``.
        device: device of the outputs (default CPU).
        generator: source of randomness; ``None`` uses torch's default generator.

    Returns:
        :class:`MaskOutput`; ``ids_keep`` lists the kept patches in grid order.

    Shape:
        mask ``(B, N)``, ids_keep ``(B, L)``, ids_restore ``(B, N)``.

    Example:
        >>> out = random_masking(2, 16, 4, generator=torch.Generator().manual_seed(0))
        >>> out.ids_keep.shape, int(out.mask.sum())
        (torch.Size([2, 4]), 24)
    """
    check_batch_size(batch_size)
    if isinstance(num_keep, bool) or not isinstance(num_keep, int) or not 0 <= num_keep <= num_patches:
        raise ValueRangeError(f"random_masking(): argument 'num_keep' must be an int in [0, {num_patches}], got {num_keep!r}")
    dev = resolve_device(device)
    noise = uniform((batch_size, num_patches), generator, dev)  # (B, N)
    # The L patches with the smallest noise are kept.
    keep = torch.zeros_like(noise, dtype=torch.bool)
    if num_keep:
        keep.scatter_(1, noise.topk(num_keep, dim=1, largest=False, sorted=False).indices, True)
    return _keep_to_output(keep, num_keep)


class RandomMasker(Masker):
    """MAE masking: every patch is equally likely to be masked.

    Args:
        mask_ratio: fraction of patches masked, in ``[0, 1)``; or a pair
            ``(lo, hi)`` with ``0 <= lo <= hi < 1`` from which one ratio is drawn
            uniformly per batch (HandMIM draws from ``[0.1, 0.5]``).

    With a fixed ratio, ``num_keep(N)`` is ``floor(N * (1 - mask_ratio))`` (at
    least 1). With a range, ``L`` changes from batch to batch (still the same for
    every sample of a batch); :meth:`num_keep` then needs the ratio explicitly.
    """

    def __init__(self, mask_ratio: float | Sequence[float] = 0.75) -> None:
        if isinstance(mask_ratio, (int, float)) and not isinstance(mask_ratio, bool):
            self.mask_ratio = check_ratio(mask_ratio, "mask_ratio")
            self.ratio_range: tuple[float, float] | None = None
        else:
            try:
                lo, hi = mask_ratio
            except (TypeError, ValueError):
                raise DTypeError(
                    f"RandomMasker(): argument 'mask_ratio' must be a float or a pair (lo, hi), got {mask_ratio!r}"
                ) from None
            lo, hi = check_ratio(lo, "mask_ratio[0]"), check_ratio(hi, "mask_ratio[1]")
            if lo > hi:
                raise ValueRangeError(f"RandomMasker(): argument 'mask_ratio' needs lo <= hi, got ({lo}, {hi})")
            self.mask_ratio = (lo + hi) / 2  # nominal value, for display
            self.ratio_range = (lo, hi)

    def num_keep(self, num_patches: int, mask_ratio: float | None = None) -> int:
        """``L`` on a grid of ``num_patches``.

        Args:
            num_patches: ``N``.
            mask_ratio: the ratio to use; required when the masker holds a range.

        Returns:
            ``L`` with ``1 <= L <= N``.
        """
        if mask_ratio is None:
            if self.ratio_range is not None:
                raise ValueRangeError(
                    "RandomMasker.num_keep(): this masker draws mask_ratio from "
                    f"{self.ratio_range} per batch, so L varies; pass mask_ratio explicitly"
                )
            mask_ratio = self.mask_ratio
        return keep_count(num_patches, check_ratio(mask_ratio, "mask_ratio"))

    def sample_mask_ratio(self, generator: torch.Generator | None = None) -> float:
        """The ratio for one batch: the fixed ratio, or a uniform draw from the range.

        Args:
            generator: source of randomness; ``None`` uses torch's default generator.

        Returns:
            A mask ratio in ``[0, 1)``.
        """
        if self.ratio_range is None:
            return self.mask_ratio
        lo, hi = self.ratio_range
        dev = generator.device if generator is not None else torch.device("cpu")
        u = float(torch.rand((), generator=generator, device=dev))
        return lo + (hi - lo) * u

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
        """Draw random masks; ``segmentation`` and ``joints_2d`` are accepted and ignored.

        Args:
            batch_size: ``B``.
            grid_size: ``(gh, gw)``.
            segmentation: unused (accepted for the common masker signature).
            joints_2d: unused.
            device: device of the outputs; defaults to the device of ``segmentation``
                or ``joints_2d`` when given, else CPU.
            generator: source of randomness; ``None`` uses torch's default generator.

        Returns:
            :class:`MaskOutput` with ``N = gh * gw``.

        Shape:
            mask ``(B, N)``, ids_keep ``(B, L)``, ids_restore ``(B, N)``.
        """
        gh, gw = check_grid(grid_size)
        dev = resolve_device(device, segmentation, joints_2d)
        ratio = self.sample_mask_ratio(generator)
        num = gh * gw
        return random_masking(batch_size, num, keep_count(num, ratio), device=dev, generator=generator)
