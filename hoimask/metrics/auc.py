"""PCK curve and its normalised area (AUC), as HO3D/FreiHAND ``EvalUtil.get_measures``.

The official ``EvalUtil`` stores, per keypoint, the error of every sample;
``get_measures(lo, hi, steps)`` then takes ``thresholds = linspace(lo, hi,
steps)``, the per-keypoint PCK ``mean(error <= t)`` at each threshold, the
trapezoid area under that curve divided by ``trapz(ones, thresholds) = hi -
lo``, and finally the mean of the per-keypoint areas (and of the per-keypoint
curves for the plot). :func:`pck_auc` does exactly that, vectorised: the
errors of each keypoint are sorted once and the counts below each threshold
are read with ``searchsorted`` -- exact, and without an ``(S, K, steps)``
intermediate. :class:`PCKAccumulator` keeps the per-threshold counts so a
dataset can be fed batch by batch in constant memory.

Non-finite errors (docs/conventions.md, "Non-finite values") are *unmeasured*:
they come from unannotated ground truth, as the keypoints that ``EvalUtil.feed``
drops with its visibility mask. Each keypoint's PCK is taken over its finite
errors only, and a keypoint without any is left out of the mean over keypoints
(``EvalUtil.get_measures`` skips it the same way). Predictions must be checked
before their errors are formed (the metric functions do).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from hoimask._checks import ValueRangeError, check_in_range, check_shape
from hoimask.metrics._arrays import ArrayLike, like_input, to_tensors

__all__ = ["PCKResult", "pck_auc", "pck_counts", "PCKAccumulator", "auc_from_counts"]


class PCKResult(NamedTuple):
    """Result of :func:`pck_auc`."""

    auc: ArrayLike  #: () normalised area in [0, 1], mean over keypoints
    curve: ArrayLike  #: (steps,) PCK at each threshold, mean over keypoints
    thresholds: ArrayLike  #: (steps,) the thresholds, linspace(lo, hi, steps)


def _check_range(lo: float, hi: float, steps: int, fn: str) -> None:
    check_in_range(lo, name="lo", fn=fn)
    check_in_range(hi, name="hi", low=float(lo), low_inclusive=False, fn=fn)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueRangeError(f"{fn}(): argument 'steps' expected an int >= 2, got {steps!r}")


def thresholds_like_numpy(lo: float, hi: float, steps: int, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """``numpy.linspace(lo, hi, steps)`` as a tensor.

    ``torch.linspace`` rounds some interior values differently from NumPy (by one
    ulp); an error lying exactly on a threshold would then be counted differently
    from the official ``EvalUtil``, so the thresholds are built with NumPy.
    """
    return torch.from_numpy(np.linspace(lo, hi, steps)).to(device=device, dtype=dtype)


def pck_counts(errors: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """How many samples of each keypoint have ``error <= threshold``.

    Args:
        errors: ``(S, K)`` non-negative errors; non-finite ones are unmeasured
            and never counted.
        thresholds: ``(T,)`` thresholds, ascending.

    Returns:
        ``(K, T)`` int64 counts.

    Shape:
        - errors: ``(S, K)``
        - thresholds: ``(T,)``
        - output: ``(K, T)``
    """
    K = errors.shape[1]
    errors = errors.detach()
    errors = torch.where(torch.isfinite(errors), errors, torch.full_like(errors, float("inf")))  # never <= t
    sorted_err = errors.t().contiguous().sort(dim=1).values  # (K, S)
    th = thresholds.to(sorted_err.dtype).expand(K, -1).contiguous()  # (K, T)
    # searchsorted(right=True) = number of sorted errors <= each threshold
    return torch.searchsorted(sorted_err, th, right=True)  # (K, T): #{e <= t}


def auc_from_counts(counts: torch.Tensor, num_samples: int | torch.Tensor, thresholds: torch.Tensor):
    """Per-keypoint PCK curves from counts -> (mean AUC, mean curve).

    Args:
        counts: ``(K, T)`` counts of samples with error <= threshold.
        num_samples: the number of samples each keypoint was measured on: one
            int for all, or ``(K,)``; keypoints measured on no sample are left
            out of the means (NaN results if none was measured).
        thresholds: ``(T,)`` thresholds.

    Returns:
        ``(auc (), curve (T,))`` in ``thresholds``' dtype.
    """
    n = torch.as_tensor(num_samples, device=counts.device).expand(counts.shape[0])  # (K,)
    measured = n > 0
    pck = counts[measured].to(thresholds.dtype) / n[measured, None].to(thresholds.dtype)  # (K', T)
    norm = thresholds[-1] - thresholds[0]  # == trapz(ones, thresholds)
    auc = torch.trapezoid(pck, thresholds, dim=1) / norm  # (K',)
    return auc.mean(), pck.mean(dim=0)


def pck_auc(errors: ArrayLike, lo: float = 0.0, hi: float = 0.05, steps: int = 100) -> PCKResult:
    """PCK curve and normalised area under it (J-AUC / V-AUC), HO3D ``EvalUtil``.

    For each keypoint ``k`` the curve is ``PCK_k(t) = mean_s [errors[s, k] <= t]``
    on ``t = linspace(lo, hi, steps)``; its trapezoid area is divided by
    ``hi - lo``; the areas and the curves are averaged over keypoints. Units:
    ``lo``/``hi`` are in the errors' units (HO3D/FreiHAND: 0-0.05 m; DexYCB
    ``hpe_eval.py``: 0-50 mm -- the same range).

    Args:
        errors: ``(S, K)`` per-sample, per-keypoint (joint or vertex) errors.
            Non-finite errors are unmeasured (unannotated ground truth): each
            keypoint's PCK uses its finite errors, and a keypoint without any
            is left out of the mean over keypoints.
        lo: lowest threshold.
        hi: highest threshold (> ``lo``).
        steps: number of thresholds (>= 2).

    Returns:
        :class:`PCKResult` ``(auc, curve, thresholds)`` in the input's array
        type; ``auc`` is 1 when every error is <= ``lo`` and 0 when every error
        is > ``hi``.

    Raises:
        ValueRangeError: no finite error at all (nothing was measured).

    Shape:
        - errors: ``(S, K)``
        - auc: ``()``; curve, thresholds: ``(steps,)``

    Example:
        >>> import torch
        >>> r = pck_auc(torch.zeros(4, 21))
        >>> round(float(r.auc), 6)
        1.0
    """
    was_numpy, t = to_tensors(errors=errors)
    e = t["errors"]
    dims = check_shape(e, "S K", name="errors")
    _check_range(lo, hi, steps, "pck_auc")
    if dims["S"] == 0 or dims["K"] == 0:
        raise ValueRangeError(f"pck_auc(): argument 'errors' needs at least one sample and keypoint, got {tuple(e.shape)}")
    # Compare and integrate in float64, as NumPy does in EvalUtil; return the input dtype.
    measured = torch.isfinite(e).sum(dim=0)  # (K,) samples measured per keypoint
    if not bool(measured.any()):
        raise ValueRangeError(
            f"pck_auc(): argument 'errors' has no finite value (all {dims['S']} x {dims['K']} unmeasured, "
            "see docs/conventions.md, 'Non-finite values')"
        )
    thresholds = thresholds_like_numpy(lo, hi, steps, device=e.device)
    counts = pck_counts(e.double(), thresholds)
    auc, curve = auc_from_counts(counts, measured, thresholds)
    out = (auc.to(e.dtype), curve.to(e.dtype), thresholds.to(e.dtype))
    return PCKResult(*(like_input(was_numpy, v) for v in out))


class PCKAccumulator:
    """Accumulates per-threshold PCK counts over batches (constant memory).

    Feeding all samples batch by batch and calling :meth:`result` gives the
    same AUC and curve as :func:`pck_auc` on the concatenated errors,
    non-finite (unmeasured) errors included: ``num_measured`` counts the
    finite errors of each keypoint, ``num_samples`` the rows fed.

    Args:
        num_keypoints: ``K``.
        lo: lowest threshold, as in :func:`pck_auc`.
        hi: highest threshold (> ``lo``).
        steps: number of thresholds (>= 2).
    """

    def __init__(self, num_keypoints: int, lo: float = 0.0, hi: float = 0.05, steps: int = 100):
        _check_range(lo, hi, steps, "PCKAccumulator")
        if isinstance(num_keypoints, bool) or not isinstance(num_keypoints, int) or num_keypoints < 1:
            raise ValueRangeError(
                f"PCKAccumulator(): argument 'num_keypoints' expected an int >= 1, got {num_keypoints!r}"
            )
        self.num_keypoints = num_keypoints
        self.thresholds = thresholds_like_numpy(lo, hi, steps)
        self.counts = torch.zeros(self.num_keypoints, steps, dtype=torch.int64)
        self.num_samples = 0
        self.num_measured = torch.zeros(self.num_keypoints, dtype=torch.int64)

    def update(self, errors: torch.Tensor) -> None:
        """Add ``(S, K)`` errors (any device; counted on the CPU in float64); non-finite ones are unmeasured."""
        check_shape(errors, f"S {self.num_keypoints}", name="errors", fn="PCKAccumulator.update")
        if errors.shape[0] == 0:
            return
        e = errors.detach().to("cpu", torch.float64)
        self.counts += pck_counts(e, self.thresholds)
        self.num_measured += torch.isfinite(e).sum(dim=0)
        self.num_samples += errors.shape[0]

    def result(self) -> PCKResult | None:
        """:class:`PCKResult` of everything fed so far (torch), or ``None`` if nothing was measured."""
        if not bool((self.num_measured > 0).any()):
            return None
        auc, curve = auc_from_counts(self.counts, self.num_measured, self.thresholds)
        return PCKResult(auc, curve, self.thresholds)
