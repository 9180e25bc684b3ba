"""Patch labels from segmentation maps, region budgets, and the vectorised region selection.

These are the building blocks of every segmentation-aware masker:

1. :func:`patch_labels` turns a ``(B, H, W)`` pixel segmentation (0 background,
   1 hand, 2 object) into a ``(B, N)`` patch label.
2. :func:`region_keep_counts` decides how many patches of each region each
   sample keeps, so that the total is exactly ``L`` (RMRA budgets).
3. :func:`select_in_regions` keeps, within each region, the patches with the
   lowest score — one ``argsort`` for the whole batch, no Python loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hoimask._checks import (
    DTypeError,
    ShapeError,
    ValueRangeError,
    check_choice,
    check_finite,
    check_int,
    check_shape,
)
from hoimask._numba import numba_enabled
from hoimask.masking._common import (
    BACKGROUND,
    HAND,
    NUM_REGIONS,
    OBJECT,
    check_counts,
    check_grid,
    check_labels,
    check_ratio,
)

__all__ = ["LABEL_RULES", "patch_labels", "region_counts", "region_keep_counts", "select_in_regions"]

#: How a patch's label is decided from its pixels.
LABEL_RULES = ("any", "majority")

_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def check_segmentation(
    segmentation: torch.Tensor,
    grid_size: Sequence[int],
    batch_size: int | None = None,
    *,
    check_values: bool = True,
) -> tuple[int, int]:
    """Validate a segmentation map against the grid and return the patch size ``(ph, pw)``.

    Args:
        segmentation: ``(B, H, W)`` integer labels, or a bool hand mask (``True`` = hand,
            ``False`` = background; no object).
        grid_size: ``(gh, gw)``.
        batch_size: expected ``B``, if known.
        check_values: also check that every label is 0, 1 or 2 (one pass over the map).

    Returns:
        ``(H // gh, W // gw)``.

    Raises:
        ShapeError: wrong rank, batch size, or ``H``/``W`` not divisible by the grid.
        DTypeError: not an integer tensor.
        ValueRangeError: a label outside ``{0, 1, 2}``.
    """
    dims = {"B": batch_size} if batch_size is not None else None
    check_shape(segmentation, "B H W", name="segmentation", dims=dims)
    if segmentation.dtype not in _INTEGER_DTYPES and segmentation.dtype != torch.bool:
        raise DTypeError(
            "argument 'segmentation': expected an integer label map (uint8 or int) or a bool hand mask, "
            f"got dtype {segmentation.dtype}"
        )
    gh, gw = check_grid(grid_size)
    _, H, W = segmentation.shape
    if H == 0 or W == 0:
        raise ShapeError(f"argument 'segmentation': expected a non-empty image, got size (H={H}, W={W})")
    if H % gh or W % gw:
        raise ShapeError(
            f"argument 'segmentation': image size (H={H}, W={W}) must be an exact multiple of "
            f"grid_size ({gh}, {gw}), got remainders ({H % gh}, {W % gw})"
        )
    if check_values and segmentation.dtype != torch.bool:  # a bool mask holds only 0 and 1
        _check_label_values(segmentation)
    return H // gh, W // gw


def _check_label_values(segmentation: torch.Tensor) -> None:
    """Raise :class:`ValueRangeError` unless every label is 0, 1 or 2."""
    if not segmentation.numel():
        return
    if segmentation.dtype == torch.uint8:  # unsigned: one max is enough
        lo, hi = 0, segmentation.max()
    else:
        lo, hi = torch.aminmax(segmentation)
    if int(lo) < 0 or int(hi) > 2:
        raise ValueRangeError(
            "argument 'segmentation': expected labels in {0 background, 1 hand, 2 object}, "
            f"got values in [{int(lo)}, {int(hi)}]"
        )


def segmentation_labels(
    segmentation: torch.Tensor, grid_size: Sequence[int], rule: str, batch_size: int | None = None
) -> torch.Tensor:
    """Validated patch labels ``(B, N)``: the checks of :func:`check_segmentation` plus the labelling.

    The ``any`` rule on a CPU map, with numba enabled (:func:`hoimask._numba.numba_enabled`),
    labels and checks the values in one pass (``_labels_kernel.py``); otherwise one
    ``max`` checks the values and torch ops label. (Folding the value check into
    the torch labelling pass was tried: re-reading the patches that could hide a 3
    cost more than one ``max`` over the map.)
    """
    grid = check_grid(grid_size)
    one_pass = rule == "any" and segmentation.device.type == "cpu" and numba_enabled()
    patch = check_segmentation(segmentation, grid, batch_size, check_values=not one_pass)
    if not one_pass:
        return _patch_labels(segmentation, grid, patch, rule)
    labels, bad = _labels_any_numba(segmentation, grid, patch)
    if bad:
        _check_label_values(segmentation)  # raises, naming the range of values found
    return labels


def _labels_any_numba(
    seg: torch.Tensor, grid: tuple[int, int], patch: tuple[int, int]
) -> tuple[torch.Tensor, bool]:
    """``(labels (B, N) int64, whether a value lies outside {0, 1, 2})`` by the numba kernels, in one pass.

    A byte map (uint8, or bool read as bytes) whose patch width is a multiple of 8
    (and whose storage offset is, as reading it as words needs) is read eight
    pixels per 64-bit word; any other integer map pixel by pixel.
    """
    from hoimask.masking import _labels_kernel as k

    B = seg.shape[0]
    gh, gw = grid
    seg = (seg.view(torch.uint8) if seg.dtype == torch.bool else seg).contiguous()
    out = torch.empty(B, gh * gw, dtype=torch.int64)
    if seg.dtype == torch.uint8 and patch[1] % 8 == 0 and seg.storage_offset() % 8 == 0:  # (after .contiguous())
        data, kernel = seg.view(torch.int64).numpy(), k.any_labels_words
    else:
        data, kernel = seg.numpy(), k.any_labels_pixels
    # One thread: the pass is bound by memory; two threads gave no gain on a 2-core machine (int64 maps at B = 256,
    # 224 px: 6.0 ms median on one, 7.3 ms on two; docs/benchmarks/masking.md).
    bad = kernel(0, B, data, gh, gw, out.numpy())
    return out, bool(bad)


def _or_reduce(words: torch.Tensor, dim: int) -> torch.Tensor:
    """Bitwise OR over one dimension by halving (OR-ing the odd leftover everywhere is harmless)."""
    owned = False  # after the first fold we own the buffer and can fold in place
    while words.shape[dim] > 1:
        n = words.shape[dim]
        half = n // 2
        low, high = words.narrow(dim, 0, half), words.narrow(dim, half, half)
        folded = low.bitwise_or_(high) if owned else low | high
        if n % 2:
            folded.bitwise_or_(words.narrow(dim, 2 * half, 1))
        words, owned = folded, True
    return words.squeeze(dim)


def _labels_any_bits(seg: torch.Tensor, grid: tuple[int, int], patch: tuple[int, int]) -> torch.Tensor:
    """Fast path of the ``any`` rule: OR the label bytes of a patch, eight pixels per int64 word.

    With labels in {0, 1, 2}, bit 0 of a byte means hand and bit 1 object.
    """
    B = seg.shape[0]
    gh, gw = grid
    ph, pw = patch
    words = seg.contiguous().view(torch.int64)  # (B, H, W / 8)
    words = words.reshape(B, gh, ph, gw, pw // 8)
    words = _or_reduce(words, 2)  # (B, gh, gw, pw / 8)
    words = _or_reduce(words, 3)  # (B, gh, gw)
    words = words | (words >> 32)
    words = words | (words >> 16)
    words = words | (words >> 8)  # every byte lane OR-ed into the lowest byte
    hand = (words & 1).bool()
    obj = (words & 2).bool()
    return _combine_any(hand, obj).reshape(B, gh * gw)


def _combine_any(hand: torch.Tensor, obj: torch.Tensor) -> torch.Tensor:
    labels = torch.full(hand.shape, BACKGROUND, dtype=torch.int64, device=hand.device)
    labels = labels.masked_fill(obj, OBJECT)
    return labels.masked_fill(hand, HAND)


def patch_labels(
    segmentation: torch.Tensor, grid_size: Sequence[int], *, rule: str = "any"
) -> torch.Tensor:
    """Label every patch background (0), hand (1) or object (2).

    Rules:

    * ``"any"`` (default): hand if any pixel of the patch is hand, else object if
      any pixel is object, else background. Thin fingers then stay hand patches,
      which the skeleton guidance needs, and the hand's area errs on the large side
      (protected by its lower mask ratio).
    * ``"majority"``: the most frequent label; ties go to hand, then object,
      then background.

    Args:
        segmentation: integer label map, values in ``{0, 1, 2}`` (or a bool hand mask); patch size is
            ``(H // gh, W // gw)`` and must divide ``H`` and ``W`` exactly.
        grid_size: ``(gh, gw)``.
        rule: ``"any"`` or ``"majority"``.

    Returns:
        int64 labels, row-major over the grid, on the segmentation's device.

    Shape:
        segmentation ``(B, H, W)`` -> ``(B, gh * gw)``.

    Example:
        >>> import torch
        >>> seg = torch.zeros(1, 4, 4, dtype=torch.uint8)
        >>> seg[0, 0, 3] = 1; seg[0, 3, 0] = 2
        >>> patch_labels(seg, (2, 2)).tolist()
        [[0, 1, 2, 0]]
    """
    check_choice(rule, LABEL_RULES, name="rule")
    return segmentation_labels(segmentation, grid_size, rule)


def _patch_labels(seg: torch.Tensor, grid: tuple[int, int], patch: tuple[int, int], rule: str) -> torch.Tensor:
    """Unchecked core of :func:`patch_labels`."""
    B = seg.shape[0]
    gh, gw = grid
    ph, pw = patch
    # no-op for uint8, a free reinterpretation of a bool hand mask (1 = hand); values were checked to be 0, 1, 2
    seg = seg.view(torch.uint8) if seg.dtype == torch.bool else seg.to(torch.uint8)
    if ph == 1 and pw == 1:
        return seg.reshape(B, gh * gw).long()
    if rule == "any" and pw % 8 == 0 and (not seg.is_contiguous() or seg.storage_offset() % 8 == 0):
        return _labels_any_bits(seg, grid, patch)  # (a copy starts at offset 0; a view at an odd offset: below)
    blocks = seg.reshape(B, gh, ph, gw, pw)
    hand = (blocks == HAND).sum(dim=(2, 4))  # (B, gh, gw)
    obj = (blocks == OBJECT).sum(dim=(2, 4))
    if rule == "any":
        return _combine_any(hand > 0, obj > 0).reshape(B, gh * gw)
    background = ph * pw - hand - obj
    # Majority with ties broken hand > object > background: compare (count, priority) pairs.
    score = torch.stack([background * 3, hand * 3 + 2, obj * 3 + 1], dim=-1)  # (B, gh, gw, 3)
    return score.argmax(dim=-1).reshape(B, gh * gw)


def region_counts(labels: torch.Tensor) -> torch.Tensor:
    """Number of patches of each region per sample.

    Args:
        labels: int64 patch labels in ``{0, 1, 2}``.

    Returns:
        int64 counts ``[background, hand, object]``.

    Shape:
        labels ``(B, N)`` -> ``(B, 3)``.
    """
    B = check_shape(labels, "B N", name="labels")["B"]
    counts = torch.zeros(B, NUM_REGIONS, dtype=torch.int64, device=labels.device)
    return counts.scatter_add_(1, labels, torch.ones_like(labels))


def region_keep_counts(
    counts: torch.Tensor, num_keep: int, *, background_ratio: float, hand_ratio: float, object_ratio: float
) -> torch.Tensor:
    """RMRA budgets: how many patches of each region to keep so that exactly ``L`` are kept.

    Reconciliation rule (the paper gives none). The hand is protected: it keeps
    ``round(n_hand * (1 - hand_ratio))`` patches whenever possible. The rest of
    the budget, ``R = L - k_hand``, is shared by background and object so that
    both move away from their target ratios by the *same* amount per patch
    (their ordering, object masked more, is kept). When one of them has too few
    patches the other absorbs the excess; only when background and object
    together cannot absorb it (a hand-dominated image) does the hand's kept
    count change.

    Args:
        counts: ``(B, 3)`` patches per region ``[background, hand, object]``:
            whole numbers ``>= 0``, at least one patch per row.
        num_keep: ``L``, an int with ``0 <= L <= N`` for every row
            (``N = counts.sum(1)``).
        background_ratio: target mask ratio of background patches, in ``[0, 1)``.
        hand_ratio: target mask ratio of hand patches, in ``[0, 1)``.
        object_ratio: target mask ratio of object patches, in ``[0, 1)``.

    Returns:
        int64 keep counts ``(B, 3)``; each row sums to ``L`` and ``0 <= k_r <= n_r``.

    Raises:
        ShapeError: ``counts`` is not ``(B, 3)``.
        DTypeError: ``num_keep`` is not an int, ``counts`` not a real tensor.
        ValueRangeError: a negative, non-finite or fractional count, a row
            without patches, ``num_keep`` outside ``[0, N]``, a ratio outside
            ``[0, 1)`` or NaN; each message names the argument, the range and
            the value given.

    Shape:
        counts ``(B, 3)`` -> ``(B, 3)``.

    Example:
        >>> region_keep_counts(torch.tensor([[100, 50, 46]]), 49, background_ratio=0.75,
        ...                    hand_ratio=0.5, object_ratio=0.9).tolist()
        [[21, 25, 3]]
    """
    fn = "region_keep_counts"
    check_counts(counts, "B 3", name="counts", fn=fn)
    check_int(num_keep, name="num_keep", low=0, fn=fn)
    if counts.numel():
        totals = counts.sum(dim=1)  # (B,)
        row = int(totals.argmin())
        if int(totals[row]) < max(1, num_keep):
            raise ValueRangeError(
                f"{fn}(): argument 'num_keep' expected an int in [0, N] with N = counts.sum(1) >= 1 for every "
                f"row, got num_keep={num_keep} and N={int(totals[row])} at row {row}"
            )
    background_ratio = check_ratio(background_ratio, "background_ratio")
    hand_ratio = check_ratio(hand_ratio, "hand_ratio")
    object_ratio = check_ratio(object_ratio, "object_ratio")
    return _region_keep_counts(counts, num_keep, (background_ratio, hand_ratio, object_ratio))


def _region_keep_counts(counts: torch.Tensor, num_keep: int, ratios: tuple[float, float, float]) -> torch.Tensor:
    """Unchecked core of :func:`region_keep_counts` (the maskers pass valid counts)."""
    background_ratio, hand_ratio, object_ratio = ratios
    n = counts.to(torch.float64)
    n_bg, n_hand, n_obj = n.unbind(-1)
    total = float(num_keep)
    k_hand = torch.round(n_hand * (1.0 - hand_ratio))
    rest = total - k_hand
    want_bg = n_bg * (1.0 - background_ratio)
    want_obj = n_obj * (1.0 - object_ratio)
    flexible = (n_bg + n_obj).clamp_min(1.0)
    target_bg = want_bg + (rest - want_bg - want_obj) * n_bg / flexible
    k_bg = torch.minimum(torch.round(target_bg).clamp_min(0.0), n_bg)
    k_obj = torch.minimum((rest - k_bg).clamp_min(0.0), n_obj)
    k_bg = torch.minimum((rest - k_obj).clamp_min(0.0), n_bg)
    k_hand = total - k_bg - k_obj
    return torch.stack([k_bg, k_hand, k_obj], dim=-1).round().to(torch.int64)


def select_in_regions(
    labels: torch.Tensor, counts: torch.Tensor, keep_counts: torch.Tensor, scores: torch.Tensor
) -> torch.Tensor:
    """Keep, in every region of every sample, the ``keep_counts`` patches with the lowest score.

    One sort of the integer key ``(row, label, score quantised to 2^-22)``
    groups the patches by region and orders them by score; a patch is kept when
    its rank within its region is below the region's budget. (A single 1D sort
    of int64 keys is about 20% faster on CPU than a row-wise float ``argsort``.)

    Args:
        labels: ``(B, N)`` integer region of each patch, in ``[0, R)``.
        counts: ``(B, R)`` patches per region; must equal the histogram of
            ``labels`` (:func:`region_counts` for ``R = 3``).
        keep_counts: ``(B, R)`` patches to keep per region, whole numbers with
            ``0 <= k <= count``.
        scores: ``(B, N)`` finite float scores in ``[0, 4)``; low = kept first
            (resolution 2^-22).

    Returns:
        ``(B, N)`` bool, ``True`` = kept; row ``b`` has ``keep_counts[b].sum()`` kept.

    Raises:
        ShapeError: shapes disagree.
        DTypeError: non-integer labels, non-floating scores.
        ValueRangeError: a label outside ``[0, R)``, ``counts`` that are not the
            labels' histogram, a keep count below 0 or above its region's count,
            a non-finite score or one outside ``[0, 4)``.

    Shape:
        labels, scores ``(B, N)``; counts, keep_counts ``(B, R)`` -> ``(B, N)``.
    """
    fn = "select_in_regions"
    dims = check_shape(labels, "B N", name="labels", fn=fn)
    check_shape(scores, "B N", name="scores", dims=dims, fn=fn)
    check_counts(counts, "B R", name="counts", dims=dims, fn=fn)
    check_counts(keep_counts, "B R", name="keep_counts", dims=dims, fn=fn)
    check_labels(labels, dims["R"], name="labels", fn=fn)
    if not scores.is_floating_point():
        raise DTypeError(f"{fn}(): argument 'scores' expected a floating tensor, got {scores.dtype}")
    check_finite(scores, name="scores", fn=fn)
    if scores.numel() and (float(scores.min()) < 0.0 or float(scores.max()) >= 4.0):
        raise ValueRangeError(
            f"{fn}(): argument 'scores' expected values in [0, 4), got values in "
            f"[{float(scores.min())!r}, {float(scores.max())!r}]"
        )
    ones = torch.ones_like(labels, dtype=torch.int64)
    histogram = torch.zeros_like(counts, dtype=torch.int64).scatter_add_(1, labels.long(), ones)  # (B, R)
    wrong = histogram != counts.long()
    if bool(wrong.any()):
        b, r = wrong.nonzero()[0].tolist()
        raise ValueRangeError(
            f"{fn}(): argument 'counts' must be the number of patches of each region in 'labels', "
            f"got counts[{b}, {r}] = {counts[b, r].item()!r} but labels hold {int(histogram[b, r])}"
        )
    over = keep_counts.long() > counts.long()
    if bool(over.any()):
        b, r = over.nonzero()[0].tolist()
        raise ValueRangeError(
            f"{fn}(): argument 'keep_counts' expected values in [0, counts], got keep_counts[{b}, {r}] = "
            f"{keep_counts[b, r].item()!r} > counts[{b}, {r}] = {counts[b, r].item()!r}"
        )
    return _select_in_regions(labels.long(), counts.long(), keep_counts.long(), scores)


def _select_in_regions(
    labels: torch.Tensor, counts: torch.Tensor, keep_counts: torch.Tensor, scores: torch.Tensor
) -> torch.Tensor:
    """Unchecked core of :func:`select_in_regions` (the maskers pass consistent int64 inputs)."""
    B, N = labels.shape
    R = counts.shape[1]
    device = labels.device
    label_bits = max(1, (R - 1).bit_length())
    quantised = (scores * float(1 << 22)).to(torch.int64).clamp_(0, (1 << 24) - 1)  # (B, N)
    rows = torch.arange(B, device=device).unsqueeze(1)  # (B, 1)
    key = (rows << (24 + label_bits)) | (labels << 24) | quantised  # (B, N) int64
    flat_order = torch.sort(key.reshape(-1)).indices.view(B, N)  # rows stay in their own block
    order = flat_order - rows * N  # (B, N) grouped by region, ascending score
    sorted_labels = labels.gather(1, order)  # (B, N)
    starts = counts.cumsum(dim=1) - counts  # (B, R) first sorted position of each region
    rank = torch.arange(N, device=labels.device) - starts.gather(1, sorted_labels)  # (B, N)
    keep_sorted = rank < keep_counts.gather(1, sorted_labels)  # (B, N)
    return torch.empty_like(keep_sorted).scatter_(1, order, keep_sorted)
