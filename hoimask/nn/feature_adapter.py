"""UniHOPE's adaptation layer ``h`` (§3.3): a multi-head self-attention block for feature distillation.

UniHOPE compares its MANO-level features of the original and the de-occluded
image through ``h`` (eq. 7, following Chen et al.'s adaptation layer for
distillation): late features of the two images need not live in the same
space, so the student's are mapped before the L1 constraint
(:class:`hoimask.losses.MultiLevelEnhancementLoss`).
"""

from __future__ import annotations

import torch
from torch import nn

from hoimask._checks import check_int, check_shape
from hoimask.nn.transformer import Attention

__all__ = ["AttentionAdapter"]


class AttentionAdapter(nn.Module):
    """Post-norm residual self-attention ``h(x) = LayerNorm(x + Attention(x))`` (UniHOPE's ``h``).

    As the released ``SlfMultiHeadAttention`` (8 heads, residual, LayerNorm
    with ε = 1e-6 *after* the residual), on hoimask's
    :class:`~hoimask.nn.Attention` (fused ``qkv`` with bias, output
    projection); no dropout (the released block has 0.1). A pooled feature
    ``(B, D)`` is one token — the released code maps its ``(B, 1024)`` MANO
    encoding that way, where the attention weights are all 1 and ``h`` is
    ``LayerNorm(x + W_o W_v x)``.

    Args:
        dim: feature size ``D``.
        num_heads: attention heads; must divide ``dim`` (released: 8).

    Shape:
        ``(B, N, D) -> (B, N, D)``; ``(B, D) -> (B, D)``.

    Example:
        >>> h = AttentionAdapter(32, num_heads=4)
        >>> h(torch.randn(2, 21, 32)).shape, h(torch.randn(2, 32)).shape
        (torch.Size([2, 21, 32]), torch.Size([2, 32]))
    """

    def __init__(self, dim: int, num_heads: int = 8, *, device=None, dtype=None) -> None:
        super().__init__()
        self.dim = check_int(dim, name="dim", low=1, fn="AttentionAdapter")
        self.attn = Attention(dim, num_heads, device=device, dtype=dtype)
        self.norm = nn.LayerNorm(dim, eps=1e-6, device=device, dtype=dtype)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Adapt the features (same shape)."""
        x = features
        if not isinstance(x, torch.Tensor) or x.dim() not in (2, 3) or x.shape[-1] != self.dim:
            spec = f"B {self.dim}" if isinstance(x, torch.Tensor) and x.dim() == 2 else f"B N {self.dim}"
            check_shape(x, spec, name="features", fn="AttentionAdapter.forward")  # raises
        tokens = x[:, None] if x.dim() == 2 else x  # (B, D) -> (B, 1, D)
        out = self.norm(tokens + self.attn(tokens))
        return out[:, 0] if x.dim() == 2 else out
