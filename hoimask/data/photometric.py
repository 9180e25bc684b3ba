"""Photometric transforms: colour jitter, Gaussian blur, grayscale and solarisation (images only, labels untouched).

They act on every key of :data:`hoimask.data.transforms.IMAGE_KEYS` and keep
images in ``[0, 1]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from hoimask._checks import (
    ShapeError,
    ValueRangeError,
    check_in_range,
    check_positive,
    check_probability,
    check_shape,
)

__all__ = [
    "IMAGE_KEYS",
    "ColorJitter",
    "GaussianBlur",
    "RandomGrayscale",
    "RandomSolarize",
    "adjust_colors",
    "gaussian_blur",
    "to_grayscale",
    "solarize",
]

#: Keys holding RGB images (resampled bilinearly by geometric transforms, jittered here).
IMAGE_KEYS: tuple[str, ...] = ("image", "deoccluded_image")


#: Luma weights of R, G, B (ITU-R BT.601), the grey level of contrast and saturation; they sum to 1.
GREY_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)
#: RGB -> YIQ (the NTSC matrix) and its inverse, float64, for the hue rotation of :func:`adjust_colors`.
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64)
_YIQ_INVERSE = torch.linalg.inv(_YIQ)


def adjust_colors(
    image: torch.Tensor, *, brightness: float = 1.0, contrast: float = 1.0, saturation: float = 1.0, hue: float = 0.0
) -> torch.Tensor:
    """Brightness/contrast/saturation factors and a hue rotation (radians) of an RGB image.

    Args:
        image: ``(3, H, W)`` RGB in ``[0, 1]``.
        brightness: multiplicative factor.
        contrast: blend factor towards the mean grey level.
        saturation: blend factor towards the per-pixel grey level.
        hue: rotation angle of the chroma plane (YIQ), radians.

    Returns:
        ``(3, H, W)`` clipped to ``[0, 1]``.

    Shape:
        ``(3, H, W) -> (3, H, W)``
    """
    check_shape(image, "3 H W", name="image")
    for name, factor in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
        check_positive(factor, name=name, strict=False)
    check_in_range(hue, name="hue", low=-math.inf, high=math.inf, low_inclusive=False, high_inclusive=False)
    return apply_colors(image, brightness, contrast, saturation, hue)


def apply_colors(image: torch.Tensor, brightness, contrast, saturation, hue) -> torch.Tensor:
    """:func:`adjust_colors` without the checks, for one image or a batch with one set of factors per image.

    Every step before the clip is affine in the colours: brightness scales, contrast blends towards the mean
    grey level ``m`` of the brightened image, saturation towards each pixel's grey (a matrix ``S`` with
    ``S·1 = 1``: the grey weights sum to 1), the hue turns the YIQ chroma plane (a matrix ``Hu`` with
    ``Hu·1 = 1``: grey has no chroma). So the result is ``A·x + (1 − contrast)·m`` with
    ``A = contrast·brightness·Hu·S``: one pass over the pixels.

    Shape:
        image ``(..., 3, H, W)``, factors floats or ``(...)`` -> ``(..., 3, H, W)``.
    """
    f64 = torch.float64
    b, c, s, h = (torch.as_tensor(v, dtype=f64) for v in (brightness, contrast, saturation, hue))
    w = torch.tensor(GREY_WEIGHTS, dtype=f64)
    S = s[..., None, None] * torch.eye(3, dtype=f64) + (1 - s)[..., None, None] * w.expand(3, 3)
    A = (c * b)[..., None, None] * S
    rot = torch.eye(3, dtype=f64).expand(*h.shape, 3, 3).clone()
    rot[..., 1, 1], rot[..., 1, 2], rot[..., 2, 1], rot[..., 2, 2] = h.cos(), -h.sin(), h.sin(), h.cos()
    A = torch.where((h != 0)[..., None, None], _YIQ_INVERSE @ rot @ _YIQ @ A, A)
    grey = torch.einsum("c,...chw->...", w.to(image.dtype), image) / (image.shape[-1] * image.shape[-2])
    offset = ((1 - c) * b * grey.to(f64)).to(image)  # (...)
    x = torch.einsum("...ij,...jhw->...ihw", A.to(image), image) + offset[..., None, None, None]
    return x.clamp(0, 1)


class ColorJitter:
    """Random brightness, contrast, saturation and hue (applied to every image key).

    Args:
        brightness: factor drawn from ``[1 - b, 1 + b]``.
        contrast: factor drawn from ``[1 - c, 1 + c]``.
        saturation: factor drawn from ``[1 - s, 1 + s]``.
        hue: angle drawn from ``[-h, h]`` radians.
    """

    def __init__(self, brightness: float = 0.3, contrast: float = 0.3, saturation: float = 0.3, hue: float = 0.1) -> None:
        self.brightness = check_in_range(brightness, name="brightness", low=0.0, high=1.0)
        self.contrast = check_in_range(contrast, name="contrast", low=0.0, high=1.0)
        self.saturation = check_in_range(saturation, name="saturation", low=0.0, high=1.0)
        self.hue = check_in_range(hue, name="hue", low=0.0, high=math.pi)

    def draw(self, generator: torch.Generator | None = None) -> tuple[float, float, float, float]:
        """One view's ``(brightness, contrast, saturation, hue)`` (four uniform draws from ``generator``)."""
        u = 2 * torch.rand(4, generator=generator, dtype=torch.float64) - 1
        return (1 + self.brightness * float(u[0]), 1 + self.contrast * float(u[1]),
                1 + self.saturation * float(u[2]), self.hue * float(u[3]))

    def __call__(self, sample: Mapping[str, torch.Tensor], generator: torch.Generator | None = None) -> dict:
        """Jitter the colours of ``sample``'s images."""
        brightness, contrast, saturation, hue = self.draw(generator)
        kw = {"brightness": brightness, "contrast": contrast, "saturation": saturation, "hue": hue}
        out = dict(sample)
        for key in IMAGE_KEYS:
            if key in sample:
                out[key] = adjust_colors(sample[key], **kw)
        return out


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding (kernel radius ``ceil(3 sigma)``).

    Args:
        image: ``(C, H, W)`` floating image.
        sigma: standard deviation in pixels (> 0).

    Returns:
        ``(C, H, W)`` blurred image.

    Shape:
        ``(C, H, W) -> (C, H, W)``
    """
    dims = check_shape(image, "C H W", name="image")
    check_positive(sigma, name="sigma")
    radius = max(1, math.ceil(3 * sigma))
    if radius >= min(dims["H"], dims["W"]):
        raise ShapeError(f"gaussian_blur(): sigma={sigma} needs a kernel radius {radius} smaller than the image {tuple(image.shape)}")
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    C = dims["C"]
    img = F.pad(image[None], (radius, radius, radius, radius), mode="reflect")
    img = F.conv2d(img, k.view(1, 1, 1, -1).expand(C, 1, 1, -1), groups=C)
    img = F.conv2d(img, k.view(1, 1, -1, 1).expand(C, 1, -1, 1), groups=C)
    return img[0]


class GaussianBlur:
    """Blur the images with probability ``p`` and ``sigma`` drawn from ``sigma_range``.

    Args:
        p: probability of blurring.
        sigma_range: ``(low, high)`` standard deviation in pixels.
    """

    def __init__(self, p: float = 0.3, sigma_range: tuple[float, float] = (0.3, 1.5)) -> None:
        self.p = check_probability(p, name="p")
        if len(sigma_range) != 2 or not 0 < sigma_range[0] <= sigma_range[1]:
            raise ValueRangeError(f"GaussianBlur(): argument 'sigma_range' expected (low, high) with 0 < low <= high, got {sigma_range}")
        self.sigma_range = (float(sigma_range[0]), float(sigma_range[1]))

    def __call__(self, sample: Mapping[str, torch.Tensor], generator: torch.Generator | None = None) -> dict:
        """Blur ``sample``'s images (or return it unchanged)."""
        u = torch.rand(2, generator=generator, dtype=torch.float64)
        out = dict(sample)
        if float(u[0]) >= self.p:
            return out
        sigma = self.sigma_range[0] + (self.sigma_range[1] - self.sigma_range[0]) * float(u[1])
        for key in IMAGE_KEYS:
            if key in sample:
                out[key] = gaussian_blur(sample[key], sigma).clamp(0, 1)
        return out


def to_grayscale(image: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma ``0.299 R + 0.587 G + 0.114 B`` repeated over the three channels (torchvision's grayscale).

    Args:
        image: ``(3, H, W)`` RGB.

    Returns:
        ``(3, H, W)`` with three equal channels.

    Shape:
        ``(3, H, W) -> (3, H, W)``

    Example:
        >>> to_grayscale(torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)).flatten()
        tensor([0.2990, 0.2990, 0.2990])
    """
    check_shape(image, "3 H W", name="image")
    weights = image.new_tensor([0.299, 0.587, 0.114])
    grey = (image * weights[:, None, None]).sum(0, keepdim=True)  # (1, H, W)
    return grey.expand_as(image).clone()


def solarize(image: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Invert the pixels at or above ``threshold``: ``x ↦ 1 − x`` there (PIL's ``ImageOps.solarize`` on [0, 1]).

    Args:
        image: ``(C, H, W)`` in ``[0, 1]``.
        threshold: in ``[0, 1]`` (0.5 = PIL's 128 of 256).

    Returns:
        ``(C, H, W)``.

    Shape:
        ``(C, H, W) -> (C, H, W)``

    Example:
        >>> solarize(torch.tensor([0.2, 0.5, 0.9]).view(3, 1, 1)).flatten()
        tensor([0.2000, 0.5000, 0.1000])
    """
    check_shape(image, "C H W", name="image")
    check_probability(threshold, name="threshold")
    return torch.where(image >= threshold, 1.0 - image, image)


class RandomGrayscale:
    """Turn the images gray (:func:`to_grayscale`) with probability ``p``.

    Args:
        p: probability (DINO / iBOT: 0.2).
    """

    def __init__(self, p: float = 0.2) -> None:
        self.p = check_probability(p, name="p")

    def __call__(self, sample: Mapping[str, torch.Tensor], generator: torch.Generator | None = None) -> dict:
        """Gray ``sample``'s images (or return it unchanged); draws one number."""
        u = torch.rand(1, generator=generator, dtype=torch.float64)
        out = dict(sample)
        if float(u[0]) < self.p:
            for key in IMAGE_KEYS:
                if key in sample:
                    out[key] = to_grayscale(sample[key])
        return out


class RandomSolarize:
    """Solarise the images (:func:`solarize`) with probability ``p``.

    Args:
        p: probability (DINO / iBOT: 0.2 on the second global view).
        threshold: pixels at or above it are inverted.
    """

    def __init__(self, p: float = 0.2, threshold: float = 0.5) -> None:
        self.p = check_probability(p, name="p")
        self.threshold = check_probability(threshold, name="threshold")

    def __call__(self, sample: Mapping[str, torch.Tensor], generator: torch.Generator | None = None) -> dict:
        """Solarise ``sample``'s images (or return it unchanged); draws one number."""
        u = torch.rand(1, generator=generator, dtype=torch.float64)
        out = dict(sample)
        if float(u[0]) < self.p:
            for key in IMAGE_KEYS:
                if key in sample:
                    out[key] = solarize(sample[key], self.threshold)
        return out
