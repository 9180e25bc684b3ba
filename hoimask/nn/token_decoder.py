"""Token decoder: restore the full grid from the kept tokens with mask tokens.

MAE's decoder: project the encoder tokens to the decoder width, insert a learned
mask token at every masked position and un-shuffle with ``ids_restore``, add a
2D sin-cos positional embedding, run a few transformer blocks. MaskHOI runs two
of them in parallel, one for the hand and one for the object (Fig. 2).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from hoimask._checks import ShapeError, check_int, check_shape, check_size
from hoimask.encoding import sincos_pos_embed_2d
from hoimask.masking.base import restore
from hoimask.nn.transformer import Block

__all__ = ["DecoderOutput", "TokenDecoder"]


class DecoderOutput(NamedTuple):
    """What :class:`TokenDecoder` returns."""

    tokens: torch.Tensor  #: (B, N, D) all grid tokens after the final norm, grid order
    layers: tuple[torch.Tensor, ...]  #: (B, N, D) outputs of the requested blocks (index -1 = input)


class TokenDecoder(nn.Module):
    """Mask tokens + un-shuffle + positional embedding + transformer blocks.

    Args:
        encoder_dim: size of the incoming encoder tokens.
        dim: decoder width D.
        depth: number of blocks (0 is allowed: restore and embed only).
        num_heads: attention heads.
        grid_size: ``(gh, gw)`` grid the positional embedding is cached for;
            other grids are computed on the fly.
        mlp_ratio: MLP hidden size relative to ``dim``.

    Shape:
        tokens ``(B, L, encoder_dim)``, ids_restore ``(B, N)`` -> tokens ``(B, N, dim)``.

    Example:
        >>> dec = TokenDecoder(32, dim=16, depth=1, num_heads=2, grid_size=(4, 4))
        >>> ids = torch.arange(16).expand(2, 16)
        >>> dec(torch.zeros(2, 5, 32), ids, grid_size=(4, 4)).tokens.shape
        torch.Size([2, 16, 16])
    """

    def __init__(
        self,
        encoder_dim: int,
        *,
        dim: int = 256,
        depth: int = 4,
        num_heads: int = 8,
        grid_size: tuple[int, int] = (14, 14),
        mlp_ratio: float = 4.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        check_int(encoder_dim, name="encoder_dim", low=1)
        check_int(dim, name="dim", low=1)
        check_int(depth, name="depth", low=0)
        self.dim = dim
        self.grid_size = check_size(grid_size, name="grid_size")
        self.embed = nn.Linear(encoder_dim, dim, device=device, dtype=dtype)
        self.mask_token = nn.Parameter(torch.zeros(dim, device=device, dtype=dtype))
        self.register_buffer(
            "pos_embed", sincos_pos_embed_2d(*self.grid_size, dim).to(device=device, dtype=dtype), persistent=False
        )
        self.blocks = nn.ModuleList(
            Block(dim, num_heads, mlp_ratio=mlp_ratio, device=device, dtype=dtype) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6, device=device, dtype=dtype)
        nn.init.normal_(self.mask_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def positions(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """``(N, D)`` sin-cos positional embedding of a grid (cached for the default grid)."""
        if (grid_h, grid_w) == self.grid_size:
            return self.pos_embed
        return sincos_pos_embed_2d(grid_h, grid_w, self.dim).to(self.pos_embed)

    def forward(
        self,
        tokens: torch.Tensor,
        ids_restore: torch.Tensor,
        *,
        grid_size: tuple[int, int] | None = None,
        return_layers: list[int] | tuple[int, ...] | None = None,
    ) -> DecoderOutput:
        """Decode the kept tokens into a full grid of tokens.

        Args:
            tokens: ``(B, L, encoder_dim)`` encoder output in ``ids_keep`` order.
            ids_restore: ``(B, N)`` from the masker.
            grid_size: ``(gh, gw)`` with ``gh * gw = N`` (default: the constructor's).
            return_layers: block indices to return; ``-1`` means the restored,
                position-embedded input before the first block.

        Returns:
            :class:`DecoderOutput` with tokens ``(B, N, dim)`` in grid order.
        """
        dims = check_shape(tokens, f"B L {self.embed.in_features}", name="tokens")
        check_shape(ids_restore, "B N", name="ids_restore", dims=dims)
        gh, gw = check_size(grid_size, name="grid_size") if grid_size is not None else self.grid_size
        if gh * gw != dims["N"]:
            raise ShapeError(f"TokenDecoder.forward(): argument 'grid_size' {gh}x{gw} does not match N={dims['N']}")
        wanted = set(return_layers or ())
        for i in wanted:
            if not -1 <= i < len(self.blocks):
                raise ShapeError(
                    f"TokenDecoder.forward(): argument 'return_layers' entries must lie in [-1, {len(self.blocks)}), got {i}"
                )
        x = restore(self.embed(tokens), ids_restore, self.mask_token)  # (B, N, D) grid order
        x = x + self.positions(gh, gw)
        taps = {-1: x} if -1 in wanted else {}
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in wanted:
                taps[i] = x
        return DecoderOutput(self.norm(x), tuple(taps[i] for i in (return_layers or ())))
