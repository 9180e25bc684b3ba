"""Image to patch tokens (ViT's patchify-and-project)."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from hoimask._checks import ShapeError, check_int, check_shape

__all__ = ["PatchEmbed"]


class PatchEmbed(nn.Module):
    """Split an image into non-overlapping ``P x P`` patches and project each to D.

    A strided convolution (``proj``, the name used by timm and MAE checkpoints).
    Works for any image whose sides are multiples of the patch size.

    Args:
        patch_size: P.
        in_chans: image channels C.
        embed_dim: token size D.

    Shape:
        image ``(B, C, H, W)`` -> tokens ``(B, N, D)`` with ``N = (H/P)(W/P)`` in
        row-major grid order.

    Example:
        >>> embed = PatchEmbed(patch_size=16, in_chans=3, embed_dim=32)
        >>> embed(torch.zeros(2, 3, 64, 48)).shape
        torch.Size([2, 12, 32])
    """

    def __init__(self, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768, *, device=None, dtype=None) -> None:
        super().__init__()
        check_int(patch_size, name="patch_size", low=1)
        check_int(in_chans, name="in_chans", low=1)
        check_int(embed_dim, name="embed_dim", low=1)
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size, device=device, dtype=dtype)

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """Patch grid ``(H/P, W/P)`` of an image, raising if a side is not a multiple of P."""
        P = self.patch_size
        if height % P or width % P or height < P or width < P:
            raise ShapeError(
                f"PatchEmbed(): image sides must be positive multiples of patch_size={P}, got ({height}, {width})"
            )
        return height // P, width // P

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Patchify and project ``image``."""
        check_shape(image, f"B {self.in_chans} H W", name="image")
        self.grid_size(image.shape[-2], image.shape[-1])
        return rearrange(self.proj(image), "b d gh gw -> b (gh gw) d")
