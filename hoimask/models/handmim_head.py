"""HandMIM's fine-tuning model (HandMIM §2.5): a ViT encoder + a PyMAF-style keypoint feedback loop -> MANO (θ, β, t).

"We fine-tune the pre-trained ViT ... incorporate a keypoint feedback loop
after the backbone, similar to PyMAF, to predict MANO parameters" with
``L_FT = L_MANO + L_vert + L_kpt`` (eq. 11) and ``L_kpt = |J_3D - Ĵ_3D|_1 +
|K(J_3D + t) - Ĵ_2D|_1`` (eq. 12). :class:`HandMIMPoseModel` is that model:
:class:`~hoimask.nn.PixelNormalization`, the full-grid
:class:`~hoimask.nn.ViTEncoder` (any MaskHOI / HandMIM / MAE encoder loads
into it, as into :class:`~hoimask.models.PoseRegressionModel`), the
:class:`~hoimask.nn.KeypointFeedbackRegressor` and the hand layer. It is
hand-only: its predictions hold no object pose, and ``examples/evaluate.py``
reports no object metric for it.

Its interface is :class:`~hoimask.models.PoseRegressionModel`'s
(``from_encoder_config``, ``load_encoder``, ``encoder_config``,
``predict(image, K, root_depth=None)``, ``forward(batch)`` ->
``{"loss", "terms", "predictions"}``), so ``examples/finetune.py --model
handmim-head`` trains it with the same recipe and ``examples/evaluate.py``
scores it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from hoimask._checks import ValueRangeError, check_choice, check_positive, check_shape
from hoimask.geometry import project, translation_from_image
from hoimask.hand import rotations_from_joints
from hoimask.losses import HandMeshLoss, heatmap_kl_divergence
from hoimask.models._batch import (
    LIFT_DEPTHS,
    default_intrinsics,
    get_image,
    lifting_depth,
    load_encoder_weights,
    optional,
)
from hoimask.nn import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    HandEstimate,
    Keypoint25DHead,
    KeypointFeedbackRegressor,
    PixelNormalization,
    ViTEncoder,
    lift_keypoints,
    soft_argmax_2d,
)

__all__ = ["HandMIMPoseModel", "HANDMIM_HEAD_LOSS_WEIGHTS", "INITS"]

#: Weights of HandMIMPoseModel's loss terms, each term summed over the loop's estimates. Eq. (11) adds its terms
#: with weight 1; the metre terms (L1 of wrist-relative joints and vertices, wrist position) weigh 10 as in
#: POSE_LOSS_WEIGHTS, so that a centimetre counts as much as the MSE of the 6D rotations and β (``mano_params``)
#: and the reprojection L1 in units of the image side (``keypoint_2d``).
#: With ``init="keypoints"`` the 2.5D keypoint branch adds PoseRegressionModel's keypoint terms (heatmap KL,
#: wrist-relative depth L1 in m, L1 of the lifted wrist-relative joints in m) with POSE_LOSS_WEIGHTS' weights.
HANDMIM_HEAD_LOSS_WEIGHTS: dict[str, float] = {
    "mano_params": 1.0,
    "hand_vertices": 10.0,
    "hand_joints": 10.0,
    "keypoint_2d": 1.0,
    "hand_root": 10.0,
    "keypoint_heatmap": 1.0,
    "keypoint_depth": 10.0,
    "keypoint_joints": 10.0,
}

#: How the loop's initial estimate is made: ``"keypoints"`` (default) takes its rotations from the swing inverse
#: kinematics of 2.5D keypoints (β from the pooled tokens); ``"pooled"`` regresses it all from the pooled tokens
#: (the paper, PyMAF).
INITS = ("keypoints", "pooled")


class HandMIMPoseModel(nn.Module):
    """ViT encoder + keypoint feedback loop (HandMIM §2.5): MANO rotations, β and the wrist, camera frame.

    Args:
        img_size: encoder image side (match the pre-trained encoder; see :meth:`from_encoder_config`).
        patch_size: encoder patch side.
        embed_dim: encoder token width.
        depth: encoder blocks.
        num_heads: encoder attention heads.
        iterations: rectifier steps of the feedback loop (the paper: 3).
        channels: width of the loop's feature maps.
        max_upsample: the finest feature map over the token grid (4: strides 8, 4, 4 for 16-pixel patches).
        point_features: numbers each joint's sampled feature is reduced to.
        hidden: width of the loop's MLPs.
        hand_layer: ``ProceduralHand`` / ``MANOLayer``; default: the licence-free procedural hand.
        loss_weights: overrides of :data:`HANDMIM_HEAD_LOSS_WEIGHTS`.
        pixel_mean: per-channel input mean (ImageNet's by default); images come in as RGB in ``[0, 1]``.
        pixel_std: per-channel input standard deviation (ImageNet's by default).
        reference_depth: depth (m) the wrist starts at for a camera whose focal length equals the image side.
        pos_embed: the encoder's position embedding, ``"sincos"`` or ``"learned"`` (as :class:`~hoimask.nn.ViTEncoder`).
        pos_embed_resize: how the encoder resizes a learned embedding for another grid, ``"mae"`` or ``"timm"``.
        init: the loop's initial estimate (:data:`INITS`). ``"keypoints"`` (default): a 2.5D keypoint branch
            (:class:`~hoimask.nn.Keypoint25DHead`, as :class:`~hoimask.models.PoseRegressionModel`'s) predicts
            the 21 joints, lifted with ``K`` at a wrist depth (``lift_depth``, ``predict``'s ``root_depth``);
            :func:`~hoimask.hand.swing_inverse_kinematics` turns them (detached) into the initial estimate's 16
            rotations; the pooled tokens give its β.
            ``"pooled"``: the paper's (PyMAF's) start, rotations regressed from the pooled tokens alone, which
            predicts the mean hand on varied synthetic data (docs/results.md §6).
        keypoint_channels: width of the keypoint branch (``init="keypoints"``).
        heatmap_sigma: Gaussian σ (heatmap pixels) of the keypoint heatmap targets.
        stem_depth: 3×3 convolutions per stage of the keypoint branch's image stem.
        lift_depth: where the keypoints are lifted when a wrist depth is known
            (:data:`~hoimask.models._batch.LIFT_DEPTHS`): ``"ground-truth"`` (default) in training at the
            annotated wrist depth and in :meth:`predict` at ``root_depth``, so the loop is evaluated from the
            start it learned from; ``"predicted"`` always at the loop's own initial wrist depth (the earlier
            behaviour: 0.505x the constant on average against 0.497x, docs/results.md §6).

    Shape:
        batch ``image (B, 3, H, W)`` (+ ``K (B, 3, 3)``, targets) -> ``{"loss": (), "terms", "predictions"}``
        with predictions ``joints (B, 21, 3)``, ``root (B, 3)``, ``vertices (B, V, 3)`` (camera frame,
        metres), ``keypoints_2d (B, 21, 2)`` (pixels) and the rest of :meth:`predict`.

    Example:
        >>> model = HandMIMPoseModel(img_size=32, embed_dim=32, depth=1, num_heads=2, channels=16, hidden=32)
        >>> pred = model.predict(torch.rand(2, 3, 32, 32))
        >>> tuple(pred["joints"].shape), tuple(pred["joints_per_iteration"].shape), "object_rotation" in pred
        ((2, 21, 3), (2, 4, 21, 3), False)
    """

    def __init__(
        self,
        *,
        img_size: int = 128,
        patch_size: int = 16,
        embed_dim: int = 192,
        depth: int = 4,
        num_heads: int = 3,
        iterations: int = 3,
        channels: int = 64,
        max_upsample: int = 4,
        point_features: int = 5,
        hidden: int = 256,
        hand_layer: nn.Module | None = None,
        loss_weights: Mapping[str, float] | None = None,
        pixel_mean: tuple[float, ...] = IMAGENET_MEAN,
        pixel_std: tuple[float, ...] = IMAGENET_STD,
        reference_depth: float = 0.5,
        pos_embed: str = "sincos",
        pos_embed_resize: str = "mae",
        init: str = "keypoints",
        keypoint_channels: int = 64,
        heatmap_sigma: float = 1.0,
        stem_depth: int = 2,
        lift_depth: str = "ground-truth",
    ) -> None:
        super().__init__()
        fn = "HandMIMPoseModel"
        self.init = check_choice(init, INITS, name="init", fn=fn)
        self.img_size = img_size
        self._encoder_size = dict(img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
                                  num_heads=num_heads, pixel_mean=tuple(pixel_mean), pixel_std=tuple(pixel_std))
        self.head_config = dict(iterations=iterations, channels=channels, max_upsample=max_upsample,
                                point_features=point_features, hidden=hidden,
                                reference_depth=check_positive(reference_depth, name="reference_depth", fn=fn))
        self.head_config.update(init=self.init, keypoint_channels=keypoint_channels,
                                heatmap_sigma=check_positive(heatmap_sigma, name="heatmap_sigma", fn=fn),
                                stem_depth=stem_depth,
                                lift_depth=check_choice(lift_depth, LIFT_DEPTHS, name="lift_depth", fn=fn))
        self.pixel_norm = PixelNormalization(pixel_mean, pixel_std)
        self.encoder = ViTEncoder(
            img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
            pos_embed=pos_embed, pos_embed_resize=pos_embed_resize,
        )
        if hand_layer is None:
            import hoimask.hand as hand

            hand_layer = hand.ProceduralHand()
        self.hand_loss = HandMeshLoss(hand_layer)
        loop = ("iterations", "channels", "max_upsample", "point_features", "hidden", "reference_depth")
        self.regressor = KeypointFeedbackRegressor(embed_dim, hand_layer, **{k: self.head_config[k] for k in loop})
        self.keypoint_head = (Keypoint25DHead(embed_dim, num_joints=21, channels=keypoint_channels,
                                              stem_depth=stem_depth) if self.init == "keypoints" else None)
        unknown = set(loss_weights or {}) - set(HANDMIM_HEAD_LOSS_WEIGHTS)
        if unknown:
            raise ValueRangeError(f"{fn}(): argument 'loss_weights' has unknown terms {sorted(unknown)}; "
                                  f"expected names among {sorted(HANDMIM_HEAD_LOSS_WEIGHTS)}")
        for name, value in (loss_weights or {}).items():
            check_positive(value, name=f"loss_weights[{name!r}]", strict=False, fn=fn)
        self.loss_weights = {**HANDMIM_HEAD_LOSS_WEIGHTS, **(loss_weights or {})}

    @property
    def hand_layer(self) -> nn.Module:
        """The hand layer that poses the estimates (shared by the loop and the losses)."""
        return self.hand_loss.hand_layer

    @property
    def encoder_config(self) -> dict[str, Any]:
        """The encoder's size, normalisation and position-embedding kind, as keyword arguments of this class.

        Stored in checkpoints (with :attr:`head_config`) so that evaluation rebuilds the same model; read from the
        encoder when asked, so a learned position embedding kept from a timm file is rebuilt as learned.
        """
        return {**self._encoder_size, "pos_embed": self.encoder.config.pos_embed,
                "pos_embed_resize": self.encoder.config.pos_embed_resize}

    @classmethod
    def from_encoder_config(cls, config: Any, **kwargs) -> HandMIMPoseModel:
        """Size the encoder like a :class:`~hoimask.models.MaskHOIConfig` / ``HandMIMConfig`` (or any object with those fields)."""
        extra = {k: tuple(getattr(config, k)) for k in ("pixel_mean", "pixel_std") if hasattr(config, k)}
        return cls(img_size=config.img_size, patch_size=config.patch_size, embed_dim=config.embed_dim,
                   depth=config.depth, num_heads=config.num_heads, **{**extra, **kwargs})

    def load_encoder(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load pre-trained encoder weights (``MaskHOI`` / ``HandMIM`` / ``MAE`` ``.encoder_state_dict()``).

        Raises:
            FileFormatError: keys or shapes do not match, listing them.
        """
        load_encoder_weights(self.encoder, state_dict, "HandMIMPoseModel.load_encoder")

    def estimates(self, image: torch.Tensor, K: torch.Tensor | None = None,
                  root_depth: torch.Tensor | None = None) -> list[HandEstimate]:
        """Every estimate of the feedback loop (:class:`~hoimask.nn.HandEstimate`), the initial one first.

        Args:
            image: ``(B, 3, H, W)`` RGB in ``[0, 1]``.
            K: ``(B, 3, 3)``; default: focal length ``max(H, W)``, principal point at the centre.
            root_depth: ``(B,)`` wrist depth (m) the 2.5D keypoints are lifted at (``init="keypoints"``;
                default: the loop's own initial depth); the estimates keep the loop's own wrist.
        """
        return self._run(image, K, root_depth)[0]

    def _run(self, image: torch.Tensor, K: torch.Tensor | None, root_depth: torch.Tensor | None = None
             ) -> tuple[list[HandEstimate], dict[str, torch.Tensor]]:
        """The loop's estimates and the keypoint branch's outputs (empty for ``init="pooled"``); ``root_depth``
        ``(B,)`` lifts the 2.5D keypoints at that wrist depth instead of the loop's initial one (where finite)."""
        fn = "HandMIMPoseModel.predict"
        dims = check_shape(image, "B 3 H W", name="image", fn=fn)
        H, W = dims["H"], dims["W"]
        if K is None:
            K = default_intrinsics(image.shape[0], (H, W), like=image)
        check_shape(K, "B 3 3", name="K", dims=dims, fn=fn)
        normalised = self.pixel_norm(image, fn=fn)
        tokens = self.encoder(normalised).tokens  # (B, N, D)
        grid = self.encoder.patch_embed.grid_size(H, W)
        K = K.to(tokens.dtype)
        if self.keypoint_head is None:
            return self.regressor(tokens, grid, K, (H, W)), {}
        raw = self.regressor.init_translation(tokens, grid)  # (B, 3)
        wrist_depth = translation_from_image(raw, K, (H, W), reference_depth=self.regressor.reference_depth)[:, 2]
        heatmaps, depth_maps = self.keypoint_head(tokens, grid, normalised)  # (B, 21, H/4, W/4) each
        uv, joint_depth = soft_argmax_2d(heatmaps, (H, W), depth_maps)  # (B, 21, 2) px, (B, 21) m
        lifted = lift_keypoints(uv, joint_depth - joint_depth[:, :1], lifting_depth(wrist_depth, root_depth), K)
        prior = rotations_from_joints(self.hand_layer, lifted.detach())  # (B, 16, 3, 3), no gradient
        estimates = self.regressor(tokens, grid, K, (H, W), rotation_prior=prior, translation_raw=raw)
        return estimates, {"keypoint_joints": lifted, "heatmaps": heatmaps, "joint_depth": joint_depth,
                           "keypoint_rotations": prior}

    def predict(self, image: torch.Tensor, K: torch.Tensor | None = None,
                root_depth: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Camera-frame predictions for an image batch: the loop's final estimate.

        Args:
            image: ``(B, 3, H, W)`` RGB in ``[0, 1]`` (the model normalises it).
            K: ``(B, 3, 3)`` intrinsics of the images. Without it a camera with
                focal length ``max(H, W)`` and the principal point at the image
                centre is assumed, so the wrist depth is only right up to that camera's scale.
            root_depth: ``(B,)`` wrist depth (camera z, m) to place the hand at
                instead of the predicted one (``examples/evaluate.py --root-depth
                ground-truth``, HOISDF's anchor): with ``init="keypoints"`` and
                ``lift_depth="ground-truth"`` the 2.5D keypoints are lifted at that
                depth (as :class:`~hoimask.models.PoseRegressionModel` lifts them),
                and the loop's final hand slides along the ray through its wrist to
                that depth (the loop itself runs on its own wrist estimate).

        Returns:
            ``joints (B, 21, 3)``, ``root (B, 3)`` (= ``joints[:, 0]``),
            ``vertices (B, V, 3)`` (camera frame, metres), ``keypoints_2d (B, 21, 2)``
            (the joints projected with ``K``), ``rotation_6d (B, 16, 6)``,
            ``shape (B, 10)``, ``translation (B, 3)`` (the loop's own wrist,
            before any ``root_depth``) and ``joints_per_iteration (B, T, 21, 3)``
            (every estimate of the loop, ``T = iterations + 1``, the initial one
            first). With ``init="keypoints"`` also ``keypoint_joints (B, 21, 3)`` (the 2.5D keypoints
            lifted at the loop's initial wrist depth or at ``root_depth``, camera frame, m),
            ``heatmaps (B, 21, H/4, W/4)`` logits, ``joint_depth (B, 21)`` m and ``keypoint_rotations (B, 16, 3, 3)`` (their swing IK, where the
            loop starts). No object pose: the model is hand-only.

        Shape:
            See Returns.
        """
        if root_depth is not None:
            check_shape(root_depth, "B", name="root_depth", dims={"B": image.shape[0]}, fn="HandMIMPoseModel.predict")
        lift = root_depth if self.head_config["lift_depth"] == "ground-truth" else None
        estimates, keypoints = self._run(image, K, lift)
        return {**self._predictions(estimates, image, K, root_depth), **keypoints}

    @staticmethod
    def _predictions(estimates: list[HandEstimate], image: torch.Tensor, K: torch.Tensor | None,
                     root_depth: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The dictionary of :meth:`predict` from the loop's estimates."""
        final = estimates[-1]
        joints, vertices, root, uv = final.joints, final.vertices, final.translation, final.keypoints_2d
        if root_depth is not None:  # checked by predict, before the keypoints were lifted at it
            shift = root * (root_depth.to(root.dtype) / root[:, 2] - 1.0)[:, None]  # (B, 3): along the wrist's ray
            joints, vertices, root = joints + shift[:, None], vertices + shift[:, None], root + shift
            K = default_intrinsics(image.shape[0], tuple(image.shape[-2:]), like=joints) if K is None else K
            uv = project(joints, K.to(joints.dtype))
        return {
            "joints": joints,
            "root": root,
            "vertices": vertices,
            "keypoints_2d": uv,
            "rotation_6d": final.rotation_6d,
            "shape": final.shape,
            "translation": final.translation,
            "joints_per_iteration": torch.stack([e.joints for e in estimates], dim=1),  # (B, T, 21, 3)
        }

    def forward(self, batch: Mapping[str, Any], *, generator: torch.Generator | None = None) -> dict[str, Any]:
        """Predict and compute the weighted loss (eq. 11-12) of a collated batch, summed over the loop's estimates.

        Args:
            batch: ``image`` (RGB in ``[0, 1]``), ``K`` (see :meth:`predict`) and the
                targets present among ``joints_3d``, ``joints_2d`` (default: the
                3D joints projected with ``K``), ``hand_pose`` + ``hand_shape``.
                NaN targets (unannotated hands) are left out.
            generator: unused (the model is deterministic); accepted for the loop's interface.

        Returns:
            ``{"loss": (), "terms": {name: ()}, "predictions": predict(...)}``; the terms are those of
            :data:`HANDMIM_HEAD_LOSS_WEIGHTS` whose targets the batch holds: ``mano_params`` (MSE of the 6D
            rotations and β, :func:`~hoimask.losses.mano_parameter_loss`), ``hand_vertices`` and ``hand_joints``
            (wrist-relative L1, m), ``hand_root`` (L1 of the wrist ``t``, m) and ``keypoint_2d`` (L1 of the
            projected joints, pixels over the image's longer side), each the sum over the estimates.
        """
        fn = "HandMIMPoseModel.forward"
        image = get_image(batch, fn)
        K = optional(batch, "K")
        joints = optional(batch, "joints_3d")
        pose, shape = optional(batch, "hand_pose"), optional(batch, "hand_shape")
        if joints is None and (pose is None or shape is None):
            raise ValueRangeError(f"{fn}(): argument 'batch' holds no hand target "
                                  "(expected joints_3d, or hand_pose + hand_shape)")
        known = None if joints is None else torch.isfinite(joints).flatten(1).all(dim=1)  # (B,) annotated hands
        lift = None
        if known is not None and self.head_config["lift_depth"] == "ground-truth":  # NaN: the loop's own depth
            lift = torch.where(known, joints[:, 0, 2], joints.new_tensor(float("nan")))
        estimates, keypoints = self._run(image, K, lift)
        dtype = estimates[-1].joints.dtype
        annotated = known is not None and bool(known.any())  # unannotated frames train the MANO terms only
        size = tuple(image.shape[-2:])
        if annotated:
            gt = joints[known].to(dtype)
            K_known = (default_intrinsics(gt.shape[0], size, like=gt) if K is None else K[known]).to(dtype)
            j2d = optional(batch, "joints_2d")
            j2d = project(gt, K_known) if j2d is None else j2d[known].to(dtype)
        terms: dict[str, torch.Tensor] = {}
        for estimate in estimates:
            step = dict(self.hand_loss(estimate.rotation_6d, estimate.shape, target_pose=pose, target_shape=shape,
                                       target_joints=joints))
            if annotated:
                step["hand_root"] = (estimate.translation[known] - gt[:, 0]).abs().mean()
                # eq. (12)'s reprojection term: L1 in pixels, over the image side so that it stays O(1)
                step["keypoint_2d"] = (estimate.keypoints_2d[known] - j2d).abs().sum(-1).mean() / max(size)
            for name, value in step.items():
                terms[name] = terms[name] + value if name in terms else value
        if annotated and keypoints:
            terms.update(self._keypoint_terms(keypoints, known, gt, j2d, size))
        loss = torch.stack([self.loss_weights[k] * v for k, v in terms.items()]).sum()
        return {"loss": loss, "terms": terms, "predictions": {**self._predictions(estimates, image, K), **keypoints}}

    def _keypoint_terms(self, keypoints: Mapping[str, torch.Tensor], known: torch.Tensor, joints: torch.Tensor,
                        joints_2d: torch.Tensor, size: tuple[int, int]) -> dict[str, torch.Tensor]:
        """The keypoint branch's terms on the annotated samples ``known``: heatmap KL, wrist-relative depth and
        lifted wrist-relative joints (L1, m), as :class:`~hoimask.models.PoseRegressionModel`'s."""
        depth = keypoints["joint_depth"][known]
        lifted = keypoints["keypoint_joints"][known]
        return {
            "keypoint_heatmap": heatmap_kl_divergence(keypoints["heatmaps"][known], joints_2d, size,
                                                      sigma=self.head_config["heatmap_sigma"]),
            "keypoint_depth": ((depth - depth[:, :1]) - (joints[..., 2] - joints[:, :1, 2])).abs().mean(),
            "keypoint_joints": ((lifted - lifted[:, :1]) - (joints - joints[:, :1])).abs().mean(),
        }
