"""Dataset choice shared by the example scripts: synthetic (default), DexYCB, HO3D or FreiHAND, cropped to the model size."""

from __future__ import annotations

import math
import os

from torch.utils.data import Dataset

from hoimask._checks import ValueRangeError, check_choice, check_in_range

__all__ = ["DATASETS", "build_dataset", "fit_constant_baselines", "synthetic_render_size"]

#: Datasets the example scripts accept.
DATASETS = ("synthetic", "dexycb", "ho3d", "freihand")


def build_dataset(
    name: str,
    *,
    image_size: int,
    train: bool = True,
    root: str | os.PathLike | None = None,
    mano_dir: str | os.PathLike | None = None,
    num_samples: int = 64,
    seed: int = 0,
    num_sdf_points: int = 2048,
    num_object_points: int = 1000,
    hand_only_prob: float = 0.1,
    cache_in_memory: bool = False,
    require_hand: bool = False,
    hands: str = "right",
    deoccluded: bool = False,
    deoccluded_root: str | os.PathLike | None = None,
    crop_padding: float | None = None,
) -> Dataset:
    """Build a dataset for training or evaluation.

    * ``"synthetic"``: :class:`hoimask.data.SyntheticHOI` rendered at
      ``image_size`` (``num_samples`` scenes, ``seed``; the test split uses a
      different seed so it is held out). ``cache_in_memory`` renders each scene
      once (:class:`~hoimask.engine.data.MemoryCache`). With ``crop_padding``
      each scene is framed as the real datasets frame theirs: rendered at
      :func:`synthetic_render_size` px and cropped around hand ∪ object with that
      margin (:class:`~hoimask.data.CenterCrop`), resized to ``image_size``.
    * ``"dexycb"``: :class:`hoimask.data.DexYCB` (S0, right hands; ``train``
      chooses the train or test split), cropped around hand ∪ object and resized.
    * ``"ho3d"``: :class:`hoimask.data.HO3D` (``train`` or ``evaluation``), likewise.
    * ``"freihand"``: :class:`hoimask.data.FreiHAND` (``train``: all four
      background versions; else ``evaluation``, whose hidden ground truth is
      NaN without the annotation release). Its images are already crops around
      the hand, so the whole frame is resized (``padding=1.0`` around the
      sample's ``box``, the frame), with the same jitter as the others when training.

    Args:
        name: one of :data:`DATASETS`.
        image_size: output side (the model's ``img_size``).
        train: training split with random crops, else the test split with centre crops.
        root: dataset root (DexYCB/HO3D/FreiHAND).
        mano_dir: folder with ``MANO_RIGHT.pkl`` (DexYCB/HO3D/FreiHAND).
        num_samples, seed, hand_only_prob: synthetic data only.
        num_sdf_points, num_object_points: ``Q`` and ``P``.
        cache_in_memory: wrap in a :class:`~hoimask.engine.data.MemoryCache`.
        require_hand: DexYCB only: drop the frames without a hand annotation
            (the pose models need the hand: fine-tuning and evaluation set it,
            as HOISDF's data and the DexYCB toolkit's evaluation do;
            pre-training keeps them and trains what they hold).
        hands: DexYCB only: ``"right"`` (default; left-hand sequences skipped)
            or ``"mirror"`` (left hands mirrored into right ones: the whole split,
            as the DexYCB toolkit's result files need).
        deoccluded: synthetic data only: each sample also holds ``deoccluded_image``, the
            scene rendered without its object (UniHOPE's de-occluded twin); the real datasets have none.
        deoccluded_root: DexYCB / HO3D only: the folder of the frames' de-occluded twins
            (:mod:`hoimask.data.deoccluded`); every sample then holds ``deoccluded_image`` and
            ``has_deoccluded``, and the dataset's ``deoccluded.count`` says how many frames have a twin.
        crop_padding: synthetic data only: the margin factor (>= 1) of a crop around hand ∪ object,
            the framing of DexYCB / HO3D (1.3 there); ``None``: the whole rendered frame. The hand then
            covers about 1.5x more pixels at padding 1.3, and the pose models locate its joints better
            (docs/results.md §3, sixth round); the crop uses the ground-truth box, train and test alike,
            as the real datasets' evaluation crops do.

    Returns:
        The dataset.

    Raises:
        ValueRangeError: a real dataset without ``root`` / ``mano_dir``; ``deoccluded_root`` with
            another dataset than DexYCB or HO3D.

    Shape:
        Not applicable.
    """
    import hoimask.data as data
    from hoimask.engine.data import MemoryCache

    check_choice(name, DATASETS, name="name", fn="build_dataset")
    if deoccluded_root is not None and name not in ("dexycb", "ho3d"):
        raise ValueRangeError(f"build_dataset(): argument 'deoccluded_root' is for dataset 'dexycb' or 'ho3d', got "
                              f"{name!r}" + (" (synthetic scenes render their twins: deoccluded=True)"
                                             if name == "synthetic" else ""))
    if crop_padding is not None and name != "synthetic":
        raise ValueRangeError(f"build_dataset(): argument 'crop_padding' is for dataset 'synthetic', got {name!r} "
                              "(the real datasets are always cropped around hand ∪ object)")
    if name == "synthetic":
        render, crop = image_size, None
        if crop_padding is not None:
            crop_padding = check_in_range(crop_padding, name="crop_padding", low=1.0, fn="build_dataset")
            render, crop = synthetic_render_size(image_size, crop_padding), data.CenterCrop(image_size, padding=crop_padding)
        ds: Dataset = data.SyntheticHOI(
            num_samples, image_size=render, seed=seed if train else seed + 1_000_003,
            num_sdf_points=num_sdf_points, num_object_points=num_object_points, hand_only_prob=hand_only_prob,
            not_grasped_prob=min(0.1, 1.0 - hand_only_prob), deoccluded=deoccluded, transform=crop,
        )
    else:
        if root is None or mano_dir is None:
            raise ValueRangeError(
                f"build_dataset(): dataset {name!r} needs --data-root (the dataset) and --mano-dir "
                "(the folder with MANO_RIGHT.pkl)"
            )
        padding = 1.0 if name == "freihand" else 1.3  # FreiHAND: the frame is the hand's crop already
        crop = data.RandomCropResize(image_size, padding=padding) if train else data.CenterCrop(image_size, padding=padding)
        common = dict(mano_root=mano_dir, num_sdf_points=num_sdf_points, num_object_points=num_object_points,
                      transform=crop, seed=seed)
        if name == "dexycb":
            ds = data.DexYCB(root, setup="s0", split="train" if train else "test", hands=hands,
                             require_hand=require_hand, deoccluded_root=deoccluded_root, **common)
        elif name == "freihand":
            ds = data.FreiHAND(root, split="train" if train else "evaluation", **common)
        else:
            ds = data.HO3D(root, split="train" if train else "evaluation", deoccluded_root=deoccluded_root, **common)
    return MemoryCache(ds) if cache_in_memory else ds


def synthetic_render_size(image_size: int, crop_padding: float) -> int:
    """Side at which :func:`build_dataset` renders synthetic scenes that it crops with ``crop_padding``.

    A synthetic hand ∪ object box spans about half of the frame (median 0.50 of
    the side over 64 scenes), so a frame of ``ceil(2 * image_size / crop_padding)``
    px gives the median crop as many pixels as the model's input: the crop is
    rendered detail, not an upsampled frame.

    Example:
        >>> synthetic_render_size(128, 1.3)
        197
    """
    return math.ceil(2 * image_size / crop_padding)


def fit_constant_baselines(dataset: Dataset, *, max_samples: int = 2048, batch_size: int = 64, num_workers: int = 0):
    """:class:`hoimask.metrics.ConstantBaselines` fitted on the first ``max_samples`` samples of ``dataset``.

    ``examples/finetune.py`` stores the result in ``model.pt`` (from its
    training split); ``examples/evaluate.py`` evaluates the constants beside the model.

    Args:
        dataset: a hoimask dataset (samples with ``joints_3d`` and, optionally, object poses).
        max_samples: samples read (>= 1); the first ones, in order.
        batch_size: loader batch size.
        num_workers: ``DataLoader`` workers (samples that must be rendered or
            read are made in parallel; the result does not depend on it).

    Returns:
        The fitted :class:`~hoimask.metrics.ConstantBaselines`.
    """
    from torch.utils.data import DataLoader, Subset

    from hoimask._checks import check_int
    from hoimask.data import collate
    from hoimask.metrics import ConstantBaselines

    check_int(max_samples, name="max_samples", low=1, fn="fit_constant_baselines")
    check_int(num_workers, name="num_workers", low=0, fn="fit_constant_baselines")
    base = ConstantBaselines()
    subset = Subset(dataset, range(min(len(dataset), max_samples)))
    for batch in DataLoader(subset, batch_size=batch_size, shuffle=False, collate_fn=collate, num_workers=num_workers):
        base.update(batch["joints_3d"], batch.get("object_rotation"), batch.get("object_translation"),
                    batch.get("has_object"))
    return base
