"""Plain MAE baseline (He et al. 2022): the same ViT encoder, a pixel-reconstruction decoder.

Used as the random-masking baseline of the benchmark and of the training
ablations. Same batch-in, dict-out interface as :class:`~hoimask.models.MaskHOI`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from hoimask._checks import check_choice
from hoimask.losses import pixel_reconstruction_loss
from hoimask.masking.base import MaskOutput
from hoimask.models._batch import MASKER_KINDS, build_masker, get_image, mask_batch
from hoimask.nn import IMAGENET_MEAN, IMAGENET_STD, PixelNormalization, TokenDecoder, ViTEncoder

__all__ = ["MAE", "MAE_PRESETS"]

#: ``tiny`` matches MaskHOI's tiny encoder; ``paper`` is MAE's ViT-B/16 recipe (decoder 512 wide, 8 deep).
MAE_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(img_size=128, embed_dim=192, depth=4, num_heads=3, decoder_dim=128, decoder_depth=2, decoder_heads=4),
    "paper": dict(img_size=224, embed_dim=768, depth=12, num_heads=12, decoder_dim=512, decoder_depth=8, decoder_heads=16),
}


class MAE(nn.Module):
    """Masked autoencoder with pixel reconstruction of the masked patches.

    Args:
        img_size: image side.
        patch_size: P.
        embed_dim: encoder token width.
        depth: encoder blocks.
        num_heads: encoder attention heads.
        decoder_dim: decoder token width.
        decoder_depth: decoder blocks.
        decoder_heads: decoder attention heads.
        mask_ratio: fraction of patches masked (random masking).
        masking: ``"random"`` (default), ``"region"``, ``"hybrid"`` or ``"target"`` (HOMAE's target-focused masking).
        norm_pix_loss: normalise target patches (MAE default).
        masker: optional masker instance overriding ``masking``.
        pixel_mean: per-channel mean the model normalises its input with
            (:class:`~hoimask.nn.PixelNormalization`; ImageNet's by default).
            Images come in as RGB in ``[0, 1]``; the reconstruction target is
            the normalised image, as in MAE.
        pixel_std: per-channel standard deviation, as ``pixel_mean``.

    Shape:
        batch ``image (B, 3, H, W)`` -> ``{"loss": (), "terms": {"pixel": ()}, "predictions": {"pixels": (B, N, P*P*3), "mask": MaskOutput}}``.
    """

    def __init__(
        self,
        *,
        img_size: int = 224,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        decoder_dim: int = 512,
        decoder_depth: int = 8,
        decoder_heads: int = 16,
        mask_ratio: float = 0.75,
        masking: str = "random",
        norm_pix_loss: bool = True,
        masker: Any = None,
        masker_kwargs: dict[str, Any] | None = None,
        pixel_mean: tuple[float, ...] = IMAGENET_MEAN,
        pixel_std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.pixel_norm = PixelNormalization(pixel_mean, pixel_std)
        check_choice(masking, MASKER_KINDS, name="masking")
        self.patch_size = patch_size
        self.img_size = img_size
        self.norm_pix_loss = norm_pix_loss
        self.encoder = ViTEncoder(
            img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth, num_heads=num_heads
        )
        self.decoder = TokenDecoder(
            embed_dim, dim=decoder_dim, depth=decoder_depth, num_heads=decoder_heads, grid_size=self.encoder.grid_size
        )
        self.pixel_head = nn.Linear(decoder_dim, patch_size * patch_size * 3)
        self.masker = masker if masker is not None else build_masker(masking, mask_ratio, masker_kwargs or {})

    @classmethod
    def from_preset(cls, name: str = "tiny", **overrides) -> MAE:
        """Build the ``"tiny"`` or ``"paper"`` preset with keyword overrides."""
        check_choice(name, tuple(MAE_PRESETS), name="name")
        return cls(**{**MAE_PRESETS[name], **overrides})

    def set_progress(self, progress: float) -> None:
        """Forward the training progress to the masker's schedule, if it has one."""
        if hasattr(self.masker, "set_progress"):
            self.masker.set_progress(progress)

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The encoder's weights in timm/MAE key format."""
        return {k: v.detach().clone() for k, v in self.encoder.state_dict().items()}

    def forward(
        self,
        batch: Mapping[str, Any],
        *,
        generator: torch.Generator | None = None,
        mask: MaskOutput | None = None,
    ) -> dict[str, Any]:
        """Mask, encode the visible patches, reconstruct every patch, score the masked ones.

        Args:
            batch: needs ``image`` (RGB in ``[0, 1]``); ``segmentation`` / ``joints_2d`` are passed to
                the masker when present.
            generator: RNG of the masker.
            mask: use this mask instead of drawing one.

        Returns:
            ``{"loss", "terms": {"pixel"}, "predictions": {"pixels", "mask"}}``.
        """
        image = self.pixel_norm(get_image(batch, "MAE.forward"), name="batch['image']", fn="MAE.forward")
        grid = self.encoder.patch_embed.grid_size(image.shape[-2], image.shape[-1])
        if mask is None:
            mask = mask_batch(self.masker, batch, image, grid, generator=generator)
        tokens = self.encoder(image, mask).tokens  # (B, L, D)
        decoded = self.decoder(tokens, mask.ids_restore, grid_size=grid).tokens  # (B, N, Dd)
        pixels = self.pixel_head(decoded)  # (B, N, P*P*3)
        loss = pixel_reconstruction_loss(pixels, image, mask.mask, self.patch_size, norm_pix_loss=self.norm_pix_loss)
        return {"loss": loss, "terms": {"pixel": loss}, "predictions": {"pixels": pixels, "mask": mask}}
