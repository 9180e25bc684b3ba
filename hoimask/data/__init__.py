"""Data: synthetic HOI scenes (generator + renderer), DexYCB, HO3D and FreiHAND loaders, transforms, two-view augmentation, collate.

Every dataset returns the sample dictionary described in
:mod:`hoimask.data.sample` (images in ``[0, 1]``); :func:`collate` stacks
samples (images stay RGB in ``[0, 1]``: the models normalise their own input).
"""

from hoimask.data._assemble import posed_model_sdf
from hoimask.data.batched import batched_views, supports_batching
from hoimask.data.cache import CachedHOI, write_cache
from hoimask.data.dexycb import DexYCB, dexycb_split
from hoimask.data.freihand import FREIHAND_BACKGROUNDS, FreiHAND, read_freihand_ground_truth
from hoimask.data.grasp import (
    grasp_labels_from_motion,
    relative_rotation_error,
    relative_translation_error,
)
from hoimask.data.ho3d import HO3D
from hoimask.data.objects import SceneObject, sample_primitive
from hoimask.data.photometric import RandomGrayscale, RandomSolarize, solarize, to_grayscale
from hoimask.data.sample import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SAMPLE_SPEC,
    collate,
    denormalize_image,
    normalize_image,
    uncollate,
    validate_sample,
)
from hoimask.data.scene import Scene, render_scene, sample_scene
from hoimask.data.sdf_export import export_sdf_samples
from hoimask.data.sdf_files import SDFSampleFiles
from hoimask.data.sdf_samples import FrameSDFSamples, sample_frame_sdf
from hoimask.data.synthetic import SyntheticHOI
from hoimask.data.targets import mesh_sdf_targets, query_points
from hoimask.data.transforms import (
    CenterCrop,
    ColorJitter,
    Compose,
    GaussianBlur,
    RandomCropResize,
    RandomRotateScale,
    adjust_colors,
    gaussian_blur,
    hand_object_box,
    warp_sample,
)
from hoimask.data.views import (
    HANDMIM_VIEWS,
    TWO_VIEW_KEYS,
    TwoViews,
    TwoViewTransform,
    ViewAugmentation,
    augment_view,
    random_crop_affine,
    two_views,
    view_to_view_affine,
    warp_image,
)

__all__ = [
    "FREIHAND_BACKGROUNDS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SAMPLE_SPEC",
    "CachedHOI",
    "CenterCrop",
    "ColorJitter",
    "Compose",
    "DexYCB",
    "FrameSDFSamples",
    "FreiHAND",
    "GaussianBlur",
    "HO3D",
    "RandomCropResize",
    "RandomRotateScale",
    "SDFSampleFiles",
    "Scene",
    "SceneObject",
    "SyntheticHOI",
    "adjust_colors",
    "batched_views",
    "collate",
    "denormalize_image",
    "dexycb_split",
    "export_sdf_samples",
    "gaussian_blur",
    "grasp_labels_from_motion",
    "hand_object_box",
    "mesh_sdf_targets",
    "posed_model_sdf",
    "normalize_image",
    "query_points",
    "read_freihand_ground_truth",
    "relative_rotation_error",
    "relative_translation_error",
    "render_scene",
    "sample_frame_sdf",
    "sample_primitive",
    "sample_scene",
    "supports_batching",
    "uncollate",
    "validate_sample",
    "warp_sample",
    "write_cache",
    "HANDMIM_VIEWS",
    "TWO_VIEW_KEYS",
    "RandomGrayscale",
    "RandomSolarize",
    "TwoViewTransform",
    "TwoViews",
    "ViewAugmentation",
    "augment_view",
    "random_crop_affine",
    "solarize",
    "to_grayscale",
    "two_views",
    "view_to_view_affine",
    "warp_image",
]
