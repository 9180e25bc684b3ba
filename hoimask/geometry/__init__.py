"""Rotations, pinhole camera maths, point-set alignment and pixel-aligned sampling."""

from hoimask.geometry.alignment import (
    procrustes_align,
    scale_translation_align,
    similarity_procrustes,
)
from hoimask.geometry.camera import (
    affine_intrinsics,
    crop_intrinsics,
    project,
    resize_intrinsics,
    rotate_intrinsics,
    translation_from_image,
    unproject,
)
from hoimask.geometry.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    matrix_to_rotation_6d,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
    rotation_6d_to_matrix,
    skew,
)
from hoimask.geometry.sampling import PixelAlignedFeatures, pixel_aligned_features

__all__ = [
    "PixelAlignedFeatures",
    "pixel_aligned_features",
    "affine_intrinsics",
    "axis_angle_to_matrix",
    "crop_intrinsics",
    "matrix_to_axis_angle",
    "matrix_to_quaternion",
    "matrix_to_rotation_6d",
    "procrustes_align",
    "project",
    "quaternion_to_axis_angle",
    "quaternion_to_matrix",
    "resize_intrinsics",
    "rotate_intrinsics",
    "rotation_6d_to_matrix",
    "scale_translation_align",
    "similarity_procrustes",
    "skew",
    "translation_from_image",
    "unproject",
]
