"""Fixed 2D sin-cos position embeddings for ViT patch grids (MAE layout)."""

from __future__ import annotations

import torch

from hoimask._checks import ValueRangeError, check_positive, check_shape

__all__ = ["sincos_pos_embed_1d", "sincos_pos_embed_2d"]


def sincos_pos_embed_1d(
    positions: torch.Tensor, dim: int, *, temperature: float = 10000.0
) -> torch.Tensor:
    """1D sin-cos embedding ``[sin(p ω_k), cos(p ω_k)]`` with ``ω_k = temperature^(-k/(dim/2))``.

    Shape:
        positions ``(M,)`` -> ``(M, dim)``; ``dim`` must be even.
    """
    check_shape(positions, "M", name="positions")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim % 2 != 0 or dim <= 0:
        raise ValueRangeError(f"sincos_pos_embed_1d(): argument 'dim' expected a positive even int, got {dim!r}")
    check_positive(temperature, name="temperature")
    k = torch.arange(dim // 2, dtype=torch.float64, device=positions.device)
    omega = 1.0 / temperature ** (k / (dim / 2))  # (dim/2,)
    arg = positions.to(torch.float64)[:, None] * omega[None, :]  # (M, dim/2)
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


def sincos_pos_embed_2d(
    grid_h: int,
    grid_w: int,
    dim: int,
    *,
    temperature: float = 10000.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """2D sin-cos position embedding for an ``grid_h × grid_w`` patch grid.

    Tokens are in row-major order (as ``PatchEmbed`` flattens them). The first
    half of the channels embeds the column (x) index and the second half the row
    (y) index, each with :func:`sincos_pos_embed_1d` — the layout of MAE's
    ``get_2d_sincos_pos_embed``, so embeddings match MAE checkpoints.

    Args:
        grid_h: grid height in patches (any positive int).
        grid_w: grid width in patches (any positive int).
        dim: embedding size, a multiple of 4.

    Returns:
        ``(grid_h * grid_w, dim)``.

    Example:
        >>> sincos_pos_embed_2d(14, 14, 768).shape
        torch.Size([196, 768])
    """
    for name, v in (("grid_h", grid_h), ("grid_w", grid_w)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueRangeError(f"sincos_pos_embed_2d(): argument '{name}' expected an int >= 1, got {v!r}")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0 or dim % 4 != 0:
        raise ValueRangeError(f"sincos_pos_embed_2d(): argument 'dim' expected a positive multiple of 4, got {dim!r}")
    check_positive(temperature, name="temperature")
    rows = torch.arange(grid_h, device=device).repeat_interleave(grid_w)  # (N,) y index
    cols = torch.arange(grid_w, device=device).repeat(grid_h)  # (N,) x index
    emb = torch.cat(
        [
            sincos_pos_embed_1d(cols, dim // 2, temperature=temperature),
            sincos_pos_embed_1d(rows, dim // 2, temperature=temperature),
        ],
        dim=1,
    )
    return emb.to(dtype)
