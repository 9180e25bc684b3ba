"""Neural-network building blocks of MaskHOI (§III-A, §III-C).

Pixel normalisation (the models' input layer), ViT encoder on visible tokens, checkpoint loading, token decoders, DPT heads,
the SDF decoder and the 2D / parameter heads. Light: imports neither the data
package nor trimesh.
"""

from hoimask.nn.checkpoint import (
    LoadReport,
    convert_vit_state_dict,
    detect_checkpoint_format,
    load_vit_checkpoint,
)
from hoimask.nn.dpt import DPTHead, FusionBlock, ResidualConvUnit
from hoimask.nn.heads import (
    IDENTITY_6D,
    HeatmapHead,
    MANOParameters,
    MANOTransformerHead,
    ObjectPose,
    ObjectPoseHead,
    SegmentationHead,
    SpatialTranslationHead,
    spatial_soft_argmax,
)
from hoimask.nn.keypoints import Keypoint25DHead, lift_keypoints, soft_argmax_2d
from hoimask.nn.patch_embed import PatchEmbed
from hoimask.nn.pixel_norm import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PixelNormalization,
    check_unit_range,
    normalize_pixels,
)
from hoimask.nn.sdf_decoder import SDFDecoder
from hoimask.nn.token_decoder import DecoderOutput, TokenDecoder
from hoimask.nn.transformer import Attention, Block, CrossAttention, CrossAttentionBlock, Mlp
from hoimask.nn.vit import (
    VIT_CONFIGS,
    EncoderOutput,
    ViTConfig,
    ViTEncoder,
    vit_base,
    vit_large,
    vit_small,
    vit_tiny,
)

__all__ = [
    "IDENTITY_6D",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "VIT_CONFIGS",
    "Attention",
    "Block",
    "CrossAttention",
    "CrossAttentionBlock",
    "DPTHead",
    "DecoderOutput",
    "EncoderOutput",
    "FusionBlock",
    "HeatmapHead",
    "Keypoint25DHead",
    "LoadReport",
    "MANOParameters",
    "MANOTransformerHead",
    "Mlp",
    "ObjectPose",
    "ObjectPoseHead",
    "PatchEmbed",
    "PixelNormalization",
    "ResidualConvUnit",
    "SDFDecoder",
    "SegmentationHead",
    "SpatialTranslationHead",
    "TokenDecoder",
    "ViTConfig",
    "ViTEncoder",
    "check_unit_range",
    "convert_vit_state_dict",
    "detect_checkpoint_format",
    "lift_keypoints",
    "load_vit_checkpoint",
    "normalize_pixels",
    "soft_argmax_2d",
    "spatial_soft_argmax",
    "vit_base",
    "vit_large",
    "vit_small",
    "vit_tiny",
]
