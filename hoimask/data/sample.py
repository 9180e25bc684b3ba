"""The sample dictionary every hoimask dataset returns, ImageNet normalisation, and ``collate``.

A *sample* is a ``dict[str, Tensor]`` with the keys of :data:`SAMPLE_SPEC`
(shapes for one sample, before batching):

==================== ============ ======== ==============================================
key                  shape        dtype    meaning
==================== ============ ======== ==============================================
image                (3, H, W)    float32  RGB in [0, 1], **not** normalised
segmentation         (H, W)       int64    0 background, 1 hand, 2 object (visible)
amodal_hand_mask     (H, W)       bool     hand pixels including those hidden by the object
depth                (H, W)       float32  camera-frame z in metres, 0 where no surface
joints_3d            (21, 3)      float32  canonical joint order, metres, camera frame
joints_2d            (21, 2)      float32  pixels, ``project(joints_3d, K)``
K                    (3, 3)       float32  intrinsics, pixels
hand_pose            (16, 3)      float32  axis-angle, MANO kinematic order (global first)
hand_shape           (10,)        float32  shape coefficients
object_rotation      (3, 3)       float32  model -> camera rotation
object_translation   (3,)         float32  model -> camera translation, metres
object_points        (P, 3)       float32  model points in the *model* frame, metres
sdf_points           (Q, 3)       float32  query points, camera frame, metres
sdf_hand             (Q,)         float32  signed distance to the hand surface (negative inside)
sdf_object           (Q,)         float32  signed distance to the object; NaN when no object
grasped              ()           bool     the hand holds the object
occlusion_ratio      ()           float32  1 - visible / amodal hand pixels (0 with no hand pixel)
has_object           ()           bool     an object is present in the scene
==================== ============ ======== ==============================================

Images stay in ``[0, 1]`` inside a sample *and in a batch*: every hoimask
model normalises its input itself (:class:`hoimask.nn.PixelNormalization`,
ImageNet statistics by default) and refuses a batch outside ``[0, 1]``, so
:func:`collate` and ``torch.utils.data.default_collate`` give the same,
correct batch. :func:`normalize_image` remains for your own backbones. Without an object, ``object_rotation`` is the
identity, ``object_translation`` and ``object_points`` are zeros,
``sdf_object`` is NaN and ``has_object`` is ``False``.

Optional keys (not in :data:`SAMPLE_SPEC`; a dataset gives them to every
sample or to none): ``object_name`` (``str``, the object's model name, e.g.
``"019_pitcher_base"``; ``""`` when the frame names none; DexYCB and HO3D
only — synthetic scenes have no name), ``box`` (HO3D evaluation frames) and
``deoccluded_image`` (3, H, W) float32, UniHOPE's de-occluded twin
(:class:`~hoimask.data.SyntheticHOI` with ``deoccluded=True``; DexYCB and HO3D
with ``deoccluded_root=``, which also add ``has_deoccluded`` () bool: False
where the frame has no twin and ``deoccluded_image`` is a black placeholder,
:mod:`hoimask.data.deoccluded`). :func:`collate` gathers ``object_name`` into a
list of ``B`` strings and completes the pairs of a batch where only some
samples have a twin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from hoimask._checks import DTypeError, ShapeError, ValueRangeError, check_finite, check_shape
from hoimask.nn.pixel_norm import IMAGENET_MEAN, IMAGENET_STD, normalize_pixels

from .deoccluded import DEOCCLUDED_KEYS, deoccluded_placeholder

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SAMPLE_SPEC",
    "collate",
    "denormalize_image",
    "normalize_image",
    "uncollate",
    "validate_sample",
]


#: key -> (shape spec for ``check_shape``, dtype) of one sample.
SAMPLE_SPEC: dict[str, tuple[str, torch.dtype]] = {
    "image": ("3 H W", torch.float32),
    "segmentation": ("H W", torch.int64),
    "amodal_hand_mask": ("H W", torch.bool),
    "depth": ("H W", torch.float32),
    "joints_3d": ("21 3", torch.float32),
    "joints_2d": ("21 2", torch.float32),
    "K": ("3 3", torch.float32),
    "hand_pose": ("16 3", torch.float32),
    "hand_shape": ("10", torch.float32),
    "object_rotation": ("3 3", torch.float32),
    "object_translation": ("3", torch.float32),
    "object_points": ("P 3", torch.float32),
    "sdf_points": ("Q 3", torch.float32),
    "sdf_hand": ("Q", torch.float32),
    "sdf_object": ("Q", torch.float32),
    "grasped": ("", torch.bool),
    "occlusion_ratio": ("", torch.float32),
    "has_object": ("", torch.bool),
}


def normalize_image(image: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalise an RGB image in ``[0, 1]``: ``(image - mean) / std`` per channel.

    Args:
        image: ``(..., 3, H, W)`` floating RGB in ``[0, 1]``.

    Returns:
        Tensor of the same shape, dtype and device.

    Shape:
        ``(..., 3, H, W) -> (..., 3, H, W)``

    Example:
        >>> x = torch.full((3, 2, 2), 0.485)
        >>> bool(normalize_image(x)[0].abs().max() < 1e-6)
        True
    """
    check_shape(image, "... 3 H W", name="image")
    if not image.is_floating_point():
        raise DTypeError(f"normalize_image(): argument 'image' expected a floating tensor, got {image.dtype}")
    return normalize_pixels(image, image.new_tensor(IMAGENET_MEAN), image.new_tensor(IMAGENET_STD))


def denormalize_image(image: torch.Tensor) -> torch.Tensor:
    """Invert :func:`normalize_image` (for pictures): ``image * std + mean``.

    Args:
        image: ``(..., 3, H, W)`` ImageNet-normalised floating image.

    Returns:
        RGB in (roughly) ``[0, 1]``, same shape, dtype and device; not clamped.

    Shape:
        ``(..., 3, H, W) -> (..., 3, H, W)``
    """
    check_shape(image, "... 3 H W", name="image")
    if not image.is_floating_point():
        raise DTypeError(f"denormalize_image(): argument 'image' expected a floating tensor, got {image.dtype}")
    std = image.new_tensor(IMAGENET_STD)
    return normalize_pixels(image, -image.new_tensor(IMAGENET_MEAN) / std, 1.0 / std)


def validate_sample(sample: Mapping[str, torch.Tensor], *, strict: bool = True) -> dict[str, int]:
    """Check that ``sample`` follows the contract of :data:`SAMPLE_SPEC`.

    Args:
        sample: one sample dictionary.
        strict: also require every key of :data:`SAMPLE_SPEC` to be present
            (extra keys are always allowed; the optional ``object_name`` must be a ``str``,
            ``deoccluded_image`` float32 of ``image``'s shape, ``has_deoccluded`` a 0-d bool).

    Returns:
        The bound sizes ``{"H", "W", "P", "Q"}`` of the keys present.

    Raises:
        ShapeError: a key is missing (``strict``) or has the wrong shape.
        DTypeError: a value is not a tensor or has the wrong dtype, or the
            optional ``object_name`` is not a ``str``.
        ValueRangeError: ``image`` or ``K`` holds a NaN or infinity (they are
            inputs, never "unannotated"; docs/conventions.md, "Non-finite
            values"), ``image`` is outside ``[0, 1]`` or ``segmentation``
            outside {0, 1, 2}. Non-finite *targets* (joints, poses, SDF values
            of an unannotated frame) are allowed.

    Shape:
        see the module table.
    """
    dims: dict[str, int] = {}
    for key, (spec, dtype) in SAMPLE_SPEC.items():
        if key not in sample:
            if strict:
                raise ShapeError(f"validate_sample(): sample is missing key {key!r} (expected shape ({spec}))")
            continue
        value = sample[key]
        check_shape(value, spec, name=f"sample[{key!r}]", dims=dims, fn="validate_sample")
        if value.dtype != dtype:
            raise DTypeError(f"validate_sample(): sample[{key!r}] expected dtype {dtype}, got {value.dtype}")
    if "object_name" in sample and not isinstance(sample["object_name"], str):
        name = sample["object_name"]
        raise DTypeError(f"validate_sample(): sample['object_name'] expected a str (the object's model name, '' for "
                         f"none), got {type(name).__name__} {name!r}")
    if "deoccluded_image" in sample and "image" in sample:  # a pair: one size, one dtype
        twin = sample["deoccluded_image"]
        check_shape(twin, " ".join(str(n) for n in sample["image"].shape), name="sample['deoccluded_image']",
                    fn="validate_sample")
        if twin.dtype != torch.float32:
            raise DTypeError(f"validate_sample(): sample['deoccluded_image'] expected dtype torch.float32, got {twin.dtype}")
    if "has_deoccluded" in sample:
        check_shape(sample["has_deoccluded"], "", name="sample['has_deoccluded']", fn="validate_sample")
        if sample["has_deoccluded"].dtype != torch.bool:
            raise DTypeError(f"validate_sample(): sample['has_deoccluded'] expected dtype torch.bool, got "
                             f"{sample['has_deoccluded'].dtype}")
    for key in ("image", "K"):  # inputs of every model: a NaN here is a broken sample, not a missing label
        if key in sample:
            check_finite(sample[key], name=f"sample[{key!r}]", fn="validate_sample")
    if "image" in sample:
        img = sample["image"]
        if bool((img < 0).any()) or bool((img > 1).any()):
            raise ValueRangeError(
                "validate_sample(): sample['image'] must lie in [0, 1] (un-normalised RGB), "
                f"got min {float(img.min()):.3f}, max {float(img.max()):.3f}"
            )
    if "segmentation" in sample:
        seg = sample["segmentation"]
        if bool(((seg < 0) | (seg > 2)).any()):
            raise ValueRangeError("validate_sample(): sample['segmentation'] must hold only 0, 1, 2")
    return dims


def uncollate(batch: Mapping[str, object], size: int) -> list[dict[str, object]]:
    """Split a collated batch back into ``size`` samples (the inverse of :func:`collate` up to scalar types).

    Tensors with a leading dimension ``size`` and lists of length ``size`` are
    split by row; anything else (a scalar tensor, another value) is shared by
    every sample. Python scalars that :func:`collate` turned into tensors come
    back as 0-dim tensors, which :func:`collate` stacks to the same batch.

    Shape:
        ``(B, ...) -> B x (...)``.
    """
    samples: list[dict[str, object]] = [{} for _ in range(size)]
    for key, value in batch.items():
        for i, sample in enumerate(samples):
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == size:
                sample[key] = value[i]
            elif isinstance(value, list) and len(value) == size:
                sample[key] = value[i]
            else:
                sample[key] = value
    return samples


def collate(samples: Sequence[Mapping[str, object]], *, normalize: bool = False) -> dict[str, object]:
    """Stack a list of samples into a batch (a ``DataLoader`` ``collate_fn``).

    Tensors are stacked along a new first dimension (all samples must agree in
    shape: datasets use a fixed ``P``, ``Q`` and image size); Python scalars
    become tensors; strings and other values are gathered into lists.

    De-occluded pairs: when some samples carry ``deoccluded_image`` or
    ``has_deoccluded`` and others do not (e.g. a ``ConcatDataset`` of paired and
    unpaired data), every sample is completed: a sample with a twin and no flag
    gets ``has_deoccluded = True``, one without a twin gets ``False`` and the
    black placeholder (:func:`hoimask.data.deoccluded.deoccluded_placeholder`).
    A batch whose samples all carry the same keys is collated as it is.

    Args:
        samples: a non-empty sequence of sample dictionaries with the same keys.
        normalize: apply :func:`normalize_image` to ``"image"``. Off by default:
            hoimask models take RGB in ``[0, 1]`` and normalise it themselves
            (and refuse a normalised batch); use it only for a backbone of your own.

    Returns:
        A dictionary with the same keys; tensors gain a leading batch dim ``B``.

    Raises:
        ShapeError: no sample, samples with different keys (other than the
            pair keys) or shapes.
        ValueRangeError: a sample says ``has_deoccluded = True`` without a ``deoccluded_image``.

    Shape:
        ``image (3, H, W) -> (B, 3, H, W)``; every other key likewise.
    """
    if len(samples) == 0:
        raise ShapeError("collate(): argument 'samples' must be a non-empty sequence, got 0 samples")
    samples = _complete_pairs(samples)
    keys = list(samples[0].keys())
    for i, s in enumerate(samples[1:], start=1):
        if set(s.keys()) != set(keys):
            diff = sorted(set(s.keys()) ^ set(keys))
            raise ShapeError(f"collate(): sample {i} has different keys from sample 0 (differ in {diff})")
    batch: dict[str, object] = {}
    for key in keys:
        values = [s[key] for s in samples]
        first = values[0]
        if isinstance(first, torch.Tensor):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) != 1:
                raise ShapeError(f"collate(): key {key!r} has different shapes across samples: {sorted(shapes)}")
            batch[key] = torch.stack(values)
        elif isinstance(first, (bool, int, float)):
            batch[key] = torch.tensor(values)
        else:
            batch[key] = list(values)
    if normalize and isinstance(batch.get("image"), torch.Tensor):
        batch["image"] = normalize_image(batch["image"])
    return batch


def _complete_pairs(samples: Sequence[Mapping[str, object]]) -> Sequence[Mapping[str, object]]:
    """``samples`` with :data:`~hoimask.data.deoccluded.DEOCCLUDED_KEYS` in all or none of them (see :func:`collate`)."""
    having = {tuple(k in s for k in DEOCCLUDED_KEYS) for s in samples}
    if len(having) == 1:  # every sample carries the same pair keys
        return samples
    out = []
    for i, s in enumerate(samples):
        s = dict(s)
        if "deoccluded_image" not in s:
            if "has_deoccluded" in s and bool(s["has_deoccluded"]):
                raise ValueRangeError(f"collate(): sample {i} has has_deoccluded=True but no 'deoccluded_image'")
            if "image" not in s:
                raise ShapeError(f"collate(): sample {i} has no 'image' to shape the placeholder 'deoccluded_image' on")
            s["deoccluded_image"] = deoccluded_placeholder(s["image"])
            s["has_deoccluded"] = torch.tensor(False)
        elif "has_deoccluded" not in s:
            s["has_deoccluded"] = torch.tensor(True)
        out.append(s)
    return out
