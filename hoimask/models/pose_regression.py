"""A direct-regression pose model for fine-tuning a pre-trained encoder (stand-in for the HOISDF-style model).

The issue asks fine-tuning to use the HOISDF-style model once it exists and,
until then, "a direct-regression model from the MaskHOI heads". This is that
model: the full-grid ViT encoder (no masking) followed by a 2.5D keypoint head
for the joints (:class:`~hoimask.nn.Keypoint25DHead`), the MaskHOI parameter
heads (:class:`~hoimask.nn.MANOTransformerHead` for the mesh,
:class:`~hoimask.nn.ObjectPoseHead` for the object rotation) and camera-aware
wrist head. The example scripts (`examples/finetune.py`,
`examples/evaluate.py`) and the ablation experiment train and evaluate it with
:class:`hoimask.engine.Trainer`.

Predictions are in the camera frame (metres): the keypoints — the 21 joints and
the object centre as a 22nd point — are lifted with the wrist head's depth and
``K`` (or with a given wrist depth: HOISDF's evaluation anchors the object at
the ground-truth hand-root depth, see :meth:`PoseRegressionModel.predict`); the
hand layer gives the mesh from the 16 6D rotations and β, hung at the
keypoints' wrist.

These choices make it learn (docs/training.md, "Why the pose heads predicted the
batch mean"): the image goes in as RGB in ``[0, 1]`` and the model normalises it
itself (:class:`~hoimask.nn.PixelNormalization`); and the wrist and object
positions are *camera-aware* (:func:`~hoimask.geometry.translation_from_image`):
the wrist head predicts an image position and a depth relative to the focal
length, and the batch's ``K`` turns them into metres — absolute depth is not visible in
an image whose camera is unknown; the global hand rotation has its own loss
term (``global_rotation``), because inside ``mano_params`` it is 6 of 106
numbers and the shape coefficients dominate; and the joints come from dense
per-joint heatmaps, which learn on a CPU budget where regressing the hand's
rotation from pooled tokens did not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from hoimask._checks import ValueRangeError, check_positive, check_shape
from hoimask.geometry import project, rotation_6d_to_matrix, translation_from_image
from hoimask.losses import (
    HandMeshLoss,
    global_rotation_loss,
    heatmap_kl_divergence,
    object_pose_loss,
)
from hoimask.losses.pose import hand_from_rotation_6d
from hoimask.models._batch import (
    default_intrinsics,
    get_image,
    load_encoder_weights,
    object_present,
    optional,
)
from hoimask.nn import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Keypoint25DHead,
    MANOTransformerHead,
    ObjectPoseHead,
    PixelNormalization,
    SpatialTranslationHead,
    ViTEncoder,
    lift_keypoints,
    soft_argmax_2d,
)

__all__ = ["PoseRegressionModel", "POSE_LOSS_WEIGHTS"]

#: Weights of the fine-tuning loss terms (metres for joints/root; the 6D/t L1 for objects).
POSE_LOSS_WEIGHTS: dict[str, float] = {
    "hand_joints": 10.0,
    "hand_vertices": 10.0,
    "mano_params": 1.0,
    "global_rotation": 1.0,
    "hand_root": 10.0,
    "object_pose": 1.0,
    "keypoint_heatmap": 1.0,
    "keypoint_depth": 10.0,
    "keypoint_joints": 10.0,
    "dense_depth": 10.0,
    "hand_mask": 1.0,
}


class PoseRegressionModel(nn.Module):
    """ViT encoder + 2.5D keypoint head (joints, object centre) + MANO (mesh), object-rotation and camera-aware wrist heads.

    Args:
        img_size: encoder image side (match the pre-trained encoder; see
            :meth:`from_encoder_config`).
        patch_size: encoder patch side.
        embed_dim: encoder token width.
        depth: encoder blocks.
        num_heads: encoder attention heads.
        head_dim: width of the heads.
        mano_head_depth: blocks of the MANO transformer head.
        hand_layer: ``ProceduralHand`` / ``MANOLayer``; default: the licence-free procedural hand.
        loss_weights: overrides of :data:`POSE_LOSS_WEIGHTS`.
        pixel_mean: per-channel input mean (ImageNet's by default); images come in as RGB in ``[0, 1]``.
        pixel_std: per-channel input standard deviation (ImageNet's by default).
        reference_depth: depth (m) the wrist head starts at for a
            camera whose focal length equals the image side (see
            :func:`~hoimask.geometry.translation_from_image`).
        keypoint_channels: width of the 2.5D keypoint head's convolutional
            stage (:class:`~hoimask.nn.Keypoint25DHead`).
        heatmap_sigma: Gaussian width of the keypoint heatmap targets, in heatmap pixels (stride 4).
        pos_embed: the encoder's position embedding, ``"sincos"`` (fixed) or
            ``"learned"`` (as :class:`~hoimask.nn.ViTEncoder`).
        pos_embed_resize: how the encoder resizes a learned embedding for
            another grid, ``"mae"`` or ``"timm"``.
        dense_maps: two more stride-4 maps from the keypoint head, trained
            where the batch has ``depth`` and ``segmentation``: the depth of
            every hand / object pixel relative to the wrist (``dense_depth``,
            L1, m) and the hand mask (``hand_mask``, binary cross-entropy);
            dense targets that teach depth and shape where 21 joint depths per
            image do not (docs/training.md, point 8).
        stem_depth: 3×3 convolutions per stage of the keypoint head's image
            stem (:class:`~hoimask.nn.Keypoint25DHead`); 2 (the default since
            the fifth round of docs/results.md §3: 6 mm RR-MJE better than 1 at
            700 steps); checkpoints written before it existed hold 1.

    Shape:
        batch ``image (B, 3, H, W)`` (+ ``K (B, 3, 3)``, targets) -> ``{"loss": (), "terms", "predictions"}`` with
        predictions ``joints (B, 21, 3)``, ``vertices (B, V, 3)``, ``object_rotation (B, 3, 3)``,
        ``object_translation (B, 3)`` (camera frame, metres) and the intermediate outputs of :meth:`predict`.
    """

    def __init__(
        self,
        *,
        img_size: int = 128,
        patch_size: int = 16,
        embed_dim: int = 192,
        depth: int = 4,
        num_heads: int = 3,
        head_dim: int = 128,
        mano_head_depth: int = 1,
        hand_layer: nn.Module | None = None,
        loss_weights: Mapping[str, float] | None = None,
        pixel_mean: tuple[float, ...] = IMAGENET_MEAN,
        pixel_std: tuple[float, ...] = IMAGENET_STD,
        reference_depth: float = 0.5,
        keypoint_channels: int = 64,
        heatmap_sigma: float = 1.0,
        pos_embed: str = "sincos",
        pos_embed_resize: str = "mae",
        dense_maps: bool = False,
        stem_depth: int = 2,
    ) -> None:
        super().__init__()
        self.img_size = img_size
        self.reference_depth = check_positive(reference_depth, name="reference_depth", fn="PoseRegressionModel")
        self._encoder_size = dict(img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
                                  num_heads=num_heads, pixel_mean=tuple(pixel_mean), pixel_std=tuple(pixel_std))
        self.pixel_norm = PixelNormalization(pixel_mean, pixel_std)
        self.encoder = ViTEncoder(
            img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
            pos_embed=pos_embed, pos_embed_resize=pos_embed_resize,
        )
        self.mano_head = MANOTransformerHead(
            embed_dim, dim=head_dim, depth=mano_head_depth, num_heads=max(1, head_dim // 32)
        )
        # The object's rotation comes from ObjectPoseHead (its translation output is not used); the wrist
        # position is camera-aware: image position by soft-argmax over the tokens, log relative depth from the
        # attention-pooled tokens (see SpatialTranslationHead, translation_from_image).
        self.object_head = ObjectPoseHead(embed_dim, hidden=head_dim)
        self.root_head = SpatialTranslationHead(embed_dim, hidden=head_dim)
        # The joints and the object centre (point 22): per-point heatmaps and depths relative to the wrist
        # (2.5D), lifted with the wrist depth and K.
        self.dense_maps = bool(dense_maps)
        self.keypoint_head = Keypoint25DHead(embed_dim, num_joints=22, channels=keypoint_channels,
                                             aux_maps=2 if self.dense_maps else 0, stem_depth=stem_depth)
        self.heatmap_sigma = check_positive(heatmap_sigma, name="heatmap_sigma", fn="PoseRegressionModel")
        if hand_layer is None:
            import hoimask.hand as hand

            hand_layer = hand.ProceduralHand()
        self.hand_loss = HandMeshLoss(hand_layer)
        unknown = set(loss_weights or {}) - set(POSE_LOSS_WEIGHTS)
        if unknown:
            raise ValueRangeError(f"PoseRegressionModel(): argument 'loss_weights' has unknown terms {sorted(unknown)}; "
                                  f"expected names among {sorted(POSE_LOSS_WEIGHTS)}")
        for name, value in (loss_weights or {}).items():
            check_positive(value, name=f"loss_weights[{name!r}]", strict=False, fn="PoseRegressionModel")
        self.loss_weights = {**POSE_LOSS_WEIGHTS, **(loss_weights or {})}

    @property
    def encoder_config(self) -> dict[str, Any]:
        """The encoder's size, normalisation and position-embedding kind, as keyword arguments of this class.

        Stored in checkpoints so that evaluation rebuilds the same model; read
        from the encoder when asked, so a learned position embedding that
        :func:`~hoimask.nn.load_vit_checkpoint` kept from a timm file is
        rebuilt as a learned parameter, not as the fixed sin-cos table.
        """
        return {**self._encoder_size, "pos_embed": self.encoder.config.pos_embed,
                "pos_embed_resize": self.encoder.config.pos_embed_resize, "dense_maps": self.dense_maps,
                "stem_depth": self.keypoint_head.stem_depth}

    @classmethod
    def from_encoder_config(cls, config: Any, **kwargs) -> PoseRegressionModel:
        """Size the encoder like a :class:`~hoimask.models.MaskHOIConfig` (or any object with those fields)."""
        extra = {k: tuple(getattr(config, k)) for k in ("pixel_mean", "pixel_std") if hasattr(config, k)}
        return cls(img_size=config.img_size, patch_size=config.patch_size, embed_dim=config.embed_dim,
                   depth=config.depth, num_heads=config.num_heads, **{**extra, **kwargs})

    def load_encoder(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load pre-trained encoder weights (``MaskHOI.encoder_state_dict()`` / ``MAE.encoder_state_dict()``).

        Raises:
            FileFormatError: keys or shapes do not match, listing them.
        """
        load_encoder_weights(self.encoder, state_dict, "PoseRegressionModel.load_encoder")

    def predict(self, image: torch.Tensor, K: torch.Tensor | None = None,
                root_depth: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Camera-frame predictions for an image batch.

        Args:
            image: ``(B, 3, H, W)`` RGB in ``[0, 1]`` (the model normalises it).
            K: ``(B, 3, 3)`` intrinsics of the images. Without it a camera with
                focal length ``max(H, W)`` and the principal point at the image
                centre is assumed, so wrist and object depths are only right up
                to that camera's scale.
            root_depth: ``(B,)`` wrist depth (camera z, m) to lift the
                keypoints and the object centre with, instead of the wrist
                head's. HOISDF's evaluation gives its model this anchor (the
                object centre is lifted to the ground-truth hand-root depth,
                ``examples/evaluate.py --root-depth ground-truth``); the
                root-relative hand is nearly unaffected by it.

        Returns:
            ``joints (B, 21, 3)`` (2.5D keypoints lifted with the wrist depth
            and ``K``), ``root (B, 3)`` (= ``joints[:, 0]``), ``keypoints_2d
            (B, 21, 2)`` pixels, ``heatmaps (B, 22, H/4, W/4)`` logits (21
            joints + the object centre), ``joint_depth (B, 21)`` (relative to
            the wrist, m), ``root_head (B, 3)`` (the wrist head's camera-aware
            estimate, whose depth lifts the keypoints unless ``root_depth`` is
            given), ``rotation_6d (B, 16, 6)``, ``shape (B, 10)``,
            ``mano_joints (B, 21, 3)`` and ``vertices (B, V, 3)`` (the MANO
            hand, placed at ``root``), ``object_center_2d (B, 2)`` pixels,
            ``object_rotation_6d (B, 6)``, ``object_rotation (B, 3, 3)``,
            ``object_translation (B, 3)`` (the lifted object centre); with
            ``dense_maps`` also ``depth_map (B, 1, H/4, W/4)`` (depth relative
            to the wrist, m) and ``hand_mask_logits (B, 1, H/4, W/4)``.

        Shape:
            See Returns.
        """
        fn = "PoseRegressionModel.predict"
        dims = check_shape(image, "B 3 H W", name="image", fn=fn)
        H, W = dims["H"], dims["W"]
        if K is None:
            K = default_intrinsics(image.shape[0], (H, W), like=image)
        check_shape(K, "B 3 3", name="K", dims=dims, fn=fn)
        normalised = self.pixel_norm(image, fn=fn)
        tokens = self.encoder(normalised).tokens  # (B, N, D)
        grid = self.encoder.patch_embed.grid_size(H, W)
        mano = self.mano_head(tokens)
        pose = self.object_head(tokens)
        K = K.to(tokens.dtype)
        root = translation_from_image(self.root_head(tokens, grid), K, (H, W),
                                      reference_depth=self.reference_depth)  # (B, 3) m
        if root_depth is None:
            depth = root[:, 2]
        else:
            check_shape(root_depth, "B", name="root_depth", dims=dims, fn=fn)
            depth = root_depth.to(tokens.dtype)
        heatmaps, depth_maps, *aux = self.keypoint_head(tokens, grid, normalised)  # (B, 22, H/4, W/4) each
        uv, point_depth = soft_argmax_2d(heatmaps, (H, W), depth_maps)  # (B, 22, 2) px, (B, 22) m
        points = lift_keypoints(uv, point_depth - point_depth[:, :1], depth, K)  # (B, 22, 3)
        joints = points[:, :21]
        rel = hand_from_rotation_6d(self.hand_loss.hand_layer, mano.rotation_6d, mano.shape)
        wrist = joints[:, :1]  # (B, 1, 3)
        dense = {}
        if aux:  # (B, 2, H/4, W/4): depth relative to the wrist (in the depth maps' units), hand-mask logits
            dense = {"depth_map": aux[0][:, :1] * self.keypoint_head.depth_scale, "hand_mask_logits": aux[0][:, 1:]}
        return {
            **dense,
            "joints": joints,
            "root": joints[:, 0],
            "keypoints_2d": uv[:, :21],
            "heatmaps": heatmaps,
            "joint_depth": point_depth[:, :21],
            "root_head": root,
            "rotation_6d": mano.rotation_6d,
            "shape": mano.shape,
            "mano_joints": rel.joints + wrist,
            "vertices": rel.vertices + wrist,
            "object_center_2d": uv[:, 21],
            "object_rotation_6d": pose.rotation_6d,
            "object_rotation": rotation_6d_to_matrix(pose.rotation_6d),
            "object_translation": points[:, 21],
        }

    def forward(self, batch: Mapping[str, Any], *, generator: torch.Generator | None = None) -> dict[str, Any]:
        """Predict and compute the weighted pose loss of a collated batch.

        Args:
            batch: ``image`` (RGB in ``[0, 1]``), ``K`` (see :meth:`predict`)
                and the targets present among ``joints_3d``, ``joints_2d``,
                ``hand_pose``, ``hand_shape``, ``object_rotation``,
                ``object_translation``, ``has_object``.
            generator: unused (the model is deterministic); accepted for the loop's interface.

        Returns:
            ``{"loss": (), "terms": {name: ()}, "predictions": predict(...)}``;
            the terms are those of :data:`POSE_LOSS_WEIGHTS` whose targets the batch holds.
        """
        preds = self.predict(get_image(batch, "PoseRegressionModel.forward"), optional(batch, "K"))
        pose_gt = optional(batch, "hand_pose")
        terms = dict(self.hand_loss(
            preds["rotation_6d"], preds["shape"], target_pose=pose_gt,
            target_shape=batch.get("hand_shape"), target_joints=batch.get("joints_3d"),
        ))
        if pose_gt is not None:
            terms["global_rotation"] = global_rotation_loss(preds["rotation_6d"][:, 0], pose_gt[:, 0])
        R, t = batch.get("object_rotation"), batch.get("object_translation")
        ok = object_present(batch, R, t) if R is not None and t is not None else None  # (B,)
        joints = optional(batch, "joints_3d")
        known = None if joints is None else torch.isfinite(joints).flatten(1).all(dim=1)  # (B,) annotated hands
        if known is not None and known.any():
            # unannotated frames (NaN joints, docs/conventions.md) train the other terms only
            sub_batch, sub_preds = _select(batch, known), _select(preds, known)
            terms.update(self._keypoint_terms(sub_batch, sub_preds, joints[known].to(preds["root_head"].dtype),
                                              None if ok is None else ok[known]))
        if ok is not None and ok.any():
            terms["object_pose"] = object_pose_loss(
                preds["object_rotation_6d"][ok], preds["object_translation"][ok], R[ok], t[ok]
            )
        if not terms:
            raise ValueRangeError(
                "PoseRegressionModel.forward(): argument 'batch' holds no pose target (expected any of joints_3d, "
                "hand_pose + hand_shape, object_rotation + object_translation)"
            )
        loss = torch.stack([self.loss_weights[k] * v for k, v in terms.items()]).sum()
        return {"loss": loss, "terms": terms, "predictions": preds}

    def _keypoint_terms(self, batch: Mapping[str, Any], preds: Mapping[str, torch.Tensor], joints: torch.Tensor,
                        has_object: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Wrist, heatmap, relative-depth and lifted-joint terms; the object centre counts where present."""
        size = self._image_size(batch)
        K = optional(batch, "K")
        K = (K if K is not None else default_intrinsics(joints.shape[0], size, like=joints)).to(joints.dtype)
        j2d = optional(batch, "joints_2d")
        j2d = project(joints, K) if j2d is None else j2d.to(joints.dtype)
        depth = joints[..., 2] - joints[:, :1, 2]  # (B, 21) relative to the wrist
        visible = torch.ones(joints.shape[0], 22, dtype=torch.bool, device=joints.device)
        if has_object is None:
            visible[:, 21] = False
            center = joints[:, 0]
        else:
            visible[:, 21] = has_object
            # Absent objects get the wrist as a stand-in target (finite, and masked out below).
            center = torch.where(has_object[:, None], batch["object_translation"].to(joints.dtype), joints[:, 0])
        points_2d = torch.cat([j2d, project(center[:, None], K)], dim=1)  # (B, 22, 2)
        depth = torch.cat([depth, center[:, 2:] - joints[:, :1, 2]], dim=1)  # (B, 22)
        pred_depth = preds["joint_depth"] - preds["joint_depth"][:, :1]
        object_depth = preds["object_translation"][:, 2] - preds["root"][:, 2]  # the lifted centre's depth
        error = (torch.cat([pred_depth, object_depth[:, None]], dim=1) - depth).abs()  # (B, 22)
        lifted, target = preds["joints"] - preds["root"][:, None], joints - joints[:, :1]
        dense = self._dense_terms(batch, preds, joints[:, 0, 2]) if "depth_map" in preds else {}
        return {
            **dense,
            "hand_root": (preds["root_head"] - joints[:, 0]).abs().mean(),
            "keypoint_heatmap": heatmap_kl_divergence(preds["heatmaps"], points_2d, size, sigma=self.heatmap_sigma,
                                                      visible=visible),
            "keypoint_depth": error[visible].mean(),
            "keypoint_joints": (lifted - target).abs().mean(),
        }

    @staticmethod
    def _dense_terms(batch: Mapping[str, Any], preds: Mapping[str, torch.Tensor],
                     wrist_depth: torch.Tensor) -> dict[str, torch.Tensor]:
        """``dense_depth`` and ``hand_mask`` at the maps' stride, where the batch has ``depth`` / ``segmentation``.

        A cell's target depth is the mean depth of its rendered hand and object
        pixels (segmentation 1 or 2, depth > 0) minus the wrist depth; cells
        without one are left out. The hand-mask target is the cell's fraction
        of hand pixels.
        """
        seg, depth = batch.get("segmentation"), batch.get("depth")
        if seg is None:
            return {}
        size = preds["depth_map"].shape[-2:]
        stride = seg.shape[-1] // size[-1]
        hand = (seg == 1).to(wrist_depth.dtype)[:, None]  # (B, 1, H, W)
        out = {"hand_mask": torch.nn.functional.binary_cross_entropy_with_logits(
            preds["hand_mask_logits"].to(hand.dtype), torch.nn.functional.avg_pool2d(hand, stride))}
        if depth is None:
            return out
        depth = depth.to(wrist_depth.dtype)[:, None]
        seen = ((seg > 0)[:, None] & (depth > 0) & torch.isfinite(depth)).to(depth.dtype)
        count = torch.nn.functional.avg_pool2d(seen, stride)  # (B, 1, h, w) fraction of seen pixels
        mean = torch.nn.functional.avg_pool2d(torch.where(seen > 0, depth, 0.0), stride) / count.clamp_min(1e-6)
        valid = count > 0
        if valid.any():
            target = mean - wrist_depth[:, None, None, None]
            out["dense_depth"] = (preds["depth_map"].to(target.dtype) - target).abs()[valid].mean()
        return out

    @staticmethod
    def _image_size(batch: Mapping[str, Any]) -> tuple[int, int]:
        return tuple(batch["image"].shape[-2:])


def _select(values: Mapping[str, Any], rows: torch.Tensor) -> dict[str, Any]:
    """``values`` with every per-sample tensor (leading dimension ``B = len(rows)``) cut to the ``rows`` set."""
    if bool(rows.all()):
        return dict(values)
    B = rows.shape[0]
    return {k: v[rows] if torch.is_tensor(v) and v.dim() > 0 and v.shape[0] == B else v for k, v in values.items()}
