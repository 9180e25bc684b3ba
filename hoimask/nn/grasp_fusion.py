"""UniHOPE's grasp-aware feature fusion (§3.2, eq. 3).

The hand RoI features ``F_h`` and the object features ``F_o`` sampled on the
*same* grid (the released code RoI-aligns the object map ``P2_o`` in the
**hand** box, so token ``n`` of both is the same image location) are fused
according to the grasp confidence ``s``::

    F^H  = Concat(F_h, s·F_o + (1 − s)·F_h)        channel concatenation, (B, N, 2D)
    F^OH = Attention(F^H)                          a multi-head attention block over the N tokens
    out  = F^OH[..., :D]                           the hand half of the channels

With ``s = 0`` (no grasp) ``F^H = Concat(F_h, F_h)``: the object features do
not enter at all, neither the value nor the gradient. With ``s = 1`` the
object features replace the hand copy. :func:`grasp_aware_features` is
eq. (3)'s first line; :class:`GraspAwareFusion` adds the attention block and
keeps the hand half, as the released ``UniHOPENet.net_forward`` does
(``hand = transformer_hand(cat(x_hand, x_hand_obj))[:, :256]``).
"""

from __future__ import annotations

import torch
from torch import nn

from hoimask._checks import check_int, check_positive, check_shape
from hoimask.nn.grasp_switcher import _check_confidence
from hoimask.nn.transformer import Block

__all__ = ["GraspAwareFusion", "grasp_aware_features"]


def grasp_aware_features(
    hand_features: torch.Tensor,
    object_features: torch.Tensor,
    confidence: torch.Tensor,
) -> torch.Tensor:
    """``F^H = Concat(F_h, s·F_o + (1 − s)·F_h)``, UniHOPE eq. (3), concatenated along the channels.

    The mix is computed as written, ``s·F_o + (1 − s)·F_h``, which is exact at
    both ends: ``F_h`` at ``s = 0`` (the object features, multiplied by 0,
    change neither the value nor the gradient; they must be finite) and
    ``F_o`` at ``s = 1``.

    Args:
        hand_features: ``(B, N, D)`` hand RoI tokens ``F_h``.
        object_features: ``(B, N, D)`` object tokens ``F_o`` on the same grid
            (token ``n`` of both at the same image location).
        confidence: ``(B,)`` grasp confidence ``s`` in ``[0, 1]``: the paper's
            ``Argmax`` of the switcher (0 or 1), or its probability.

    Returns:
        ``(B, N, 2D)`` — ``[F_h, mix]`` per token.

    Raises:
        ShapeError: shapes that differ (the two grids must match) or are not ``(B, N, D)``.
        DTypeError: a non-floating confidence.
        ValueRangeError: a confidence outside ``[0, 1]`` or NaN.

    Shape:
        ``(B, N, D), (B, N, D), (B,) -> (B, N, 2D)``

    Example:
        >>> h, o = torch.zeros(2, 3, 4), torch.ones(2, 3, 4)
        >>> fh = grasp_aware_features(h, o, torch.tensor([0.0, 1.0]))
        >>> fh.shape, fh[0, 0].tolist(), fh[1, 0].tolist()
        (torch.Size([2, 3, 8]), [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    """
    return _grasp_aware_features(hand_features, object_features, confidence, fn="grasp_aware_features")


def _grasp_aware_features(hand: torch.Tensor, obj: torch.Tensor, confidence: torch.Tensor, *, fn: str,
                          detach_object: bool = False) -> torch.Tensor:
    """:func:`grasp_aware_features` with the caller's name in the errors (and an optional detach of ``obj``)."""
    dims = check_shape(hand, "B N D", name="hand_features", fn=fn)
    if not isinstance(obj, torch.Tensor) or obj.shape != hand.shape:
        check_shape(obj, "B N D", name="object_features", dims=dims, fn=fn)  # raises on a mismatch
    _check_confidence(confidence, name="confidence", fn=fn, batch=dims["B"])
    if detach_object:
        obj = obj.detach()
    s = confidence.to(hand.dtype)[:, None, None]  # (B,) -> (B, 1, 1)
    mix = s * obj + (1 - s) * hand
    return torch.cat([hand, mix], dim=-1)  # (B, N, 2D)


class GraspAwareFusion(nn.Module):
    """Grasp-aware fusion of hand and object tokens (UniHOPE §3.2, eq. 3): ``(B, N, D)`` hand features out.

    :func:`grasp_aware_features` builds ``F^H (B, N, 2D)``; one pre-norm
    transformer :class:`~hoimask.nn.Block` of width ``2D`` (multi-head
    self-attention over the ``N`` tokens, then an MLP, both residual) gives
    ``F^OH``; its first ``D`` channels — the hand half — are returned.

    Where the paper is silent, the released code decides: the fused block is
    a residual attention + MLP block (HFL-Net's ``Transformer``, depth 1, 8
    heads, MLP ratio 4) and the object features are **detached**
    (``x_obj.detach()``), so the hand loss does not train the object branch
    through the fusion (``detach_object=False`` lets it). The released model
    also fuses only samples predicted grasping *and* not occluded by its
    occlusion classifier; pass that product as ``confidence`` to do the same.
    hoimask's block normalises before the attention (pre-norm) where HFL-Net's
    does not; the paper's eq. (3) (``Softmax(F^H F^Hᵀ/√d) F^H``, no projections)
    is the attention inside the block.

    Args:
        dim: hand/object token size ``D`` (the block runs at ``2D``).
        num_heads: attention heads; must divide ``2D`` (released: 8).
        mlp_ratio: hidden size of the block's MLP relative to ``2D``.
        detach_object: stop gradients into ``object_features`` (released code: True).

    Shape:
        hand ``(B, N, D)``, object ``(B, N, D)``, confidence ``(B,)`` -> ``(B, N, D)``.

    Example:
        >>> fusion = GraspAwareFusion(16, num_heads=4)
        >>> hand, obj = torch.randn(2, 9, 16), torch.randn(2, 9, 16)
        >>> out = fusion(hand, obj, torch.tensor([0.0, 1.0]))
        >>> out.shape, torch.equal(fusion(hand, obj + 1, torch.tensor([0.0, 1.0]))[0], out[0])
        (torch.Size([2, 9, 16]), True)
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        *,
        mlp_ratio: float = 4.0,
        detach_object: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.dim = check_int(dim, name="dim", low=1, fn="GraspAwareFusion")
        check_int(num_heads, name="num_heads", low=1, fn="GraspAwareFusion")
        check_positive(mlp_ratio, name="mlp_ratio", fn="GraspAwareFusion")
        self.detach_object = bool(detach_object)
        self.block = Block(2 * dim, num_heads, mlp_ratio=mlp_ratio, device=device, dtype=dtype)

    def forward(self, hand_features: torch.Tensor, object_features: torch.Tensor,
                confidence: torch.Tensor) -> torch.Tensor:
        """Fused hand tokens; see the class docstring."""
        fn = "GraspAwareFusion.forward"
        if not isinstance(hand_features, torch.Tensor) or hand_features.dim() != 3 or hand_features.shape[-1] != self.dim:
            check_shape(hand_features, f"B N {self.dim}", name="hand_features", fn=fn)
        fused = _grasp_aware_features(hand_features, object_features, confidence, fn=fn,
                                      detach_object=self.detach_object)  # (B, N, 2D)
        return self.block(fused)[..., : self.dim]  # the hand half of the channels

    def extra_repr(self) -> str:
        return f"dim={self.dim}, detach_object={self.detach_object}"
