"""Loss functions of MaskHOI eq. (1): 2D, SDF (3D), hand parameters, object pose, and their weighted sum; HOISDF's 2D loss L_img;
UniHOPE's object-switcher loss and multi-level feature enhancement; HandMIM's L_pose, L_patch and L_recon."""

from hoimask.losses.enhancement import (
    ADAPTER_SIDES,
    ENHANCEMENT_LEVELS,
    UNIHOPE_ENHANCEMENT_WEIGHTS,
    UNIHOPE_OCCLUSION_THRESHOLD,
    MultiLevelEnhancementLoss,
    enhancement_mask,
    feature_consistency_loss,
)
from hoimask.losses.grasp import UNIHOPE_SWITCH_WEIGHT, grasp_switch_loss
from hoimask.losses.handmim import (
    align_pseudo_keypoints,
    multilevel_reconstruction_loss,
    normalized_affine,
    patch_distillation_loss,
    pose_alignment_loss,
)
from hoimask.losses.hoisdf_image import (
    HOISDF_HEATMAP_PEAK,
    HOISDF_HEATMAP_SIGMA,
    HOISDF_IMAGE_WEIGHTS,
    HOISDFImageLoss,
    hoisdf_image_loss,
)
from hoimask.losses.hoisdf_mano import hoisdf_mano_loss
from hoimask.losses.image import (
    HeatmapLoss,
    SegmentationLoss,
    heatmap_kl_divergence,
    heatmap_loss,
    render_gaussian_heatmaps,
    segmentation_loss,
)
from hoimask.losses.pixel import patchify, pixel_reconstruction_loss, unpatchify
from hoimask.losses.point_pose import (
    JointVoteLoss,
    PointObjectPoseLoss,
    joint_vote_loss,
    point_object_pose_loss,
)
from hoimask.losses.pose import (
    HandMeshLoss,
    global_rotation_loss,
    hand_from_rotation_6d,
    hand_mesh_loss,
    mano_parameter_loss,
    object_pose_loss,
)
from hoimask.losses.sdf import SDFLoss, sdf_l1_loss
from hoimask.losses.weighted import MASKHOI_WEIGHTS, LossOutput, WeightedLoss, weighted_sum

__all__ = [
    "HOISDF_HEATMAP_PEAK",
    "HOISDF_HEATMAP_SIGMA",
    "HOISDF_IMAGE_WEIGHTS",
    "MASKHOI_WEIGHTS",
    "HOISDFImageLoss",
    "HandMeshLoss",
    "HeatmapLoss",
    "LossOutput",
    "SDFLoss",
    "SegmentationLoss",
    "WeightedLoss",
    "hand_from_rotation_6d",
    "hand_mesh_loss",
    "heatmap_kl_divergence",
    "heatmap_loss",
    "hoisdf_image_loss",
    "global_rotation_loss",
    "mano_parameter_loss",
    "object_pose_loss",
    "patchify",
    "pixel_reconstruction_loss",
    "unpatchify",
    "render_gaussian_heatmaps",
    "sdf_l1_loss",
    "segmentation_loss",
    "weighted_sum",
    "JointVoteLoss",
    "PointObjectPoseLoss",
    "joint_vote_loss",
    "point_object_pose_loss",
    "hoisdf_mano_loss",
    "ADAPTER_SIDES",
    "ENHANCEMENT_LEVELS",
    "UNIHOPE_ENHANCEMENT_WEIGHTS",
    "UNIHOPE_OCCLUSION_THRESHOLD",
    "UNIHOPE_SWITCH_WEIGHT",
    "MultiLevelEnhancementLoss",
    "enhancement_mask",
    "feature_consistency_loss",
    "grasp_switch_loss",
    "align_pseudo_keypoints",
    "multilevel_reconstruction_loss",
    "normalized_affine",
    "patch_distillation_loss",
    "pose_alignment_loss",
]
