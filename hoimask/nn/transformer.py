"""Transformer building blocks: MLP, self-/cross-attention and pre-norm blocks.

Parameter names follow timm/MAE (``norm1``, ``attn.qkv``, ``attn.proj``,
``norm2``, ``mlp.fc1``, ``mlp.fc2``) so that published ViT checkpoints map onto
them by renaming prefixes only. Attention runs through
:func:`torch.nn.functional.scaled_dot_product_attention`, which picks a fused
kernel where the device has one — except bf16 on a CPU (:func:`attention`).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from hoimask._checks import ShapeError, ValueRangeError, check_int, check_positive, check_shape

__all__ = ["Mlp", "Attention", "CrossAttention", "Block", "CrossAttentionBlock", "attention",
           "fp32_on_cpu_bf16"]


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``F.scaled_dot_product_attention(q, k, v, attn_mask)``, on the math kernel for bf16 on a CPU.

    torch's CPU flash kernel is about twice as slow in bf16 as in fp32 at ViT
    sizes, and twice as slow as the math kernel in bf16 (forward + backward,
    ``(16, 3, 65, 64)``: 18.5 ms flash, 9.9 ms math; fp32 flash 8.8 ms), so
    bf16 autocast on a CPU would lose much of its gain in the attention.

    Shape:
        ``(B, h, M, d), (B, h, N, d), (B, h, N, d) -> (B, h, M, d)``.
    """
    if q.device.type == "cpu" and q.dtype == torch.bfloat16:
        with sdpa_kernel(SDPBackend.MATH):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)

def fp32_on_cpu_bf16(*tensors: torch.Tensor) -> tuple[contextlib.AbstractContextManager, tuple[torch.Tensor, ...]]:
    """Run a block in fp32 where CPU bf16 autocast is on: ``(context, tensors)`` to use as ``with context:``.

    Under CPU bf16 autocast, returns a context that switches autocast off and
    the tensors cast to fp32; otherwise a no-op context and the tensors as
    given. For modules built on torch's own layers
    (:class:`torch.nn.TransformerEncoderLayer`,
    :class:`torch.nn.MultiheadAttention`), whose attention would take the CPU
    flash kernel in bf16: at HOISDF's point-token size (``(8, 192, 64)``,
    4 heads, forward + backward of one encoder layer) fp32 takes 7.3 ms,
    bf16 autocast 9.8 ms (12.7 ms on the math kernel).
    """
    if not (torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16):
        return contextlib.nullcontext(), tensors
    if not all(t.device.type == "cpu" for t in tensors):
        return contextlib.nullcontext(), tensors
    return torch.autocast("cpu", enabled=False), tuple(t.float() for t in tensors)


class Mlp(nn.Module):
    """Two-layer perceptron ``fc2(act(fc1(x)))`` (the transformer feed-forward).

    Args:
        in_features: input size D.
        hidden_features: hidden size (default ``in_features``).
        out_features: output size (default ``in_features``).
        act_layer: activation class.

    Shape:
        ``(..., in_features)`` -> ``(..., out_features)``.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        *,
        act_layer: type[nn.Module] = nn.GELU,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        check_int(in_features, name="in_features", low=1)
        hidden_features = in_features if hidden_features is None else check_int(hidden_features, name="hidden_features", low=1)
        out_features = in_features if out_features is None else check_int(out_features, name="out_features", low=1)
        self.fc1 = nn.Linear(in_features, hidden_features, device=device, dtype=dtype)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP to the last dimension."""
        if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[-1] != self.fc1.in_features:
            check_shape(x, f"... {self.fc1.in_features}", name="x")  # raises the typed error
        return self.fc2(self.act(self.fc1(x)))


def _heads_split(dim: int, num_heads: int, type_name: str) -> int:
    check_int(dim, name="dim", low=1, fn=type_name)
    check_int(num_heads, name="num_heads", low=1, fn=type_name)
    if dim % num_heads != 0:
        raise ValueRangeError(
            f"{type_name}(): argument 'num_heads' expected an int >= 1 dividing dim={dim}, got {num_heads} "
            "(dim must be divisible by num_heads)"
        )
    return dim // num_heads


def _check_tokens(x: torch.Tensor, dim: int, name: str, spec: str, fn: str) -> None:
    """Cheap ``(B, N, dim)`` test; the full check only builds the error message."""
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != dim:
        check_shape(x, spec, name=name, fn=fn)


def _check_attn_mask(mask: torch.Tensor | None, n_query: int, n_key: int, fn: str) -> None:
    """``attn_mask`` must broadcast to ``(B, heads, N_q, N_k)``: 2 to 4 dims, trailing ``(N_q | 1, N_k | 1)``."""
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor):
        check_shape(mask, "... N N", name="attn_mask", fn=fn)  # raises DTypeError
    if not 2 <= mask.dim() <= 4 or mask.shape[-2] not in (1, n_query) or mask.shape[-1] not in (1, n_key):
        raise ShapeError(
            f"{fn}(): argument 'attn_mask' expected a mask broadcastable to (B, heads, {n_query}, {n_key}) "
            f"(2 to 4 dims), got shape {tuple(mask.shape)}"
        )


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection.

    Args:
        dim: token size D.
        num_heads: number of heads; must divide ``dim``.
        qkv_bias: add a bias to the ``qkv`` projection.

    Shape:
        x ``(B, N, D)``, optional ``attn_mask`` broadcastable to ``(B, heads, N, N)``
        (bool, True = may attend) -> ``(B, N, D)``.
    """

    def __init__(self, dim: int, num_heads: int = 8, *, qkv_bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        _heads_split(dim, num_heads, "Attention")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias, device=device, dtype=dtype)
        self.proj = nn.Linear(dim, dim, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attend every token to every (allowed) token."""
        _check_tokens(x, self.qkv.in_features, "x", f"B N {self.qkv.in_features}", "Attention.forward")
        _check_attn_mask(attn_mask, x.shape[1], x.shape[1], "Attention.forward")
        qkv = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        out = attention(qkv[0], qkv[1], qkv[2], attn_mask=attn_mask)  # (B, h, N, d)
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


class CrossAttention(nn.Module):
    """Multi-head attention of queries ``x`` to a ``context`` sequence.

    Args:
        dim: query size D.
        context_dim: context size (default ``dim``).
        num_heads: number of heads; must divide ``dim``.
        qkv_bias: add biases to the q/kv projections.

    Shape:
        x ``(B, M, D)``, context ``(B, N, C)`` -> ``(B, M, D)``.
    """

    def __init__(
        self,
        dim: int,
        context_dim: int | None = None,
        num_heads: int = 8,
        *,
        qkv_bias: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        _heads_split(dim, num_heads, "CrossAttention")
        context_dim = dim if context_dim is None else check_int(context_dim, name="context_dim", low=1)
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias, device=device, dtype=dtype)
        self.kv = nn.Linear(context_dim, dim * 2, bias=qkv_bias, device=device, dtype=dtype)
        self.proj = nn.Linear(dim, dim, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Attend the queries to the context."""
        fn, C = "CrossAttention.forward", self.kv.in_features
        _check_tokens(x, self.q.in_features, "x", f"B M {self.q.in_features}", fn)
        if not isinstance(context, torch.Tensor) or context.dim() != 3 or context.shape[0] != x.shape[0] or context.shape[-1] != C:
            check_shape(context, f"{x.shape[0]} N {C}", name="context", fn=fn)  # raises the typed error
        q = rearrange(self.q(x), "b m (h d) -> b h m d", h=self.num_heads)
        kv = rearrange(self.kv(context), "b n (two h d) -> two b h n d", two=2, h=self.num_heads)
        out = attention(q, kv[0], kv[1])  # (B, h, M, d)
        return self.proj(rearrange(out, "b h m d -> b m (h d)"))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``.

    Args:
        dim: token size D.
        num_heads: attention heads.
        mlp_ratio: hidden size of the MLP relative to ``dim``.
        qkv_bias: bias on the ``qkv`` projection.
        norm_layer: normalisation class (called with ``dim``).

    Shape:
        ``(B, N, D)`` -> ``(B, N, D)``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_layer: type[nn.Module] = nn.LayerNorm,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        _heads_split(dim, num_heads, "Block")
        check_positive(mlp_ratio, name="mlp_ratio")
        self.norm1 = norm_layer(dim, eps=1e-6, device=device, dtype=dtype)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, device=device, dtype=dtype)
        self.norm2 = norm_layer(dim, eps=1e-6, device=device, dtype=dtype)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the block; ``attn_mask`` (bool, True = may attend) restricts attention."""
        _check_tokens(x, self.attn.qkv.in_features, "x", f"B N {self.attn.qkv.in_features}", "Block.forward")
        x = x + self.attn(self.norm1(x), attn_mask=attn_mask)
        return x + self.mlp(self.norm2(x))


class CrossAttentionBlock(nn.Module):
    """Pre-norm transformer decoder block: self-attention, cross-attention, MLP.

    Args:
        dim: query size D.
        context_dim: size of the context tokens (default ``dim``).
        num_heads: attention heads.
        mlp_ratio: hidden size of the MLP relative to ``dim``.

    Shape:
        x ``(B, M, D)``, context ``(B, N, C)`` -> ``(B, M, D)``.
    """

    def __init__(
        self,
        dim: int,
        context_dim: int | None = None,
        num_heads: int = 8,
        *,
        mlp_ratio: float = 4.0,
        norm_layer: type[nn.Module] = nn.LayerNorm,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        _heads_split(dim, num_heads, "CrossAttentionBlock")
        context_dim = dim if context_dim is None else check_int(context_dim, name="context_dim", low=1)
        check_positive(mlp_ratio, name="mlp_ratio")
        self.norm1 = norm_layer(dim, eps=1e-6, device=device, dtype=dtype)
        self.self_attn = Attention(dim, num_heads, device=device, dtype=dtype)
        self.norm2 = norm_layer(dim, eps=1e-6, device=device, dtype=dtype)
        self.norm_context = norm_layer(context_dim, eps=1e-6, device=device, dtype=dtype)
        self.cross_attn = CrossAttention(dim, context_dim, num_heads, device=device, dtype=dtype)
        self.norm3 = norm_layer(dim, eps=1e-6, device=device, dtype=dtype)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Update the queries ``x`` from themselves and from ``context``."""
        dims = check_shape(x, f"B M {self.cross_attn.q.in_features}", name="x")
        check_shape(context, f"B N {self.cross_attn.kv.in_features}", name="context", dims=dims)
        x = x + self.self_attn(self.norm1(x))
        x = x + self.cross_attn(self.norm2(x), self.norm_context(context))
        return x + self.mlp(self.norm3(x))
