"""2D position embeddings for ViT patch grids: fixed sin-cos (MAE layout) and resizing learned ones."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from hoimask._checks import (
    ShapeError,
    ValueRangeError,
    check_choice,
    check_floating,
    check_int,
    check_positive,
    check_shape,
    check_size,
)

__all__ = ["POS_EMBED_RESIZE_METHODS", "resize_pos_embed_2d", "sincos_pos_embed_1d", "sincos_pos_embed_2d"]

#: How :func:`resize_pos_embed_2d` interpolates: ``"timm"`` is timm's ``resample_abs_pos_embed``
#: (bicubic, antialiased), ``"mae"`` is MAE's ``interpolate_pos_embed`` (bicubic, not antialiased).
POS_EMBED_RESIZE_METHODS: tuple[str, ...] = ("timm", "mae")


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


def resize_pos_embed_2d(
    pos_embed: torch.Tensor,
    new_grid: tuple[int, int],
    *,
    old_grid: tuple[int, int] | None = None,
    num_prefix_tokens: int = 0,
    method: str = "timm",
) -> torch.Tensor:
    """Resize a (learned) position embedding of a row-major patch grid to another grid.

    The first ``num_prefix_tokens`` positions (class token, ...) are kept as
    they are; the patch positions are laid out as a ``(D, h, w)`` image and
    interpolated bicubically with ``align_corners=False``, as

    * ``method="timm"``: timm's ``resample_abs_pos_embed`` (``antialias=True``;
      what timm uses when it loads a checkpoint for another image size and at
      run time with ``dynamic_img_size=True``);
    * ``method="mae"``: MAE's ``interpolate_pos_embed`` (no antialiasing;
      MultiMAE's input adapter resizes the same way).

    The two differ also when upsampling: PyTorch's antialiased bicubic uses
    PIL's cubic kernel (``a = -0.5``), the plain one ``a = -0.75``. Half and
    bfloat16 inputs are interpolated in float32 and cast back (timm casts
    every dtype to float32; float64 stays float64 here, so gradcheck works).

    Args:
        pos_embed: ``(B, P + h·w, D)`` embedding (B is usually 1).
        new_grid: ``(H, W)`` grid to resize to.
        old_grid: ``(h, w)`` grid of ``pos_embed``; ``None`` means square.
        num_prefix_tokens: ``P``, the leading positions that are not on the grid.
        method: ``"timm"`` or ``"mae"`` (:data:`POS_EMBED_RESIZE_METHODS`).

    Returns:
        ``(B, P + H·W, D)``; ``pos_embed`` itself when the grids are equal.

    Raises:
        ShapeError: the token count does not match ``old_grid`` (or is not
            ``P`` plus a square when ``old_grid`` is None).
        ValueRangeError: bad ``method``, grid entries < 1 or ``num_prefix_tokens`` < 0.

    Shape:
        ``(B, P + h·w, D) -> (B, P + H·W, D)``.

    Example:
        >>> pos = torch.randn(1, 1 + 14 * 14, 32)
        >>> resize_pos_embed_2d(pos, (8, 8), num_prefix_tokens=1).shape
        torch.Size([1, 65, 32])
    """
    fn = "resize_pos_embed_2d"
    check_choice(method, POS_EMBED_RESIZE_METHODS, name="method", fn=fn)
    check_int(num_prefix_tokens, name="num_prefix_tokens", low=0, fn=fn)
    new_h, new_w = check_size(new_grid, name="new_grid", fn=fn)
    dims = check_shape(pos_embed, "B N D", name="pos_embed", fn=fn)
    check_floating(pos_embed, name="pos_embed", fn=fn)
    count = dims["N"] - num_prefix_tokens
    if old_grid is None:
        side = int(round(max(count, 0) ** 0.5))
        if count < 1 or side * side != count:
            raise ShapeError(f"{fn}(): argument 'pos_embed' has {dims['N']} positions; with num_prefix_tokens="
                             f"{num_prefix_tokens} that is not a square grid, so pass old_grid=(h, w)")
        old_grid = (side, side)
    old_h, old_w = check_size(old_grid, name="old_grid", fn=fn)
    if old_h * old_w != count:
        raise ShapeError(f"{fn}(): argument 'pos_embed' has {dims['N']} positions, expected num_prefix_tokens + "
                         f"h·w = {num_prefix_tokens} + {old_h}·{old_w} for old_grid={tuple(old_grid)}")
    if (old_h, old_w) == (new_h, new_w):
        return pos_embed
    prefix, body = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    grid = rearrange(body, "b (h w) d -> b d h w", h=old_h, w=old_w)  # (B, D, h, w), a channels-last view
    work = grid if grid.dtype in (torch.float32, torch.float64) else grid.float()
    # Channels-last, as timm's reshape + permute: PyTorch's (2.13, CPU) antialiased bicubic in the NCHW
    # layout is wrong when the output is one column wide; channels-last is not (tests/encoding).
    work = work.contiguous(memory_format=torch.channels_last)
    work = F.interpolate(work, size=(new_h, new_w), mode="bicubic", align_corners=False,
                         antialias=method == "timm")  # (B, D, H, W)
    body = rearrange(work.to(pos_embed.dtype), "b d h w -> b (h w) d")  # (B, H·W, D)
    return torch.cat([prefix, body], dim=1)
