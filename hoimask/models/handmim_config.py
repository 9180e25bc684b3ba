"""Configuration and presets of :class:`~hoimask.models.HandMIM` (HandMIM §2, §3.1).

``small``, ``base`` and ``large`` are the paper's ViT-S/16, ViT-B/16 and
ViT-L/16 at 224 px with its recipe (projection head to ``K = 256`` = 128
pseudo key-points, mask ratio drawn from [0.1, 0.5], taps of blocks 3, 6, 9,
12); ``tiny`` has MaskHOI's tiny encoder (128 px, 4 blocks, 192 wide) and
small heads, and trains on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from hoimask._checks import (
    DTypeError,
    ValueRangeError,
    check_choice,
    check_in_range,
    check_int,
    check_loss_weights,
    check_positive,
)
from hoimask.nn.pixel_norm import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["HandMIMConfig", "HANDMIM_PRESETS", "HANDMIM_LOSS_WEIGHTS", "HANDMIM_STEPS_PER_EPOCH",
           "resolve_handmim_preset"]

#: Eq. (10): ``L = L_pose + L_patch + L_recon``, every weight 1.
HANDMIM_LOSS_WEIGHTS: dict[str, float] = {"pose": 1.0, "patch": 1.0, "recon": 1.0}

#: Optimiser steps per epoch of the paper's pre-training set: 221,602 images in batches of 1,024 (§3.1).
HANDMIM_STEPS_PER_EPOCH: int = 217


@dataclass
class HandMIMConfig:
    """Every hyper-parameter of HandMIM; presets fill it, keywords override it.

    Encoder (student and teacher): ``img_size`` (the side of both views),
    ``patch_size``, ``embed_dim``, ``depth``, ``num_heads``.
    Projection head (shared by the class and patch tokens, §3.1):
    ``head_out_dim`` (K, even: K/2 pseudo key-points), ``head_hidden_dim``,
    ``head_bottleneck_dim``, ``head_layers``, ``norm_last_layer``.
    Pixel decoder (eq. 8): ``decoder_channels`` (one width per tap; the taps
    are :func:`~hoimask.nn.pyramid_tap_layers` of ``depth``).
    Masking: ``mask_ratio``, a ratio or a ``(low, high)`` range each view of
    each sample draws its own ratio from (§3.1: [0.1, 0.5]).
    Losses (eq. 10 and Table 5): ``use_pose``, ``use_patch``, ``use_recon``
    switch the terms; ``weights`` (partial dictionaries update
    :data:`HANDMIM_LOSS_WEIGHTS`).
    Teacher (DINO / iBOT): ``teacher_momentum`` (m0, cosine to 1 over
    ``total_steps``), ``center_momentum``, ``teacher_temperature`` (after
    warm-up), ``warmup_teacher_temperature`` (at step 0),
    ``temperature_warmup_steps``, ``student_temperature``.
    Views: ``augmentations``, the two views' :class:`hoimask.data.ViewAugmentation`
    (``None``: :data:`hoimask.data.HANDMIM_VIEWS`).
    Input: ``pixel_mean``, ``pixel_std`` — the model takes RGB in ``[0, 1]``
    and normalises the views itself (:class:`~hoimask.nn.PixelNormalization`).
    """

    img_size: int = 224
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    head_out_dim: int = 256
    head_hidden_dim: int = 2048
    head_bottleneck_dim: int = 256
    head_layers: int = 3
    norm_last_layer: bool = True
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32)
    mask_ratio: float | tuple[float, float] = (0.1, 0.5)
    use_pose: bool = True
    use_patch: bool = True
    use_recon: bool = True
    weights: dict[str, float] = field(default_factory=lambda: dict(HANDMIM_LOSS_WEIGHTS))
    teacher_momentum: float = 0.996
    total_steps: int = 400 * HANDMIM_STEPS_PER_EPOCH
    center_momentum: float = 0.9
    teacher_temperature: float = 0.07
    warmup_teacher_temperature: float = 0.04
    temperature_warmup_steps: int = 30 * HANDMIM_STEPS_PER_EPOCH
    student_temperature: float = 0.1
    augmentations: tuple[Any, Any] | None = None
    pixel_mean: tuple[float, float, float] = IMAGENET_MEAN
    pixel_std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        fn = "HandMIMConfig"
        for name in ("img_size", "patch_size", "embed_dim", "depth", "num_heads", "head_out_dim", "head_hidden_dim",
                     "head_bottleneck_dim", "head_layers", "total_steps"):
            check_int(getattr(self, name), name=name, low=1, fn=fn)
        check_int(self.temperature_warmup_steps, name="temperature_warmup_steps", low=0, fn=fn)
        if self.img_size % self.patch_size:
            raise ValueRangeError(f"{fn}(): argument 'img_size' ({self.img_size}) must be a multiple of "
                                  f"patch_size ({self.patch_size})")
        if self.head_out_dim % 2:
            raise ValueRangeError(f"{fn}(): argument 'head_out_dim' must be even (K/2 pseudo key-points of 2 "
                                  f"coordinates), got {self.head_out_dim}")
        self.mask_ratio = _mask_ratio(self.mask_ratio, fn)
        self.decoder_channels = tuple(self.decoder_channels)
        for k, width in enumerate(self.decoder_channels):
            check_int(width, name=f"decoder_channels[{k}]", low=1, fn=fn)
        if self.use_recon and self.depth < len(self.decoder_channels):
            raise ValueRangeError(f"{fn}(): the pixel decoder reads {len(self.decoder_channels)} blocks "
                                  f"(one per decoder_channels entry) but depth is {self.depth}")
        for name in ("use_pose", "use_patch", "use_recon", "norm_last_layer"):
            if not isinstance(getattr(self, name), bool):
                raise DTypeError(f"{fn}(): argument '{name}' expected a bool, got {getattr(self, name)!r}")
        if not (self.use_pose or self.use_patch or self.use_recon):
            raise ValueRangeError(f"{fn}(): use_pose, use_patch and use_recon are all False: no loss is left")
        for name in ("teacher_momentum", "center_momentum"):
            check_in_range(getattr(self, name), name=name, low=0.0, high=1.0, fn=fn)
        for name in ("teacher_temperature", "warmup_teacher_temperature", "student_temperature"):
            check_positive(getattr(self, name), name=name, fn=fn)
        self.weights = check_loss_weights(self.weights, HANDMIM_LOSS_WEIGHTS, name="weights", fn=fn)
        if self.augmentations is not None:
            if not isinstance(self.augmentations, (tuple, list)) or len(self.augmentations) != 2:
                raise DTypeError(f"{fn}(): argument 'augmentations' expected two ViewAugmentation or None, "
                                 f"got {self.augmentations!r}")
            self.augmentations = tuple(self.augmentations)
        self.pixel_mean, self.pixel_std = tuple(self.pixel_mean), tuple(self.pixel_std)


def _mask_ratio(value: Any, fn: str) -> tuple[float, float]:
    """A ratio or a ``(low, high)`` range in ``[0, 1)``, as a ``(low, high)`` pair (``low == high``: fixed)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise DTypeError(f"{fn}(): argument 'mask_ratio' expected a ratio or a (low, high) pair, got {value!r}")
    low = check_in_range(value[0], name="mask_ratio[0]", low=0.0, high=1.0, high_inclusive=False, fn=fn)
    high = check_in_range(value[1], name="mask_ratio[1]", low=0.0, high=1.0, high_inclusive=False, fn=fn)
    if low > high:
        raise ValueRangeError(f"{fn}(): argument 'mask_ratio' expected low <= high, got {tuple(value)!r}")
    return low, high


_VIT_L_STEPS = 250 * HANDMIM_STEPS_PER_EPOCH  # ViT-L: 250 epochs (§3.1)

#: ``tiny``: MaskHOI's tiny encoder (128 px, 8x8 grid, 4 blocks of 192, 3 heads) with small heads, for CPUs.
#: ``small`` / ``base`` / ``large``: ViT-S/16, ViT-B/16, ViT-L/16 at 224 px, the paper's recipe (§3.1).
HANDMIM_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        img_size=128,
        patch_size=16,
        embed_dim=192,
        depth=4,
        num_heads=3,
        head_hidden_dim=256,
        head_bottleneck_dim=64,
        decoder_channels=(64, 32, 32, 16),
        total_steps=300,
        temperature_warmup_steps=30,
    ),
    "small": dict(embed_dim=384, depth=12, num_heads=6),
    "base": dict(),
    "large": dict(embed_dim=1024, depth=24, num_heads=16, total_steps=_VIT_L_STEPS),
}


def resolve_handmim_preset(name: str, overrides: dict[str, Any]) -> HandMIMConfig:
    """Build a :class:`HandMIMConfig` from a preset name and keyword overrides.

    Args:
        name: ``"tiny"``, ``"small"``, ``"base"`` or ``"large"``.
        overrides: field name -> value; unknown names raise.

    Returns:
        The configuration.

    Raises:
        ValueRangeError: an unknown preset or field.
    """
    check_choice(name, tuple(HANDMIM_PRESETS), name="name", fn="HandMIM.from_preset")
    known = {f.name for f in fields(HandMIMConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueRangeError(f"HandMIM.from_preset(): unknown overrides {unknown}; known: {sorted(known)}")
    return replace(HandMIMConfig(), **{**HANDMIM_PRESETS[name], **overrides})
