"""Sample transforms that keep images, masks, depth, K, 2D joints and 3D targets consistent.

Every transform is a callable ``t(sample, generator=None) -> sample`` that
returns a new dictionary (the input is not modified). Geometric edits are one
affine map ``A`` of continuous pixel coordinates (``hoimask.geometry``
convention: pixel ``(i, j)`` has its centre at ``(j + 0.5, i + 0.5)``):

* crop + resize: ``A = S @ T`` and ``K' = A @ K`` (3D targets unchanged);
* in-plane rotation by ``θ`` about the output centre: the scene is rotated by
  ``R_z`` about the optical axis, ``K' = A @ K @ R_zᵀ`` and every 3D target is
  rotated by ``R_z`` (``joints_3d``, ``sdf_points``, the object pose, the global
  hand rotation ``hand_pose[0]``); signed distances and depth (the z coordinate)
  do not change.

``joints_2d`` is mapped by ``A``, so ``project(joints_3d, K)`` keeps matching it.
Images are resampled bilinearly, masks, segmentation and depth with nearest
neighbour; pixels from outside the source become 0 (black / background / no depth).
Photometric transforms touch ``image`` (and ``deoccluded_image``) only. ImageNet
normalisation is *not* a transform: the models apply it (:class:`hoimask.nn.PixelNormalization`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from hoimask._checks import (
    DTypeError,
    ShapeError,
    ValueRangeError,
    check_in_range,
    check_positive,
    check_shape,
    check_size,
)
from hoimask.data.photometric import (  # re-exported
    IMAGE_KEYS,
    ColorJitter,
    GaussianBlur,
    adjust_colors,
    gaussian_blur,
)
from hoimask.geometry import (
    axis_angle_to_matrix,
    crop_intrinsics,
    matrix_to_axis_angle,
    project,
    resize_intrinsics,
    rotate_intrinsics,
)

__all__ = [
    "IMAGE_KEYS",
    "MASK_KEYS",
    "CenterCrop",
    "ColorJitter",
    "Compose",
    "GaussianBlur",
    "RandomCropResize",
    "RandomRotateScale",
    "adjust_colors",
    "gaussian_blur",
    "hand_object_box",
    "warp_sample",
]

#: Keys resampled with nearest neighbour (integer / bool / depth maps).
MASK_KEYS: tuple[str, ...] = ("segmentation", "amodal_hand_mask", "depth")

Transform = Callable[..., dict]


def _homogeneous(a: torch.Tensor) -> torch.Tensor:
    out = torch.eye(3, dtype=a.dtype)
    out[:2] = a[:2]
    return out


def _sampling_grid(inverse: torch.Tensor, in_size: tuple[int, int], out_size: tuple[int, int]) -> torch.Tensor:
    """``(R, Ho, Wo, 2)`` float64 ``grid_sample`` grids (align_corners=False) taking source pixel ``inverse @ p'``.

    ``inverse`` is ``(3, 3)`` (then ``R = 1``) or ``(R, 3, 3)``.
    """
    H, W = in_size
    Ho, Wo = out_size
    # normalised source coordinates are affine in the output pixel centres: fold the normalisation into the map
    norm = torch.tensor([[2 / W, 0, -1], [0, 2 / H, -1]], dtype=torch.float64) @ inverse.to(torch.float64)  # (..., 2, 3)
    return (_pixel_centres(Ho, Wo).reshape(1, -1, 3) @ norm.mT).reshape(-1, Ho, Wo, 2)


@functools.lru_cache(maxsize=16)
def _pixel_centres(height: int, width: int) -> torch.Tensor:
    """``(H, W, 3)`` float64 homogeneous pixel centres ``(u + 0.5, v + 0.5, 1)`` (shared: do not modify)."""
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float64) + 0.5,
                          torch.arange(width, dtype=torch.float64) + 0.5, indexing="ij")
    return torch.stack([u, v, torch.ones_like(u)], dim=-1)


def _warp(image: torch.Tensor, inverse: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Resample ``(C, H, W)`` so that output pixel ``p'`` takes source pixel ``inverse @ p'`` (zeros outside);
    integer / bool maps come back in their dtype."""
    src = image if image.is_floating_point() else image.to(torch.float32)
    grid = _sampling_grid(inverse, tuple(image.shape[-2:]), size).to(src.dtype)
    out = F.grid_sample(src[None], grid, mode=mode, padding_mode="zeros", align_corners=False)[0]
    return out if image.is_floating_point() else out.to(image.dtype)


def _exact_in_float32(x: torch.Tensor) -> bool:
    """Whether ``x`` survives a round trip through float32 (float32 / bool / small-integer maps)."""
    if x.dtype in (torch.float32, torch.bool, torch.uint8, torch.int8, torch.int16):
        return True
    if x.is_floating_point():
        return False
    return x.numel() == 0 or int(x.abs().max()) < 2 ** 24


def warp_sample(
    sample: Mapping[str, torch.Tensor],
    affine: torch.Tensor,
    output_size: tuple[int, int],
    *,
    rotation: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Apply a pixel-space affine map (and the matching 3D rotation) to a whole sample.

    Args:
        sample: a sample dictionary (see :mod:`hoimask.data.sample`).
        affine: ``(2, 3)`` or ``(3, 3)`` map from source to output pixels. Its
            linear part must be a rotation times a scale, with the rotation equal
            to ``rotation``'s 2D block.
        output_size: ``(H', W')``.
        rotation: ``(3, 3)`` rotation ``R_z`` about the optical axis applied to
            the scene (``None`` = identity).

    Returns:
        A new sample with every known key updated.

    Shape:
        images ``(C, H, W) -> (C, H', W')``; other keys keep their shapes.
    """
    check_shape(affine, "_ 3", name="affine", fn="warp_sample")
    if rotation is not None:
        check_shape(rotation, "3 3", name="rotation", fn="warp_sample")
    if tuple(affine.shape) not in ((2, 3), (3, 3)):
        raise ShapeError(f"warp_sample(): argument 'affine' expected shape (2, 3) or (3, 3), got {tuple(affine.shape)}")
    output_size = check_size(output_size, name="output_size", fn="warp_sample")
    A = _homogeneous(affine.to(torch.float64))
    Rz = None if rotation is None else rotation.to(torch.float64)
    rows = {k: v[None] for k, v in sample.items() if k in WARPED_KEYS and isinstance(v, torch.Tensor)}
    warped = warp_rows(rows, A[None], output_size, rotation=None if Rz is None else Rz[None])
    return {**sample, **{k: v[0] for k, v in warped.items()}}


#: The keys a geometric view changes (the others are left as they are): images, masks and the geometric targets.
WARPED_KEYS: frozenset[str] = frozenset(IMAGE_KEYS) | frozenset(MASK_KEYS) | {
    "K", "joints_2d", "box", "joints_3d", "sdf_points", "object_rotation", "object_translation", "hand_pose"}


def warp_rows(
    rows: Mapping[str, torch.Tensor],
    affine: torch.Tensor,
    output_size: tuple[int, int],
    *,
    rotation: torch.Tensor | None = None,
    rotated: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """:func:`warp_sample` for ``R`` samples at once: the keys of :data:`WARPED_KEYS` with a leading row dimension.

    Args:
        rows: ``key -> (R, ...)`` tensors (a collated batch, or one sample with a leading 1).
        affine: ``(R, 3, 3)`` float64 maps from source to output pixels.
        output_size: ``(H', W')``.
        rotation: ``(R, 3, 3)`` float64 rotations ``R_z`` (``None``: no 3D change).
        rotated: ``(R,)`` bool, the rows whose global hand rotation ``R_z`` turns (default: all); the other
            3D targets are multiplied by ``R_z`` in every row (give those rows the identity).

    Returns:
        The warped keys (new tensors), the others of ``rows`` unchanged.
    """
    f64 = torch.float64
    A = affine
    inverse = torch.linalg.inv(A)
    out = dict(rows)
    grids: dict[tuple[int, int], torch.Tensor] = {}  # one sampling grid per source size, shared by the keys
    Ho, Wo = output_size

    def grid_for(x: torch.Tensor) -> torch.Tensor:
        size = tuple(x.shape[-2:])
        if size not in grids:
            grids[size] = _sampling_grid(inverse, size, output_size)
        return grids[size]

    def resample(x: torch.Tensor, mode: str) -> torch.Tensor:  # (R, C, H, W); integer / bool maps keep their dtype
        src = x if x.is_floating_point() else x.to(torch.float32)
        warped = F.grid_sample(src, grid_for(x).to(src.dtype), mode=mode, padding_mode="zeros", align_corners=False)
        return warped if x.is_floating_point() else warped.to(x.dtype)

    for key in IMAGE_KEYS:
        if key in rows:
            out[key] = resample(rows[key], "bilinear").clamp(0, 1)
    masks = [key for key in MASK_KEYS if key in rows]
    same = masks and all(rows[k].shape == rows[masks[0]].shape for k in masks)
    if same and rows[masks[0]].dim() == 3 and all(_exact_in_float32(rows[k]) for k in masks):
        # nearest-neighbour sampling treats channels independently: one call for all the maps, cast back per key
        warped = resample(torch.stack([rows[k].to(torch.float32) for k in masks], dim=1), "nearest")  # (R, M, H', W')
        for i, key in enumerate(masks):
            out[key] = warped[:, i].to(rows[key].dtype)
    else:
        for key in masks:
            x = rows[key]
            out[key] = resample(x.reshape(len(x), -1, *x.shape[-2:]), "nearest").reshape(len(x), *x.shape[1:-2],
                                                                                         Ho, Wo)
    Rz = torch.eye(3, dtype=f64) if rotation is None else rotation
    if "K" in rows:
        out["K"] = (A @ rows["K"].to(f64) @ Rz.mT).to(rows["K"].dtype)
    if "joints_2d" in rows:
        j = rows["joints_2d"].to(f64)
        out["joints_2d"] = (j @ A[:, :2, :2].mT + A[:, None, :2, 2]).to(rows["joints_2d"].dtype)
    if "box" in rows:
        b = rows["box"].to(f64)
        corners = torch.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [0, 3]], b[:, [2, 3]]], dim=1)  # (R, 4, 2)
        c = corners @ A[:, :2, :2].mT + A[:, None, :2, 2]
        out["box"] = torch.cat([c.amin(1), c.amax(1)], dim=1).to(rows["box"].dtype)
    if rotation is None:
        return out
    for key in ("joints_3d", "sdf_points"):
        if key in rows:
            out[key] = (rows[key].to(f64) @ Rz.mT).to(rows[key].dtype)
    if "object_rotation" in rows:
        out["object_rotation"] = (Rz @ rows["object_rotation"].to(f64)).to(rows["object_rotation"].dtype)
    if "object_translation" in rows:
        t = rows["object_translation"].to(f64)
        out["object_translation"] = (Rz @ t[..., None])[..., 0].to(rows["object_translation"].dtype)
    if "hand_pose" in rows:
        pose = rows["hand_pose"].clone()
        turned = matrix_to_axis_angle(Rz @ axis_angle_to_matrix(pose[:, 0].to(f64))).to(pose.dtype)
        pose[:, 0] = turned if rotated is None else torch.where(rotated[:, None], turned, pose[:, 0])
        out["hand_pose"] = pose
    return out


def hand_object_box(sample: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Tight box ``(x0, y0, x1, y1)`` around the hand and the object in pixels.

    Uses ``sample["box"]`` when present (e.g. HO3D's evaluation split);
    otherwise the finite 2D joints and, with an object, the projected model
    points (``K (R p + t)``).

    Args:
        sample: a sample dictionary.

    Returns:
        ``(4,)`` float64 box.

    Raises:
        ValueRangeError: no finite point to bound.
    """
    if "box" in sample:
        return sample["box"].to(torch.float64)
    pts = [sample["joints_2d"].to(torch.float64)]
    if bool(sample.get("has_object", torch.tensor(False))):
        R = sample["object_rotation"].to(torch.float64)
        t = sample["object_translation"].to(torch.float64)
        cam = sample["object_points"].to(torch.float64) @ R.T + t
        pts.append(project(cam, sample["K"].to(torch.float64)))
    p = torch.cat(pts)
    p = p[torch.isfinite(p).all(dim=-1)]
    if p.shape[0] == 0:
        raise ValueRangeError("hand_object_box(): the sample has no finite 2D joint or object point to bound")
    return torch.cat([p.amin(0), p.amax(0)])


def _crop_affine(center: torch.Tensor, side: float | torch.Tensor, angle: float | torch.Tensor,
                 size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The crop box ``(..., 4)`` and the float64 map ``A = Rot @ S @ T`` ``(..., 3, 3)``: the square crop of side ``side``
    centred at ``center`` ``(..., 2)``, resized to ``size`` and turned by ``angle`` about the output centre."""
    f64 = torch.float64
    Ho, Wo = size
    center = center.to(f64)
    side, angle = torch.as_tensor(side, dtype=f64), torch.as_tensor(angle, dtype=f64)
    x0, y0 = center[..., 0] - side / 2, center[..., 1] - side / 2
    box = torch.stack([x0, y0, x0 + side, y0 + side], dim=-1)
    eye = torch.eye(3, dtype=f64).expand(*x0.shape, 3, 3)
    T, S, Rot = eye.clone(), eye.clone(), eye.clone()
    T[..., 0, 2], T[..., 1, 2] = -x0, -y0
    S[..., 0, 0], S[..., 1, 1] = Wo / side, Ho / side
    c, s = torch.cos(angle), torch.sin(angle)
    Rot[..., 0, 0], Rot[..., 0, 1], Rot[..., 1, 0], Rot[..., 1, 1] = c, -s, s, c
    ctr = torch.tensor([Wo / 2, Ho / 2], dtype=f64)
    Rot[..., :2, 2] = ctr - (Rot[..., :2, :2] @ ctr[:, None])[..., 0]
    return box, Rot @ S @ T


def _crop_sample(sample, center, side, angle, size):
    box, A = _crop_affine(center, side, angle, size)
    Ho, Wo = size
    # The library's intrinsics helpers are the reference for K; A is the same map.
    K = sample["K"].to(torch.float64) if "K" in sample else torch.eye(3, dtype=torch.float64)
    K = resize_intrinsics(crop_intrinsics(K, box), Wo / side, Ho / side)
    Rz = None
    if angle != 0.0:
        K, Rz = rotate_intrinsics(K, torch.tensor(angle, dtype=torch.float64), K.new_tensor([Wo / 2, Ho / 2]))
    out = warp_sample(sample, A, size, rotation=Rz)
    if "K" in sample:
        out["K"] = K.to(sample["K"].dtype)
    return out


class RandomCropResize:
    """Square crop around hand ∪ object with scale/centre jitter and rotation, resized.

    The crop side is ``padding * max(box width, box height) * s`` with ``s``
    drawn from ``scale``; its centre moves by up to ``center_jitter`` times the
    side; the crop rotates by an angle drawn uniformly from
    ``[-max_rotation, max_rotation]`` degrees.

    Args:
        output_size: ``S`` (square) or ``(H', W')``.
        padding: margin factor around the tight box.
        scale: ``(low, high)`` multiplicative jitter of the side.
        center_jitter: maximum centre shift as a fraction of the side.
        max_rotation: maximum in-plane rotation, degrees.
        min_side: smallest crop side in source pixels.

    Shape:
        sample images ``(C, H, W) -> (C, H', W')``.
    """

    def __init__(
        self,
        output_size: int | tuple[int, int] = 224,
        *,
        padding: float = 1.3,
        scale: tuple[float, float] = (0.9, 1.1),
        center_jitter: float = 0.1,
        max_rotation: float = 30.0,
        min_side: float = 8.0,
    ) -> None:
        self.output_size = check_size(output_size, name="output_size", allow_int=True)
        self.padding = check_positive(padding, name="padding")
        if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
            raise ValueRangeError(f"RandomCropResize(): argument 'scale' expected (low, high) with 0 < low <= high, got {scale}")
        self.scale = (float(scale[0]), float(scale[1]))
        self.center_jitter = check_in_range(center_jitter, name="center_jitter", low=0.0)
        self.max_rotation = check_in_range(max_rotation, name="max_rotation", low=0.0, high=180.0)
        self.min_side = check_positive(min_side, name="min_side")

    def __call__(self, sample: Mapping[str, torch.Tensor], generator: torch.Generator | None = None) -> dict:
        """Crop, rotate and resize ``sample`` (see the class docstring)."""
        box = hand_object_box(sample)
        u = torch.rand(4, generator=generator, dtype=torch.float64)
        side = float(max(box[2] - box[0], box[3] - box[1])) * self.padding
        side = max(side * (self.scale[0] + (self.scale[1] - self.scale[0]) * float(u[0])), self.min_side)
        center = (box[:2] + box[2:]) / 2 + (u[1:3] * 2 - 1) * self.center_jitter * side
        angle = math.radians(self.max_rotation) * (2 * float(u[3]) - 1)
        return _crop_sample(sample, center, side, angle, self.output_size)


class RandomRotateScale:
    """A rotated, zoomed and shifted view of a whole square frame, same size (no crop to the hand).

    For scenes that their camera already frames (:class:`~hoimask.data.SyntheticHOI`):
    the view turns about the image centre by an angle drawn uniformly from
    ``[-max_rotation, max_rotation]`` degrees, zooms by a factor drawn from
    ``scale`` (> 1 enlarges) and shifts by up to ``translate`` times the side in
    x and y. The 3D targets turn with the view about the optical axis (module
    docstring), so ``project(joints_3d, K)`` keeps matching ``joints_2d``; pixels
    from outside the frame become 0.

    Args:
        max_rotation: largest in-plane rotation, degrees, in ``[0, 180]``.
        scale: ``(low, high)`` zoom range, ``0 < low <= high``.
        translate: largest shift as a fraction of the side, in ``[0, 0.5]``.

    Shape:
        sample images ``(C, S, S) -> (C, S, S)``.

    Example:
        >>> import torch
        >>> from hoimask.data import SyntheticHOI
        >>> from hoimask.geometry import project
        >>> sample = SyntheticHOI(1, image_size=64, num_sdf_points=8)[0]
        >>> view = RandomRotateScale()(sample, generator=torch.Generator().manual_seed(0))
        >>> view["image"].shape, bool(torch.allclose(project(view["joints_3d"], view["K"]), view["joints_2d"], atol=1e-3))
        (torch.Size([3, 64, 64]), True)
    """

    def __init__(self, *, max_rotation: float = 180.0, scale: tuple[float, float] = (0.9, 1.1),
                 translate: float = 0.05) -> None:
        fn = "RandomRotateScale"
        self.max_rotation = check_in_range(max_rotation, name="max_rotation", low=0.0, high=180.0, fn=fn)
        if len(scale) != 2 or not 0 < scale[0] <= scale[1] or not all(math.isfinite(v) for v in scale):
            raise ValueRangeError(f"{fn}(): argument 'scale' expected (low, high) with 0 < low <= high, got {scale}")
        self.scale = (float(scale[0]), float(scale[1]))
        self.translate = check_in_range(translate, name="translate", low=0.0, high=0.5, fn=fn)

    def __call__(self, sample: Mapping[str, torch.Tensor], generator: torch.Generator | None = None) -> dict:
        """Draw one view of ``sample`` (see the class docstring)."""
        size = tuple(sample["image"].shape[-2:])
        if size[0] != size[1]:
            raise ShapeError(f"RandomRotateScale(): expected a square sample image, got {size[0]}x{size[1]}")
        zoom, shift_x, shift_y, angle = self.draw(generator)
        center = torch.tensor([size[1] / 2 + shift_x * size[1], size[0] / 2 + shift_y * size[1]], dtype=torch.float64)
        return _crop_sample(sample, center, size[1] / zoom, angle, size)

    def draw(self, generator: torch.Generator | None = None) -> tuple[float, float, float, float]:
        """One view's ``(zoom, shift_x, shift_y, angle)``: shifts in image sides, the angle in radians (four uniform
        draws from ``generator``)."""
        u = torch.rand(4, generator=generator, dtype=torch.float64)
        zoom = self.scale[0] + (self.scale[1] - self.scale[0]) * float(u[0])
        shift = (u[1:3] * 2 - 1) * self.translate
        return zoom, float(shift[0]), float(shift[1]), math.radians(self.max_rotation) * (2 * float(u[3]) - 1)


class CenterCrop(RandomCropResize):
    """Deterministic square crop around hand ∪ object, resized (evaluation).

    Args:
        output_size: ``S`` or ``(H', W')``.
        padding: margin factor around the tight box.
    """

    def __init__(self, output_size: int | tuple[int, int] = 224, *, padding: float = 1.3) -> None:
        super().__init__(output_size, padding=padding, scale=(1.0, 1.0), center_jitter=0.0, max_rotation=0.0)


class Compose:
    """Apply transforms in order, passing the same generator to each.

    Args:
        transforms: a sequence of callables ``t(sample, generator=None) -> sample``.
    """

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)
        for k, t in enumerate(self.transforms):
            if not callable(t):
                raise DTypeError(f"Compose(): argument 'transforms[{k}]' expected a callable, got {type(t).__name__}")

    def __call__(self, sample: Mapping[str, torch.Tensor], generator: torch.Generator | None = None) -> dict:
        """Run every transform on ``sample``."""
        out = dict(sample)
        for t in self.transforms:
            out = t(out, generator=generator)
        return out
