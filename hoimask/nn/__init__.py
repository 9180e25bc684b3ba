"""Neural-network building blocks of MaskHOI (§III-A, §III-C).

Pixel normalisation (the models' input layer), ViT encoder on visible tokens, checkpoint loading, token decoders, DPT heads,
the SDF decoders, the 2D / parameter heads, HOISDF's ResNet U-Net image
backbone with its 2D heads, and HOISDF's point-side parts (point tokens, point
attention, joint voting, per-point object pose), a small PointNet for explicit
point clouds, UniHOPE's object switcher, grasp-aware fusion and adaptation
layer, and HandMIM's parts (mask-token input, distillation head and centring,
EMA teacher, multi-level pixel decoder) with its fine-tuning head (the PyMAF-style
keypoint feedback loop). Light: imports neither the
data package nor trimesh.
"""

from hoimask.nn.checkpoint import (
    LoadReport,
    convert_vit_state_dict,
    detect_checkpoint_format,
    load_vit_checkpoint,
)
from hoimask.nn.distillation import (
    DINOHead,
    TeacherCentering,
    center_and_sharpen,
    teacher_temperature,
)
from hoimask.nn.dpt import DPTHead, FusionBlock, ResidualConvUnit
from hoimask.nn.ema import make_teacher, teacher_momentum, update_teacher
from hoimask.nn.feature_adapter import AttentionAdapter
from hoimask.nn.fpn import FeaturePyramid
from hoimask.nn.grasp_fusion import GraspAwareFusion, grasp_aware_features
from hoimask.nn.grasp_switcher import GatedObjectOutputs, GraspSwitcher, gate_object_outputs
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
from hoimask.nn.keypoint_feedback import (
    HandEstimate,
    KeypointFeedbackRegressor,
    feedback_map_scales,
)
from hoimask.nn.keypoints import Keypoint25DHead, lift_keypoints, soft_argmax_2d
from hoimask.nn.mask_token import MaskTokenEncoder, replace_masked_tokens
from hoimask.nn.patch_embed import PatchEmbed
from hoimask.nn.pixel_norm import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PixelNormalization,
    check_unit_range,
    normalize_pixels,
)
from hoimask.nn.point_attention import (
    PointEncoderOutput,
    PointPoseOutput,
    PointPoseTransformer,
    PointTransformerEncoder,
    mano_query_mask,
    point_memory_mask,
)
from hoimask.nn.point_heads import (
    JointVotes,
    JointVotingHead,
    PointObjectPose,
    PointObjectPoseHead,
    average_object_pose,
    vote_joints,
)
from hoimask.nn.point_tokens import PointTokenEmbedding
from hoimask.nn.pointnet import POOL_MODES, PointNetEncoder, pool_points
from hoimask.nn.pyramid_decoder import PyramidPixelDecoder, pyramid_tap_layers
from hoimask.nn.resnet import (
    BasicBlock,
    Bottleneck,
    ResNet,
    load_resnet_checkpoint,
    resnet18,
    resnet34,
    resnet50,
)
from hoimask.nn.roi import RoIAlign, roi_align
from hoimask.nn.sdf_decoder import DeepSDFDecoder, DeepSDFOutput, SDFDecoder
from hoimask.nn.token_decoder import DecoderOutput, TokenDecoder
from hoimask.nn.transformer import (
    Attention,
    Block,
    CrossAttention,
    CrossAttentionBlock,
    Mlp,
    fp32_on_cpu_bf16,
)
from hoimask.nn.unet import HOISDFImageHeads, HOISDFImageOutput, ResNetUNet
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
    "BasicBlock",
    "Block",
    "Bottleneck",
    "CrossAttention",
    "CrossAttentionBlock",
    "DPTHead",
    "DecoderOutput",
    "EncoderOutput",
    "FusionBlock",
    "HOISDFImageHeads",
    "HOISDFImageOutput",
    "HeatmapHead",
    "HandEstimate",
    "Keypoint25DHead",
    "KeypointFeedbackRegressor",
    "LoadReport",
    "MANOParameters",
    "MANOTransformerHead",
    "Mlp",
    "fp32_on_cpu_bf16",
    "ObjectPose",
    "ObjectPoseHead",
    "PatchEmbed",
    "PixelNormalization",
    "ResNet",
    "ResNetUNet",
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
    "feedback_map_scales",
    "lift_keypoints",
    "load_resnet_checkpoint",
    "load_vit_checkpoint",
    "normalize_pixels",
    "resnet18",
    "resnet34",
    "resnet50",
    "soft_argmax_2d",
    "spatial_soft_argmax",
    "vit_base",
    "vit_large",
    "vit_small",
    "vit_tiny",
    "PointEncoderOutput",
    "PointPoseOutput",
    "PointPoseTransformer",
    "PointTokenEmbedding",
    "POOL_MODES",
    "PointNetEncoder",
    "pool_points",
    "PointTransformerEncoder",
    "mano_query_mask",
    "point_memory_mask",
    "JointVotes",
    "JointVotingHead",
    "PointObjectPose",
    "PointObjectPoseHead",
    "average_object_pose",
    "vote_joints",
    "DeepSDFDecoder",
    "DeepSDFOutput",
    "AttentionAdapter",
    "GatedObjectOutputs",
    "GraspAwareFusion",
    "GraspSwitcher",
    "gate_object_outputs",
    "grasp_aware_features",
    "DINOHead",
    "MaskTokenEncoder",
    "PyramidPixelDecoder",
    "TeacherCentering",
    "center_and_sharpen",
    "make_teacher",
    "pyramid_tap_layers",
    "replace_masked_tokens",
    "teacher_momentum",
    "teacher_temperature",
    "update_teacher",
    "FeaturePyramid",
    "RoIAlign",
    "roi_align",
]
