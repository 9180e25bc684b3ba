"""Pixel normalisation owned by the model: RGB in ``[0, 1]`` in, ``(x - mean) / std`` out.

Every hoimask model takes images as every hoimask dataset returns them — RGB
in ``[0, 1]`` — and normalises them itself with the channel statistics its
backbone was trained with (ImageNet's by default), as kornia's and
detectron2's models do. The range check is what keeps a model from silently
learning nothing: an already-normalised batch (values far below 0 or above 1)
raises :class:`~hoimask._checks.ValueRangeError` instead of being normalised
twice. See docs/training.md ("Why the pose heads predicted the batch mean").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hoimask._checks import DTypeError, ShapeError, ValueRangeError, check_shape, compiling

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "PixelNormalization", "check_unit_range", "normalize_pixels"]

#: ImageNet channel means (RGB), the statistics MAE / ViT / ResNet backbones were trained with.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
#: ImageNet channel standard deviations (RGB).
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Slack of the ``[0, 1]`` range check (resampling can overshoot by a rounding error).
RANGE_TOLERANCE = 1e-3


def check_unit_range(image: torch.Tensor, *, name: str = "image", fn: str | None = None) -> None:
    """Raise unless ``image`` is floating RGB in ``[0, 1]`` (with :data:`RANGE_TOLERANCE` slack).

    Args:
        image: ``(..., C, H, W)`` image batch.
        name: the argument's name in the message.
        fn: the public function to name in the message.

    Raises:
        DTypeError: not a floating tensor.
        ValueRangeError: values outside ``[0, 1]``; the message says that the
            model normalises itself, so the batch must not be normalised.
    """
    where = f"{fn}(): " if fn else ""
    if not isinstance(image, torch.Tensor) or not image.is_floating_point():
        got = image.dtype if isinstance(image, torch.Tensor) else type(image).__name__
        raise DTypeError(f"{where}argument {name!r} expected a floating tensor of RGB in [0, 1], got {got}")
    if image.numel() == 0 or compiling():  # a value check: skipped while torch.compile traces
        return
    lo, hi = torch.aminmax(image.detach())
    lo, hi = float(lo), float(hi)
    if not (lo >= -RANGE_TOLERANCE and hi <= 1 + RANGE_TOLERANCE):
        raise ValueRangeError(
            f"{where}argument {name!r} expected RGB in [0, 1] (the model applies its own mean/std), "
            f"got values in [{lo:.3f}, {hi:.3f}]; an ImageNet-normalised batch (e.g. collate(..., normalize=True)) "
            "would be normalised twice: pass images as the datasets return them"
        )


def normalize_pixels(image: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(image - mean) / std`` per channel.

    Args:
        image: ``(..., C, H, W)`` floating image.
        mean: ``(C,)`` channel means.
        std: ``(C,)`` channel standard deviations (> 0).

    Returns:
        Tensor of the shape of ``image``, in its dtype and device.

    Shape:
        ``(..., C, H, W), (C,), (C,) -> (..., C, H, W)``

    Example:
        >>> x = torch.full((1, 3, 2, 2), 0.5)
        >>> normalize_pixels(x, torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.25, 0.5, 1.0]))[0, :, 0, 0]
        tensor([0., 0., 0.])
    """
    dims = check_shape(image, "... C H W", name="image")
    check_shape(mean, "C", name="mean", dims=dims)
    check_shape(std, "C", name="std", dims=dims)
    mean = mean.to(device=image.device, dtype=image.dtype)[:, None, None]
    std = std.to(device=image.device, dtype=image.dtype)[:, None, None]
    return (image - mean) / std


class PixelNormalization(nn.Module):
    """The model's input layer: check RGB in ``[0, 1]``, then normalise with ``mean`` / ``std``.

    Args:
        mean: channel means (default ImageNet's).
        std: channel standard deviations, all > 0 (default ImageNet's).
        check_range: raise on images outside ``[0, 1]`` (default). Turn it off
            only for inputs that legitimately leave the range (e.g. HDR).

    Shape:
        ``(B, C, H, W) -> (B, C, H, W)``.

    Example:
        >>> norm = PixelNormalization()
        >>> norm(torch.rand(2, 3, 8, 8)).shape
        torch.Size([2, 3, 8, 8])
    """

    def __init__(
        self,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        *,
        check_range: bool = True,
    ) -> None:
        super().__init__()
        mean_t = torch.as_tensor([float(m) for m in mean])
        std_t = torch.as_tensor([float(s) for s in std])
        if mean_t.ndim != 1 or mean_t.shape != std_t.shape or mean_t.numel() == 0:
            raise ShapeError(
                f"PixelNormalization(): arguments 'mean' and 'std' must be equally long, non-empty sequences, "
                f"got {len(mean_t)} and {len(std_t)} values"
            )
        if not bool((std_t > 0).all()) or not bool(torch.isfinite(mean_t).all()):
            raise ValueRangeError(
                f"PixelNormalization(): argument 'std' must be > 0 and 'mean' finite, got mean {tuple(mean)}, std {tuple(std)}"
            )
        self.register_buffer("mean", mean_t, persistent=False)
        self.register_buffer("std", std_t, persistent=False)
        self.check_range = bool(check_range)

    def forward(self, image: torch.Tensor, *, name: str = "image", fn: str | None = None) -> torch.Tensor:
        """Check (unless ``check_range`` is off) and normalise ``image``; ``name``/``fn`` go into errors."""
        if self.check_range:
            check_unit_range(image, name=name, fn=fn)
        return normalize_pixels(image, self.mean, self.std)

    def extra_repr(self) -> str:
        return f"mean={tuple(round(float(m), 4) for m in self.mean)}, std={tuple(round(float(s), 4) for s in self.std)}"
