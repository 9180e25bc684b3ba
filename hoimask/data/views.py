"""Two augmented views of one image with known geometry (HandMIM §2.2–2.3, §3.1; DINO / iBOT global views).

Each view is a random resized crop (area fraction ``scale`` = (0.08, 1), aspect
ratio (3/4, 4/3), as torchvision's ``RandomResizedCrop``), rotated about its
centre by an angle drawn from ``rotation`` = (0°, 150°), then colour jitter
(p 0.8), grayscale (p 0.2), Gaussian blur and solarisation — HandMIM's list,
with DINO / iBOT's asymmetric probabilities for the two global views
(:data:`HANDMIM_VIEWS`: blur always on view a; blur 0.1 and solarisation 0.2
on view b).

Every view comes with the ``(3, 3)`` affine map **from view pixels to original
pixels** (continuous coordinates: pixel ``(i, j)`` has its centre at
``(j + 0.5, i + 0.5)``, docs/conventions.md) — the inverse of the augmentation,
HandMIM's eq. (4). The map from view a to view b goes through the original:
``affine_a_to_b = affine_b⁻¹ · affine_a`` (:func:`view_to_view_affine`).
Views are resampled with the transforms' warp (bilinear, zeros outside the
source), so the geometry is exactly that of :mod:`hoimask.data.transforms`.

Each view draws a fixed count of random numbers (41 geometric, 9 photometric)
from ``generator``, whatever the outcome, so one view's draws never shift
another's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from hoimask._checks import (
    DTypeError,
    ShapeError,
    ValueRangeError,
    check_finite,
    check_in_range,
    check_probability,
    check_shape,
    check_size,
)
from hoimask.data.photometric import adjust_colors, gaussian_blur, solarize, to_grayscale
from hoimask.data.transforms import _warp

__all__ = [
    "ViewAugmentation",
    "HANDMIM_VIEWS",
    "TWO_VIEW_KEYS",
    "TwoViews",
    "random_crop_affine",
    "warp_image",
    "view_to_view_affine",
    "augment_view",
    "two_views",
    "TwoViewTransform",
]

_ATTEMPTS = 10  # crop draws before the fallback, as torchvision's RandomResizedCrop


def _check_range(value, name: str, fn: str, *, low: float, high: float, positive: bool = False) -> tuple[float, float]:
    """A ``(low, high)`` pair of reals with ``low <= high`` inside ``[low, high]`` (``> 0`` when ``positive``)."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise DTypeError(f"{fn}(): argument '{name}' expected a (low, high) pair, got {value!r}")
    a = check_in_range(value[0], name=f"{name}[0]", low=low, high=high, low_inclusive=not positive, fn=fn)
    b = check_in_range(value[1], name=f"{name}[1]", low=low, high=high, low_inclusive=not positive, fn=fn)
    if a > b:
        raise ValueRangeError(f"{fn}(): argument '{name}' expected low <= high, got {tuple(value)!r}")
    return a, b


@dataclass(frozen=True)
class ViewAugmentation:
    """Settings of one augmented view (defaults: HandMIM §3.1 with DINO / iBOT's photometric values).

    Args:
        scale: ``(low, high)`` fraction of the image area the crop covers, in ``(0, 1]``.
        ratio: ``(low, high)`` crop aspect ratio ``w / h`` (log-uniform), > 0.
        rotation: ``(low, high)`` angle in degrees, in ``[-180, 180]``, drawn
            uniformly; positive turns the view clockwise on screen (y down).
            HandMIM's "(0, 150°)" is read literally; ``(-150, 150)`` gives both senses.
        jitter_p: probability of colour jitter.
        brightness: factor drawn from ``[1 - b, 1 + b]``.
        contrast: factor drawn from ``[1 - c, 1 + c]``.
        saturation: factor drawn from ``[1 - s, 1 + s]``.
        hue: shift drawn from ``[-h, h]`` **turns** (torchvision's unit, ``h <= 0.5``).
        grayscale_p: probability of :func:`~hoimask.data.to_grayscale`.
        blur_p: probability of a Gaussian blur.
        blur_sigma: ``(low, high)`` blur standard deviation in view pixels.
        solarize_p: probability of :func:`~hoimask.data.solarize`.
        solarize_threshold: pixels at or above it are inverted.
    """

    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    rotation: tuple[float, float] = (0.0, 150.0)
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: float = 1.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0
    solarize_threshold: float = 0.5

    def __post_init__(self) -> None:
        fn = "ViewAugmentation"
        object.__setattr__(self, "scale", _check_range(self.scale, "scale", fn, low=0.0, high=1.0, positive=True))
        object.__setattr__(self, "ratio", _check_range(self.ratio, "ratio", fn, low=0.0, high=math.inf, positive=True))
        object.__setattr__(self, "rotation", _check_range(self.rotation, "rotation", fn, low=-180.0, high=180.0))
        object.__setattr__(self, "blur_sigma",
                           _check_range(self.blur_sigma, "blur_sigma", fn, low=0.0, high=math.inf, positive=True))
        for name in ("jitter_p", "brightness", "contrast", "saturation", "grayscale_p", "blur_p", "solarize_p",
                     "solarize_threshold"):
            check_probability(getattr(self, name), name=name, fn=fn)
        check_in_range(self.hue, name="hue", low=0.0, high=0.5, fn=fn)


#: HandMIM's two global views: DINO / iBOT's asymmetric pair (view a always blurred; view b blurred
#: with p 0.1 and solarised with p 0.2), crops of scale (0.08, 1), rotations in (0°, 150°).
HANDMIM_VIEWS: tuple[ViewAugmentation, ViewAugmentation] = (
    ViewAugmentation(blur_p=1.0),
    ViewAugmentation(blur_p=0.1, solarize_p=0.2),
)

#: Keys :class:`TwoViewTransform` adds to a sample.
TWO_VIEW_KEYS: tuple[str, ...] = ("view_a", "view_b", "affine_a", "affine_b", "affine_a_to_b")


class TwoViews(NamedTuple):
    """What :func:`two_views` returns (affines in float64, pixel coordinates)."""

    view_a: torch.Tensor  #: (3, H', W') first view
    view_b: torch.Tensor  #: (3, H', W') second view
    affine_a: torch.Tensor  #: (3, 3) view a pixels -> original pixels
    affine_b: torch.Tensor  #: (3, 3) view b pixels -> original pixels
    affine_a_to_b: torch.Tensor  #: (3, 3) view a pixels -> view b pixels, ``affine_b⁻¹ · affine_a``


def _check_affine(affine: torch.Tensor, name: str, fn: str) -> torch.Tensor:
    """``affine (..., 3, 3)`` in float64: finite, last row ``(0, 0, 1)``, invertible linear part."""
    check_shape(affine, "... 3 3", name=name, fn=fn)
    check_finite(affine, name=name, fn=fn)
    A = affine.to(torch.float64)
    last = A.new_tensor([0.0, 0.0, 1.0])
    if not bool(torch.allclose(A[..., 2, :], last.expand_as(A[..., 2, :]), atol=1e-9, rtol=0.0)):
        raise ValueRangeError(f"{fn}(): argument '{name}' must be an affine map with last row (0, 0, 1), "
                              f"got rows {A[..., 2, :].reshape(-1, 3)[:2].tolist()}")
    linear = A[..., :2, :2]
    det = torch.linalg.det(linear).abs()
    size = linear.flatten(-2).abs().amax(-1).clamp(min=1e-300)
    if bool((det <= 1e-12 * size * size).any()):
        raise ValueRangeError(f"{fn}(): argument '{name}' is singular (|det| of its 2x2 linear part "
                              f"{float(det.min()):.3g}); a view map must be invertible")
    return A


def random_crop_affine(
    image_size: tuple[int, int],
    output_size: tuple[int, int],
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
    rotation: tuple[float, float] = (0.0, 150.0),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw a rotated random resized crop; return its view → image pixel map.

    torchvision's ``RandomResizedCrop`` draw in continuous coordinates: up to
    10 tries of an area fraction uniform in ``scale`` and a log-uniform aspect
    ratio ``w / h`` in ``ratio``, kept when the box fits in the image, its
    corner uniform over the positions that fit; otherwise the whole image
    (clamped to ``ratio``, centred). The box is resized to ``output_size``
    (aspect changes allowed) and rotated about the view centre by an angle
    uniform in ``rotation`` degrees (clockwise on screen for positive angles).

    Args:
        image_size: ``(H, W)`` of the original.
        output_size: ``(H', W')`` of the view.
        scale: area fraction range, in ``(0, 1]``.
        ratio: aspect ratio range, > 0.
        rotation: angle range, degrees in ``[-180, 180]``.
        generator: random source; 41 float64 numbers are drawn.

    Returns:
        ``(3, 3)`` float64 map of view pixels to original pixels.

    Shape:
        sizes -> ``(3, 3)``.

    Example:
        >>> A = random_crop_affine((64, 64), (32, 32), scale=(1.0, 1.0), ratio=(1.0, 1.0), rotation=(0.0, 0.0))
        >>> A.tolist()
        [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]]
    """
    fn = "random_crop_affine"
    H, W = check_size(image_size, name="image_size", fn=fn)
    Ho, Wo = check_size(output_size, name="output_size", fn=fn)
    scale = _check_range(scale, "scale", fn, low=0.0, high=1.0, positive=True)
    ratio = _check_range(ratio, "ratio", fn, low=0.0, high=math.inf, positive=True)
    rotation = _check_range(rotation, "rotation", fn, low=-180.0, high=180.0)
    u = torch.rand(4 * _ATTEMPTS + 1, generator=generator, dtype=torch.float64).tolist()
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    box = None
    for k in range(_ATTEMPTS):
        a_u, r_u, x_u, y_u = u[4 * k : 4 * k + 4]
        area = H * W * (scale[0] + (scale[1] - scale[0]) * a_u)
        r = math.exp(log_r[0] + (log_r[1] - log_r[0]) * r_u)
        w, h = math.sqrt(area * r), math.sqrt(area / r)
        if w <= W and h <= H:
            box = ((W - w) * x_u, (H - h) * y_u, w, h)
            break
    if box is None:  # torchvision's fallback: the whole image with the ratio clamped, centred
        w, h = float(W), float(H)
        if W / H < ratio[0]:
            h = w / ratio[0]
        elif W / H > ratio[1]:
            w = h * ratio[1]
        box = ((W - w) / 2, (H - h) / 2, w, h)
    x0, y0, w, h = box
    angle = math.radians(rotation[0] + (rotation[1] - rotation[0]) * u[-1])
    # image -> view is Rot_c · S · T (crop corner to 0, scale to the view, turn about the view centre);
    # its inverse, view -> image, is built directly: T⁻¹ · S⁻¹ · Rot_c⁻¹.
    c, s = math.cos(angle), math.sin(angle)
    cx, cy = Wo / 2, Ho / 2
    unrotate = torch.tensor([[c, s, cx - c * cx - s * cy], [-s, c, cy + s * cx - c * cy], [0.0, 0.0, 1.0]],
                            dtype=torch.float64)
    unscale = torch.tensor([[w / Wo, 0.0, x0], [0.0, h / Ho, y0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    return unscale @ unrotate


def warp_image(image: torch.Tensor, affine: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
    """Resample ``image`` so that output pixel ``p`` shows image point ``affine · p`` (bilinear, zeros outside).

    Args:
        image: ``(C, H, W)`` floating image in ``[0, 1]``.
        affine: ``(3, 3)`` map of output pixels to ``image`` pixels (a view's ``affine``).
        output_size: ``(H', W')``.

    Returns:
        ``(C, H', W')`` in ``[0, 1]``.

    Raises:
        ValueRangeError: ``affine`` is singular, not affine or not finite.

    Shape:
        ``(C, H, W)`` -> ``(C, H', W')``.

    Example:
        >>> image = torch.rand(3, 8, 8)
        >>> torch.allclose(warp_image(image, torch.eye(3), (8, 8)), image)
        True
    """
    fn = "warp_image"
    check_shape(image, "C H W", name="image", fn=fn)
    if not image.is_floating_point():
        raise DTypeError(f"{fn}(): argument 'image' expected a floating-point tensor, got {image.dtype}")
    A = _check_affine(affine, "affine", fn)
    check_shape(A, "3 3", name="affine", fn=fn)
    size = check_size(output_size, name="output_size", fn=fn)
    return _warp(image, A, size, "bilinear").clamp(0, 1)


def view_to_view_affine(affine_a: torch.Tensor, affine_b: torch.Tensor) -> torch.Tensor:
    """The pixel map from view a to view b through the original: ``affine_b⁻¹ · affine_a``.

    Args:
        affine_a: ``(..., 3, 3)`` view a → original.
        affine_b: ``(..., 3, 3)`` view b → original.

    Returns:
        ``(..., 3, 3)`` float64.

    Raises:
        ValueRangeError: either map is singular, not affine or not finite (names the argument).

    Shape:
        ``(..., 3, 3)`` ×2 -> ``(..., 3, 3)``.

    Example:
        >>> shift = torch.tensor([[1.0, 0, 5], [0, 1, 0], [0, 0, 1]])
        >>> view_to_view_affine(shift, torch.eye(3))[0].tolist()
        [1.0, 0.0, 5.0]
    """
    fn = "view_to_view_affine"
    A = _check_affine(affine_a, "affine_a", fn)
    B = _check_affine(affine_b, "affine_b", fn)
    return torch.linalg.solve(B, A)


def augment_view(
    image: torch.Tensor,
    augmentation: ViewAugmentation,
    output_size: tuple[int, int],
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One augmented view of ``image`` and its view → original pixel map.

    Geometry (:func:`random_crop_affine`, then :func:`warp_image`), then, each
    with its probability: colour jitter (brightness, contrast, saturation, hue,
    in that fixed order: :func:`~hoimask.data.adjust_colors`), grayscale,
    Gaussian blur, solarisation.

    Args:
        image: ``(3, H, W)`` RGB in ``[0, 1]``.
        augmentation: the view's settings.
        output_size: ``(H', W')``.
        generator: random source (50 float64 numbers per view).

    Returns:
        ``(view (3, H', W'), affine (3, 3) float64)``.

    Shape:
        ``(3, H, W)`` -> ``(3, H', W')``, ``(3, 3)``.
    """
    fn = "augment_view"
    check_shape(image, "3 H W", name="image", fn=fn)
    if not isinstance(augmentation, ViewAugmentation):
        raise DTypeError(f"{fn}(): argument 'augmentation' expected a ViewAugmentation, "
                         f"got {type(augmentation).__name__}")
    size = check_size(output_size, name="output_size", fn=fn)
    aug = augmentation
    affine = random_crop_affine(tuple(image.shape[-2:]), size, scale=aug.scale, ratio=aug.ratio,
                                rotation=aug.rotation, generator=generator)
    view = warp_image(image, affine, size)
    u = torch.rand(9, generator=generator, dtype=torch.float64).tolist()
    if u[0] < aug.jitter_p:
        view = adjust_colors(
            view,
            brightness=1 + aug.brightness * (2 * u[1] - 1),
            contrast=1 + aug.contrast * (2 * u[2] - 1),
            saturation=1 + aug.saturation * (2 * u[3] - 1),
            hue=2 * math.pi * aug.hue * (2 * u[4] - 1),  # turns -> radians
        )
    if u[5] < aug.grayscale_p:
        view = to_grayscale(view)
    if u[6] < aug.blur_p:
        sigma = aug.blur_sigma[0] + (aug.blur_sigma[1] - aug.blur_sigma[0]) * u[7]
        view = gaussian_blur(view, sigma).clamp(0, 1)
    if u[8] < aug.solarize_p:
        view = solarize(view, aug.solarize_threshold)
    return view, affine


def _views_size(output_size, image: torch.Tensor, fn: str) -> tuple[int, int]:
    if output_size is None:
        return tuple(image.shape[-2:])
    return check_size(output_size, name="output_size", allow_int=True, fn=fn)


def _check_augmentations(augmentations: Sequence[ViewAugmentation], fn: str) -> tuple[ViewAugmentation, ...]:
    if not isinstance(augmentations, (tuple, list)) or len(augmentations) != 2:
        raise ShapeError(f"{fn}(): argument 'augmentations' expected two ViewAugmentation, got {augmentations!r}")
    for k, aug in enumerate(augmentations):
        if not isinstance(aug, ViewAugmentation):
            raise DTypeError(f"{fn}(): argument 'augmentations[{k}]' expected a ViewAugmentation, "
                             f"got {type(aug).__name__}")
    return tuple(augmentations)


def two_views(
    image: torch.Tensor,
    output_size: int | tuple[int, int] | None = None,
    *,
    augmentations: Sequence[ViewAugmentation] = HANDMIM_VIEWS,
    generator: torch.Generator | None = None,
) -> TwoViews:
    """HandMIM's two augmented views of one image, with the pixel maps between them and the original.

    Args:
        image: ``(3, H, W)`` RGB in ``[0, 1]``.
        output_size: ``S`` or ``(H', W')`` of both views; ``None``: the image's size.
        augmentations: the settings of view a and view b (:data:`HANDMIM_VIEWS`).
        generator: random source; view a draws first, then view b.

    Returns:
        :class:`TwoViews` ``(view_a, view_b, affine_a, affine_b, affine_a_to_b)``.

    Shape:
        ``(3, H, W)`` -> views ``(3, H', W')``, affines ``(3, 3)``.

    Example:
        >>> views = two_views(torch.rand(3, 32, 32), 16, generator=torch.Generator().manual_seed(0))
        >>> views.view_a.shape, views.affine_a_to_b.shape
        (torch.Size([3, 16, 16]), torch.Size([3, 3]))
    """
    fn = "two_views"
    check_shape(image, "3 H W", name="image", fn=fn)
    size = _views_size(output_size, image, fn)
    aug_a, aug_b = _check_augmentations(augmentations, fn)
    view_a, affine_a = augment_view(image, aug_a, size, generator=generator)
    view_b, affine_b = augment_view(image, aug_b, size, generator=generator)
    return TwoViews(view_a, view_b, affine_a, affine_b, view_to_view_affine(affine_a, affine_b))


class TwoViewTransform:
    """Sample transform adding HandMIM's two views: keys :data:`TWO_VIEW_KEYS` (other keys unchanged).

    ``sample["image"]`` (the original) stays, so a batch also carries the
    original size the pose alignment needs. Labels are not warped: the views
    are for self-supervised pre-training.

    Args:
        output_size: ``S`` or ``(H', W')`` of the views; ``None``: the image's size.
        augmentations: the two views' settings (:data:`HANDMIM_VIEWS`).

    Shape:
        ``image (3, H, W)`` -> ``view_a``, ``view_b`` ``(3, H', W')``; ``affine_*`` ``(3, 3)`` float64.

    Example:
        >>> out = TwoViewTransform(16)({"image": torch.rand(3, 32, 32)}, generator=torch.Generator().manual_seed(0))
        >>> sorted(out)
        ['affine_a', 'affine_a_to_b', 'affine_b', 'image', 'view_a', 'view_b']
    """

    def __init__(
        self,
        output_size: int | tuple[int, int] | None = None,
        *,
        augmentations: Sequence[ViewAugmentation] = HANDMIM_VIEWS,
    ) -> None:
        fn = "TwoViewTransform"
        self.output_size = None if output_size is None else check_size(output_size, name="output_size",
                                                                       allow_int=True, fn=fn)
        self.augmentations = _check_augmentations(augmentations, fn)

    def __call__(self, sample: Mapping[str, torch.Tensor], generator: torch.Generator | None = None) -> dict:
        """Add the two views of ``sample["image"]`` and their affines."""
        if not isinstance(sample, Mapping) or "image" not in sample:
            raise ShapeError("TwoViewTransform(): argument 'sample' must be a mapping with an 'image' entry")
        views = two_views(sample["image"], self.output_size, augmentations=self.augmentations, generator=generator)
        out = dict(sample)
        out.update(zip(TWO_VIEW_KEYS, views))
        return out
