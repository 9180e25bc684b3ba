"""Configuration, presets and loss weights of :class:`~hoimask.models.HOISDF`.

The ``hoisdf`` preset holds the sizes of the official code (``main/config.py``
of amathislab/HOISDF, DexYCB setting); see docs/models.md for the table and
the differences between paper and code.
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
    check_positive,
)
from hoimask.nn.pixel_norm import IMAGENET_MEAN, IMAGENET_STD
from hoimask.nn.pointnet import POOL_MODES

__all__ = ["HOISDFConfig", "HOISDF_PRESETS", "HOISDF_LOSS_WEIGHTS", "resolve_hoisdf_preset"]

#: λ of every term of eq. (9), the official ``main/config.py`` values (read-only; override per model).
#: L_img: heatmap, hand_seg, object_seg; L_sdf: sdf_hand, sdf_object; L_mano: mano_*;
#: L_off: vote_*; L_obj: object_rotation, object_translation.
HOISDF_LOSS_WEIGHTS = MappingProxyType(
    {
        "heatmap": 1e-3,
        "hand_seg": 1.0,
        "object_seg": 1.0,
        "sdf_hand": 50.0,
        "sdf_object": 25.0,
        "mano_vertices": 1e4,
        "mano_joints": 1e4,
        "mano_pose": 10.0,
        "mano_shape": 0.1,
        "vote_offset": 0.1,
        "vote_classification": 1.0,
        "vote_joints": 0.1,
        "object_rotation": 0.7,
        "object_translation": 100.0,
    }
)


@dataclass
class HOISDFConfig:
    """Every hyper-parameter of :class:`~hoimask.models.HOISDF`; presets fill it, keywords override it.

    Backbone: ``backbone`` (``"resnet50"``: ResNet U-Net, HOISDF; ``"vit"``:
    ViT encoder + DPT head, MaskHOI's transfer), ``img_size``.
    ResNet: ``resnet_depth`` (18, 34, 50), ``resnet_base_channels``,
    ``unet_channels`` (5, finest first), ``unet_upsample_channels`` (4),
    ``freeze_backbone_bn`` (HOISDF freezes the BN affine parameters).
    ViT: ``patch_size``, ``embed_dim``, ``depth``, ``num_heads``,
    ``dpt_feature_dim``, ``dpt_reassemble_dims``.
    2D heads: ``image_head_hidden``, ``num_heatmaps`` (1 as HOISDF, or 21),
    ``heatmap_scale`` (the heatmap head predicts in units of this, 255 = the
    Gaussian peak; 1 = the code's parametrisation, see :class:`HOISDF`).
    SDF decoders (:class:`~hoimask.nn.DeepSDFDecoder`): ``sdf_feature_dim``,
    ``sdf_feature_hidden``, ``sdf_hidden``, ``sdf_layers``, ``sdf_skip_layer``,
    ``num_bands``, ``sdf_dropout``, ``point_scale`` (3.1), ``sdf_clamp``
    (0.15 scaled units).
    Query points: ``hand_points`` (600), ``object_points`` (200),
    ``grid_resolution`` (64), ``grid_extent`` (side of the voxel cube in
    scaled units, 2 = [-1, 1]³), ``hand_box_scale`` (1.1),
    ``near_surface`` (0.05 m: |SDF| of the ground-truth pre-points),
    ``noise_ranges`` (±0.03/0.05/0.07 scaled units), ``noise_thresholds``
    (0.3, 0.7 of an epoch), ``schedule_epochs`` (70: how many epochs the
    training progress is split into for the noise), ``sampling_switch``
    (40/70: progress from which field-guided points are used),
    ``ground_truth_prob`` (0.4: after the switch, probability of the
    ground-truth points), ``chunk_size`` (voxels per SDF evaluation).
    Point attention: ``dim`` (256), ``num_heads_points`` (4), ``mlp_dim``
    (1024), ``hand_encoder_depth`` (6), ``hand_decoder_depth`` (4),
    ``object_encoder_depth`` (3), ``dropout`` (0.1), ``token_feature_hidden``,
    ``head_hidden``, ``density_sign`` (``"code"``/``"paper"``), ``beta_init``,
    ``finger_mask``, ``block_object_memory``, ``vote_radius`` (0.04 m),
    ``num_vote_joints`` (20 as HOISDF: the root is the origin; or 21).
    Point-cloud fusion (HOMAE's SDF + explicit cloud; off = HOISDF as published,
    no extra parameters or cost; docs/models.md): ``point_cloud_fusion``
    (False), ``fusion_fraction`` (0.5: the cloud of a branch holds
    ``ceil(fraction · N)`` of its query points, those nearest the zero level,
    projected onto it; a PointNet encodes it into one extra token of the
    branch), ``fusion_hidden`` (widths of the PointNet MLP, (64, 128)),
    ``fusion_pool`` (``"max_mean"``, ``"max"``, ``"mean"``).
    Losses: ``loss_weights`` (partial dicts update :data:`HOISDF_LOSS_WEIGHTS`).
    Hand layer: ``mano_path`` (None: the licence-free procedural hand).
    Input: ``pixel_mean``, ``pixel_std`` (RGB in [0, 1] is normalised by the model).
    """

    backbone: str = "resnet50"
    img_size: int = 256
    resnet_depth: int = 50
    resnet_base_channels: int = 64
    unet_channels: tuple[int, ...] = (32, 64, 128, 256, 512)
    unet_upsample_channels: tuple[int, ...] = (64, 64, 128, 256)
    freeze_backbone_bn: bool = True
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    dpt_feature_dim: int = 256
    dpt_reassemble_dims: tuple[int, ...] = (96, 192, 384, 768)
    image_head_hidden: int = 32
    num_heatmaps: int = 1
    heatmap_scale: float = 255.0
    sdf_feature_dim: int = 256
    sdf_feature_hidden: tuple[int, ...] = (512,)
    sdf_hidden: int = 512
    sdf_layers: int = 4
    sdf_skip_layer: int | None = 2
    num_bands: int = 5
    sdf_dropout: float = 0.2
    point_scale: float = 3.1
    sdf_clamp: float = 0.15
    hand_points: int = 600
    object_points: int = 200
    grid_resolution: int = 64
    grid_extent: float = 2.0
    hand_box_scale: float = 1.1
    near_surface: float = 0.05
    noise_ranges: tuple[float, ...] = (0.03, 0.05, 0.07)
    noise_thresholds: tuple[float, ...] = (0.3, 0.7)
    schedule_epochs: int = 70
    sampling_switch: float = 40 / 70
    ground_truth_prob: float = 0.4
    chunk_size: int = 32768
    dim: int = 256
    num_heads_points: int = 4
    mlp_dim: int = 1024
    hand_encoder_depth: int = 6
    hand_decoder_depth: int = 4
    object_encoder_depth: int = 3
    dropout: float = 0.1
    token_feature_hidden: tuple[int, ...] = (1024, 512, 256)
    head_hidden: int = 256
    density_sign: str = "code"
    beta_init: float = 0.1
    finger_mask: bool = True
    block_object_memory: bool = True
    vote_radius: float = 0.04
    num_vote_joints: int = 20
    point_cloud_fusion: bool = False
    fusion_fraction: float = 0.5
    fusion_hidden: tuple[int, ...] = (64, 128)
    fusion_pool: str = "max_mean"
    loss_weights: dict[str, float] = field(default_factory=lambda: dict(HOISDF_LOSS_WEIGHTS))
    mano_path: str | None = None
    pixel_mean: tuple[float, float, float] = IMAGENET_MEAN
    pixel_std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        fn = "HOISDFConfig"
        check_choice(self.backbone, ("resnet50", "vit"), name="backbone", fn=fn)
        check_choice(self.resnet_depth, (18, 34, 50), name="resnet_depth", fn=fn)
        check_choice(self.num_vote_joints, (20, 21), name="num_vote_joints", fn=fn)
        for name in ("hand_points", "object_points", "grid_resolution", "schedule_epochs", "img_size"):
            check_int(getattr(self, name), name=name, low=1, fn=fn)
        for name in ("heatmap_scale", "point_scale", "sdf_clamp", "grid_extent", "hand_box_scale", "near_surface", "vote_radius"):
            check_positive(getattr(self, name), name=name, fn=fn)
        check_in_range(self.sampling_switch, name="sampling_switch", low=0.0, high=1.0, fn=fn)
        check_in_range(self.ground_truth_prob, name="ground_truth_prob", low=0.0, high=1.0, fn=fn)
        if not isinstance(self.point_cloud_fusion, bool):
            raise DTypeError(f"{fn}(): argument 'point_cloud_fusion' expected a bool, got {self.point_cloud_fusion!r}")
        check_in_range(self.fusion_fraction, name="fusion_fraction", low=0.0, high=1.0, low_inclusive=False, fn=fn)
        check_choice(self.fusion_pool, POOL_MODES, name="fusion_pool", fn=fn)
        for attr in ("unet_channels", "unet_upsample_channels", "dpt_reassemble_dims", "sdf_feature_hidden",
                     "noise_ranges", "noise_thresholds", "token_feature_hidden", "fusion_hidden", "pixel_mean",
                     "pixel_std"):
            setattr(self, attr, tuple(getattr(self, attr)))
        if not self.fusion_hidden:
            raise ValueRangeError(f"{fn}(): argument 'fusion_hidden' expected at least one width, got ()")
        for i, width in enumerate(self.fusion_hidden):
            check_int(width, name=f"fusion_hidden[{i}]", low=1, fn=fn)
        if len(self.noise_ranges) != len(self.noise_thresholds) + 1:
            raise ValueRangeError(
                f"{fn}(): argument 'noise_ranges' needs one entry more than 'noise_thresholds', "
                f"got {len(self.noise_ranges)} and {len(self.noise_thresholds)}"
            )
        if self.grid_resolution**3 < max(self.hand_points, self.object_points):
            raise ValueRangeError(
                f"{fn}(): grid_resolution**3 = {self.grid_resolution**3} voxels cannot give "
                f"{max(self.hand_points, self.object_points)} points"
            )
        if self.backbone == "vit" and self.img_size % self.patch_size:
            raise ValueRangeError(f"{fn}(): argument 'img_size' {self.img_size} must be a multiple of patch_size")
        if self.backbone == "resnet50" and self.img_size % 32:
            raise ValueRangeError(f"{fn}(): argument 'img_size' {self.img_size} must be a multiple of 32 (ResNet U-Net)")
        given = dict(self.loss_weights)
        unknown = sorted(set(given) - set(HOISDF_LOSS_WEIGHTS))
        if unknown:
            raise ValueRangeError(f"{fn}(): argument 'loss_weights' has unknown names {unknown}; "
                                  f"known {sorted(HOISDF_LOSS_WEIGHTS)}")
        for name, value in given.items():
            if not value >= 0:
                raise ValueRangeError(f"{fn}(): argument 'loss_weights[{name!r}]' must be >= 0, got {value}")
        self.loss_weights = {**HOISDF_LOSS_WEIGHTS, **given}


_TINY_POINTS: dict[str, Any] = dict(
    img_size=128,
    image_head_hidden=16,
    sdf_feature_dim=64,
    sdf_feature_hidden=(128,),
    sdf_hidden=128,
    sdf_layers=4,
    hand_points=128,
    object_points=64,
    grid_resolution=20,
    dim=64,
    mlp_dim=128,
    hand_encoder_depth=2,
    hand_decoder_depth=2,
    object_encoder_depth=2,
    token_feature_hidden=(128,),
    head_hidden=64,
    schedule_epochs=1,
    sdf_dropout=0.0,  # the code's 0.2 / 0.1 regularise a large model on real data; the tiny one underfits
    dropout=0.0,  # (2 mm better without, docs/results.md §5 "Without dropout")
)

#: ``hoisdf``: the official sizes (ResNet-50 U-Net, 256 px). ``vit``: the same point side on a ViT-B/16 +
#: DPT backbone at MaskHOI's 224 px (loads MaskHOI ``paper`` / MAE / timm ViT-B weights). ``tiny``: a CPU
#: size on MaskHOI's tiny encoder (128 px, ViT 192/4/3, loads MaskHOI ``tiny`` encoder.pt; no dropout). ``tiny_resnet``:
#: the same on a narrow ResNet-18 U-Net (tests, CPU demos).
HOISDF_PRESETS: dict[str, dict[str, Any]] = {
    "hoisdf": dict(),
    "vit": dict(backbone="vit", img_size=224),
    "tiny": dict(
        backbone="vit", patch_size=16, embed_dim=192, depth=4, num_heads=3, dpt_feature_dim=32,
        dpt_reassemble_dims=(32, 64, 96, 128), **_TINY_POINTS,
    ),
    "tiny_resnet": dict(
        backbone="resnet50", resnet_depth=18, resnet_base_channels=16, unet_channels=(16, 32, 32, 64, 64),
        unet_upsample_channels=(32, 32, 32, 64), freeze_backbone_bn=False, **_TINY_POINTS,
    ),
}


def resolve_hoisdf_preset(name: str, overrides: dict[str, Any]) -> HOISDFConfig:
    """Build a :class:`HOISDFConfig` from a preset name (:data:`HOISDF_PRESETS`) and keyword overrides."""
    check_choice(name, tuple(HOISDF_PRESETS), name="name", fn="HOISDF.from_preset")
    known = {f.name for f in fields(HOISDFConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueRangeError(f"HOISDF.from_preset(): unknown overrides {unknown}; known: {sorted(known)}")
    return replace(HOISDFConfig(), **{**HOISDF_PRESETS[name], **overrides})
