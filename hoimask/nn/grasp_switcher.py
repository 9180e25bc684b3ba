"""UniHOPE's object switcher (§3.2): grasp logit from object features, and the gate on the object outputs.

* :class:`GraspSwitcher` — the MLP ``g(·)``: pooled object features -> one
  grasp logit per sample, trained with
  :func:`hoimask.losses.grasp_switch_loss` (eq. 2).
* :func:`gate_object_outputs` — inference: a sample whose grasp confidence is
  below the threshold (0.5) reports **no** object pose; its object outputs
  become NaN, the library's "no value" (docs/conventions.md).

One logit instead of the paper's two-way softmax: ``softmax((z₀, z₁))₁ =
sigmoid(z₁ − z₀)``, so a single logit ``z = z₁ − z₀`` with binary
cross-entropy is the same model and the same loss (eq. 2), with one output
fewer; ``sigmoid(z) >= 0.5`` is ``argmax = 1`` (a tie reports the object here,
where ``argmax`` of two equal logits picks class 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import nn

from hoimask._checks import (
    DTypeError,
    ShapeError,
    ValueRangeError,
    check_in_range,
    check_int,
    check_shape,
)

__all__ = ["GatedObjectOutputs", "GraspSwitcher", "gate_object_outputs"]


def _check_confidence(confidence: torch.Tensor, *, name: str, fn: str, batch: int | None = None) -> None:
    """``confidence`` is a floating ``(B,)`` tensor with every value in ``[0, 1]`` (NaN refused).

    Raises:
        DTypeError: not a floating tensor.
        ShapeError: not ``(B,)`` (``B = batch`` when given).
        ValueRangeError: a value outside ``[0, 1]`` or NaN, naming the first.
    """
    check_shape(confidence, "B" if batch is None else str(batch), name=name, fn=fn)
    if not confidence.is_floating_point():
        raise DTypeError(f"{fn}(): argument '{name}' expected a floating-point tensor of probabilities in [0, 1], "
                         f"got dtype {confidence.dtype}")
    bad = ~((confidence >= 0) & (confidence <= 1))  # NaN fails both comparisons
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueRangeError(f"{fn}(): argument '{name}' expected values in [0, 1] (a grasp probability), got "
                              f"{float(confidence[i])} at index {i} ({int(bad.sum())} value(s) outside)")


class GraspSwitcher(nn.Module):
    """UniHOPE's object switcher ``g``: object features -> grasp logit (§3.2, eq. 2).

    Tokens ``(B, N, D)`` are mean-pooled over ``N`` (a pooled vector ``(B, D)``
    is used as it is), then ``Linear(D, hidden) -> GELU -> Linear(hidden, 1)``.
    The released code reduces its 256-channel FPN map ``P2_o`` with a 1×1 conv
    to 64 channels and flattens the fixed 32×32 grid into two linear layers
    (→ 1024 → 2); the mean pool works for any token count and resolution
    (docs/nn.md).
    ``torch.sigmoid(logit)`` is the grasp confidence that
    :class:`~hoimask.nn.GraspAwareFusion` and :func:`gate_object_outputs` take.

    Args:
        dim: feature size ``D``.
        hidden_dim: hidden size (default ``dim``).

    Shape:
        ``(B, N, D)`` or ``(B, D)`` -> ``(B,)`` logits.

    Example:
        >>> switcher = GraspSwitcher(32)
        >>> switcher(torch.randn(4, 49, 32)).shape, switcher(torch.randn(4, 32)).shape
        (torch.Size([4]), torch.Size([4]))
    """

    def __init__(self, dim: int, hidden_dim: int | None = None, *, device=None, dtype=None) -> None:
        super().__init__()
        check_int(dim, name="dim", low=1, fn="GraspSwitcher")
        hidden_dim = dim if hidden_dim is None else check_int(hidden_dim, name="hidden_dim", low=1, fn="GraspSwitcher")
        self.dim = dim
        self.fc1 = nn.Linear(dim, hidden_dim, device=device, dtype=dtype)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, 1, device=device, dtype=dtype)

    def forward(self, object_features: torch.Tensor) -> torch.Tensor:
        """Grasp logits of the samples (positive = grasping)."""
        fn, x = "GraspSwitcher.forward", object_features
        if not isinstance(x, torch.Tensor) or x.dim() not in (2, 3) or x.shape[-1] != self.dim or 0 in x.shape[1:]:
            spec = f"B {self.dim}" if isinstance(x, torch.Tensor) and x.dim() == 2 else f"B N {self.dim}"
            check_shape(x, spec, name="object_features", fn=fn)  # raises for a wrong rank or size
            raise ShapeError(f"{fn}(): argument 'object_features' expected at least one token, got shape {tuple(x.shape)}")
        if x.dim() == 3:
            x = x.mean(dim=1)  # (B, N, D) -> (B, D)
        return self.fc2(self.act(self.fc1(x))).squeeze(-1)  # (B, 1) -> (B,)


class GatedObjectOutputs(NamedTuple):
    """What :func:`gate_object_outputs` returns."""

    reported: torch.Tensor  #: (B,) bool, True = the sample reports an object pose
    outputs: dict[str, torch.Tensor]  #: the object outputs, NaN for the samples not reported


def gate_object_outputs(
    confidence: torch.Tensor,
    outputs: Mapping[str, torch.Tensor],
    *,
    threshold: float = 0.5,
) -> GatedObjectOutputs:
    """Switch the object branch off where the switcher predicts no grasp (UniHOPE §3.2, inference).

    UniHOPE "deactivates the object pose estimation branch if predicted as
    non-grasping". A batched model still computes the branch for every
    sample; this masks its outputs instead: samples with ``confidence <
    threshold`` get ``reported = False`` and NaN in every object output (the
    library's "no value", docs/conventions.md), which the metrics treat as
    "no prediction". Gradients reach only the reported samples' outputs.

    Args:
        confidence: ``(B,)`` grasp probabilities in ``[0, 1]``, e.g.
            ``torch.sigmoid(GraspSwitcher(...)(features))``.
        outputs: name -> floating ``(B, ...)`` object outputs (rotation,
            translation, keypoints, ...). Non-float outputs are refused (NaN cannot mark them).
        threshold: confidence from which a sample reports its object, in ``[0, 1]`` (0.5: ``argmax`` of eq. 2).

    Returns:
        :class:`GatedObjectOutputs` ``(reported (B,) bool, outputs)``, outputs in
        the same order, shapes, dtypes and devices.

    Raises:
        ShapeError: ``confidence`` not ``(B,)``, an output whose first dimension is not ``B``.
        DTypeError: a non-floating ``confidence`` or output.
        ValueRangeError: a confidence outside ``[0, 1]`` or NaN; a threshold outside ``[0, 1]``.

    Shape:
        ``(B,), {name: (B, ...)} -> (B,), {name: (B, ...)}``

    Example:
        >>> gated = gate_object_outputs(torch.tensor([0.9, 0.2]), {"translation": torch.ones(2, 3)})
        >>> gated.reported
        tensor([ True, False])
        >>> gated.outputs["translation"]
        tensor([[1., 1., 1.],
                [nan, nan, nan]])
    """
    fn = "gate_object_outputs"
    _check_confidence(confidence, name="confidence", fn=fn)
    threshold = check_in_range(threshold, name="threshold", low=0.0, high=1.0, fn=fn)
    B = confidence.shape[0]
    reported = confidence >= threshold
    gated: dict[str, torch.Tensor] = {}
    for key, value in outputs.items():
        name = f"outputs[{key!r}]"
        if not isinstance(value, torch.Tensor):
            raise DTypeError(f"{fn}(): argument '{name}' expected a torch.Tensor, got {type(value).__name__}")
        if value.dim() < 1 or value.shape[0] != B:
            raise ShapeError(f"{fn}(): argument '{name}' expected shape ({B}, ...) (one row per sample of "
                             f"'confidence'), got {tuple(value.shape)}")
        if not value.is_floating_point():
            raise DTypeError(f"{fn}(): argument '{name}' expected a floating-point tensor (NaN marks a sample "
                             f"without an object), got dtype {value.dtype}")
        keep = reported.to(value.device).reshape((B,) + (1,) * (value.dim() - 1))
        gated[key] = torch.where(keep, value, torch.full_like(value, float("nan")))
    return GatedObjectOutputs(reported, gated)
