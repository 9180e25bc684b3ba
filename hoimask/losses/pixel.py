"""MAE pixel reconstruction loss (He et al. 2022): MSE on the masked patches."""

from __future__ import annotations

import torch
from einops import rearrange

from hoimask._checks import ShapeError, ValueRangeError, check_shape, check_size

__all__ = ["patchify", "unpatchify", "pixel_reconstruction_loss"]


def _check_patch_size(patch_size: int, fn: str) -> None:
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
        raise ValueRangeError(f"{fn}(): argument 'patch_size' expected an int >= 1, got {patch_size!r}")


def patchify(image: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut an image into flattened patches (row-major grid, pixels ``(p, q, c)`` inside a patch).

    Shape:
        ``(B, C, H, W)`` -> ``(B, N, P*P*C)``.
    """
    check_shape(image, "B C H W", name="image")
    _check_patch_size(patch_size, "patchify")
    H, W = image.shape[-2:]
    if H % patch_size or W % patch_size:
        raise ShapeError(f"patchify(): image sides ({H}, {W}) must be multiples of patch_size={patch_size}")
    return rearrange(image, "b c (h p) (w q) -> b (h w) (p q c)", p=patch_size, q=patch_size)


def unpatchify(patches: torch.Tensor, patch_size: int, grid_size: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`patchify`.

    Shape:
        ``(B, N, P*P*C)`` -> ``(B, C, gh*P, gw*P)``.
    """
    dims = check_shape(patches, "B N D", name="patches")
    _check_patch_size(patch_size, "unpatchify")
    gh, gw = check_size(grid_size, name="grid_size")
    if gh * gw != dims["N"] or dims["D"] % (patch_size * patch_size):
        raise ShapeError(
            f"unpatchify(): argument 'patches' expected shape (B, {gh * gw}, P*P*C) for grid_size=({gh}, {gw}) and "
            f"patch_size={patch_size}, got shape {tuple(patches.shape)}"
        )
    return rearrange(patches, "b (h w) (p q c) -> b c (h p) (w q)", h=gh, w=gw, p=patch_size, q=patch_size)


def pixel_reconstruction_loss(
    pred: torch.Tensor,
    image: torch.Tensor,
    mask: torch.Tensor,
    patch_size: int,
    *,
    norm_pix_loss: bool = True,
) -> torch.Tensor:
    """Mean squared error of the predicted pixels on the masked patches.

    Args:
        pred: ``(B, N, P*P*C)`` predicted patches.
        image: ``(B, C, H, W)`` the input image.
        mask: ``(B, N)`` bool, True = masked (only those count).
        patch_size: P.
        norm_pix_loss: normalise each target patch by its mean and std (MAE's default).

    Returns:
        Scalar loss (zero, still connected to ``pred``, if nothing is masked).

    Shape:
        ``(B, N, P*P*C)``, ``(B, C, H, W)``, ``(B, N)`` -> ``()``.
    """
    dims = check_shape(pred, "B N D", name="pred")
    target = patchify(image, patch_size).to(pred.dtype)  # (B, N, P*P*C)
    check_shape(target, "B N D", name="image (patchified)", dims=dims)
    check_shape(mask, "B N", name="mask", dims=dims)
    if norm_pix_loss:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6).sqrt()
    per_patch = (pred - target).pow(2).mean(dim=-1)  # (B, N)
    m = mask.to(per_patch.dtype)
    return (per_patch * m).sum() / m.sum().clamp(min=1)
