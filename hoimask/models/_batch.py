"""Helpers shared by the models for reading the collated batch dictionary."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from hoimask._checks import DTypeError, FileFormatError, ShapeError, ValueRangeError, check_shape

__all__ = ["MASKER_KINDS", "get_image", "optional", "object_present", "build_masker", "mask_batch", "default_intrinsics",
           "load_encoder_weights", "LIFT_DEPTHS", "lifting_depth"]

#: Where the models that start their MANO rotations at the IK of lifted 2.5D keypoints
#: (:class:`~hoimask.models.HandMIMPoseModel`, :class:`~hoimask.models.UniHOPE`) lift them when a wrist depth is
#: known: ``"ground-truth"`` -- training at the batch's annotated wrist depth, ``predict(root_depth=)`` at the given
#: one (the evaluation's anchor), so the start is the one the model learned from; ``"predicted"`` -- always at the
#: model's own wrist estimate (files written before the choice existed were trained so).
LIFT_DEPTHS = ("ground-truth", "predicted")


def lifting_depth(own: torch.Tensor, given: torch.Tensor | None) -> torch.Tensor:
    """``(B,)`` the wrist depth to lift keypoints at: ``given`` where finite, else ``own`` (detached either way)."""
    own = own.detach()
    if given is None:
        return own
    given = given.to(own.dtype)
    return torch.where(torch.isfinite(given), given, own)


def load_encoder_weights(encoder: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], fn: str) -> None:
    """Load an encoder state dict whose keys and shapes must match exactly; else ``FileFormatError`` listing them."""
    own = encoder.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    bad = sorted(k for k in set(own) & set(state_dict) if own[k].shape != state_dict[k].shape)
    if missing or unexpected or bad:
        raise FileFormatError(
            f"{fn}(): encoder weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"shape mismatch {bad[:5]}"
        )
    encoder.load_state_dict(dict(state_dict))


def get_image(batch: Mapping[str, Any], fn: str) -> torch.Tensor:
    """The batch's ``image`` ``(B, 3, H, W)``, checked to be a floating tensor."""
    if not isinstance(batch, Mapping) or "image" not in batch:
        raise ShapeError(f"{fn}(): argument 'batch' must be a mapping with an 'image' entry")
    image = batch["image"]
    check_shape(image, "B 3 H W", name="batch['image']", fn=fn)
    if not image.is_floating_point():
        raise DTypeError(f"{fn}(): argument batch['image'] expected a floating tensor, got {image.dtype}")
    return image


def optional(batch: Mapping[str, Any], key: str) -> torch.Tensor | None:
    """``batch[key]`` if present and not None, else None."""
    value = batch.get(key)
    return value if isinstance(value, torch.Tensor) else None


def default_intrinsics(batch_size: int, image_size: tuple[int, int], *, like: torch.Tensor) -> torch.Tensor:
    """``(B, 3, 3)`` intrinsics assumed when a batch has no ``K``: focal ``max(H, W)``, centred principal point."""
    H, W = image_size
    f = float(max(H, W))
    K = like.new_tensor([[f, 0.0, W / 2], [0.0, f, H / 2], [0.0, 0.0, 1.0]])
    return K.expand(batch_size, 3, 3)


def object_present(batch: Mapping[str, Any], rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: the samples whose object pose targets count.

    A sample counts when its targets are finite (NaN marks an absent object)
    and, if the batch carries a ``has_object`` flag, that flag is set (hand-only
    synthetic scenes carry a finite identity pose).

    Shape:
        rotation ``(B, 3, 3)``, translation ``(B, 3)`` -> ``(B,)``.
    """
    ok = torch.isfinite(rotation).flatten(1).all(1) & torch.isfinite(translation).flatten(1).all(1)
    has = optional(batch, "has_object")
    if has is not None:
        ok = ok & has.to(device=ok.device, dtype=torch.bool).reshape(-1)
    return ok


#: The masker names of ``MaskHOIConfig.masking`` / ``MAE(masking=)`` / ``train_maskhoi.py --masking``.
MASKER_KINDS: tuple[str, ...] = ("hybrid", "region", "random", "target")


def build_masker(kind: str, mask_ratio: float, kwargs: dict[str, Any]):
    """Instantiate the masker of a MaskHOI/MAE configuration from :mod:`hoimask.masking`.

    ``"random"`` -> ``RandomMasker``, ``"region"`` -> ``RegionRatioMasker``,
    ``"hybrid"`` -> ``HybridMasker`` (skeleton guidance with probability 0.5 by
    default), ``"target"`` -> ``TargetFocusedMasker`` (HOMAE), each with
    ``mask_ratio`` (the overall ratio) and ``kwargs``.
    """
    import hoimask.masking as masking

    if kind == "target":
        return masking.TargetFocusedMasker(**{"mask_ratio": mask_ratio, **kwargs})
    if kind == "random":
        return masking.RandomMasker(**{"mask_ratio": mask_ratio, **kwargs})
    if kind == "region":
        return masking.RegionRatioMasker(**{"mask_ratio": mask_ratio, **kwargs})
    if kind == "hybrid":
        return masking.HybridMasker(**{"mask_ratio": mask_ratio, **kwargs})
    raise ValueRangeError(f"build_masker(): argument 'kind' expected one of {MASKER_KINDS}, got {kind!r}")


def mask_batch(masker, batch: Mapping[str, Any], image: torch.Tensor, grid: tuple[int, int], *,
               generator: torch.Generator | None = None):
    """Draw a batch's mask with ``masker``, guided by its ``segmentation`` / ``joints_2d`` when present.

    Args:
        masker: a :mod:`hoimask.masking` masker.
        batch: the collated batch.
        image: the batch's image (its size and device are used).
        grid: the patch grid ``(h, w)`` of ``image``.
        generator: RNG of the masker.

    Returns:
        The masker's :class:`hoimask.masking.MaskOutput`.

    Shape:
        - image: ``(B, 3, H, W)``
    """
    return masker(
        image.shape[0],
        grid,
        segmentation=optional(batch, "segmentation"),
        joints_2d=optional(batch, "joints_2d"),
        device=image.device,
        generator=generator,
    )
