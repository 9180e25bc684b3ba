"""Bad input at public entry points raises a typed error naming the function and the argument (issue 15, item 6).

One bad argument per case: a tensor of the wrong rank or size, a non-tensor, a
float where an int is expected (refused, never truncated), a negative or zero
size, a probability above 1, a negative scale. Each must raise the given
:mod:`hoimask._checks` error, whose message starts with ``fn(): argument
'name'``. The valid edge cases that the new checks must keep accepting are at
the end.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from hoimask import nn as hnn
from hoimask._checks import DTypeError, HoimaskError, ShapeError, ValueRangeError
from hoimask.data import (
    CenterCrop,
    Compose,
    GaussianBlur,
    RandomCropResize,
    SyntheticHOI,
    adjust_colors,
    warp_sample,
)
from hoimask.encoding import sincos_pos_embed_1d, sincos_pos_embed_2d
from hoimask.geometry import (
    axis_angle_to_matrix,
    resize_intrinsics,
    rotate_intrinsics,
    translation_from_image,
    unproject,
)
from hoimask.hand import capsule_mesh_template, capsule_mesh_vertices, mano_skin
from hoimask.losses import (
    SegmentationLoss,
    heatmap_loss,
    render_gaussian_heatmaps,
    sdf_l1_loss,
    segmentation_loss,
    unpatchify,
)
from hoimask.metrics import box_corners, st_align, transform_points
from hoimask.ops import closest_point_on_triangle, mesh_sdf_reference
from hoimask.sdf import icosphere, smooth_union, sphere_sdf

B = 2


def x(*shape: int) -> torch.Tensor:
    return torch.rand(*shape)


R = axis_angle_to_matrix(x(B, 3))
K = torch.tensor([[100.0, 0, 32], [0, 100.0, 32], [0, 0, 1]]).expand(B, 3, 3)
TEMPLATE = capsule_mesh_template(4)
MANO_ARGS = dict(  # a 16-joint, 30-vertex, 10-beta MANO-like model
    v_template=x(30, 3), shapedirs=x(30, 3, 10), posedirs=x(135, 90), j_regressor=torch.softmax(x(16, 30), -1),
    weights=torch.softmax(x(30, 16), -1),
)
ROT16 = axis_angle_to_matrix(0.1 * x(B, 16, 3))
SPHERE = icosphere(1, dtype=torch.float32)

# (id, call, error, argument named in the message)
CASES = [
    # issue 15's own examples
    ("SyntheticHOI num_samples=2.5", lambda: SyntheticHOI(num_samples=2.5), DTypeError, "num_samples"),
    ("SyntheticHOI image_size=32.5", lambda: SyntheticHOI(4, image_size=32.5), DTypeError, "image_size"),
    ("SyntheticHOI image_size=(32, 0)", lambda: SyntheticHOI(4, image_size=(32, 0)), ValueRangeError, "image_size"),
    ("SyntheticHOI num_sdf_points=8.5", lambda: SyntheticHOI(4, num_sdf_points=8.5), DTypeError, "num_sdf_points"),
    ("SyntheticHOI num_object_points=8.0", lambda: SyntheticHOI(4, num_object_points=8.0), DTypeError,
     "num_object_points"),
    ("SyntheticHOI seed=0.5", lambda: SyntheticHOI(4, seed=0.5), DTypeError, "seed"),
    ("SyntheticHOI hand_only_prob=1.5", lambda: SyntheticHOI(4, hand_only_prob=1.5), ValueRangeError,
     "hand_only_prob"),
    ("SyntheticHOI occlusion_range=(0.5,)", lambda: SyntheticHOI(4, occlusion_range=(0.5,)), ShapeError,
     "occlusion_range"),
    ("SyntheticHOI[2.5]", lambda: SyntheticHOI(2)[2.5], DTypeError, "index"),
    ("GaussianBlur p=1.5", lambda: GaussianBlur(p=1.5), ValueRangeError, "p"),
    ("SDFDecoder output_scale<0", lambda: hnn.SDFDecoder(4, output_scale=-0.05), ValueRangeError, "output_scale"),
    ("SDFDecoder output_scale=nan", lambda: hnn.SDFDecoder(4, output_scale=float("nan")), ValueRangeError,
     "output_scale"),
    ("sdf_l1_loss clamp<0", lambda: sdf_l1_loss(x(B, 5), x(B, 5), clamp_distance=-0.1), ValueRangeError,
     "clamp_distance"),
    ("ViTEncoder depth<0", lambda: hnn.ViTEncoder(img_size=16, patch_size=4, embed_dim=8, depth=-1, num_heads=2),
     ValueRangeError, "depth"),
    ("ViTConfig depth=2.5", lambda: hnn.ViTConfig(depth=2.5), DTypeError, "depth"),
    ("TokenDecoder depth<0", lambda: hnn.TokenDecoder(8, dim=8, depth=-1, num_heads=2), ValueRangeError, "depth"),
    ("MANOTransformerHead depth<0", lambda: hnn.MANOTransformerHead(8, dim=8, depth=-1, num_heads=2),
     ValueRangeError, "depth"),
    ("Keypoint25DHead depth_scale<0", lambda: hnn.Keypoint25DHead(8, depth_scale=-0.1), ValueRangeError,
     "depth_scale"),
    # metrics
    ("transform_points points (B,P,4)", lambda: transform_points(x(B, 5, 4), R, x(B, 3)), ShapeError, "points"),
    ("transform_points R list", lambda: transform_points(x(B, 5, 3), R.tolist(), x(B, 3)), DTypeError, "R"),
    ("transform_points t (B,)", lambda: transform_points(x(B, 5, 3), R, x(B)), ShapeError, "t"),
    ("transform_points batch mismatch", lambda: transform_points(x(3, 5, 3), R, x(B, 3)), ShapeError, "points"),
    ("box_corners points (B,P)", lambda: box_corners(x(B, 5)), ShapeError, "points"),
    ("box_corners no points", lambda: box_corners(x(B, 0, 3)), ShapeError, "points"),
    ("st_align pred (B,J,4)", lambda: st_align(x(B, 21, 4), x(B, 21, 3)), ShapeError, "pred"),
    ("st_align gt list", lambda: st_align(x(B, 21, 3), x(B, 21, 3).tolist()), DTypeError, "gt"),
    ("st_align root unknown", lambda: st_align(x(B, 21, 3), x(B, 21, 3), root="palm"), ValueRangeError, "root"),
    ("st_align bone_end out of range", lambda: st_align(x(B, 21, 3), x(B, 21, 3), bone_end=21), ValueRangeError,
     "bone_end"),
    # ops, hand
    ("closest_point_on_triangle p (...,4)", lambda: closest_point_on_triangle(x(5, 4), x(5, 3), x(5, 3), x(5, 3)),
     ShapeError, "p"),
    ("closest_point_on_triangle c list", lambda: closest_point_on_triangle(x(5, 3), x(5, 3), x(5, 3), [0.0] * 3),
     DTypeError, "c"),
    ("closest_point_on_triangle no broadcast",
     lambda: closest_point_on_triangle(x(5, 3), x(4, 3), x(5, 3), x(5, 3)), ShapeError, "a"),
    ("closest_point_on_triangle int", lambda: closest_point_on_triangle(torch.ones(5, 3, dtype=torch.int64),
                                                                         x(5, 3), x(5, 3), x(5, 3)), DTypeError, "p"),
    ("mesh_sdf_reference chunk_elements=0.5",
     lambda: mesh_sdf_reference(x(1, 4, 3), SPHERE[0][None], SPHERE[1], chunk_elements=0.5), DTypeError,
     "chunk_elements"),
    ("capsule_mesh_vertices radius (B,S,1)",
     lambda: capsule_mesh_vertices(x(B, 4, 3), x(B, 4, 3) + 1, x(B, 4, 1), x(B, 4, 3), TEMPLATE), ShapeError,
     "radius"),
    ("capsule_mesh_vertices reference list",
     lambda: capsule_mesh_vertices(x(B, 4, 3), x(B, 4, 3) + 1, x(B, 4), x(B, 4, 3).tolist(), TEMPLATE), DTypeError,
     "reference"),
    ("mano_skin betas (B,11)", lambda: mano_skin(ROT16, x(B, 11), **MANO_ARGS), ShapeError, "shapedirs"),
    ("mano_skin rotations (B,16,3)", lambda: mano_skin(x(B, 16, 3), x(B, 10), **MANO_ARGS), ShapeError, "rotations"),
    ("mano_skin posedirs wrong", lambda: mano_skin(ROT16, x(B, 10), **{**MANO_ARGS, "posedirs": x(135, 91)}),
     ShapeError, "posedirs"),
    ("mano_skin weights (V,J+1)", lambda: mano_skin(ROT16, x(B, 10), **{**MANO_ARGS, "weights": x(30, 17)}),
     ShapeError, "weights"),
    # nn: constructors
    ("Mlp in_features=0", lambda: hnn.Mlp(0), ValueRangeError, "in_features"),
    ("Mlp hidden_features=0", lambda: hnn.Mlp(8, 0), ValueRangeError, "hidden_features"),
    ("Mlp out_features=2.5", lambda: hnn.Mlp(8, 16, 2.5), DTypeError, "out_features"),
    ("Attention dim=0", lambda: hnn.Attention(0, 1), ValueRangeError, "dim"),
    ("Attention num_heads=2.0", lambda: hnn.Attention(8, 2.0), DTypeError, "num_heads"),
    ("CrossAttention context_dim=0", lambda: hnn.CrossAttention(8, 0, 2), ValueRangeError, "context_dim"),
    ("Block mlp_ratio<0", lambda: hnn.Block(8, 2, mlp_ratio=-1.0), ValueRangeError, "mlp_ratio"),
    ("CrossAttentionBlock dim=2.5", lambda: hnn.CrossAttentionBlock(2.5), DTypeError, "dim"),
    ("ResidualConvUnit channels=0", lambda: hnn.ResidualConvUnit(0), ValueRangeError, "channels"),
    ("FusionBlock channels=-4", lambda: hnn.FusionBlock(-4), ValueRangeError, "channels"),
    ("DPTHead patch_size=0", lambda: hnn.DPTHead(8, patch_size=0), ValueRangeError, "patch_size"),
    ("DPTHead reassemble_dims 2.5", lambda: hnn.DPTHead(8, reassemble_dims=(4, 4, 4, 2.5)), DTypeError,
     "reassemble_dims"),
    ("PatchEmbed embed_dim=0", lambda: hnn.PatchEmbed(4, 3, 0), ValueRangeError, "embed_dim"),
    ("HeatmapHead hidden=0", lambda: hnn.HeatmapHead(4, hidden=0), ValueRangeError, "hidden"),
    ("SegmentationHead num_classes=0", lambda: hnn.SegmentationHead(4, 0), ValueRangeError, "num_classes"),
    ("ObjectPoseHead init_translation (2,)", lambda: hnn.ObjectPoseHead(8, init_translation=(0.0, 0.5)),
     ShapeError, "init_translation"),
    ("BasicBlock stride=0", lambda: hnn.BasicBlock(4, 4, 0), ValueRangeError, "stride"),
    ("Bottleneck planes=1.5", lambda: hnn.Bottleneck(4, 1.5), DTypeError, "planes"),
    ("TokenDecoder grid_size=(4, 0)", lambda: hnn.TokenDecoder(8, dim=8, depth=0, grid_size=(4, 0)),
     ValueRangeError, "grid_size"),
    ("PointPoseTransformer encoder_depth=0", lambda: hnn.PointPoseTransformer(8, num_heads=2, encoder_depth=0),
     ValueRangeError, "encoder_depth"),
    # nn: forward
    ("Mlp x (...,9)", lambda: hnn.Mlp(8)(x(B, 5, 9)), ShapeError, "x"),
    ("Mlp x list", lambda: hnn.Mlp(8)(x(B, 8).tolist()), DTypeError, "x"),
    ("Attention x (B,N)", lambda: hnn.Attention(8, 2)(x(B, 5)), ShapeError, "x"),
    ("Attention attn_mask (N,N+1)", lambda: hnn.Attention(8, 2)(x(B, 5, 8), torch.ones(5, 6, dtype=torch.bool)),
     ShapeError, "attn_mask"),
    ("Block x (B,N,9)", lambda: hnn.Block(8, 2)(x(B, 5, 9)), ShapeError, "x"),
    ("CrossAttention context (B,N,7)", lambda: hnn.CrossAttention(8, 6, 2)(x(B, 5, 8), x(B, 7, 7)), ShapeError,
     "context"),
    ("CrossAttentionBlock context batch", lambda: hnn.CrossAttentionBlock(8, 6, 2)(x(B, 5, 8), x(3, 7, 6)),
     ShapeError, "context"),
    ("ResidualConvUnit x (B,C+1,H,W)", lambda: hnn.ResidualConvUnit(4)(x(B, 5, 6, 6)), ShapeError, "x"),
    ("FusionBlock skip size", lambda: hnn.FusionBlock(4)(x(B, 4, 6, 6), x(B, 4, 6, 7)), ShapeError, "skip"),
    ("FusionBlock size=(12.5, 12)", lambda: hnn.FusionBlock(4)(x(B, 4, 6, 6), size=(12.5, 12)), DTypeError, "size"),
    ("DPTHead grid_size=(4,)", lambda: hnn.DPTHead(8, feature_dim=4, reassemble_dims=(4, 4, 4, 4))(
        [x(B, 16, 8)] * 4, grid_size=(4,)), ShapeError, "grid_size"),
    ("HeatmapHead size=(0, 8)", lambda: hnn.HeatmapHead(4)(x(B, 4, 6, 6), size=(0, 8)), ValueRangeError, "size"),
    ("spatial_soft_argmax grid_size 2.5", lambda: hnn.spatial_soft_argmax(x(B, 16, 3), (2.5, 4)), DTypeError,
     "grid_size"),
    ("soft_argmax_2d image_size=(0, 8)", lambda: hnn.soft_argmax_2d(x(B, 21, 6, 6), (0, 8)), ValueRangeError,
     "image_size"),
    ("Keypoint25DHead image side 33", lambda: hnn.Keypoint25DHead(8, channels=8)(x(B, 16, 8), (4, 4), x(B, 3, 32, 33)),
     ShapeError, "image"),
    ("BasicBlock x (B,C+1,H,W)", lambda: hnn.BasicBlock(4, 4)(x(B, 5, 8, 8)), ShapeError, "x"),
    # geometry, encoding, sdf
    ("translation_from_image image_size 64.5", lambda: translation_from_image(x(B, 3), K, (64.5, 64)), DTypeError,
     "image_size"),
    ("translation_from_image image_size (64,)", lambda: translation_from_image(x(B, 3), K, (64,)), ShapeError,
     "image_size"),
    ("resize_intrinsics scale nan", lambda: resize_intrinsics(K, float("nan")), ValueRangeError, "scale_x"),
    ("rotate_intrinsics angle nan", lambda: rotate_intrinsics(K, float("nan"), x(B, 2)), ValueRangeError, "angle"),
    ("unproject depth list", lambda: unproject(x(B, 5, 2), x(B, 5).tolist(), K[:, None]), DTypeError, "depth"),
    ("sincos_pos_embed_1d temperature<0", lambda: sincos_pos_embed_1d(x(6), 8, temperature=-1.0), ValueRangeError,
     "temperature"),
    ("sincos_pos_embed_2d temperature nan", lambda: sincos_pos_embed_2d(3, 4, 8, temperature=float("nan")),
     ValueRangeError, "temperature"),
    ("sphere_sdf radius nan", lambda: sphere_sdf(x(B, 5, 3), x(3), float("nan")), ValueRangeError, "radius"),
    ("smooth_union no broadcast", lambda: smooth_union(x(B, 5), x(B, 6), 0.1), ShapeError, "a"),
    # losses
    ("render_gaussian_heatmaps size 8.5", lambda: render_gaussian_heatmaps(x(B, 21, 2), (8.5, 8), (32, 32)),
     DTypeError, "size"),
    ("render_gaussian_heatmaps image_size 0", lambda: render_gaussian_heatmaps(x(B, 21, 2), (8, 8), (0, 32)),
     ValueRangeError, "image_size"),
    ("heatmap_loss image_size (32,)", lambda: heatmap_loss(x(B, 21, 8, 8), x(B, 21, 2), (32,)), ShapeError,
     "image_size"),
    ("segmentation_loss ignore_index 2.5",
     lambda: segmentation_loss(x(B, 3, 8, 8), torch.zeros(B, 8, 8, dtype=torch.int64), ignore_index=2.5), DTypeError,
     "ignore_index"),
    ("SegmentationLoss ignore_index 2.5", lambda: SegmentationLoss(ignore_index=2.5), DTypeError, "ignore_index"),
    ("unpatchify grid mismatch", lambda: unpatchify(x(B, 4, 48), 4, (2, 3)), ShapeError, "patches"),
    # data transforms
    ("RandomCropResize output_size 16.5", lambda: RandomCropResize(16.5), DTypeError, "output_size"),
    ("CenterCrop output_size (16,)", lambda: CenterCrop((16,)), ShapeError, "output_size"),
    ("warp_sample output_size 8.5", lambda: warp_sample({}, torch.eye(3), (8.5, 8)), DTypeError, "output_size"),
    ("warp_sample affine list", lambda: warp_sample({}, torch.eye(3).tolist(), (8, 8)), DTypeError, "affine"),
    ("Compose non-callable", lambda: Compose([CenterCrop(16), 3]), DTypeError, "transforms"),
    ("adjust_colors saturation<0", lambda: adjust_colors(x(3, 4, 4), saturation=-1.0), ValueRangeError, "saturation"),
]


@pytest.mark.parametrize(("call", "error", "name"), [pytest.param(c, e, n, id=i) for i, c, e, n in CASES])
def test_bad_input_raises_a_typed_error_naming_function_and_argument(call, error, name):
    with pytest.raises(HoimaskError) as info:
        call()
    assert isinstance(info.value, error), f"{type(info.value).__name__}: {info.value}"
    message = str(info.value)
    assert re.match(r"[\w.]+\(\): argument", message), message  # names the function
    assert re.search(rf"'{re.escape(name)}(\[\d+\])?'", message), message  # and the argument


def test_attention_accepts_every_broadcastable_mask():
    attn = hnn.Attention(8, 2)
    tokens = x(B, 5, 8)
    keep = torch.ones(B, 1, 1, 5, dtype=torch.bool)  # key padding mask
    for mask in (keep, torch.ones(5, 5, dtype=torch.bool), torch.ones(B, 2, 5, 5, dtype=torch.bool),
                 torch.zeros(5, 5)):  # float masks are added to the scores
        assert attn(tokens, attn_mask=mask).shape == (B, 5, 8)
    with pytest.raises(ShapeError, match="attn_mask"):
        attn(tokens, attn_mask=torch.ones(1, 1, B, 2, 5, 5, dtype=torch.bool))


def test_sizes_accept_ints_of_any_kind_that_are_ints():
    assert SyntheticHOI(4, image_size=[32, 48]).image_size == (32, 48)
    assert len(SyntheticHOI(2, image_size=16, num_sdf_points=0, num_object_points=4)[np.int64(-1)]["image"]) == 3
    maps = hnn.HeatmapHead(4)(x(B, 4, 6, 6), size=torch.Size([12, 12]))
    assert maps.shape == (B, 21, 12, 12)
