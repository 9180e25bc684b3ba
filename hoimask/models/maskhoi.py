"""MaskHOI pre-training model (MaskHOI §III, Fig. 2, eq. 1).

::

    image ─ masker ─> visible patches ─ ViT encoder (L tokens) ─┬─ hand decoder ──> Y_h (N tokens) ─ DPT ─> f_h ─┬─ heatmaps, segmentation
                                                                 │                      └─ MANO head (16×6D, β)      ├─ SDF_h(p)
                                                                 └─ object decoder ─> Y_o (N tokens) ─ DPT ─> f_o ─┴─ SDF_o(p)
                                                                                        └─ pose head (6D, t)

Loss ``L = λ1 L2D + λ2 L3D + λ3 Lh + λ4 Lo`` with each group the weighted sum of
its terms (segmentation + heatmap; SDF hand + SDF object; MANO parameters +
joints + vertices; object pose). Terms whose targets are absent from the batch
are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from hoimask.losses import (
    HandMeshLoss,
    heatmap_loss,
    object_pose_loss,
    sdf_l1_loss,
    segmentation_loss,
    weighted_sum,
)
from hoimask.masking.base import MaskOutput
from hoimask.models._batch import build_masker, get_image, mask_batch, object_present, optional
from hoimask.models.config import MaskHOIConfig, resolve_preset
from hoimask.nn import (
    DPTHead,
    HeatmapHead,
    MANOTransformerHead,
    ObjectPoseHead,
    PixelNormalization,
    SDFDecoder,
    SegmentationHead,
    TokenDecoder,
    ViTEncoder,
)

__all__ = ["MaskHOI", "build_hand_layer"]

_GROUPS = {
    "loss_2d": ("segmentation", "heatmap"),
    "loss_3d": ("sdf_hand", "sdf_object"),
    "loss_hand": ("mano_params", "hand_joints", "hand_vertices"),
    "loss_object": ("object_pose",),
}


def build_hand_layer(mano_path: str | None) -> nn.Module:
    """``MANOLayer(mano_path)`` when a path is given, else the licence-free ``ProceduralHand``."""
    import hoimask.hand as hand

    return hand.MANOLayer(mano_path) if mano_path else hand.ProceduralHand()


def _decoder_taps(depth: int) -> list[int]:
    """Four decoder layer indices for the DPT head: the last four of ``[-1, 0, ..., depth-1]``."""
    layers = list(range(-1, depth))
    layers = [layers[0]] * max(0, 4 - len(layers)) + layers
    return layers[-4:]


class _Branch(nn.Module):
    """One of the twin branches: token decoder + DPT head (+ SDF decoder)."""

    def __init__(self, cfg: MaskHOIConfig, grid: tuple[int, int]) -> None:
        super().__init__()
        self.taps = _decoder_taps(cfg.decoder_depth)
        self.decoder = TokenDecoder(
            cfg.embed_dim, dim=cfg.decoder_dim, depth=cfg.decoder_depth, num_heads=cfg.decoder_heads, grid_size=grid
        )
        self.dpt = DPTHead(
            cfg.decoder_dim,
            feature_dim=cfg.dpt_feature_dim,
            reassemble_dims=cfg.dpt_reassemble_dims,
            patch_size=cfg.patch_size,
        )
        self.sdf = (
            SDFDecoder(
                4 * cfg.dpt_feature_dim,
                hidden=cfg.sdf_hidden,
                num_layers=cfg.sdf_layers,
                num_bands=cfg.sdf_bands,
                output_scale=cfg.sdf_clamp,
            )
            if cfg.geometric
            else None
        )

    def forward(self, tokens: torch.Tensor, ids_restore: torch.Tensor, grid: tuple[int, int]):
        out = self.decoder(tokens, ids_restore, grid_size=grid, return_layers=self.taps)
        return out.tokens, self.dpt(list(out.layers), grid_size=grid)


class MaskHOI(nn.Module):
    """The MaskHOI pre-training model (encoder, twin decoders, DPT, SDF / 2D / parameter heads).

    Build it with :meth:`from_preset` (``"tiny"`` for CPUs, ``"paper"`` for
    ViT-B/16 at 224 px) or from a :class:`~hoimask.models.MaskHOIConfig`.

    Args:
        config: the configuration (``None``: the ``paper`` defaults).
        masker: optional masker overriding ``config.masking`` (any callable with
            the :mod:`hoimask.masking` signature).
        hand_layer: optional hand layer overriding ``config.mano_path``.

    Shape:
        batch ``image (B, 3, H, W)`` + targets (see :meth:`forward`) ->
        ``{"loss": (), "terms": {name: ()}, "predictions": {...}}``.
    """

    def __init__(
        self,
        config: MaskHOIConfig | None = None,
        *,
        masker: Any = None,
        hand_layer: nn.Module | None = None,
    ) -> None:
        super().__init__()
        cfg = config or MaskHOIConfig()
        self.config = cfg
        self.pixel_norm = PixelNormalization(cfg.pixel_mean, cfg.pixel_std)
        self.encoder = ViTEncoder(
            img_size=cfg.img_size,
            patch_size=cfg.patch_size,
            embed_dim=cfg.embed_dim,
            depth=cfg.depth,
            num_heads=cfg.num_heads,
        )
        grid = self.encoder.grid_size
        self.masker = masker if masker is not None else build_masker(cfg.masking, cfg.mask_ratio, cfg.masker_kwargs)
        self.hand_branch = _Branch(cfg, grid)
        self.object_branch = _Branch(cfg, grid)
        F = cfg.dpt_feature_dim
        self.segmentation_head = SegmentationHead(2 * F, 3, hidden=F)
        self.heatmap_head = HeatmapHead(F, 21)
        if cfg.direct_regression:
            self.mano_head = MANOTransformerHead(
                cfg.decoder_dim, dim=cfg.head_dim, depth=cfg.mano_head_depth, num_heads=max(1, cfg.head_dim // 32)
            )
            self.object_head = ObjectPoseHead(cfg.decoder_dim, hidden=cfg.head_dim)
            self.hand_loss = HandMeshLoss(hand_layer if hand_layer is not None else build_hand_layer(cfg.mano_path))
        else:
            self.mano_head = self.object_head = self.hand_loss = None

    @classmethod
    def from_preset(cls, name: str = "tiny", *, masker: Any = None, hand_layer: nn.Module | None = None, **overrides) -> MaskHOI:
        """Build a preset (``"tiny"`` or ``"paper"``) with keyword overrides of :class:`MaskHOIConfig`.

        Example:
            ``MaskHOI.from_preset("tiny", geometric=False, masking="random")``.
        """
        return cls(resolve_preset(name, overrides), masker=masker, hand_layer=hand_layer)

    def set_progress(self, progress: float) -> None:
        """Forward the training progress (0..1) to the masker's schedule, if it has one."""
        if hasattr(self.masker, "set_progress"):
            self.masker.set_progress(progress)

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The encoder's weights in timm/MAE key format (load with :func:`hoimask.nn.load_vit_checkpoint`)."""
        return {k: v.detach().clone() for k, v in self.encoder.state_dict().items()}

    def mask(self, batch: Mapping[str, Any], *, generator: torch.Generator | None = None) -> MaskOutput:
        """Draw this batch's mask with the configured masker."""
        image = get_image(batch, "MaskHOI.mask")
        grid = self.encoder.patch_embed.grid_size(image.shape[-2], image.shape[-1])
        return mask_batch(self.masker, batch, image, grid, generator=generator)

    def forward(
        self,
        batch: Mapping[str, Any],
        *,
        generator: torch.Generator | None = None,
        mask: MaskOutput | None = None,
    ) -> dict[str, Any]:
        """Predict and compute the loss of a collated batch.

        Args:
            batch: ``image`` (required; RGB in ``[0, 1]``, the model
                normalises it) and any of ``segmentation (B,H,W)``,
                ``joints_2d (B,21,2)``, ``joints_3d (B,21,3)``, ``K (B,3,3)``,
                ``sdf_points (B,Q,3)``, ``sdf_hand (B,Q)``, ``sdf_object (B,Q)``,
                ``hand_pose (B,16,3)``, ``hand_shape (B,10)``,
                ``object_rotation (B,3,3)``, ``object_translation (B,3)``.
                Absent targets skip their loss terms; ``image`` and one target
                are needed for a loss.
            generator: RNG of the masker.
            mask: use this mask instead of drawing one.

        Returns:
            ``{"loss": total (), "terms": {name: ()}, "predictions": {...}}``;
            ``terms`` has the present individual terms and the group losses
            ``loss_2d``, ``loss_3d``, ``loss_hand``, ``loss_object``.
        """
        image = self.pixel_norm(get_image(batch, "MaskHOI.forward"), name="batch['image']", fn="MaskHOI.forward")
        B, _, H, W = image.shape
        grid = self.encoder.patch_embed.grid_size(H, W)
        if mask is None:
            mask = self.mask(batch, generator=generator)
        encoded = self.encoder(image, mask).tokens  # (B, L, D)
        hand_tokens, hand_maps = self.hand_branch(encoded, mask.ids_restore, grid)  # (B, N, Dd), 4 maps
        object_tokens, object_maps = self.object_branch(encoded, mask.ids_restore, grid)
        preds: dict[str, Any] = {"mask": mask}
        preds["segmentation"] = self.segmentation_head(torch.cat([hand_maps[0], object_maps[0]], dim=1))
        preds["heatmaps"] = self.heatmap_head(hand_maps[0])
        terms: dict[str, torch.Tensor | None] = {}
        seg = optional(batch, "segmentation")
        if seg is not None:
            terms["segmentation"] = segmentation_loss(preds["segmentation"], seg)
        j2d = optional(batch, "joints_2d")
        if j2d is not None:
            terms["heatmap"] = heatmap_loss(preds["heatmaps"], j2d, (H, W), sigma=self.config.heatmap_sigma)
        self._predict_sdf(batch, (H, W), hand_maps, object_maps, preds, terms)
        self._regress_parameters(batch, hand_tokens, object_tokens, preds, terms)
        return self._combine(terms, preds)

    def _predict_sdf(self, batch, image_size, hand_maps, object_maps, preds, terms) -> None:
        points, K = optional(batch, "sdf_points"), optional(batch, "K")
        if self.hand_branch.sdf is None or points is None or K is None:
            return
        points = points.to(self.encoder.pos_embed.dtype)  # full precision for the Fourier encoding, also under autocast
        K = K.to(points.dtype)
        for name, branch, maps in (("hand", self.hand_branch, hand_maps), ("object", self.object_branch, object_maps)):
            pred = branch.sdf(points, K, maps, image_size)  # (B, Q)
            preds[f"sdf_{name}"] = pred
            target = optional(batch, f"sdf_{name}")
            if target is not None and torch.isfinite(target).any():
                terms[f"sdf_{name}"] = sdf_l1_loss(pred, target.to(pred.dtype), clamp_distance=self.config.sdf_clamp)

    def _regress_parameters(self, batch, hand_tokens, object_tokens, preds, terms) -> None:
        if self.mano_head is None:
            return
        mano = self.mano_head(hand_tokens)
        pose = self.object_head(object_tokens)
        preds.update(
            hand_rotation_6d=mano.rotation_6d,
            hand_shape=mano.shape,
            object_rotation_6d=pose.rotation_6d,
            object_translation=pose.translation,
        )
        terms.update(
            self.hand_loss(
                mano.rotation_6d,
                mano.shape,
                target_pose=optional(batch, "hand_pose"),
                target_shape=optional(batch, "hand_shape"),
                target_joints=optional(batch, "joints_3d"),
            )
        )
        R, t = optional(batch, "object_rotation"), optional(batch, "object_translation")
        if R is not None and t is not None:
            ok = object_present(batch, R, t)  # (B,)
            if ok.any():
                terms["object_pose"] = object_pose_loss(pose.rotation_6d[ok], pose.translation[ok], R[ok], t[ok])

    def _combine(self, terms: dict[str, torch.Tensor | None], preds: dict[str, Any]) -> dict[str, Any]:
        tw = self.config.term_weights
        groups: dict[str, torch.Tensor | None] = {}
        for group, names in _GROUPS.items():
            present = [tw[n] * terms[n] for n in names if terms.get(n) is not None]
            groups[group] = torch.stack(present).sum() if present else None
        out = weighted_sum(groups, self.config.weights)
        all_terms = {k: v for k, v in terms.items() if v is not None}
        all_terms.update(out.terms)
        return {"loss": out.total, "terms": all_terms, "predictions": preds}
