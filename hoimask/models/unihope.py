"""UniHOPE (Wang et al., CVPR 2025): unified hand-object pose with an object switcher and de-occluded pairs.

::

    image ─ backbone (ResNet FPN | ViT + DPT) ─> maps (stride 4 finest) ─┬─ F_i (stride-8 map) ·········· L_init
      │                                                                  └─ box head (coarsest map) ─ hand / object boxes (test time)
      ├─ P2_h = conv(stride-4 map) ─ RoIAlign(hand box) ─ F_r^h (R² tokens) ······················· L_RoI
      ├─ P2_o = conv(stride-4 map) ─┬─ GraspSwitcher (all tokens) ─ grasp logit ─ s ─────────────── L^s
      │                             ├─ RoIAlign(hand box) ─ F_r^o ─┐
      │                             └─ RoIAlign(object box) ─ object head: per bin and key point
      │                                  offset + confidence (the 8 box corners + centre, 2D) ────── L^o
      └─ GraspAwareFusion(F_r^h, F_r^o, s) ─ hand encoder ─ 21 heatmaps (J2D) ─┐
                                              ├──── MANO encoder ─ F_m ······························ L_MANO (via h)
                                              │        └─ 16 × 6D, β, wrist depth ─ hand layer ─ J3D, V  L^h
                                              └─ 21 depth maps ─ 2.5D keypoints ─ lift ─ swing IK (detached):
                                                 the 16 rotations (hand_init="keypoints", default)

``·····``: compared with the same features of the de-occluded twin
(``batch["deoccluded_image"]``, :class:`~hoimask.losses.MultiLevelEnhancementLoss`,
only on grasping and occluded pairs, eq. 8).

Boxes: training crops the RoIs in the ground-truth boxes (the 2D joints' box
and the box of the projected 3D object box, both enlarged by
``config.box_scale``; the whole image where a target is missing); the box
head learns them (term ``boxes``) and :meth:`UniHOPE.predict` uses its boxes
unless given others. The wrist is placed in the camera frame from the
wrist heatmap and a camera-aware depth (:func:`~hoimask.geometry.translation_from_image`'s
parametrisation), or at a given depth (``root_depth``: the ground-truth-root
convention of ``examples/evaluate.py``).

Where the MANO rotations come from (``config.hand_init``): the paper regresses
them from ``F_m``; on varied synthetic scenes that regression predicts the
mean hand (docs/results.md §7), so by default the hand branch also predicts a
wrist-relative depth per joint (expected under its heatmap), lifts the 2.5D
keypoints with the wrist depth and ``K``, and the regression becomes a
residual on their swing IK (:func:`~hoimask.hand.rotations_from_joints`, as
:class:`~hoimask.models.HandMIMPoseModel`'s ``init="keypoints"``; there the
rectifiers refine the IK rotations, here the residual is what can add the
twist the IK cannot see); ``hand_init="regression"`` is the paper's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from hoimask._checks import DTypeError, FileFormatError, check_shape
from hoimask.geometry import matrix_to_rotation_6d, unproject
from hoimask.hand import rotations_from_joints
from hoimask.losses import grasp_switch_loss
from hoimask.losses._reduce import finite_rows
from hoimask.losses.enhancement import MultiLevelEnhancementLoss, enhancement_mask
from hoimask.losses.pose import hand_from_rotation_6d
from hoimask.models._batch import (
    default_intrinsics,
    get_image,
    lifting_depth,
    load_encoder_weights,
    optional,
)
from hoimask.models.maskhoi import build_hand_layer
from hoimask.models.unihope_config import (
    UNIHOPE_LOSS_WEIGHTS,
    UNIHOPE_PRESETS,
    UniHOPEConfig,
    resolve_unihope_preset,
)
from hoimask.models.unihope_targets import (
    NUM_OBJECT_POINTS,
    bin_centres,
    box_code,
    expected_position,
    ground_truth_boxes,
    hand_terms,
    object_box_points,
    object_centre_depth,
    object_terms,
    pose_from_key_points,
)
from hoimask.nn import (
    IDENTITY_6D,
    AttentionAdapter,
    DPTHead,
    FeaturePyramid,
    GraspAwareFusion,
    GraspSwitcher,
    PixelNormalization,
    ViTEncoder,
    gate_object_outputs,
    lift_keypoints,
    resnet18,
    resnet34,
    resnet50,
    roi_align,
)

__all__ = ["UniHOPE", "UniHOPEConfig", "UNIHOPE_LOSS_WEIGHTS", "UNIHOPE_PRESETS"]

#: Batch keys of the hand targets (L^h); with ``deoccluded_samples`` the twins reuse them.
HAND_TARGETS = ("joints_2d", "joints_3d", "hand_pose", "hand_shape")


class UniHOPE(nn.Module):
    """UniHOPE: hand pose always, object pose when the switcher says the hand grasps one (see the module diagram).

    Build it with :meth:`from_preset` (``"paper"``, ``"tiny"``, ``"vit"``,
    ``"tiny_vit"``) or from a :class:`UniHOPEConfig`; rebuild a saved one with
    :meth:`from_checkpoint_state`.

    Args:
        config: the configuration (``None``: the ``paper`` preset).
        hand_layer: hand layer overriding ``config.mano_path`` (default: the licence-free procedural hand).

    Shape:
        batch ``image (B, 3, H, W)`` (+ ``K``, targets, ``deoccluded_image``) ->
        ``{"loss": (), "terms": {name: ()}, "predictions": {...}, "enhancement_pairs": int,
        "enhancement_unpaired": int}``.

    Example:
        >>> model = UniHOPE.from_preset("tiny", img_size=64).eval()
        >>> out = model.predict(torch.rand(2, 3, 64, 64))
        >>> out["joints"].shape, out["object_keypoints_2d"].shape, out["grasp_probability"].shape
        (torch.Size([2, 21, 3]), torch.Size([2, 9, 2]), torch.Size([2]))
    """

    def __init__(self, config: UniHOPEConfig | None = None, *, hand_layer: nn.Module | None = None) -> None:
        super().__init__()
        cfg = config or UniHOPEConfig()
        self.config = cfg
        self.pixel_norm = PixelNormalization(cfg.pixel_mean, cfg.pixel_std)
        if cfg.backbone == "resnet":
            build = {18: resnet18, 34: resnet34, 50: resnet50}[cfg.resnet_depth]
            self.encoder = build(num_classes=None, base_channels=cfg.resnet_base_channels)
            self.fpn = FeaturePyramid(self.encoder.feature_channels[1:], cfg.fpn_dim)  # strides 4, 8, 16, 32
            channels = cfg.fpn_dim
        else:
            self.encoder = ViTEncoder(img_size=cfg.img_size, patch_size=cfg.patch_size, embed_dim=cfg.embed_dim,
                                      depth=cfg.depth, num_heads=cfg.num_heads)
            self.taps = [max(0, (i + 1) * cfg.depth // 4 - 1) for i in range(4)]
            self.dpt = DPTHead(cfg.embed_dim, feature_dim=cfg.dpt_feature_dim, reassemble_dims=cfg.dpt_reassemble_dims,
                               patch_size=cfg.patch_size)
            channels = cfg.dpt_feature_dim
        D, R = cfg.feature_dim, cfg.roi_size
        self.hand_map = nn.Conv2d(channels, D, 3, padding=1)  # P2_h
        self.object_map = nn.Conv2d(channels, D, 3, padding=1)  # P2_o
        self.box_head = nn.Sequential(nn.Linear(channels, 64), nn.ReLU(), nn.Linear(64, 8))
        self.switcher = GraspSwitcher(D, cfg.switch_hidden)
        self.fusion = GraspAwareFusion(D, cfg.fusion_heads, mlp_ratio=cfg.fusion_mlp_ratio,
                                       detach_object=cfg.fusion_detach_object)
        hc = cfg.hand_channels
        self.hand_encoder = nn.Sequential(nn.Conv2d(D + 2, hc, 3, padding=1), nn.ReLU(),  # + bin coordinates
                                          nn.Conv2d(hc, hc, 3, padding=1), nn.ReLU())
        self.joint_heatmaps = nn.Conv2d(hc, 21, 1)
        # hand_init="keypoints": per-joint depth maps (decimetres, relative to the wrist) under the heatmaps
        self.joint_depths = nn.Conv2d(hc, 21, 1) if cfg.hand_init == "keypoints" else None
        self.mano_encoder = nn.Sequential(nn.Conv2d(hc + 21, hc, 3, stride=2 if R > 2 else 1, padding=1), nn.ReLU(),
                                          nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * hc, cfg.mano_dim),
                                          nn.ReLU())
        self.mano_regressor = nn.Linear(cfg.mano_dim, 16 * 6 + 10 + 1)  # 16 6D rotations, β, log wrist depth
        with torch.no_grad():  # start at the flat hand, mean shape, reference depth
            self.mano_regressor.weight.mul_(0.1)
            self.mano_regressor.bias.zero_()
            self.mano_regressor.bias[:96] = torch.tensor(IDENTITY_6D).repeat(16)
        oc = cfg.object_channels
        self.object_head = nn.Sequential(nn.Conv2d(D + 2, oc, 3, padding=1), nn.ReLU(), nn.Conv2d(oc, oc, 3, padding=1),
                                         nn.ReLU(), nn.Conv2d(oc, NUM_OBJECT_POINTS * 3 + int(cfg.object_depth), 1))
        w = cfg.loss_weights
        self.enhancement = MultiLevelEnhancementLoss(
            AttentionAdapter(cfg.mano_dim, cfg.adapter_heads),
            threshold=cfg.occlusion_threshold if cfg.case_filtering else 0.0,  # no case filtering: every pair
            adapter_on=cfg.adapter_on,
            weights={"init": w["enhancement_init"], "roi": w["enhancement_roi"], "mano": w["enhancement_mano"]})
        self.hand_layer = hand_layer if hand_layer is not None else build_hand_layer(cfg.mano_path)

    # ------------------------------------------------------------------ construction, weights
    @classmethod
    def from_preset(cls, name: str = "paper", *, hand_layer: nn.Module | None = None, **overrides) -> UniHOPE:
        """Build a preset of :data:`UNIHOPE_PRESETS` with keyword overrides (``UniHOPE.from_preset("tiny", roi_size=4)``)."""
        return cls(resolve_unihope_preset(name, overrides), hand_layer=hand_layer)

    def config_state(self) -> dict[str, Any]:
        """``config`` as plain checkpoint data (:meth:`from_checkpoint_state` rebuilds the model from it)."""
        state = asdict(self.config)
        state["loss_weights"] = dict(state["loss_weights"])
        return state

    @classmethod
    def from_checkpoint_state(cls, state: Mapping[str, Any], *, hand_layer: nn.Module | None = None) -> UniHOPE:
        """Rebuild the model of a ``model.pt`` state (``examples/train_unihope.py``), in eval mode.

        Args:
            state: the loaded checkpoint: ``model_type = "unihope"``, ``unihope_config``
                (:meth:`config_state`) and ``model`` (the state dict).
            hand_layer: the hand layer (default: ``config.mano_path`` or the procedural hand).

        Raises:
            FileFormatError: another model type, a missing entry, or a config / weights this version cannot rebuild.
        """
        fn = "UniHOPE.from_checkpoint_state"
        kind = state.get("model_type")
        if kind != "unihope":
            raise FileFormatError(f"{fn}(): expected a checkpoint with model_type 'unihope', got {kind!r}")
        for key in ("unihope_config", "model"):
            if key not in state:
                raise FileFormatError(f"{fn}(): the checkpoint lacks the '{key}' entry")
        try:
            # files written before hand_init existed hold the paper's MANO regression, those written before
            # lift_depth existed were trained lifting the keypoints at the model's own wrist depth
            # and those written before object_depth existed place the object by the DLT of its key points alone;
            # those written before adapter_on existed trained h on the original side only
            saved = {"hand_init": "regression", "lift_depth": "predicted", "object_depth": False, "adapter_on": "original",
                     **state["unihope_config"]}
            config = UniHOPEConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})
            model = cls(config, hand_layer=hand_layer)
            model.load_state_dict(state["model"])
        except (TypeError, ValueError, KeyError, RuntimeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise FileFormatError(f"{fn}(): the checkpoint holds a UniHOPE this hoimask cannot rebuild: "
                                  f"{type(err).__name__}: {first}") from err
        return model.eval()

    def load_encoder(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load a MaskHOI / HandMIM / MAE encoder (``encoder_state_dict()``; ``backbone="vit"`` only).

        Load timm / MAE files with ``load_vit_checkpoint(path, model.encoder)``
        and torchvision ResNets with ``load_resnet_checkpoint(path, model.encoder)``.

        Raises:
            FileFormatError: keys or shapes do not match (listed), or the backbone is a ResNet.
        """
        if self.config.backbone != "vit":
            raise FileFormatError("UniHOPE.load_encoder(): expects backbone='vit'; load torchvision ResNet weights "
                                  "with hoimask.nn.load_resnet_checkpoint(path, model.encoder)")
        load_encoder_weights(self.encoder, state_dict, "UniHOPE.load_encoder")

    # ------------------------------------------------------------------ network
    def _maps(self, normalised: torch.Tensor) -> list[torch.Tensor]:
        """Backbone maps at strides 4, 8, 16, 32, finest first."""
        if self.config.backbone == "resnet":
            return self.fpn(self.encoder.forward_features(normalised)[1:])
        grid = self.encoder.patch_embed.grid_size(normalised.shape[-2], normalised.shape[-1])
        return self.dpt(list(self.encoder(normalised, return_layers=self.taps).layers), grid_size=grid)

    def _predicted_boxes(self, coarsest: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``(B, 2, 4)`` hand and object boxes in pixels from the box head (centre and size in image units)."""
        H, W = size
        raw = torch.sigmoid(self.box_head(coarsest.mean(dim=(-2, -1)))).reshape(-1, 2, 4)  # (B, 2, [cx, cy, w, h])
        scale = raw.new_tensor([W, H])
        centre, extent = raw[..., :2] * scale, raw[..., 2:] * scale
        return torch.cat([centre - extent / 2, centre + extent / 2], dim=-1)

    def _roi(self, features: torch.Tensor, boxes: torch.Tensor, width: int) -> torch.Tensor:
        return roi_align(features, boxes, self.config.roi_size, features.shape[-1] / width, self.config.sampling_ratio)

    def _run(self, image: torch.Tensor, K: torch.Tensor, hand_box: torch.Tensor | None,
             object_box: torch.Tensor | None, grasp_confidence: torch.Tensor | None, *, name: str,
             fn: str, root_depth: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Every output and the three enhancement-level features of one image batch; ``root_depth`` ``(B,)``
        lifts the 2.5D keypoints at that wrist depth where finite, else at the model's own."""
        cfg = self.config
        B, _, H, W = image.shape
        R = cfg.roi_size
        maps = self._maps(self.pixel_norm(image, name=name, fn=fn))
        dtype = maps[0].dtype
        K = K.to(dtype)
        boxes = self._predicted_boxes(maps[-1], (H, W))  # (B, 2, 4)
        hand_box = boxes[:, 0].detach() if hand_box is None else hand_box.to(dtype)
        object_box = boxes[:, 1].detach() if object_box is None else object_box.to(dtype)
        hand_map, object_map = self.hand_map(maps[0]), self.object_map(maps[0])  # P2_h, P2_o
        logit = self.switcher(object_map.flatten(2).transpose(1, 2))  # (B, h w, D) -> (B,)
        probability = torch.sigmoid(logit)
        if grasp_confidence is None and cfg.fusion_confidence == "always":  # HFL-Net: every object feature fused
            s = probability.new_ones(B).to(dtype)
        elif grasp_confidence is None:
            threshold = probability.new_tensor(cfg.grasp_threshold)
            s = (probability >= threshold).to(dtype) if cfg.fusion_confidence == "hard" else probability.detach()
        else:
            s = grasp_confidence.to(dtype)
        hand_roi = self._roi(hand_map, hand_box, W)  # (B, D, R, R)
        hand_tokens = hand_roi.flatten(2).transpose(1, 2)  # (B, R R, D)
        object_tokens = self._roi(object_map, hand_box, W).flatten(2).transpose(1, 2)  # the object map in the hand box
        fused = self.fusion(hand_tokens, object_tokens, s).transpose(1, 2).reshape(B, -1, R, R)  # (B, D, R, R)
        hidden = self.hand_encoder(with_coordinates(fused))
        heatmaps = self.joint_heatmaps(hidden)  # (B, 21, R, R)
        keypoints_2d = expected_position(heatmaps, hand_box)  # (B, 21, 2) pixels
        mano_features = self.mano_encoder(torch.cat([hidden, heatmaps], dim=1))  # F_m (B, mano_dim)
        raw = self.mano_regressor(mano_features)
        rotation_6d, shape = raw[:, :96].reshape(B, 16, 6), raw[:, 96:106]
        focal = (K[:, 0, 0] + K[:, 1, 1]) / 2
        depth = cfg.reference_depth * torch.exp(raw[:, 106]) * focal / max(H, W)  # (B,) camera-aware wrist depth
        keypoints = {}
        if self.joint_depths is not None:  # start the rotations at the swing IK of the lifted 2.5D keypoints
            prob = torch.softmax(heatmaps.flatten(2), dim=-1)  # (B, 21, R R)
            joint_depth = 0.1 * (prob * self.joint_depths(hidden).flatten(2)).sum(-1)  # (B, 21) m
            joint_depth = joint_depth - joint_depth[:, :1]
            lifted = lift_keypoints(keypoints_2d, joint_depth, lifting_depth(depth, root_depth), K)  # (B, 21, 3)
            prior = rotations_from_joints(self.hand_layer, lifted.detach())  # (B, 16, 3, 3), no gradient
            # the regression is a residual on the IK: UniHOPE has no rectifier to add the twist the IK cannot see
            rotation_6d = matrix_to_rotation_6d(prior.to(dtype)) + (rotation_6d - rotation_6d.new_tensor(IDENTITY_6D))
            keypoints = {"joint_depth": joint_depth, "keypoint_joints": lifted}
        mesh = hand_from_rotation_6d(self.hand_layer, rotation_6d, shape)
        obj = self.object_head(with_coordinates(self._roi(object_map, object_box, W)))
        depth_map = 0.1 * obj[:, NUM_OBJECT_POINTS * 3:].flatten(2)  # object_depth: (B, 1, R R) m; else (B, 0, R R)
        obj = obj[:, :NUM_OBJECT_POINTS * 3].reshape(B, NUM_OBJECT_POINTS, 3, R * R)  # per point: box position, logit
        centres = bin_centres(object_box, R)  # (B, R R, 2) pixels
        extent = (object_box[:, 2:] - object_box[:, :2])[:, None, :, None]  # (B, 1, 2, 1)
        offsets = obj[:, :, :2] - bin_centres(object_box.new_tensor([[0.0, 0.0, 1.0, 1.0]]), R).transpose(1, 2)  # box units
        points = centres.transpose(1, 2)[:, None] + offsets * extent  # (B, 9, 2, R R) pixels
        confidence = torch.sigmoid(obj[:, :, 2])  # (B, 9, R R)
        best = confidence.argmax(dim=-1)  # (B, 9)
        object_keypoints = torch.gather(points, 3, best[:, :, None, None].expand(-1, -1, 2, 1))[..., 0]  # (B, 9, 2)
        extra = {}
        if cfg.object_depth:  # the box centre's depth relative to the wrist, read at the centre key point's bin
            extra = {"object_depth_map": depth_map[:, 0],  # (B, R R) m
                     "object_relative_depth": depth_map[:, 0].gather(1, best[:, -1:])[:, 0]}  # (B,) m
        return {
            "relative_joints": mesh.joints, "relative_vertices": mesh.vertices, "keypoints_2d": keypoints_2d,
            "heatmaps": heatmaps, "rotation_6d": rotation_6d, "shape": shape, "wrist_depth": depth,
            "hand_box": hand_box, "object_box": object_box, "predicted_boxes": boxes, "grasp_logit": logit,
            "grasp_probability": probability, "fusion_confidence": s, "object_offsets": offsets,
            "object_confidence": confidence, "object_keypoints_2d": object_keypoints,
            "init_features": maps[1], "roi_features": hand_tokens, "mano_features": mano_features, **keypoints,
            **extra,
        }

    # ------------------------------------------------------------------ inference
    def predict(
        self,
        image: torch.Tensor,
        K: torch.Tensor | None = None,
        root_depth: torch.Tensor | None = None,
        *,
        hand_box: torch.Tensor | None = None,
        object_box: torch.Tensor | None = None,
        object_points: torch.Tensor | None = None,
        grasp_confidence: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Camera-frame predictions; object outputs are NaN where the switcher reports no grasp.

        Args:
            image: ``(B, 3, H, W)`` RGB in ``[0, 1]`` (the model normalises it).
            K: ``(B, 3, 3)`` intrinsics (default: focal ``max(H, W)``, centred principal point).
            root_depth: ``(B,)`` wrist depth (camera z, m) to place the hand at instead of the
                model's (``examples/evaluate.py --root-depth ground-truth``); with
                ``hand_init="keypoints"`` and ``config.lift_depth = "ground-truth"`` the 2.5D
                keypoints the MANO rotations start from are lifted at it too (as
                :class:`~hoimask.models.PoseRegressionModel` lifts them).
            hand_box: ``(B, 4)`` ``(x0, y0, x1, y1)`` pixels of the hand RoI (default: the box head's).
            object_box: ``(B, 4)`` the object RoI (default: the box head's).
            object_points: ``(B, P, 3)`` the object's model points (its template, UniHOPE is
                template-based): with them the rotation is solved from the 9 key points
                (DLT); without, ``object_rotation`` is NaN. The translation places the box
                centre on the centre key point's ray at the wrist depth plus the head's
                relative depth (``config.object_depth``, the default), or — a model built
                with ``object_depth=False``, the paper's — comes from the DLT with a template
                and is the centre key point at the wrist depth without one.
            grasp_confidence: ``(B,)`` in ``[0, 1]``: the fusion's ``s`` instead of the
                switcher's (ablations; 0 keeps every object feature out of the hand).

        Returns:
            ``joints (B, 21, 3)``, ``vertices (B, V, 3)``, ``root (B, 3)`` (camera frame, m),
            ``keypoints_2d (B, 21, 2)`` pixels, ``rotation_6d (B, 16, 6)``, ``shape (B, 10)``,
            ``hand_box``, ``object_box (B, 4)``, ``grasp_logit``, ``grasp_probability (B,)``,
            ``object_reported (B,)`` bool, and — NaN where not reported —
            ``object_keypoints_2d (B, 9, 2)``, ``object_center_2d (B, 2)``,
            ``object_rotation (B, 3, 3)``, ``object_translation (B, 3)``.
        """
        fn = "UniHOPE.predict"
        dims = check_shape(image, "B 3 H W", name="image", fn=fn)
        K = default_intrinsics(dims["B"], (dims["H"], dims["W"]), like=image) if K is None else K
        check_shape(K, "B 3 3", name="K", dims=dims, fn=fn)
        for arg, value in (("hand_box", hand_box), ("object_box", object_box)):
            if value is not None:
                check_shape(value, "B 4", name=arg, dims=dims, fn=fn)
        if grasp_confidence is not None:
            check_shape(grasp_confidence, "B", name="grasp_confidence", dims=dims, fn=fn)
        if root_depth is not None:
            check_shape(root_depth, "B", name="root_depth", dims=dims, fn=fn)
        lift = root_depth if self.config.lift_depth == "ground-truth" else None
        out = self._run(image, K, hand_box, object_box, grasp_confidence, name="image", fn=fn, root_depth=lift)
        depth = out["wrist_depth"] if root_depth is None else root_depth.to(out["wrist_depth"].dtype)
        K = K.to(depth.dtype)
        root = unproject(out["keypoints_2d"][:, 0], depth, K)  # (B, 3)
        centre_2d = out["object_keypoints_2d"][:, -1]
        # config.object_depth: the box centre at the wrist depth plus the head's relative depth; else at the wrist's
        centre = unproject(centre_2d, depth + out.get("object_relative_depth", torch.zeros_like(depth)), K)  # (B, 3)
        if object_points is None:
            rotation = torch.full_like(K, torch.nan)
            translation = centre
        else:
            check_shape(object_points, "B P 3", name="object_points", dims=dims, fn=fn)
            box_points = object_box_points(object_points.to(K.dtype))  # (B, 9, 3) model frame
            rotation, translation = pose_from_key_points(out["object_keypoints_2d"].detach(), box_points, K)
            if self.config.object_depth:  # the DLT's rotation, its box centre placed at the centre above
                translation = centre - (rotation @ box_points[:, -1, :, None])[..., 0]
        gated = gate_object_outputs(out["grasp_probability"].detach(), {
            "object_keypoints_2d": out["object_keypoints_2d"], "object_center_2d": centre_2d,
            "object_rotation": rotation, "object_translation": translation,
        }, threshold=self.config.grasp_threshold)
        return {
            "joints": out["relative_joints"] + root[:, None], "vertices": out["relative_vertices"] + root[:, None],
            "root": root, **{k: out[k] for k in ("keypoints_2d", "rotation_6d", "shape", "hand_box", "object_box",
                                                  "grasp_logit", "grasp_probability")},
            "object_reported": gated.reported, **gated.outputs,
        }

    # ------------------------------------------------------------------ training
    def forward(self, batch: Mapping[str, Any], *, generator: torch.Generator | None = None) -> dict[str, Any]:
        """Predict in the ground-truth boxes and compute eq. (11) on a collated batch.

        Args:
            batch: ``image``, ``K`` and the targets present among ``joints_2d``, ``joints_3d``,
                ``hand_pose``, ``hand_shape``, ``object_points`` + ``object_rotation`` +
                ``object_translation`` (+ ``has_object``), ``grasped``; with
                ``deoccluded_image``, ``occlusion_ratio`` and ``grasped`` also the
                enhancement terms: when a pair passes the filter, the original and
                de-occluded images run as one batch (shared batch-norm statistics, as
                the released code batches them) and the twin's features are the
                detached targets; the twins of the pairs the filter drops do not run
                (``config.run_dropped_twins = True`` runs them, as the released code
                does). ``has_deoccluded`` ``(B,)`` bool (real data,
                :mod:`hoimask.data.deoccluded`) marks the samples whose twin is real:
                the others' placeholders never run through the network and their
                enhancement terms are exactly 0 (no value, no gradient).
                Ablation switches (Table 7, docs/models.md): ``config.case_filtering = False``
                distils every real pair (no eq. 8); ``config.deoccluded_samples = True``
                also runs the real twins when no pair is kept and averages the hand
                terms over the originals and the twins (extra samples, same targets).
            generator: draws the hand-box jitter (``config.box_jitter > 0``, training only); otherwise unused.

        Returns:
            ``{"loss", "terms", "predictions", "enhancement_pairs", "enhancement_unpaired"}``;
            ``enhancement_pairs`` counts the pairs that passed the filter (0 without
            de-occluded images), ``enhancement_unpaired`` the samples the batch marks
            ``has_deoccluded = False`` (skipped for want of a twin; 0 without the key).
        """
        fn = "UniHOPE.forward"
        cfg = self.config
        image = get_image(batch, fn)
        B, _, H, W = image.shape
        K = optional(batch, "K")
        K = default_intrinsics(B, (H, W), like=image) if K is None else K.to(image.dtype)
        hand_box, object_box, object_uv = ground_truth_boxes(batch, K, (H, W), cfg.box_scale)
        roi_box = self._jittered(hand_box, generator) if self.training and cfg.box_jitter > 0 else hand_box
        joints = optional(batch, "joints_3d")
        lift = joints[:, 0, 2].to(image.dtype) if joints is not None and cfg.lift_depth == "ground-truth" else None
        keep, real = self._pairs(batch, image)  # (B,) pairs that pass eq. (8) and (B,) real twins, or None
        as_samples = keep is not None and cfg.deoccluded_samples and bool(real.any())  # twins train the hand too
        if keep is not None and (bool(keep.any()) or as_samples):  # one pass over both images, as the released code
            run = real if as_samples or cfg.run_dropped_twins else keep  # a dropped pair's terms are zero
            idx = run.nonzero()[:, 0]  # (M,) twins that run: placeholders (and by default dropped pairs) never do
            both = self._run(torch.cat([image, batch["deoccluded_image"][idx].to(image.dtype)]),
                             torch.cat([K, K[idx]]), torch.cat([roi_box, roi_box[idx]]),
                             torch.cat([object_box, object_box[idx]]), None, name="batch['image']", fn=fn,
                             root_depth=None if lift is None else torch.cat([lift, lift[idx]]))  # a twin: same hand
            out = {k: v[:B] for k, v in both.items()}
            twin = {}
            for k in ("init", "roi", "mano"):
                features = both[f"{k}_features"]
                twin[k] = features.new_zeros((B,) + features.shape[1:]).index_copy(0, idx, features[B:].detach())
        else:
            out = self._run(image, K, roi_box, object_box, None, name="batch['image']", fn=fn, root_depth=lift)
            twin = None
            as_samples = False
        if as_samples:  # L^h over the originals and the real twins (same hand, same targets): B + M samples
            hand_batch = {k: torch.cat([v, v[idx.to(v.device)]]) for k in HAND_TARGETS
                          if (v := optional(batch, k)) is not None}
            terms = hand_terms(hand_batch, both, torch.cat([K, K[idx]]), (H, W), self.hand_layer)
        else:
            terms = hand_terms(batch, out, K, (H, W), self.hand_layer)
        grasped = optional(batch, "grasped")
        if grasped is not None:
            terms["grasp"] = grasp_switch_loss(out["grasp_logit"], grasped)
        if object_uv is not None:
            use = finite_rows(object_uv)
            if grasped is not None:  # L^o: grasping images only
                use = use & grasped.to(use.device).bool()
            centre_depth = object_centre_depth(batch, K.dtype) if cfg.object_depth and joints is not None else None
            relative = None if centre_depth is None else centre_depth - joints[:, 0, 2].to(K.dtype)  # NaN: unknown
            terms.update(object_terms(out, object_uv, use, cfg.roi_size, relative))
        target = torch.stack([hand_box, object_box], dim=1)  # (B, 2, 4)
        terms["boxes"] = (box_code(out["predicted_boxes"], (H, W)) - box_code(target, (H, W)).clamp(0, 1)).abs().mean()
        if keep is not None:  # L_init, L_RoI, L_MANO on the kept pairs; exact zeros when none is kept
            terms.update(self._enhancement_terms(batch, out, twin, real if twin is None else run))  # run ⊇ keep
        pairs = 0 if keep is None else int(keep.sum())
        flags = optional(batch, "has_deoccluded")
        unpaired = 0 if flags is None else int((~flags.bool()).sum())
        weights = cfg.loss_weights
        loss = torch.stack([weights[k] * v for k, v in terms.items()]).sum()
        return {"loss": loss, "terms": terms, "predictions": out, "enhancement_pairs": pairs,
                "enhancement_unpaired": unpaired}

    def _jittered(self, boxes: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """``(B, 4)`` boxes shifted by up to ``box_jitter`` of their side and scaled by ``1 ± box_jitter`` (training:
        the RoI branch learns to read the box head's imprecise boxes it gets at test time)."""
        j = self.config.box_jitter
        device = generator.device if generator is not None else boxes.device
        u = (torch.rand(boxes.shape[0], 3, generator=generator, device=device) * 2 - 1).to(boxes)  # (B, 3)
        centre, side = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]
        centre = centre + u[:, :2] * j * side
        side = side * (1 + u[:, 2:] * j)
        return torch.cat([centre - side / 2, centre + side / 2], dim=-1)

    def _pairs(self, batch: Mapping[str, Any], image: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(keep, real)``, both ``(B,)`` bool: the pairs eq. (8) keeps among those whose twin is real
        (``has_deoccluded``, all when absent), and the real twins; ``(None, None)`` when the batch has no twins."""
        fn = "UniHOPE.forward"
        twin, ratio, grasped = (optional(batch, k) for k in ("deoccluded_image", "occlusion_ratio", "grasped"))
        if twin is None or ratio is None or grasped is None:
            return None, None
        check_shape(twin, " ".join(str(n) for n in image.shape), name="batch['deoccluded_image']", fn=fn)
        real = optional(batch, "has_deoccluded")
        if real is None:
            real = torch.ones(image.shape[0], dtype=torch.bool, device=image.device)
        else:
            check_shape(real, str(image.shape[0]), name="batch['has_deoccluded']", fn=fn)
            if real.dtype != torch.bool:
                raise DTypeError(f"{fn}(): batch['has_deoccluded'] expected a bool tensor (B,), got dtype {real.dtype}")
            real = real.to(image.device)
        if not self.config.case_filtering:  # Table 7 rows (c)-(f): every real pair
            return real.clone(), real
        keep = enhancement_mask(ratio.to(image.dtype), grasped, threshold=self.config.occlusion_threshold)
        return keep & real.to(keep.device), real

    def _enhancement_terms(self, batch, out, twin, real) -> dict[str, torch.Tensor]:
        """The three enhancement terms (unweighted) over the pairs with a ``real`` twin; the twin's features
        are detached targets (zeros where the twin is not real, which the loss never reads)."""
        levels = {"init": out["init_features"], "roi": out["roi_features"], "mano": out["mano_features"]}
        if twin is None:  # no pair to distil: exact zeros
            return {f"enhancement_{k}": v.new_zeros(()) for k, v in levels.items()}
        ratio = batch["occlusion_ratio"].to(real.device, out["mano_features"].dtype)
        grasped = batch["grasped"] if self.config.case_filtering else torch.ones_like(real)  # τ = 0 then: all pairs
        result = self.enhancement(levels, twin, ratio, grasped, real)
        return {f"enhancement_{k}": v for k, v in result.terms.items()}


def with_coordinates(features: torch.Tensor) -> torch.Tensor:
    """``(B, C, h, w)`` -> ``(B, C + 2, h, w)``: the bins' centres ``(x, y)`` in ``[0, 1]`` appended (CoordConv).

    The heads then know where in the RoI a bin lies (a 3 × 3 stack on an R × R grid does not see the
    border from its middle), which the offsets and confidences of the object key points depend on.
    """
    B, _, h, w = features.shape
    ys = (torch.arange(h, device=features.device, dtype=features.dtype) + 0.5) / h
    xs = (torch.arange(w, device=features.device, dtype=features.dtype) + 0.5) / w
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=0)  # (2, h, w): x then y
    return torch.cat([features, grid.expand(B, 2, h, w)], dim=1)
