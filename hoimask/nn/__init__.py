"""Neural-network building blocks of MaskHOI (§III-A, §III-C).

ViT encoder on visible tokens, checkpoint loading, token decoders, DPT heads,
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
)
from hoimask.nn.patch_embed import PatchEmbed
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
    "LoadReport",
    "MANOParameters",
    "MANOTransformerHead",
    "Mlp",
    "ObjectPose",
    "ObjectPoseHead",
    "PatchEmbed",
    "ResidualConvUnit",
    "SDFDecoder",
    "SegmentationHead",
    "TokenDecoder",
    "ViTConfig",
    "ViTEncoder",
    "convert_vit_state_dict",
    "detect_checkpoint_format",
    "load_vit_checkpoint",
    "vit_base",
    "vit_large",
    "vit_small",
    "vit_tiny",
]
