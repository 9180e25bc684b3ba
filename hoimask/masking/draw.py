"""Pictures of masks: the image with its masked patches greyed out (as in the MAE paper)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hoimask._checks import DTypeError, ShapeError, check_dtype, check_in_range, check_shape

__all__ = ["draw_mask"]


def draw_mask(
    image: torch.Tensor,
    mask: torch.Tensor,
    patch_size: int | Sequence[int],
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    fill: Sequence[int] = (128, 128, 128),
    masked_alpha: float = 0.0,
) -> torch.Tensor:
    """Render an image with its masked patches replaced by a flat colour.

    Args:
        image: RGB image(s), channels first: uint8 in ``[0, 255]``, or float in
            ``[0, 1]``; float images normalised as ``(x - mean) / std`` are
            un-normalised first when ``mean`` and ``std`` are given (e.g. ImageNet's).
        mask: bool, ``True`` = masked, row-major over the patch grid ``(H / ph, W / pw)``.
        patch_size: ``(ph, pw)`` or one int; must divide ``H`` and ``W``.
        mean: per-channel mean of the normalisation to undo (give ``std`` too, or neither).
        std: per-channel standard deviation of the normalisation to undo.
        fill: RGB colour of masked patches.
        masked_alpha: how much of the image shows through masked patches, in ``[0, 1]``.

    Returns:
        uint8 RGB picture, channels last (ready for ``PIL.Image.fromarray(x.numpy())``).

    Shape:
        image ``(3, H, W)`` with mask ``(N,)`` -> ``(H, W, 3)``;
        image ``(B, 3, H, W)`` with mask ``(B, N)`` -> ``(B, H, W, 3)``.
    """
    batched = image.dim() == 4
    if batched:
        dims = check_shape(image, "B 3 H W", name="image")
        check_shape(mask, "B N", name="mask", dims=dims)
    else:
        dims = check_shape(image, "3 H W", name="image")
        check_shape(mask, "N", name="mask", dims=dims)
        image, mask = image.unsqueeze(0), mask.unsqueeze(0)
    check_dtype(mask, torch.bool, name="mask")
    alpha = check_in_range(masked_alpha, name="masked_alpha", low=0.0, high=1.0)
    ph, pw = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
    B, _, H, W = image.shape
    if ph <= 0 or pw <= 0 or H % ph or W % pw:
        raise ShapeError(f"argument 'patch_size': ({ph}, {pw}) must divide the image size ({H}, {W})")
    gh, gw = H // ph, W // pw
    if mask.shape[1] != gh * gw:
        raise ShapeError(f"argument 'mask': expected {gh * gw} patches for a {gh}x{gw} grid, got {mask.shape[1]}")
    if (mean is None) != (std is None):
        raise DTypeError("arguments 'mean' and 'std' must be given together")
    if image.dtype == torch.uint8:
        rgb = image.float()
    elif image.is_floating_point():
        rgb = image.float()
        if mean is not None:
            m = torch.tensor(mean, dtype=rgb.dtype, device=rgb.device).reshape(1, 3, 1, 1)
            s = torch.tensor(std, dtype=rgb.dtype, device=rgb.device).reshape(1, 3, 1, 1)
            rgb = rgb * s + m
        rgb = rgb.clamp(0.0, 1.0) * 255.0  # display only: out-of-gamut colours are clipped
    else:
        raise DTypeError(f"argument 'image': expected uint8 or floating dtype, got {image.dtype}")
    pixel_mask = mask.reshape(B, 1, gh, 1, gw, 1).expand(B, 1, gh, ph, gw, pw).reshape(B, 1, H, W)
    colour = torch.tensor(list(fill), dtype=rgb.dtype, device=rgb.device).reshape(1, 3, 1, 1)
    shown = torch.where(pixel_mask, alpha * rgb + (1.0 - alpha) * colour, rgb)
    out = shown.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()  # (B, H, W, 3)
    return out if batched else out[0]
