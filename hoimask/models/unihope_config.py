"""Configuration, presets and loss weights of :class:`~hoimask.models.UniHOPE`.

The ``paper`` preset is UniHOPE §4's setting (ResNet-50 FPN, 128 px input);
sizes the paper does not state come from the released code or HFL-Net
(docs/models.md, "UniHOPE", lists which). ``tiny`` is a CPU size for tests
and demos; ``vit`` / ``tiny_vit`` swap the ResNet FPN for a ViT + DPT so a
MaskHOI / HandMIM encoder can be loaded (:meth:`UniHOPE.load_encoder`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from hoimask._checks import (
    DTypeError,
    ValueRangeError,
    check_choice,
    check_in_range,
    check_int,
    check_loss_weights,
    check_positive,
)
from hoimask.losses.enhancement import (
    ADAPTER_SIDES,
    UNIHOPE_ENHANCEMENT_WEIGHTS,
    UNIHOPE_OCCLUSION_THRESHOLD,
)
from hoimask.losses.grasp import UNIHOPE_SWITCH_WEIGHT
from hoimask.models._batch import LIFT_DEPTHS
from hoimask.nn.pixel_norm import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["FUSION_CONFIDENCES", "HAND_INITS", "UNIHOPE_LOSS_WEIGHTS", "UNIHOPE_PRESETS", "UniHOPEConfig", "resolve_unihope_preset"]

#: Choices of ``UniHOPEConfig.fusion_confidence``: the fusion's ``s`` is the switcher's ``Argmax``
#: (eq. 3), its detached probability, or 1 for every sample (HFL-Net, no grasp-aware fusion).
FUSION_CONFIDENCES = ("hard", "soft", "always")

#: Choices of ``UniHOPEConfig.hand_init``: where the 16 MANO rotations come from. ``"keypoints"``: the swing IK
#: of the hand branch's 2.5D keypoints (its heatmaps plus per-joint relative-depth maps), the regression a
#: residual on them; ``"regression"``: the paper's MANO regression from ``F_m`` alone (which predicts the mean hand on varied
#: synthetic data, docs/results.md §7).
HAND_INITS = ("keypoints", "regression")

#: Weights of the loss terms (eq. 11). L^h: ``joints_2d`` (image-normalised units), ``joints_3d``,
#: ``vertices`` (metres, wrist-relative), ``mano`` (MSE of 6D rotations and β); L^o: ``object_points``
#: (offsets in box units), ``object_confidence``; α L^s: ``grasp`` (10, the released ``out_obj_conf_weight``);
#: γ: ``enhancement_init``, ``enhancement_roi``, ``enhancement_mano`` (released cfg.json). hoimask's additions:
#: ``root_depth`` (metres; the camera-frame wrist that ``predict`` places the hand at), ``boxes`` (the
#: RoI boxes used at test time) and, with ``hand_init="keypoints"``, ``joints_depth`` (L1 of the keypoints'
#: wrist-relative depths, m), ``keypoint_joints`` (L1 of the lifted wrist-relative keypoints, m) and
#: ``joints_heatmap`` (KL divergence of the RoI heatmaps from Gaussians, σ one bin, at the 2D joints; weight 50: at 1
#: the other terms' gradients in the shared trunk kept the heatmaps flat, docs/results.md §7); with ``object_depth``,
#: ``object_depth`` (L1 of every object bin's depth of the box centre relative to the wrist, m). The paper gives no
#: values for L^h / L^o; these balance the units.
UNIHOPE_LOSS_WEIGHTS = MappingProxyType(
    {
        "joints_2d": 1.0,
        "joints_3d": 10.0,
        "vertices": 10.0,
        "mano": 1.0,
        "object_points": 1.0,
        "object_confidence": 1.0,
        "grasp": UNIHOPE_SWITCH_WEIGHT,
        "enhancement_init": UNIHOPE_ENHANCEMENT_WEIGHTS["init"],
        "enhancement_roi": UNIHOPE_ENHANCEMENT_WEIGHTS["roi"],
        "enhancement_mano": UNIHOPE_ENHANCEMENT_WEIGHTS["mano"],
        "root_depth": 10.0,
        "boxes": 1.0,
        "joints_depth": 10.0,
        "keypoint_joints": 10.0,
        "joints_heatmap": 50.0,
        "object_depth": 10.0,
    }
)


@dataclass
class UniHOPEConfig:
    """Every hyper-parameter of :class:`~hoimask.models.UniHOPE`; presets fill it, keywords override it.

    Backbone: ``backbone`` (``"resnet"``: ResNet + :class:`~hoimask.nn.FeaturePyramid`,
    UniHOPE / HFL-Net; ``"vit"``: :class:`~hoimask.nn.ViTEncoder` + :class:`~hoimask.nn.DPTHead`,
    loads MaskHOI / HandMIM encoders), ``img_size`` (128, §4).
    ResNet: ``resnet_depth`` (18, 34, 50), ``resnet_base_channels`` (64 = torchvision's),
    ``fpn_dim`` (256). ViT: ``patch_size``, ``embed_dim``, ``depth``, ``num_heads``,
    ``dpt_feature_dim``, ``dpt_reassemble_dims``.
    RoIs: ``feature_dim`` (channels of the hand map ``P2_h`` and object map ``P2_o``),
    ``roi_size`` (bins per side), ``sampling_ratio``, ``box_scale`` (ground-truth
    boxes are enlarged by it about their centre), ``box_jitter`` (0; in training the hand RoI
    moves by up to this fraction of its side and scales by ``1 ± box_jitter``, so the branch
    learns to read the box head's boxes; the box head's target stays the ground truth).
    Fusion (:class:`~hoimask.nn.GraspAwareFusion`): ``fusion_heads``, ``fusion_mlp_ratio``,
    ``fusion_detach_object`` (released: True), ``fusion_confidence`` (``"hard"``: ``s =
    Argmax g`` as eq. 3; ``"soft"``: the detached grasp probability; ``"always"``: ``s = 1``,
    HFL-Net's fusion of every sample's object features, Table 7 row (a)), ``grasp_threshold`` (0.5).
    Hand branch: ``hand_channels`` (width of the hand encoder), ``mano_dim`` (size of the
    MANO-level feature ``F_m``), ``reference_depth`` (m; the wrist-depth head's start, see
    :func:`~hoimask.geometry.translation_from_image`), ``hand_init`` (:data:`HAND_INITS`;
    ``"keypoints"``, the default, starts the MANO rotations at the swing IK of the 2.5D keypoints,
    ``"regression"`` is the paper's), ``lift_depth`` (:data:`~hoimask.models._batch.LIFT_DEPTHS`; with
    ``hand_init="keypoints"``, ``"predicted"`` (default) lifts the keypoints at the model's own wrist depth
    (the regression's residual on their IK is trained on that start), ``"ground-truth"`` at the annotated
    wrist depth in training and at ``predict``'s ``root_depth``, as :class:`~hoimask.models.HandMIMPoseModel`
    does by default; docs/results.md §7 has both).
    Object branch: ``object_channels``; ``object_depth`` (True: the head also predicts, per bin, the
    depth of the object box's centre relative to the wrist, read at the centre key point's bin, and
    ``predict`` places the box centre on that key point's ray at the wrist depth plus it, the rotation
    still from the DLT of the 9 key points — on the symmetric synthetic primitives the 8 corners cannot
    be told apart and the DLT's depth collapses, docs/results.md §7; False: the paper's, the translation
    from the DLT too).
    Switcher: ``switch_hidden``.
    Enhancement: ``occlusion_threshold`` (τ = 0.1), ``adapter_heads`` (heads of ``h``),
    ``adapter_on`` (``"both"``: eq. (7)'s ``‖h(F_m) − h(F_m')‖``, the twin's side detached; ``"original"``:
    the released code's ``‖h(F_m) − F_m'‖`` — ``h`` ends in a LayerNorm, so the original side is
    normalised and the raw target is not, and on four fixed scenes the MANO-level term falls only 6.4x
    where eq. (7)'s falls 546x, docs/models.md),
    ``case_filtering`` (eq. 8, True; False distils every pair with a real twin, Table 7 rows
    (c)–(f)), ``deoccluded_samples`` (False; True: the real twins also train the hand as extra
    samples — the hand terms average over the originals and the twins, Table 7 row (c)),
    ``run_dropped_twins`` (False: only the twins of the pairs eq. (8) keeps run through the
    network — a dropped pair's terms are exactly zero, and on synthetic data two thirds of the
    pairs are dropped, which halves the twins' cost; True: every real twin runs in the batch,
    as in the released code, whose BatchNorm statistics then include them).
    Losses: ``loss_weights`` (partial dicts update :data:`UNIHOPE_LOSS_WEIGHTS`).
    Hand layer: ``mano_path`` (None: the licence-free procedural hand).
    Input: ``pixel_mean``, ``pixel_std`` (RGB in [0, 1] is normalised by the model).
    """

    backbone: str = "resnet"
    img_size: int = 128
    resnet_depth: int = 50
    resnet_base_channels: int = 64
    fpn_dim: int = 256
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    dpt_feature_dim: int = 256
    dpt_reassemble_dims: tuple[int, ...] = (96, 192, 384, 768)
    feature_dim: int = 256
    roi_size: int = 16
    sampling_ratio: int = 2
    box_scale: float = 1.2
    box_jitter: float = 0.0
    fusion_heads: int = 8
    fusion_mlp_ratio: float = 4.0
    fusion_detach_object: bool = True
    fusion_confidence: str = "hard"
    grasp_threshold: float = 0.5
    hand_channels: int = 256
    mano_dim: int = 1024
    reference_depth: float = 0.5
    hand_init: str = "keypoints"
    lift_depth: str = "predicted"
    object_channels: int = 256
    switch_hidden: int = 64
    occlusion_threshold: float = UNIHOPE_OCCLUSION_THRESHOLD
    adapter_heads: int = 8
    adapter_on: str = "both"
    case_filtering: bool = True
    deoccluded_samples: bool = False
    run_dropped_twins: bool = False
    object_depth: bool = True
    loss_weights: dict[str, float] = field(default_factory=lambda: dict(UNIHOPE_LOSS_WEIGHTS))
    mano_path: str | None = None
    pixel_mean: tuple[float, float, float] = IMAGENET_MEAN
    pixel_std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        fn = "UniHOPEConfig"
        check_choice(self.backbone, ("resnet", "vit"), name="backbone", fn=fn)
        check_choice(self.resnet_depth, (18, 34, 50), name="resnet_depth", fn=fn)
        check_choice(self.fusion_confidence, FUSION_CONFIDENCES, name="fusion_confidence", fn=fn)
        check_choice(self.hand_init, HAND_INITS, name="hand_init", fn=fn)
        check_choice(self.lift_depth, LIFT_DEPTHS, name="lift_depth", fn=fn)
        check_choice(self.adapter_on, ADAPTER_SIDES, name="adapter_on", fn=fn)
        for name in ("img_size", "resnet_base_channels", "fpn_dim", "patch_size", "embed_dim", "depth", "num_heads",
                     "dpt_feature_dim", "feature_dim", "roi_size", "sampling_ratio", "fusion_heads", "hand_channels",
                     "mano_dim", "object_channels", "switch_hidden", "adapter_heads"):
            check_int(getattr(self, name), name=name, low=1, fn=fn)
        for name in ("box_scale", "fusion_mlp_ratio", "reference_depth"):
            check_positive(getattr(self, name), name=name, fn=fn)
        check_in_range(self.grasp_threshold, name="grasp_threshold", low=0.0, high=1.0, fn=fn)
        check_in_range(self.box_jitter, name="box_jitter", low=0.0, high=0.5, fn=fn)
        check_in_range(self.occlusion_threshold, name="occlusion_threshold", low=0.0, high=1.0, fn=fn)
        for name in ("fusion_detach_object", "case_filtering", "deoccluded_samples", "run_dropped_twins", "object_depth"):
            if not isinstance(getattr(self, name), bool):
                raise DTypeError(f"{fn}(): argument '{name}' expected a bool, got {getattr(self, name)!r}")
        for attr in ("dpt_reassemble_dims", "pixel_mean", "pixel_std"):
            setattr(self, attr, tuple(getattr(self, attr)))
        if (2 * self.feature_dim) % self.fusion_heads:
            raise ValueRangeError(f"{fn}(): argument 'fusion_heads' ({self.fusion_heads}) must divide the fused width "
                                  f"2 * feature_dim = {2 * self.feature_dim}")
        if self.mano_dim % self.adapter_heads:
            raise ValueRangeError(f"{fn}(): argument 'adapter_heads' ({self.adapter_heads}) must divide mano_dim "
                                  f"({self.mano_dim})")
        stride = self.patch_size if self.backbone == "vit" else 32
        if self.img_size % stride:
            raise ValueRangeError(f"{fn}(): argument 'img_size' {self.img_size} must be a multiple of {stride} "
                                  f"(backbone {self.backbone!r})")
        self.loss_weights = check_loss_weights(self.loss_weights, UNIHOPE_LOSS_WEIGHTS, name="loss_weights", fn=fn)


_TINY_HEADS: dict[str, Any] = dict(
    feature_dim=32, roi_size=8, fusion_heads=4, fusion_mlp_ratio=2.0, hand_channels=32, mano_dim=64,
    object_channels=32, switch_hidden=32, adapter_heads=4,
)

#: ``paper``: ResNet-50 FPN at 128 px (§4), RoIs of 16×16 bins on the stride-4 maps. ``tiny``: a narrow
#: ResNet-18 FPN (base width 16) with small heads, for CPU tests and demos. ``vit``: ViT-B/16 + DPT at 128 px
#: (the encoders of MaskHOI ``paper`` / HandMIM ViT-B; their position embedding is resized on load);
#: ``tiny_vit``: MaskHOI's tiny encoder (192 wide, 4 blocks, 3 heads) with the tiny heads.
UNIHOPE_PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(),
    "tiny": dict(resnet_depth=18, resnet_base_channels=16, fpn_dim=32, **_TINY_HEADS),
    "vit": dict(backbone="vit"),
    "tiny_vit": dict(backbone="vit", embed_dim=192, depth=4, num_heads=3, dpt_feature_dim=32,
                     dpt_reassemble_dims=(32, 64, 96, 128), **_TINY_HEADS),
}


def resolve_unihope_preset(name: str, overrides: dict[str, Any]) -> UniHOPEConfig:
    """Build a :class:`UniHOPEConfig` from a preset name (:data:`UNIHOPE_PRESETS`) and keyword overrides."""
    check_choice(name, tuple(UNIHOPE_PRESETS), name="name", fn="UniHOPE.from_preset")
    known = {f.name for f in fields(UniHOPEConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueRangeError(f"UniHOPE.from_preset(): unknown overrides {unknown}; known: {sorted(known)}")
    return replace(UniHOPEConfig(), **{**UNIHOPE_PRESETS[name], **overrides})
