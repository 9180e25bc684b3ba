"""UniHOPE's multi-level feature enhancement (§3.3, eqs. 7, 8, 11) with occlusion-aware case filtering.

A batch holds pairs: the original image ``X`` and its de-occluded twin ``X'``
(the object removed). At three levels of the hand branch the features of
``X`` are pulled towards those of ``X'`` by an L1 constraint::

    L_init = ‖F_i − F_i'‖₁     initial level (early FPN features)
    L_RoI  = ‖F_r − F_r'‖₁     RoI hand features (the input of the grasp-aware fusion)
    L_MANO = ‖h(F_m) − F_m'‖₁  MANO level, through the adaptation layer h (released code)
           = ‖h(F_m) − h(F_m')‖₁     as eq. (7) prints it (``adapter_on="both"``)

and only on pairs worth distilling (eq. 8)::

    keep = (Ô ≥ τ) ∧ (Ĝ = 1)        Ô: hand occlusion ratio, Ĝ: grasp label, τ = 0.1

What the released code (``loss/loss.py``, ``hflnet_grasping_objconf``) does
where the paper is silent or differs, and what hoimask follows:

* **Gradient side.** The de-occluded features are detached ("no backward for
  generated feature"): only the original branch is pulled
  (``detach_deoccluded=True``).
* **Reduction.** Per pair the mean ``|a − b|`` over all feature entries, then
  the mean over the kept pairs; no kept pair gives 0.
* **h.** The released code applies it to the original side only (the target
  ``F_m'`` is the raw de-occluded feature), as in Chen et al.'s adaptation
  layer that the paper cites; this loss's default (``adapter_on="original"``).
  Eq. (7) writes ``h`` on both sides (``adapter_on="both"``), and
  :class:`~hoimask.models.UniHOPE` follows the paper by default
  (``UniHOPEConfig.adapter_on``): ``h`` ends in a LayerNorm, and against a raw
  target the MANO-level term falls only 5–6× when overfitting, docs/models.md.
* **Weights** γ_init, γ_RoI, γ_MANO = 0.1, 0.1, 0.5
  (``experiment/unihope.*/cfg.json``: ``c3_h``, ``x_hand``, ``mano_encoding``).
* **Filter.** The released loader keeps a pair when its hand IoU
  (visible / full) is ≤ 0.9 on DexYCB (0.8 on HO3D) and the frame is
  grasping: τ = 0.1 on DexYCB, 0.2 on HO3D, in terms of ``Ô = 1 − IoU``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from hoimask._checks import (
    DTypeError,
    ShapeError,
    ValueRangeError,
    check_choice,
    check_in_range,
    check_shape,
)
from hoimask.losses.grasp import _grasp_labels
from hoimask.losses.weighted import LossOutput, weighted_sum

__all__ = [
    "ADAPTER_SIDES",
    "ENHANCEMENT_LEVELS",
    "UNIHOPE_ENHANCEMENT_WEIGHTS",
    "UNIHOPE_OCCLUSION_THRESHOLD",
    "MultiLevelEnhancementLoss",
    "enhancement_mask",
    "feature_consistency_loss",
]

#: The feature levels of §3.3, in the order of the hand branch.
ENHANCEMENT_LEVELS: tuple[str, ...] = ("init", "roi", "mano")
#: γ of eq. (11) from the released config (``c3_h``, ``x_hand``, ``mano_encoding``); the paper gives no values.
UNIHOPE_ENHANCEMENT_WEIGHTS: dict[str, float] = {"init": 0.1, "roi": 0.1, "mano": 0.5}
#: Where ``h`` applies at the MANO level: ``"original"`` (released code, ``‖h(F_m) − F_m'‖``) or ``"both"`` (eq. 7).
ADAPTER_SIDES: tuple[str, ...] = ("original", "both")
#: τ of eq. (8) (DexYCB; the released HO3D config corresponds to 0.2).
UNIHOPE_OCCLUSION_THRESHOLD: float = 0.1


def _check_ratios(occlusion_ratio: torch.Tensor, *, fn: str, batch: int | None = None) -> None:
    check_shape(occlusion_ratio, "B" if batch is None else str(batch), name="occlusion_ratio", fn=fn)
    if not occlusion_ratio.is_floating_point():
        raise DTypeError(f"{fn}(): argument 'occlusion_ratio' expected a floating-point tensor in [0, 1], "
                         f"got dtype {occlusion_ratio.dtype}")
    bad = ~((occlusion_ratio >= 0) & (occlusion_ratio <= 1))  # NaN fails both
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueRangeError(f"{fn}(): argument 'occlusion_ratio' expected values in [0, 1] (1 − visible / amodal "
                              f"hand pixels), got {float(occlusion_ratio[i])} at index {i}")


def enhancement_mask(
    occlusion_ratio: torch.Tensor,
    grasped: torch.Tensor,
    *,
    threshold: float = UNIHOPE_OCCLUSION_THRESHOLD,
) -> torch.Tensor:
    """UniHOPE's occlusion-aware case filtering (eq. 8): ``(Ô ≥ τ) ∧ (Ĝ = 1)``.

    A pair is distilled only when its original hand is occluded by at least
    ``τ`` (a bare hand has no occluded information to recover, and pulling it
    towards the generated image would only close the sim-to-real gap) and the
    hand grasps the object (a non-grasping frame adds nothing).

    Args:
        occlusion_ratio: ``(B,)`` ground-truth hand occlusion ``Ô`` in ``[0, 1]``
            (the samples' ``occlusion_ratio``: ``1 − visible / amodal`` hand pixels).
        grasped: ``(B,)`` grasp labels ``Ĝ``: bool or exactly 0/1.
        threshold: ``τ`` in ``[0, 1]`` (0.1).

    Returns:
        ``(B,)`` bool, True = the pair takes part in the enhancement losses.

    Raises:
        ShapeError: not ``(B,)`` or batch sizes that differ.
        DTypeError: a non-floating ratio.
        ValueRangeError: a ratio outside ``[0, 1]`` or NaN, a label other than
            0/1, a threshold outside ``[0, 1]``.

    Shape:
        ``(B,), (B,) -> (B,)``

    Example:
        >>> enhancement_mask(torch.tensor([0.05, 0.1, 0.6, 0.6]), torch.tensor([True, True, True, False]))
        tensor([False,  True,  True, False])
    """
    fn = "enhancement_mask"
    _check_ratios(occlusion_ratio, fn=fn)
    g = _grasp_labels(grasped, name="grasped", fn=fn, batch=occlusion_ratio.shape[0])
    threshold = check_in_range(threshold, name="threshold", low=0.0, high=1.0, fn=fn)
    return (occlusion_ratio >= occlusion_ratio.new_tensor(threshold)) & g.to(occlusion_ratio.device)


def _check_pair(original: torch.Tensor, deoccluded: torch.Tensor, *, fn: str, names=("original", "deoccluded")) -> None:
    a, b = names
    if not isinstance(original, torch.Tensor):
        raise DTypeError(f"{fn}(): argument '{a}' expected a torch.Tensor (B, ...), got {type(original).__name__}")
    if original.dim() < 1:
        raise ShapeError(f"{fn}(): argument '{a}' expected a tensor (B, ...), got a 0-d tensor")
    if not original.is_floating_point():
        raise DTypeError(f"{fn}(): argument '{a}' expected a floating-point tensor, got dtype {original.dtype}")
    if not isinstance(deoccluded, torch.Tensor):
        raise DTypeError(f"{fn}(): argument '{b}' expected a torch.Tensor, got {type(deoccluded).__name__}")
    if deoccluded.shape != original.shape:
        raise ShapeError(f"{fn}(): argument '{b}' expected the shape of '{a}' {tuple(original.shape)} (the two "
                         f"images of a pair give features of one shape), got {tuple(deoccluded.shape)}")
    if not deoccluded.is_floating_point():
        raise DTypeError(f"{fn}(): argument '{b}' expected a floating-point tensor, got dtype {deoccluded.dtype}")


def _consistency(original: torch.Tensor, target: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean over the kept pairs of the per-pair mean ``|original − target|``; exact 0 (in the graph) when none.

    The difference of a pair that is not kept is replaced by 0 *before* any
    other arithmetic, so its value and gradient are exactly 0 even when its
    features are not finite.
    """
    B = original.shape[0]
    use = keep.to(original.device).reshape((B,) + (1,) * (original.dim() - 1))
    diff = torch.where(use, original - target.to(original.dtype), torch.zeros((), dtype=original.dtype,
                                                                               device=original.device))
    entries = math.prod(original.shape[1:])
    per_pair = diff.abs().reshape(B, entries).mean(dim=1) if entries else diff.new_zeros(B)  # (B,)
    return per_pair.sum() / keep.sum().clamp(min=1).to(per_pair.dtype)


def feature_consistency_loss(
    original: torch.Tensor,
    deoccluded: torch.Tensor,
    keep: torch.Tensor | None = None,
    *,
    detach_deoccluded: bool = True,
) -> torch.Tensor:
    """L1 feature constraint of one level (UniHOPE eq. 7), over the pairs ``keep`` selects (eq. 8).

    ``mean_{b: keep_b} mean_entries |original_b − deoccluded_b|``. Pairs that
    are not kept contribute exactly 0 to the value and to every gradient; with
    no kept pair the loss is an exact 0 that is still in the graph (backward
    works and gives zeros, never NaN from an empty mean).

    Args:
        original: ``(B, ...)`` features of the original (occluded) images.
        deoccluded: the same shape, features of the de-occluded images.
        keep: ``(B,)`` bool, e.g. :func:`enhancement_mask`; ``None`` keeps every pair.
        detach_deoccluded: no gradient into ``deoccluded`` (the released code's
            "no backward for generated feature"); False pulls both sides.

    Returns:
        Scalar loss in ``original``'s dtype.

    Raises:
        ShapeError: the two shapes differ, ``keep`` is not ``(B,)``.
        DTypeError: non-floating features, a ``keep`` that is not bool.

    Shape:
        ``(B, ...), (B, ...), (B,) -> ()``

    Example:
        >>> a, b = torch.zeros(3, 4), torch.tensor([[1.0] * 4, [2.0] * 4, [100.0] * 4])
        >>> feature_consistency_loss(a, b, torch.tensor([True, True, False]))  # (1 + 2) / 2
        tensor(1.5000)
        >>> feature_consistency_loss(a, b, torch.zeros(3, dtype=torch.bool))
        tensor(0.)
    """
    fn = "feature_consistency_loss"
    _check_pair(original, deoccluded, fn=fn)
    B = original.shape[0]
    if keep is None:
        keep = torch.ones(B, dtype=torch.bool, device=original.device)
    else:
        check_shape(keep, str(B), name="keep", fn=fn)
        if keep.dtype != torch.bool:
            raise DTypeError(f"{fn}(): argument 'keep' expected a bool tensor, got dtype {keep.dtype}")
    target = deoccluded.detach() if detach_deoccluded else deoccluded
    return _consistency(original, target, keep)


class MultiLevelEnhancementLoss(nn.Module):
    """UniHOPE's multi-level feature enhancement: ``Σ γ_l L_l^enh`` over the levels given (eqs. 7, 8, 11).

    Holds the adaptation layer ``h`` of the MANO level (e.g.
    :class:`hoimask.nn.AttentionAdapter`; its parameters train with the
    model, so register this module in the model or give ``h`` to the
    optimiser), the weights γ and τ. Each call filters the pairs with
    :func:`enhancement_mask` and applies :func:`feature_consistency_loss` per
    level, ``h`` first at ``"mano"``. Features of the pairs that are filtered
    out are zeroed before ``h`` runs, so they reach neither the loss nor any
    gradient (``h``'s parameters included) even if they are not finite.

    Args:
        adapter: ``h`` for the ``"mano"`` level (a module mapping ``(B, ...)``
            to the same shape); ``None``: no adaptation (identity).
        weights: level -> γ ≥ 0; default :data:`UNIHOPE_ENHANCEMENT_WEIGHTS`
            (released config: 0.1, 0.1, 0.5).
        threshold: τ of eq. (8), in ``[0, 1]``.
        adapter_on: ``"original"`` (released code: ``‖h(F_m) − F_m'‖``) or
            ``"both"`` (eq. 7 as printed: ``‖h(F_m) − h(F_m')‖``; ``h`` may then
            collapse both sides to one point, which the released form cannot).
        detach_deoccluded: no gradient into the de-occluded features (released code: True).

    Shape:
        ``original``, ``deoccluded``: level -> ``(B, ...)`` (the same levels, each
        pair of one shape); ``occlusion_ratio``, ``grasped`` (, ``paired``): ``(B,)`` ->
        :class:`~hoimask.losses.LossOutput` ``(total (), terms {level: ()})``
        (terms unweighted).

    Example:
        >>> loss = MultiLevelEnhancementLoss()
        >>> ones = {"init": torch.ones(2, 8), "roi": torch.ones(2, 4, 3), "mano": torch.ones(2, 5)}
        >>> zeros = {k: torch.zeros_like(v) for k, v in ones.items()}
        >>> out = loss(ones, zeros, torch.tensor([0.5, 0.0]), torch.tensor([True, True]))
        >>> round(float(out.total), 4), sorted(out.terms)  # 0.1 + 0.1 + 0.5, from the occluded pair only
        (0.7, ['init', 'mano', 'roi'])
    """

    def __init__(
        self,
        adapter: nn.Module | None = None,
        *,
        weights: Mapping[str, float] | None = None,
        threshold: float = UNIHOPE_OCCLUSION_THRESHOLD,
        adapter_on: str = "original",
        detach_deoccluded: bool = True,
    ) -> None:
        super().__init__()
        fn = "MultiLevelEnhancementLoss"
        weights = dict(UNIHOPE_ENHANCEMENT_WEIGHTS if weights is None else weights)
        for level, value in weights.items():
            check_choice(level, ENHANCEMENT_LEVELS, name="weights", fn=fn)
            check_in_range(value, name=f"weights[{level!r}]", low=0.0, fn=fn)
        if not weights:
            raise ValueRangeError(f"{fn}(): argument 'weights' expected at least one of {list(ENHANCEMENT_LEVELS)}, got {{}}")
        if adapter is not None and not isinstance(adapter, nn.Module):
            raise DTypeError(f"{fn}(): argument 'adapter' expected an nn.Module or None, got {type(adapter).__name__}")
        self.weights = weights
        self.threshold = check_in_range(threshold, name="threshold", low=0.0, high=1.0, fn=fn)
        self.adapter_on = check_choice(adapter_on, ADAPTER_SIDES, name="adapter_on", fn=fn)
        self.detach_deoccluded = bool(detach_deoccluded)
        self.adapter = adapter

    def forward(
        self,
        original: Mapping[str, torch.Tensor],
        deoccluded: Mapping[str, torch.Tensor],
        occlusion_ratio: torch.Tensor,
        grasped: torch.Tensor,
        paired: torch.Tensor | None = None,
    ) -> LossOutput:
        """Weighted sum of the per-level losses over the kept pairs; see the class docstring.

        ``paired`` ``(B,)`` bool (default: all True) marks the samples whose
        de-occluded twin is real (a batch's ``has_deoccluded``); the others are
        filtered out like pairs eq. (8) drops: exactly 0 in value and gradient,
        whatever their ``deoccluded`` features hold.
        """
        fn = "MultiLevelEnhancementLoss.forward"
        levels = [lvl for lvl in ENHANCEMENT_LEVELS if lvl in original]
        unknown = sorted(set(original) - set(ENHANCEMENT_LEVELS)) + sorted(set(deoccluded) - set(ENHANCEMENT_LEVELS))
        if unknown:
            raise ValueRangeError(f"{fn}(): unknown level(s) {unknown}; expected keys among {list(ENHANCEMENT_LEVELS)}")
        if set(original) != set(deoccluded):
            raise ValueRangeError(f"{fn}(): argument 'deoccluded' expected the levels of 'original' {sorted(original)}, "
                                  f"got {sorted(deoccluded)}")
        unweighted = sorted(set(levels) - set(self.weights))
        if unweighted:
            raise ValueRangeError(f"{fn}(): argument 'original' has level(s) {unweighted} without a weight; "
                                  f"weights are given for {sorted(self.weights)}")
        if not levels:
            raise ValueRangeError(f"{fn}(): argument 'original' expected at least one of {list(ENHANCEMENT_LEVELS)}, got none")
        B = None
        for lvl in levels:
            _check_pair(original[lvl], deoccluded[lvl], fn=fn, names=(f"original[{lvl!r}]", f"deoccluded[{lvl!r}]"))
            if B is not None and original[lvl].shape[0] != B:
                raise ShapeError(f"{fn}(): argument 'original[{lvl!r}]' has batch size {original[lvl].shape[0]}, "
                                 f"the levels before it {B}")
            B = original[lvl].shape[0]
        _check_ratios(occlusion_ratio, fn=fn, batch=B)
        g = _grasp_labels(grasped, name="grasped", fn=fn, batch=B)
        keep = (occlusion_ratio >= occlusion_ratio.new_tensor(self.threshold)) & g.to(occlusion_ratio.device)
        if paired is not None:
            check_shape(paired, str(B), name="paired", fn=fn)
            if paired.dtype != torch.bool:
                raise DTypeError(f"{fn}(): argument 'paired' expected a bool tensor, got dtype {paired.dtype}")
            keep = keep & paired.to(keep.device)
        terms: dict[str, torch.Tensor | None] = {}
        for lvl in levels:
            a, b = original[lvl], deoccluded[lvl]
            if self.detach_deoccluded:
                b = b.detach()
            if lvl == "mano" and self.adapter is not None:
                use = keep.to(a.device).reshape((B,) + (1,) * (a.dim() - 1))
                a = self.adapter(torch.where(use, a, torch.zeros_like(a)))  # filtered pairs never reach h
                if self.adapter_on == "both":
                    b = self.adapter(torch.where(use, b, torch.zeros_like(b)))
                    b = b.detach() if self.detach_deoccluded else b
            terms[lvl] = _consistency(a, b, keep)
        return weighted_sum(terms, self.weights)

    def extra_repr(self) -> str:
        w = ", ".join(f"{k}={v}" for k, v in self.weights.items())
        return f"weights=({w}), threshold={self.threshold}, adapter_on={self.adapter_on!r}, detach_deoccluded={self.detach_deoccluded}"
