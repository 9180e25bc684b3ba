"""MultiMAE's multi-modal masking: Dirichlet allocation of the visible tokens across modalities.

MultiMAE (Bachmann et al. 2022, cited by MaskHOI as [21]) encodes a fixed
number ``L`` of visible tokens taken from several modalities (RGB, depth,
segmentation, ...). Per sample it draws modality proportions
``p ~ Dirichlet(alpha)`` and keeps about ``p_m * L`` random tokens of modality
``m``. Here the allocation is exact: the counts are rounded by largest
remainder so that they sum to ``L``, and a modality never gets more tokens than
it has (the excess goes to the others). MultiMAE's reference code rounds each
count independently and then truncates or pads the visible set silently.

Tokens are laid out modality-major: token ``m * N + n`` is patch ``n`` of
modality ``m``, with ``N = gh * gw`` patches per modality.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hoimask._checks import (
    DTypeError,
    ShapeError,
    ValueRangeError,
    check_finite,
    check_in_range,
    check_int,
    check_shape,
)
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
from hoimask.masking.regions import _select_in_regions

__all__ = ["sample_dirichlet", "allocate_tokens", "MultiModalMasker"]


def _sample_gamma(alpha: torch.Tensor, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Gamma(alpha, 1) samples of ``alpha``'s shape (Marsaglia-Tsang; the boost trick for alpha < 1)."""
    a = alpha.to(torch.float64)
    boost = a < 1.0
    shape_param = torch.where(boost, a + 1.0, a)
    d = shape_param - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    out = torch.empty_like(a)
    todo = torch.ones_like(a, dtype=torch.bool)
    draw_device = generator.device if generator is not None else device
    while bool(todo.any()):  # rejection rounds (acceptance > 95%), vectorised over the batch
        x = torch.randn(a.shape, generator=generator, device=draw_device, dtype=torch.float64).to(device)
        u = uniform(a.shape, generator, device).to(torch.float64)
        v = (1.0 + c * x) ** 3
        ok = (v > 0) & (torch.log(u.clamp_min(1e-300)) < 0.5 * x * x + d - d * v + d * torch.log(v.clamp_min(1e-300)))
        accept = todo & ok
        out = torch.where(accept, d * v, out)
        todo = todo & ~ok
    u = uniform(a.shape, generator, device).to(torch.float64).clamp_min(1e-300)
    return torch.where(boost, out * u ** (1.0 / a), out)


def sample_dirichlet(
    alpha: Sequence[float] | torch.Tensor,
    batch_size: int,
    *,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw ``batch_size`` proportion vectors from ``Dirichlet(alpha)`` using ``generator``.

    (``torch.distributions.Dirichlet`` cannot take a generator.)

    Args:
        alpha: ``M`` positive concentrations.
        batch_size: ``B``.
        device: device of the result.
        generator: source of randomness; ``None`` uses torch's default generator.

    Returns:
        float64 proportions; each row sums to 1.

    Shape:
        alpha ``(M,)`` -> ``(B, M)``.
    """
    dev = resolve_device(device)
    a = torch.as_tensor(alpha, dtype=torch.float64, device=dev).reshape(1, -1)
    if not bool(torch.all(a > 0)) or not bool(torch.all(torch.isfinite(a))):
        raise ValueRangeError(f"sample_dirichlet(): argument 'alpha' must be positive and finite, got {a.tolist()}")
    gammas = _sample_gamma(a.expand(check_batch_size(batch_size), -1), generator, dev)  # (B, M)
    return gammas / gammas.sum(dim=1, keepdim=True)


def allocate_tokens(proportions: torch.Tensor, num_keep: int, capacity: Sequence[int]) -> torch.Tensor:
    """Integer visible-token counts per modality: sum exactly ``L``, at most each modality's tokens.

    Largest-remainder rounding of ``proportions * L``; any count above a
    modality's capacity is moved, in modality order, to modalities with room.

    Args:
        proportions: ``(B, M)`` finite, non-negative floating rows summing to 1
            (within ``1e-6 · M``; rows are renormalised before rounding).
        num_keep: ``L``, an int with ``0 <= L <= sum(capacity)``.
        capacity: ``M`` ints ``>= 0``, the token count of each modality.

    Returns:
        ``(B, M)`` int64 counts ``0 <= k_m <= capacity[m]``, each row summing to ``L``.

    Raises:
        ShapeError: ``proportions`` is not ``(B, M)`` or ``capacity`` has not ``M`` entries.
        DTypeError: non-floating proportions, a non-int count.
        ValueRangeError: a negative or non-finite proportion, a row not summing
            to 1, a negative capacity, ``num_keep`` outside ``[0, sum(capacity)]``;
            each message names the argument, the range and the value given.

    Shape:
        proportions ``(B, M)`` -> ``(B, M)``.

    Example:
        >>> allocate_tokens(torch.tensor([[0.5, 0.5], [0.9, 0.1]]), 5, [4, 4]).tolist()
        [[3, 2], [4, 1]]
    """
    fn = "allocate_tokens"
    check_shape(proportions, "B M", name="proportions", fn=fn)
    B, M = proportions.shape
    if isinstance(capacity, (str, bytes)) or not isinstance(capacity, Sequence):
        raise DTypeError(f"{fn}(): argument 'capacity' expected a sequence of {M} ints, got {type(capacity).__name__}")
    capacity = list(capacity)
    if len(capacity) != M:
        raise ShapeError(f"{fn}(): argument 'capacity' needs one count per modality (M={M}), got {len(capacity)}")
    for m, c in enumerate(capacity):
        check_int(c, name=f"capacity[{m}]", low=0, fn=fn)
    check_int(num_keep, name="num_keep", low=0, high=sum(capacity), fn=fn)
    if not proportions.is_floating_point():
        raise DTypeError(f"{fn}(): argument 'proportions' expected a floating tensor, got {proportions.dtype}")
    check_finite(proportions, name="proportions", fn=fn)
    negative = proportions < 0
    if bool(negative.any()):
        first = tuple(negative.nonzero()[0].tolist())
        raise ValueRangeError(
            f"{fn}(): argument 'proportions' expected values >= 0, got {proportions[first].item()!r} at index {first}"
        )
    sums = proportions.double().sum(dim=1)  # (B,)
    off = (sums - 1.0).abs() > 1e-6 * max(M, 1)
    if bool(off.any()):
        b = int(off.nonzero()[0])
        raise ValueRangeError(
            f"{fn}(): argument 'proportions' expected rows summing to 1, got row {b} summing to {float(sums[b])!r}"
        )
    return _allocate_tokens(proportions.double() / sums[:, None], num_keep, capacity)


def _allocate_tokens(proportions: torch.Tensor, num_keep: int, capacity: Sequence[int]) -> torch.Tensor:
    """Unchecked core of :func:`allocate_tokens`."""
    B, M = proportions.shape
    cap = torch.tensor(list(capacity), dtype=torch.int64, device=proportions.device).expand(B, M)
    raw = proportions * num_keep
    counts = raw.floor().to(torch.int64)  # (B, M)
    short = num_keep - counts.sum(dim=1, keepdim=True)  # (B, 1), in [0, M)
    frac_rank = torch.argsort(torch.argsort(raw - counts, dim=1, descending=True), dim=1)
    counts = counts + (frac_rank < short).to(torch.int64)
    excess = (counts - cap).clamp_min(0).sum(dim=1)  # (B,)
    counts = torch.minimum(counts, cap)
    for m in range(M):  # loop over modalities (few), not samples
        give = torch.minimum(excess, cap[:, m] - counts[:, m])
        counts[:, m] += give
        excess = excess - give
    return counts


class MultiModalMasker(Masker):
    """MultiMAE masking over ``num_modalities`` token grids with Dirichlet-allocated visible tokens.

    Args:
        num_modalities: ``M``, the number of modalities (each a ``gh x gw`` grid).
        mask_ratio: fraction of all ``M * N`` tokens masked (fixes ``L``), in ``[0, 1)``.
        alpha: Dirichlet concentration, one float for all modalities or ``M`` floats
            (MultiMAE uses 1.0).

    ``num_keep(num_patches)`` takes the *total* token count ``M * N``. The
    returned mask covers the modality-major sequence of ``M * N`` tokens;
    ``segmentation`` and ``joints_2d`` are not used.
    """

    def __init__(self, num_modalities: int = 2, mask_ratio: float = 0.75, alpha: float | Sequence[float] = 1.0) -> None:
        if isinstance(num_modalities, bool) or not isinstance(num_modalities, int) or num_modalities < 1:
            raise ValueRangeError(f"MultiModalMasker(): argument 'num_modalities' must be a positive int, got {num_modalities!r}")
        self.num_modalities = num_modalities
        self.mask_ratio = check_ratio(mask_ratio, "mask_ratio")
        values = [alpha] * num_modalities if isinstance(alpha, (int, float)) else list(alpha)
        if len(values) != num_modalities:
            raise DTypeError(f"MultiModalMasker(): argument 'alpha' needs {num_modalities} values, got {len(values)}")
        self.alpha = tuple(
            check_in_range(v, name="alpha", low=0.0, low_inclusive=False, high=1e6) for v in values
        )

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
        """Draw masks over the ``M * gh * gw`` tokens.

        Args:
            batch_size: ``B``.
            grid_size: ``(gh, gw)`` of every modality.
            segmentation: unused.
            joints_2d: unused.
            device: output device (default CPU).
            generator: source of randomness; ``None`` uses torch's default generator.

        Returns:
            :class:`MaskOutput` over ``M * N`` tokens with ``num_keep(M * N)`` kept per sample.

        Shape:
            mask ``(B, M * N)``, ids_keep ``(B, L)``, ids_restore ``(B, M * N)``.
        """
        B = check_batch_size(batch_size)
        gh, gw = check_grid(grid_size)
        dev = resolve_device(device, segmentation, joints_2d)
        M, N = self.num_modalities, gh * gw
        total = M * N
        num_keep = keep_count(total, self.mask_ratio)
        proportions = sample_dirichlet(self.alpha, B, device=dev, generator=generator)  # (B, M)
        keep_counts = _allocate_tokens(proportions, num_keep, [N] * M)  # (B, M)
        modality = torch.arange(M, device=dev).repeat_interleave(N).expand(B, total)  # (B, M * N)
        counts = torch.full((B, M), N, dtype=torch.int64, device=dev)
        noise = uniform((B, total), generator, dev)
        keep = _select_in_regions(modality, counts, keep_counts, noise)
        return _keep_to_output(keep, num_keep)
