"""HOISDF (Qi et al., CVPR 2024): hand-object pose from global signed distance fields — MaskHOI's fine-tuning model.

::

    image ─ backbone (ResNet-50 U-Net | ViT + DPT) ─> maps F (finest first)
      ├─ 2D heads (finest map): heatmap, hand / object segmentation ───────────────── L_img
      ├─ SDF_h(p; hand root), SDF_o(p; object centre) at the batch's sdf_points ───── L_sdf
      └─ pose query points: ground-truth near-surface points + noise (training schedule)
         or field-guided top-k |SDF| voxels in the 2D boxes (no grad; always in predict)
           hand points ─ tokens [p-c, γ, MLP(F(π p))·σ(d_h)] ─┐  + object points in the hand field (detached)
             └─ PointPoseTransformer ─ 17 MANO queries ─ 16×6D, β ─ hand layer ─ L_mano (every decoder layer)
                  └─ encoder outputs ─ JointVotingHead ───────────────────────────── L_off (every encoder layer)
           object points ─ tokens (σ(d_o)) + hand points in the object field (detached)
             └─ PointTransformerEncoder ─ PointObjectPoseHead (per point r, t - c) ─ L_obj (every layer)
           point_cloud_fusion=True (HOMAE; off by default): per branch the points nearest the zero
             level, projected onto it (p - d·∇d/|∇d|) ─ PointNet per field ─ [g_h, g_o] ─ linear ─
             one cloud token per branch, beside the cross tokens in its transformer (hoisdf_fusion.py)

Loss eq. (9): ``Σ λ_k term_k`` over :data:`HOISDF_LOSS_WEIGHTS` (the official
weights); terms whose targets the batch lacks are skipped. The model follows
the official code by default; docs/models.md lists where the paper differs.

Anchors: HOISDF centres the hand field on the **ground-truth** hand root and
the object field on ``obj_center_cam`` (the object's 2D box centre lifted to
the ground-truth root depth), in training *and* in its evaluation. ``forward``
takes them from the batch, :meth:`HOISDF.predict` as arguments.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from hoimask._checks import (
    FileFormatError,
    ValueRangeError,
    check_choice,
    check_finite,
    check_in_range,
    check_shape,
)
from hoimask.geometry import (
    axis_angle_to_matrix,
    pixel_aligned_features,
)
from hoimask.losses.pose import hand_from_rotation_6d
from hoimask.models._batch import (
    default_intrinsics,
    get_image,
    load_encoder_weights,
    optional,
)
from hoimask.models.hoisdf_backbones import build_backbone
from hoimask.models.hoisdf_config import HOISDF_LOSS_WEIGHTS, HOISDFConfig, resolve_hoisdf_preset
from hoimask.models.hoisdf_fusion import SurfaceCloudFusion, fusion_count, surface_cloud
from hoimask.models.hoisdf_sampling import (
    QueryPoints,
    batch_anchors,
    field_guided_query_points,
    full_image_box,
    near_surface_points,
    noise_range,
    object_anchor,
)
from hoimask.models.hoisdf_terms import image_terms, pose_terms, sdf_terms
from hoimask.models.maskhoi import build_hand_layer
from hoimask.nn import (
    DeepSDFDecoder,
    HOISDFImageHeads,
    JointVotingHead,
    PixelNormalization,
    PointObjectPoseHead,
    PointPoseTransformer,
    PointTokenEmbedding,
    PointTransformerEncoder,
    vote_joints,
)

__all__ = ["HOISDF", "HOISDFConfig", "HOISDF_LOSS_WEIGHTS"]

logger = logging.getLogger(__name__)


class HOISDF(nn.Module):
    """HOISDF: SDF learning + field-guided pose regression, on a ResNet U-Net or a (pre-trained) ViT.

    Build it with :meth:`from_preset` (``"hoisdf"``, ``"vit"``, ``"tiny"``,
    ``"tiny_resnet"``) or from a :class:`HOISDFConfig`.

    Training schedule of the pose query points (HOISDF's ``Model.forward``):
    before ``config.sampling_switch`` of training (40/70 epochs), the ground-truth
    near-surface points of the batch (``|sdf| < 0.05 m`` among ``sdf_points``)
    plus uniform noise of ``±noise`` scaled units, where ``noise`` grows inside
    each epoch (0.03, 0.05, 0.07 after 30 % and 70 % of it); afterwards the same
    with probability ``ground_truth_prob`` (0.4) per batch, else field-guided
    points. Tell the model where training is with :meth:`set_progress`
    (:class:`~hoimask.engine.Trainer` calls it every step). Evaluation
    (``model.eval()``) and :meth:`predict` always use field-guided points; so
    does a batch without SDF targets.

    ``config.point_cloud_fusion`` adds HOMAE's fusion of the implicit fields
    with explicit clouds derived from them (:mod:`hoimask.models.hoisdf_fusion`);
    off, the model is HOISDF and its ``state_dict`` is unchanged.

    Args:
        config: the configuration (``None``: the ``hoisdf`` preset).
        hand_layer: hand layer overriding ``config.mano_path`` (default: the
            licence-free :class:`~hoimask.hand.ProceduralHand`).

    Shape:
        batch ``image (B, 3, H, W)`` + anchors and targets (see :meth:`forward`) ->
        ``{"loss": (), "terms": {name: ()}, "predictions": {...}}``.
    """

    def __init__(self, config: HOISDFConfig | None = None, *, hand_layer: nn.Module | None = None) -> None:
        super().__init__()
        cfg = config or HOISDFConfig()
        self.config = cfg
        self.pixel_norm = PixelNormalization(cfg.pixel_mean, cfg.pixel_std)
        self.backbone = build_backbone(cfg)
        channels = self.backbone.out_channels
        self.image_heads = HOISDFImageHeads(channels[0], hidden=cfg.image_head_hidden, num_heatmaps=cfg.num_heatmaps)
        with torch.no_grad():  # heatmaps = scale · head(x): same initial function, steps in units of the peak
            self.image_heads.heatmap[-1].weight.div_(cfg.heatmap_scale)
            self.image_heads.heatmap[-1].bias.div_(cfg.heatmap_scale)
        sdf = dict(feature_dim=cfg.sdf_feature_dim, feature_hidden=cfg.sdf_feature_hidden, hidden=cfg.sdf_hidden,
                   num_layers=cfg.sdf_layers, skip_layer=cfg.sdf_skip_layer, num_bands=cfg.num_bands,
                   dropout=cfg.sdf_dropout, point_scale=cfg.point_scale)
        self.hand_sdf = DeepSDFDecoder(sum(channels), **sdf)
        self.object_sdf = DeepSDFDecoder(sum(channels), **sdf)
        self.tokens = PointTokenEmbedding(sum(channels), dim=cfg.dim, feature_hidden=cfg.token_feature_hidden,
                                          num_bands=cfg.num_bands, point_scale=cfg.point_scale,
                                          beta_init=cfg.beta_init, density_sign=cfg.density_sign,
                                          sdf_clamp=cfg.sdf_clamp)
        attention = dict(num_heads=cfg.num_heads_points, mlp_dim=cfg.mlp_dim, dropout=cfg.dropout)
        self.hand_transformer = PointPoseTransformer(cfg.dim, encoder_depth=cfg.hand_encoder_depth,
                                                     decoder_depth=cfg.hand_decoder_depth, finger_mask=cfg.finger_mask,
                                                     block_object_memory=cfg.block_object_memory, **attention)
        self.object_transformer = PointTransformerEncoder(cfg.dim, cfg.object_encoder_depth, **attention)
        self.vote_head = JointVotingHead(cfg.dim, cfg.num_vote_joints, hidden=cfg.head_hidden)
        self.object_head = PointObjectPoseHead(cfg.dim, hidden=cfg.head_hidden)
        self.hand_layer = hand_layer if hand_layer is not None else build_hand_layer(cfg.mano_path)
        # Built last, so the other modules draw the same initial weights with the option on or off.
        self.cloud_fusion = (SurfaceCloudFusion(cfg.dim, hidden=cfg.fusion_hidden, pool=cfg.fusion_pool,
                                                point_scale=cfg.point_scale)
                             if cfg.point_cloud_fusion else None)
        self.progress = 0.0
        self.epoch_progress: float | None = None

    @classmethod
    def from_preset(cls, name: str = "hoisdf", *, hand_layer: nn.Module | None = None, **overrides) -> HOISDF:
        """Build a preset of :data:`~hoimask.models.hoisdf_config.HOISDF_PRESETS` with keyword overrides.

        Example:
            ``HOISDF.from_preset("tiny", sdf_dropout=0.0)``.
        """
        return cls(resolve_hoisdf_preset(name, overrides), hand_layer=hand_layer)

    # ------------------------------------------------------------------ weights, schedule
    @property
    def encoder(self) -> nn.Module:
        """The image encoder: the :class:`~hoimask.nn.ViTEncoder` or the ResNet under the U-Net."""
        return self.backbone.encoder

    def load_encoder(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load pre-trained encoder weights (``MaskHOI.encoder_state_dict()`` / ``MAE.encoder_state_dict()``).

        For ``backbone="vit"`` (MaskHOI's ``encoder.pt``); load MAE / MultiMAE
        / timm files with ``load_vit_checkpoint(path, model.encoder)`` and
        torchvision ResNets with ``load_resnet_checkpoint(path, model.encoder)``.

        Raises:
            FileFormatError: keys or shapes do not match (listed), or the backbone is not a ViT.
        """
        if self.config.backbone != "vit":
            raise FileFormatError("HOISDF.load_encoder(): expects backbone='vit'; load torchvision ResNet weights "
                                  "with hoimask.nn.load_resnet_checkpoint(path, model.encoder)")
        load_encoder_weights(self.encoder, state_dict, "HOISDF.load_encoder")

    def set_progress(self, progress: float, epoch_progress: float | None = None) -> None:
        """Set the training position that drives the query-point schedule.

        Args:
            progress: fraction of training done, in ``[0, 1]`` (the switch to
                field-guided points is at ``config.sampling_switch``).
            epoch_progress: position inside the current epoch, in ``[0, 1]``
                (HOISDF's ``batch_ratio``, which picks the noise range). When
                ``None`` it is derived as ``frac(progress · schedule_epochs)``.
        """
        self.progress = check_in_range(progress, name="progress", low=0.0, high=1.0, fn="HOISDF.set_progress")
        if epoch_progress is not None:
            check_in_range(epoch_progress, name="epoch_progress", low=0.0, high=1.0, fn="HOISDF.set_progress")
        self.epoch_progress = epoch_progress

    def noise(self) -> float:
        """The current noise half-width of the ground-truth points, in scaled units."""
        cfg = self.config
        position = self.epoch_progress
        if position is None:
            position = (self.progress * cfg.schedule_epochs) % 1.0
        return noise_range(position, cfg.noise_ranges, cfg.noise_thresholds)

    # ------------------------------------------------------------------ inference
    def predict(
        self,
        image: torch.Tensor,
        K: torch.Tensor,
        hand_root: torch.Tensor,
        object_center: torch.Tensor | None = None,
        hand_box: torch.Tensor | None = None,
        object_box: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """Camera-frame predictions from field-guided query points.

        HOISDF is evaluated with ground-truth anchors: its hand field is
        centred on the ground-truth hand root and its object field on the
        object box centre lifted to that root's depth; the hand joints are
        root-relative up to that root. Give the same here (or your own
        estimates, which then bound the absolute accuracy).

        Args:
            image: ``(B, 3, H, W)`` RGB in ``[0, 1]``.
            K: ``(B, 3, 3)`` intrinsics of the image (pixels).
            hand_root: ``(B, 3)`` wrist position (m), the hand field's centre.
            object_center: ``(B, 3)`` the object field's centre; default: the
                centre of ``object_box`` lifted to the root depth (HOISDF's
                ``obj_center_cam``), or ``hand_root`` without a box.
            hand_box: ``(B, 4)`` ``(x0, y0, x1, y1)`` pixels bounding the hand
                (HOISDF: the 2D joints' box ×1.1); default: the whole image.
            object_box: ``(B, 4)`` box of the object; default: the whole image.

        Returns:
            ``joints (B, 21, 3)`` (the MANO joints placed at ``hand_root``),
            ``vertices (B, V, 3)``, ``voted_joints (B, 21, 3)`` (the root then
            the point votes), ``rotation_6d (B, 16, 6)``, ``shape (B, 10)``
            (last decoder layer; ``*_layers`` hold every layer),
            ``object_rotation (B, 3, 3)``, ``object_rotation_axis_angle
            (B, 3)``, ``object_translation (B, 3)`` (valid-point averages),
            ``heatmaps``, ``hand_segmentation``, ``object_segmentation``
            (logits at the finest map's resolution), ``hand_points``,
            ``object_points`` ``(B, N, 3)`` with their ``*_sdf`` (m) and
            ``*_valid`` masks, ``hand_root``, ``object_center``, ``sampling``
            and the fallback counts ``box_fallbacks``, ``repeated_points``;
            with ``point_cloud_fusion`` also the explicit clouds ``hand_cloud``,
            ``object_cloud`` ``(B, k, 3)`` (camera frame, on the predicted
            zero levels) with ``*_cloud_normals`` and ``*_cloud_valid``.
        """
        fn = "HOISDF.predict"
        dims = check_shape(image, "B 3 H W", name="image", fn=fn)
        check_shape(K, "B 3 3", name="K", dims=dims, fn=fn)
        check_shape(hand_root, "B 3", name="hand_root", dims=dims, fn=fn)
        size = (dims["H"], dims["W"])
        full = full_image_box(dims["B"], size, like=hand_root.float())
        boxes = []
        for name, box in (("hand_box", hand_box), ("object_box", object_box)):
            if box is not None:
                check_shape(box, "B 4", name=name, dims=dims, fn=fn)
            boxes.append(full if box is None else box)
        if object_center is None:
            object_center = hand_root if object_box is None else object_anchor(object_box, hand_root, K)
        check_shape(object_center, "B 3", name="object_center", dims=dims, fn=fn)
        maps = self.backbone(self.pixel_norm(image, fn=fn))
        anchors = self._check_anchors(hand_root, object_center, K, maps[0].dtype, fn)
        preds, _ = self._regress(maps, anchors[2], size, anchors[0], anchors[1], "field", boxes, None, None)
        return {**preds, **self._image_predictions(maps[0])}

    # ------------------------------------------------------------------ training
    def forward(
        self,
        batch: Mapping[str, Any],
        *,
        generator: torch.Generator | None = None,
        sampling: str | None = None,
    ) -> dict[str, Any]:
        """Predict and compute the loss of eq. (9) on a collated batch.

        Args:
            batch: ``image`` (RGB in ``[0, 1]``) and ``K`` (the default camera
                of :func:`~hoimask.models._batch.default_intrinsics` if
                absent); the anchors — ``joints_3d`` (its wrist is the hand
                root; or ``hand_root``) is required, ``object_center`` is
                computed as HOISDF does from ``object_points``,
                ``object_rotation``, ``object_translation`` (projected box
                centre at the root depth) unless given, ``hand_box`` /
                ``object_box`` likewise from ``joints_2d`` and the projected
                object points; and the targets present among
                ``segmentation``, ``joints_2d``, ``sdf_points``, ``sdf_hand``,
                ``sdf_object``, ``hand_pose``, ``hand_shape``,
                ``object_rotation``, ``object_translation``, ``has_object``.
                SDF targets that are NaN/inf do not count (NaN marks an absent
                object); non-finite ``sdf_points`` are an error.
            generator: RNG of the query-point schedule.
            sampling: force ``"ground_truth"`` or ``"field"`` points instead of the schedule.

        Returns:
            ``{"loss", "terms", "predictions"}``; predictions are those of
            :meth:`predict` plus ``sdf_hand`` / ``sdf_object`` (m) at the
            batch's ``sdf_points`` and ``surface_fallbacks`` (samples whose
            ground-truth points had no near-surface point).
        """
        fn = "HOISDF.forward"
        image = get_image(batch, fn)
        B, _, H, W = image.shape
        size = (H, W)
        maps = self.backbone(self.pixel_norm(image, name="batch['image']", fn=fn))
        dtype = maps[0].dtype
        K = optional(batch, "K")
        K = default_intrinsics(B, size, like=image) if K is None else K
        hand_root, object_center, boxes, has_object = batch_anchors(batch, K, size,
                                                                    hand_box_scale=self.config.hand_box_scale, fn=fn)
        hand_root, object_center, K = self._check_anchors(hand_root, object_center, K, dtype, fn)
        terms: dict[str, torch.Tensor] = {}
        extra = self._image_predictions(maps[0])
        terms.update(image_terms(batch, extra, K, size))
        terms.update(sdf_terms(self, batch, maps, K, size, hand_root, object_center, extra, fn))
        mode = self._sampling_mode(batch, sampling, generator, fn)
        preds, raw = self._regress(maps, K, size, hand_root, object_center, mode, boxes, batch, generator)
        preds.update(extra)
        terms.update(pose_terms(self, batch, raw, hand_root, object_center, has_object))
        if not terms:
            raise ValueRangeError(f"{fn}(): argument 'batch' holds no target (expected any of segmentation, joints_2d, "
                                  "sdf_hand, sdf_object, joints_3d, hand_pose, hand_shape, object pose)")
        weights = self.config.loss_weights
        loss = torch.stack([weights[k] * v for k, v in terms.items()]).sum()
        return {"loss": loss, "terms": terms, "predictions": preds}

    @staticmethod
    def _check_anchors(hand_root, object_center, K, dtype, fn):
        for name, value in (("hand_root", hand_root), ("object_center", object_center), ("K", K)):
            check_finite(value, name=name, fn=fn)
        for name, value in (("hand_root", hand_root), ("object_center", object_center)):
            if not bool((value[:, 2] > 0).all()):
                raise ValueRangeError(f"{fn}(): argument '{name}' must lie in front of the camera (z > 0), "
                                      f"got z = {value[:, 2].tolist()}")
        return hand_root.to(dtype), object_center.to(dtype), K.to(dtype)

    # ------------------------------------------------------------------ query points
    def _sampling_mode(self, batch, sampling, generator, fn) -> str:
        has_targets = all(optional(batch, k) is not None for k in ("sdf_points", "sdf_hand", "sdf_object"))
        if sampling is not None:
            check_choice(sampling, ("field", "ground_truth"), name="sampling", fn=fn)
            if sampling == "ground_truth" and not has_targets:
                raise ValueRangeError(f"{fn}(): sampling='ground_truth' needs batch['sdf_points'], "
                                      "batch['sdf_hand'] and batch['sdf_object']")
            return sampling
        if not self.training or not has_targets:
            return "field"
        if self.progress < self.config.sampling_switch:
            return "ground_truth"
        draw = float(torch.rand((), generator=generator))
        return "ground_truth" if draw < self.config.ground_truth_prob else "field"

    def _field_points(self, decoder, maps, K, size, center, box, k) -> QueryPoints:
        cfg = self.config
        return field_guided_query_points(
            lambda p, rows: decoder(p, center[rows], K[rows], [m[rows] for m in maps], size).sdf,
            center, K, box, k, size, extent=cfg.grid_extent / cfg.point_scale, resolution=cfg.grid_resolution,
            chunk_size=cfg.chunk_size)

    def _ground_truth_points(self, batch, maps, K, size, hand_root, object_center, generator):
        cfg = self.config
        noise = self.noise() / cfg.point_scale  # metres
        points = batch["sdf_points"].to(hand_root.dtype)
        out, fallback = [], []
        for decoder, center, key, num in ((self.hand_sdf, hand_root, "sdf_hand", cfg.hand_points),
                                          (self.object_sdf, object_center, "sdf_object", cfg.object_points)):
            chosen, missing = near_surface_points(points, batch[key].to(points.dtype), num,
                                                  max_distance=cfg.near_surface, noise=noise, generator=generator)
            with torch.no_grad():
                sdf = decoder(chosen, center, K, maps, size).sdf
            out.append(QueryPoints(chosen, sdf, torch.ones_like(sdf, dtype=torch.bool), 0))
            fallback.append(missing)
        return out, fallback

    def _surface_clouds(self, maps, K, size, hand_root, object_center, hand, obj):
        """Each field's explicit cloud: its query points nearest the zero level, projected onto it (detached)."""
        cfg = self.config
        s = cfg.point_scale
        clouds = {}
        for name, decoder, center, query in (("hand", self.hand_sdf, hand_root, hand),
                                             ("object", self.object_sdf, object_center, obj)):
            k = fusion_count(query.points.shape[1], cfg.fusion_fraction)
            clouds[name] = surface_cloud(lambda p, d=decoder, c=center: d(p, c, K, maps, size).sdf / s,
                                         query.points, query.sdf, k, valid=query.valid, max_distance=cfg.sdf_clamp / s)
        return clouds

    # ------------------------------------------------------------------ regression
    def _regress(self, maps, K, size, hand_root, object_center, mode, boxes, batch, generator):
        """Query points -> tokens -> transformers -> MANO, votes, object pose."""
        cfg = self.config
        surface_fallbacks = 0
        if mode == "field":
            hand = self._field_points(self.hand_sdf, maps, K, size, hand_root, boxes[0], cfg.hand_points)
            obj = self._field_points(self.object_sdf, maps, K, size, object_center, boxes[1], cfg.object_points)
        else:
            (hand, obj), (hand_missing, obj_missing) = self._ground_truth_points(
                batch, maps, K, size, hand_root, object_center, generator)
            has = optional(batch, "has_object")
            obj_missing = obj_missing if has is None else obj_missing & has.bool().to(obj_missing.device)
            surface_fallbacks = int(hand_missing.sum()) + int(obj_missing.sum())
        hand_features, _ = pixel_aligned_features(hand.points, K, list(maps), size)  # (B, N_h, ΣC)
        obj_features, _ = pixel_aligned_features(obj.points, K, list(maps), size)  # (B, N_o, ΣC)
        hand_tokens = self.tokens(hand.points, hand_root, hand_features, hand.sdf, field="hand")
        obj_tokens = self.tokens(obj.points, object_center, obj_features, obj.sdf, field="object")
        with torch.no_grad():  # cross fields: detached, as HOISDF's code
            obj_in_hand = self.hand_sdf(obj.points, hand_root, K, maps, size).sdf
            hand_in_obj = self.object_sdf(hand.points, object_center, K, maps, size).sdf
            cross_hand = self.tokens(obj.points, hand_root, obj_features, obj_in_hand, field="hand")
            cross_obj = self.tokens(hand.points, object_center, hand_features, hand_in_obj, field="object")
        clouds = {}
        if self.cloud_fusion is not None:  # HOMAE's explicit clouds: one token per branch, beside the cross tokens
            clouds = self._surface_clouds(maps, K, size, hand_root, object_center, hand, obj)
            cloud_tokens = self.cloud_fusion(clouds, {"hand": hand_root, "object": object_center})  # (B, D) each
            cross_hand = torch.cat([cross_hand, cloud_tokens["hand"][:, None]], dim=1)  # (B, N_o + 1, D)
            cross_obj = torch.cat([cross_obj, cloud_tokens["object"][:, None]], dim=1)  # (B, N_h + 1, D)
        hand_out = self.hand_transformer(hand_tokens, cross_hand)
        relative = hand.points - hand_root[:, None]  # (B, N_h, 3) root-relative
        votes = self.vote_head(relative, hand_out.point_features)  # (L_enc, B, N_h, J, ...)
        masked = votes.logits.masked_fill(~hand.valid[None, :, :, None], float("-inf"))
        voted = vote_joints(relative, votes.offsets, masked)  # (L_enc, B, J, 3), valid points only
        num_obj = obj.points.shape[1]
        obj_layers = self.object_transformer(torch.cat([obj_tokens, cross_obj], dim=1)).intermediate[:, :, :num_obj]
        obj_pose = self.object_head(obj_layers)  # per point (L_o, B, N_o, 3)
        weight = obj.valid.to(obj_layers.dtype)[..., None]  # (B, N_o, 1)
        rotation = (obj_pose.point_rotation[-1] * weight).sum(1) / weight.sum(1)  # (B, 3) mean axis-angle
        translation = (obj_pose.point_translation[-1] * weight).sum(1) / weight.sum(1)
        mesh = hand_from_rotation_6d(self.hand_layer, hand_out.rotation_6d[-1], hand_out.shape[-1])
        root = hand_root[:, None]
        last_votes = voted[-1] + root
        if cfg.num_vote_joints == 20:
            last_votes = torch.cat([root, last_votes], dim=1)
        repeated = int((~hand.valid).sum()) + int((~obj.valid).sum())
        fallbacks = hand.box_fallbacks + obj.box_fallbacks
        if surface_fallbacks:
            logger.warning("HOISDF: %d sample(s) without near-surface ground-truth points", surface_fallbacks)
        preds = {
            "joints": mesh.joints + root,
            "vertices": mesh.vertices + root,
            "voted_joints": last_votes,
            "rotation_6d": hand_out.rotation_6d[-1],
            "shape": hand_out.shape[-1],
            "rotation_6d_layers": hand_out.rotation_6d,
            "shape_layers": hand_out.shape,
            "object_rotation": axis_angle_to_matrix(rotation),
            "object_rotation_axis_angle": rotation,
            "object_translation": object_center + translation,
            "hand_root": hand_root,
            "object_center": object_center,
            "hand_points": hand.points,
            "hand_points_sdf": hand.sdf / cfg.point_scale,
            "hand_points_valid": hand.valid,
            "object_points": obj.points,
            "object_points_sdf": obj.sdf / cfg.point_scale,
            "object_points_valid": obj.valid,
            "sampling": mode,
            "box_fallbacks": fallbacks,
            "repeated_points": repeated,
            "surface_fallbacks": surface_fallbacks,
        }
        for name, cloud in clouds.items():
            preds.update({f"{name}_cloud": cloud.points, f"{name}_cloud_normals": cloud.normals,
                          f"{name}_cloud_valid": cloud.valid})
        raw = {"relative": relative, "votes": votes, "voted": voted, "object": obj_pose,
               "rotation_6d": hand_out.rotation_6d, "shape": hand_out.shape}
        return preds, raw

    # ------------------------------------------------------------------ image heads
    def _image_predictions(self, finest: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.image_heads(finest)
        return {"heatmaps": out.heatmaps * self.config.heatmap_scale, "hand_segmentation": out.hand_logits,
                "object_segmentation": out.object_logits}
