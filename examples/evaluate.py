#!/usr/bin/env python
"""Evaluate a fine-tuned pose model and print the tables of MaskHOI Tables I-III.

::

    python examples/evaluate.py --checkpoint runs/finetune-tiny/model.pt            # held-out synthetic scenes
    python examples/evaluate.py --checkpoint runs/finetune-tiny/model.pt --hand-only
    python examples/evaluate.py --checkpoint model.pt --dataset ho3d --data-root $HO3D_DIR --mano-dir mano/models

Runs :class:`hoimask.metrics.Evaluator` over the test split (synthetic: scenes
drawn with a seed disjoint from training; DexYCB: S0 test; HO3D: the
evaluation split, whose hidden ground truth only feeds the CodaLab submission
file ``pred.zip``). Beside the model it evaluates the trivial constant
predictors fitted on the training split (:class:`hoimask.metrics.ConstantBaselines`:
mean pose, joints at the wrist, mean object pose) on the same samples and
prints model / constant ratios, so a model that learned nothing shows at once.

``--root-depth ground-truth`` (the default) gives the model the ground-truth
wrist depth to lift its keypoints and object centre with, as HOISDF's
evaluation does (it lifts the object centre to the ground-truth hand-root
depth); the constants are then anchored at the ground-truth wrist (see
:class:`hoimask.metrics.ConstantBaselines`). ``--root-depth predicted`` scores
fully camera-frame predictions — absolute depth, which the synthetic scenes do
not show (docs/training.md).
Results are printed and written as JSON next to the checkpoint (``baselines``
and ``ratios`` beside the model's metrics), with two pictures in a folder
beside it (``--pictures DIR``; ``--no-pictures`` to skip): ``predictions.png``
(the first test images with the ground-truth and the predicted 2D skeleton and
object box) and ``error_by_occlusion.png`` (the model's and the constants'
errors per hand-occlusion level).

A hand-only model (``finetune.py --model handmim-head``, :class:`hoimask.models.HandMIMPoseModel`) predicts
no object pose: its object metrics are absent from the tables (``-``) and the JSON, not zeros, and the
constants are scored on the hand alone beside it.

A UniHOPE ``model.pt`` (``examples/train_unihope.py``, ``model_type = "unihope"``) is rebuilt with
:meth:`hoimask.models.UniHOPE.from_checkpoint_state` and predicts with the samples' object model points
(UniHOPE is template-based: the pose is solved from its 9 key points). Its switcher reports an object pose
only where it predicts a grasp; the other samples' object outputs are NaN, the library's "no value"
(docs/conventions.md, "Non-finite values"), so they feed no object metric — of the model nor of the
constants beside it — while their hand metrics count, and they are counted in the JSON
(``object_not_reported``: samples with an annotated object and no reported pose, and how many of them
are labelled grasping / not grasping) and printed. Every model's batches feed the Evaluator the samples'
``grasped`` labels (the ``grasping`` / ``not_grasping`` groups, UniHOPE Table 2) and the object diameter
of the sampled model points (``add_0.5d``, per object on DexYCB / HO3D; a sampled set's diameter is at
most the mesh's); a model with a switcher also its ``grasp_probability`` (``switcher_accuracy``).

UniHOPE's RoIs are cropped in the ground-truth boxes by default (``--boxes ground-truth``): the hand box
of the 2D joints (HO3D's evaluation split: the dataset's hand box) and the box of the projected object
box, each enlarged by the model's ``box_scale`` — what UniHOPE's and HFL-Net's released test code does
(their test loaders build both boxes from the annotations). ``--boxes predicted`` uses the model's own box
head instead (nothing from the annotations but the framing of the crop); the results JSON says which
(``boxes``). HOISDF always uses its ground-truth anchors; the other models take no boxes.

``--exclude-objects NAME [NAME ...]`` leaves those objects' samples out of the
object metrics (their hand metrics still count). The default is HOISDF's
choice: ``019_pitcher_base`` on ``--dataset ho3d`` (HOISDF's HO3D evaluation
skips it), nothing on DexYCB (HOISDF scores every object there) and on
synthetic scenes (they carry no object name); ``--exclude-objects`` with no
name, or ``--exclude-objects none``, excludes nothing. The objects left out and the number of samples they
affected are printed and stored in the JSON (``exclude_objects``: name ->
samples; ``excluded_objects_by_name``: their total).
"""

from __future__ import annotations

import os

from hoimask._omp import omp_wait_policy

# OpenMP waits passively when other jobs hold the CPUs as the script starts, and spins briefly before sleeping
# when they are idle (1.2x faster steps there): hoimask/_omp.py. Before torch loads.
os.environ.update(omp_wait_policy())

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from hoimask._checks import FileFormatError, ValueRangeError
from hoimask.data.dexycb import YCB_CLASSES
from hoimask.engine import atomic_write, load_checkpoint
from hoimask.engine.cli import check_data_flags, exit_with_usage_errors, mano_layer
from hoimask.engine.datasets import DATASETS, build_dataset, fit_constant_baselines
from hoimask.engine.flags import (
    HelpFormatter,
    errors_name_flag,
    errors_name_flags,
    existing_dir,
    existing_file,
    integer,
    output_file,
    output_folder,
)
from hoimask.metrics import (
    ConstantBaselines,
    Evaluator,
    baseline_ratios,
    format_baseline_table,
    point_set_diameter,
)
from hoimask.models import HOISDF, HandMIMPoseModel, HOISDFConfig, PoseRegressionModel, UniHOPE

#: Choices of ``--root-depth``.
ROOT_DEPTHS = ("ground-truth", "predicted")
#: Where UniHOPE's RoI boxes come from at evaluation (``--boxes``).
BOX_SOURCES = ("ground-truth", "predicted")
#: ``--exclude-objects`` value that excludes nothing.
NO_OBJECT = "none"
#: Datasets whose samples carry ``object_name`` (what ``--exclude-objects`` matches).
NAMED_DATASETS = ("dexycb", "ho3d")


def object_name(text: str) -> str:
    """An argparse ``type=`` for ``--exclude-objects``: a YCB object name (both DexYCB and HO3D use them) or ``none``."""
    if text != NO_OBJECT and text not in YCB_CLASSES.values():
        raise argparse.ArgumentTypeError(f"expected YCB object names such as 019_pitcher_base (or '{NO_OBJECT}'), "
                                         f"got {text!r}; the names: {', '.join(YCB_CLASSES.values())}")
    return text


def excluded_objects(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[str, ...]:
    """The objects ``--exclude-objects`` leaves out of the object metrics (default: HOISDF's choice per dataset)."""
    names = args.exclude_objects
    if names is None:
        return Evaluator.HOISDF_HO3D_EXCLUDED_OBJECTS if args.dataset == "ho3d" else ()
    if NO_OBJECT in names:
        if len(names) > 1:
            parser.error(f"argument --exclude-objects: '{NO_OBJECT}' excludes nothing and takes no other name, "
                         f"got {' '.join(names)}")
        return ()
    if names and args.dataset not in NAMED_DATASETS:
        parser.error(f"argument --exclude-objects: --dataset {args.dataset} samples carry no object names; "
                     f"only with --dataset {' or '.join(NAMED_DATASETS)}")
    return tuple(dict.fromkeys(names))


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags (``--help`` documents each; values are checked as they are parsed)."""
    p = argparse.ArgumentParser(description="Evaluate a fine-tuned hand-object pose model.",
                                formatter_class=HelpFormatter)
    p.add_argument("--checkpoint", type=existing_file, required=True,
                   help="model.pt written by examples/finetune.py or examples/train_unihope.py")
    p.add_argument("--dataset", choices=DATASETS, default="synthetic", help="test data")
    p.add_argument("--data-root", type=existing_dir, help="DexYCB or HO3D root directory")
    p.add_argument("--mano-dir", type=existing_dir, help="folder with MANO_RIGHT.pkl (real data)")
    p.add_argument("--num-samples", type=integer(low=1), default=512,
                   help="synthetic test scenes (at 512 the root-relative MJE of a tiny model has a standard "
                        "error of ~1 mm, at 64 of ~3 mm: docs/training.md)")
    p.add_argument("--hand-only", action="store_true", help="synthetic: hand-only scenes (no object)")
    p.add_argument("--seed", type=integer(low=0), default=0,
                   help="synthetic: seed of the training split (the test split differs)")
    p.add_argument("--protocol", choices=("hoisdf", "official"), default="hoisdf",
                   help="Procrustes/ADD-S conventions: 'hoisdf' (MaskHOI's tables) or 'official' (HO3D/DexYCB/BOP code)")
    p.add_argument("--root-depth", choices=ROOT_DEPTHS, default="ground-truth",
                   help="wrist depth that lifts the keypoints and the object centre: the ground truth (HOISDF's "
                        "anchor; the constants then sit at the true wrist) or the model's own estimate")
    p.add_argument("--boxes", choices=BOX_SOURCES,
                   help="UniHOPE only: RoI boxes from the annotations (UniHOPE's and HFL-Net's test protocol) or "
                        "from the model's box head (default: ground-truth)")
    p.add_argument("--exclude-objects", nargs="*", type=object_name, metavar="NAME",
                   help="objects (YCB names) whose samples feed no object metric; their hand metrics still count "
                        "(default: HOISDF's choice, 019_pitcher_base with --dataset ho3d, none otherwise; no NAME "
                        f"or '{NO_OBJECT}': exclude nothing)")
    p.add_argument("--batch-size", type=integer(low=1), default=16, help="evaluation batch size")
    p.add_argument("--output", type=output_file, help="results JSON (default: eval-<dataset>.json beside the checkpoint)")
    p.add_argument("--submission", type=output_file,
                   help="HO3D: CodaLab file to write (default: pred.zip beside the checkpoint)")
    pictures = p.add_mutually_exclusive_group()
    pictures.add_argument("--pictures", type=output_folder, metavar="DIR",
                          help="folder for predictions.png (a few test images, ground-truth vs predicted 2D skeleton "
                               "and object box) and error_by_occlusion.png (model vs constants per occlusion level) "
                               "(default: <results JSON without .json>-pictures/, beside the JSON)")
    pictures.add_argument("--no-pictures", action="store_true", help="write no pictures")
    p.add_argument("--dexycb-results", type=output_folder, metavar="DIR",
                   help="DexYCB: also write the toolkit's result files into DIR (hpe_s0_test.txt, bop_s0_test.csv; "
                        "left hands mirrored in and back) and print the official commands that score them")
    p.add_argument("--baseline-samples", type=integer(low=1), default=2048,
                   help="training samples to fit the constant baselines on when the checkpoint has none stored")
    p.add_argument("--device", choices=("cpu", "cuda"), help="where to evaluate (default: cuda when available)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check the flags; a bad value exits with a usage error naming the flag (status 2)."""
    p = build_parser()
    args = p.parse_args(argv)
    check_data_flags(p, args)
    if args.dexycb_results is not None and args.dataset != "dexycb":
        p.error(f"argument --dexycb-results: only with --dataset dexycb (got --dataset {args.dataset})")
    args.exclude_objects_default = args.exclude_objects is None
    args.exclude_objects = excluded_objects(p, args)
    return args


def load_model(path: Path, *, hand_layer=None,
               device: torch.device | str = "cpu") -> PoseRegressionModel | HOISDF | HandMIMPoseModel | UniHOPE:
    """Rebuild the model of a ``model.pt`` written by ``finetune.py`` or ``train_unihope.py``."""
    return _load(path, hand_layer=hand_layer, device=device)[0]


def _load(path: Path, *, hand_layer=None, device: torch.device | str = "cpu"):
    state = load_checkpoint(path, map_location=device)
    kind = state.get("model_type", "pose")  # files written before HOISDF existed hold a pose model
    config_key = {"hoisdf": "hoisdf_config", "unihope": "unihope_config"}.get(kind, "encoder_config")
    for key in ("model", config_key):
        if key not in state:
            raise FileFormatError(
                f"load_model(): {str(path)!r} lacks the '{key}' entry; expected a model.pt written by examples/finetune.py "
                "or examples/train_unihope.py"
            )
    try:
        if kind == "hoisdf":
            config = {k: tuple(v) if isinstance(v, list) else v for k, v in state["hoisdf_config"].items()}
            model = HOISDF(HOISDFConfig(**config), hand_layer=hand_layer)
        elif kind == "unihope":
            model = UniHOPE.from_checkpoint_state(state, hand_layer=hand_layer)
        elif kind == "handmim-head":
            # files written before the keypoint start (init="keypoints") existed hold the paper's pooled start,
            # those written before lift_depth existed were trained lifting at the loop's own wrist depth
            head = {"init": "pooled", "lift_depth": "predicted", **state.get("head_config", {})}
            model = HandMIMPoseModel(**state["encoder_config"], **head, hand_layer=hand_layer)
        else:
            # files written before the dense maps / the deeper stem existed hold a model without them
            model = PoseRegressionModel(**{"dense_maps": False, "stem_depth": 1, **state["encoder_config"]},
                                        hand_layer=hand_layer)
        model.load_state_dict(state["model"])
    except FileFormatError:  # UniHOPE.from_checkpoint_state says what it could not rebuild
        raise
    except (TypeError, ValueError, KeyError, RuntimeError) as err:  # a config or weights of another version
        raise FileFormatError(f"load_model(): {str(path)!r} holds a {kind} model this hoimask cannot rebuild: "
                              f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
                              ) from err
    baselines = state.get("baselines")
    baselines = None if baselines is None else ConstantBaselines.from_state_dict(baselines)
    return model.to(device).eval(), baselines, state.get("crop_padding")  # files before the crop hold none


def ground_truth_vertices(hand_layer, batch: dict) -> torch.Tensor | None:
    """Ground-truth vertices from the hand parameters, placed at the ground-truth wrist (``None`` without them)."""
    pose, shape, joints = batch.get("hand_pose"), batch.get("hand_shape"), batch.get("joints_3d")
    if pose is None or shape is None or joints is None or not torch.isfinite(joints).all():
        return None
    out = hand_layer(pose, shape, shape.new_zeros(shape.shape[0], 3))
    return out.vertices - out.joints[:, :1] + joints[:, :1]


@torch.no_grad()
def predict_hoisdf(model: HOISDF, batch: dict) -> dict:
    """HOISDF's predictions with its evaluation anchors: the ground-truth hand root, the 2D joints' box ×1.1 (or the
    dataset's hand box, e.g. HO3D's) and the projected object's box, whose centre at the root depth is the
    object field's centre (HOISDF's ``obj_center_cam``)."""
    from hoimask.models._batch import default_intrinsics
    from hoimask.models.hoisdf_sampling import batch_anchors

    image = batch["image"]
    B, _, H, W = image.shape
    K = batch.get("K")
    K = default_intrinsics(B, (H, W), like=image) if K is None else K
    joints = batch.get("joints_3d")
    if joints is None or not torch.isfinite(joints[:, 0]).all():
        raise ValueRangeError("evaluate: HOISDF needs the ground-truth hand root (batch['joints_3d'][:, 0]) of every "
                              "test sample; this split does not provide it")
    j2d = batch.get("joints_2d")
    if (j2d is None or not torch.isfinite(j2d).all()) and batch.get("box") is not None:
        batch = {**batch, "hand_box": batch["box"].float()}  # HO3D's evaluation split: the dataset's hand box
    root, center, (h_box, o_box), _ = batch_anchors(batch, K, (H, W), hand_box_scale=model.config.hand_box_scale,
                                                    fn="evaluate")
    return model.predict(image, K, root, center, h_box, o_box)


def unihope_boxes(model: UniHOPE, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, 4)`` hand and object RoI boxes (pixels) from the annotations, as UniHOPE's test loader builds them:
    the 2D joints' box (else the dataset's hand box, HO3D's evaluation split) and the projected object box,
    each enlarged by ``model.config.box_scale``; the whole image where neither is annotated."""
    from hoimask.models._batch import default_intrinsics
    from hoimask.models.unihope_targets import ground_truth_boxes

    image = batch["image"]
    B, _, H, W = image.shape
    K = batch.get("K")
    K = default_intrinsics(B, (H, W), like=image) if K is None else K.to(image.dtype)
    hand_box, object_box, _ = ground_truth_boxes(batch, K, (H, W), model.config.box_scale)
    return hand_box, object_box


@torch.no_grad()
def predict_batch(model, batch: dict, root_depth: torch.Tensor | None = None, boxes: str = "predicted") -> dict:
    """The model's predictions for a batch: HOISDF with its anchors (:func:`predict_hoisdf`), UniHOPE with the
    samples' object model points (its template; NaN object rows where its switcher reports no grasp) and its RoIs
    in the ground-truth boxes (``boxes="ground-truth"``, :func:`unihope_boxes`) or its box head's, the others
    from the image; ``root_depth`` ``(B,)`` places the wrist (``None``: the model's own depth)."""
    if boxes not in BOX_SOURCES:
        raise ValueRangeError(f"predict_batch(): argument 'boxes' expected one of {BOX_SOURCES}, got {boxes!r}")
    if isinstance(model, HOISDF):
        return predict_hoisdf(model, batch)
    if isinstance(model, UniHOPE):
        points = batch.get("object_points")
        usable = isinstance(points, torch.Tensor) and bool(torch.isfinite(points).all())
        hand_box, object_box = unihope_boxes(model, batch) if boxes == "ground-truth" else (None, None)
        return model.predict(batch["image"], batch.get("K"), root_depth=root_depth,
                             object_points=points if usable else None, hand_box=hand_box, object_box=object_box)
    return model.predict(batch["image"], batch.get("K"), root_depth=root_depth)


def object_posed(pred: dict) -> torch.Tensor | None:
    """``(B,)`` bool: the samples with a finite predicted object pose (``None``: the model predicts no object);
    UniHOPE's samples whose switcher reports no grasp (NaN outputs) are False."""
    if "object_rotation" not in pred:
        return None
    R, t = pred["object_rotation"], pred["object_translation"]
    return torch.isfinite(R).flatten(1).all(dim=1) & torch.isfinite(t).all(dim=1)


def runs(mask: torch.Tensor) -> list[tuple[int, int, bool]]:
    """The maximal runs of equal values of a ``(B,)`` bool mask, in order: ``(start, stop, value)``."""
    values = mask.tolist()
    out, start = [], 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[start]:
            out.append((start, i, bool(values[start])))
            start = i
    return out


def rows(value, start: int, stop: int):
    """``value[start:stop]`` for a batch entry (tensor or list); ``None`` stays ``None``."""
    return None if value is None else value[start:stop]


def object_diameters(batch: dict) -> torch.Tensor | None:
    """``(B,)`` diameters of the samples' model points (the BOP diameter of the sampled set), or ``None``
    when the batch has no finite ``object_points``."""
    points = batch.get("object_points")
    if not isinstance(points, torch.Tensor) or points.dim() != 3 or not bool(torch.isfinite(points).all()):
        return None
    return point_set_diameter(points.double())


@torch.no_grad()
def evaluate(model: PoseRegressionModel, dataset, *, batch_size: int = 16, protocol: str = "hoisdf",
             device: torch.device | str = "cpu", baselines: ConstantBaselines | None = None,
             root_depth: str = "predicted", collect: dict[str, list] | None = None,
             exclude_objects: tuple[str, ...] = (), not_reported: dict[str, int] | None = None,
             boxes: str = "predicted"):
    """Run the model over ``dataset`` and return the filled :class:`hoimask.metrics.Evaluator`.

    With ``baselines``, returns ``(evaluator, {name: evaluator})``: the constant
    predictors evaluated on the same samples. ``root_depth`` is ``"predicted"``
    or ``"ground-truth"`` (see the module docstring); samples without
    ground-truth joints always use the prediction. With ``collect`` (a dict),
    appends each batch's predicted ``joints``, ``object_rotation`` and
    ``object_translation`` (float64, CPU) to its lists, in dataset order.
    ``exclude_objects`` (object names) leaves those samples out of the object
    metrics of the model and of the constants (``Evaluator(exclude_objects=)``;
    the samples must carry ``object_name``).

    Every batch's ``grasped`` labels go to the Evaluator (groups ``grasping`` /
    ``not_grasping``), with a switcher's ``grasp_probability`` where the model
    predicts one and the model points' diameters (``add_0.5d``). Samples whose
    object pose the model does not report (UniHOPE's switcher: NaN rows) feed no
    object metric, neither the model's nor the constants'; with ``not_reported``
    (a dict), counts them: ``samples`` (with an annotated object), ``grasping``
    and ``not_grasping`` (by their label). ``boxes`` (UniHOPE): ``"ground-truth"``
    RoIs (its released test protocol) or ``"predicted"`` (its box head's).
    """
    if root_depth not in ROOT_DEPTHS:
        raise ValueRangeError(f"evaluate(): argument 'root_depth' expected one of {ROOT_DEPTHS}, got {root_depth!r}")
    if isinstance(model, HOISDF) and root_depth != "ground-truth":
        raise ValueRangeError("evaluate(): HOISDF is evaluated at the ground-truth hand root (its fields are centred "
                              f"there); argument 'root_depth' must be 'ground-truth', got {root_depth!r}")
    from hoimask.data import collate
    from hoimask.engine import to_device

    evaluator = Evaluator.from_protocol(protocol, exclude_objects=exclude_objects)
    constants = {} if baselines is None else {
        name: Evaluator.from_protocol(protocol, keep_predictions=False, exclude_objects=exclude_objects)
        for name in baselines.NAMES
    }
    hand_layer = model.hand_layer if isinstance(model, (HOISDF, HandMIMPoseModel, UniHOPE)) else model.hand_loss.hand_layer
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    for batch in loader:
        batch = to_device(batch, torch.device(device))
        gt_joints = batch.get("joints_3d")
        if gt_joints is not None and not torch.isfinite(gt_joints).all():
            gt_joints = None  # hidden test set: predictions only feed the submission file
        anchor = gt_joints[:, 0] if gt_joints is not None and root_depth == "ground-truth" else None
        pred = predict_batch(model, batch, None if anchor is None else anchor[:, 2], boxes=boxes)
        if collect is not None:
            for key in ("joints", "object_rotation", "object_translation"):
                if key in pred:  # a hand-only model (HandMIMPoseModel) predicts no object pose
                    collect.setdefault(key, []).append(pred[key].detach().to("cpu", torch.float64))
        B = pred["joints"].shape[0]
        posed = object_posed(pred)
        if not_reported is not None and posed is not None:
            _count_not_reported(not_reported, batch, posed)
        has_object = batch.get("has_object")
        grasped = batch.get("grasped")
        truth = dict(occlusion=batch.get("occlusion_ratio"), hand_only=None if has_object is None else ~has_object.bool(),
                     grasped=grasped)
        switch = {} if grasped is None or "grasp_probability" not in pred else {
            "grasp_probability": pred["grasp_probability"]}
        objects, object_truth = {}, {}
        if posed is not None:  # without object predictions the object metrics are absent (not zeros)
            objects = dict(pred_obj_R=pred["object_rotation"], pred_obj_t=pred["object_translation"])
            object_truth = dict(gt_obj_R=batch.get("object_rotation"), gt_obj_t=batch.get("object_translation"),
                                obj_points=batch.get("object_points"), object_name=batch.get("object_name"),
                                obj_diameter=object_diameters(batch))
        # consecutive samples with / without a reported object pose: the evaluator sees them in dataset order
        for start, stop, with_object in runs(posed) if posed is not None else [(0, B, False)]:
            part = {k: rows(v, start, stop) for k, v in {**truth, **switch}.items()}
            part_objects = {k: rows(v, start, stop) for k, v in {**objects, **object_truth}.items()} \
                if with_object else {}
            joints, verts = pred["joints"][start:stop], pred["vertices"][start:stop]
            if gt_joints is None:
                # hidden hand ground truth (HO3D's evaluation split): the object poses, where known, are still scored
                gt_R, gt_t = part_objects.get("gt_obj_R"), part_objects.get("gt_obj_t")
                known = gt_R is not None and gt_t is not None and bool(torch.isfinite(gt_t).any())
                evaluator.update(joints, None, pred_verts=verts, **({**part_objects, **part} if known else {}))
                continue
            evaluator.update(joints, gt_joints[start:stop], pred_verts=verts,
                             gt_verts=rows(ground_truth_vertices(hand_layer, batch), start, stop),
                             **part_objects, **part)
            if constants:
                fixed = baselines.predict(stop - start, dtype=gt_joints.dtype, device=device,
                                          root=rows(anchor, start, stop))
                for name, const in fixed.items():
                    # the constants are scored on what the model is scored on: no object metric where it has none
                    scored = with_object and "object_rotation" in const and part_objects.get("gt_obj_R") is not None
                    constants[name].update(
                        const["joints"], gt_joints[start:stop],
                        pred_obj_R=const.get("object_rotation") if scored else None,
                        pred_obj_t=const.get("object_translation") if scored else None,
                        **({k: v for k, v in part_objects.items() if not k.startswith("pred_")} if scored else {}),
                        **{k: part[k] for k in ("occlusion", "hand_only", "grasped")},
                    )
    return evaluator if baselines is None else (evaluator, constants)


def _count_not_reported(counts: dict[str, int], batch: dict, posed: torch.Tensor) -> None:
    """Add the batch's samples with an annotated object pose but none predicted to ``counts``, by grasp label."""
    t = batch.get("object_translation")
    if t is None:
        return
    missing = ~posed & torch.isfinite(t).all(dim=1)
    has_object = batch.get("has_object")
    if has_object is not None:
        missing &= has_object.bool()
    grasped = batch.get("grasped")
    counts["samples"] = counts.get("samples", 0) + int(missing.sum())
    if grasped is not None:
        from hoimask.metrics.unihope import grasp_labels

        g = torch.from_numpy(grasp_labels(grasped, len(posed), fn="evaluate")).to(missing.device)  # 1, 0 or NaN
        counts["grasping"] = counts.get("grasping", 0) + int((missing & (g == 1)).sum())
        counts["not_grasping"] = counts.get("not_grasping", 0) + int((missing & (g == 0)).sum())


#: Test samples drawn in predictions.png (the first ones of the split).
PICTURE_SAMPLES = 4


@torch.no_grad()
def prediction_picture(model: PoseRegressionModel | HOISDF, dataset, *, count: int = PICTURE_SAMPLES,
                       root_depth: str = "ground-truth", device: torch.device | str = "cpu", boxes: str = "predicted",
                       title: str | None = None) -> torch.Tensor:
    """``(H, W, 3)`` uint8: the first ``count`` samples of ``dataset`` (rows), with the ground-truth and the
    predicted 2D skeleton and object box side by side and overlaid (columns), titled, with a legend.

    The predicted 3D joints and object pose are projected with the sample's ``K``; the object box is the box of
    its projected model points (``object_points``), drawn for samples with an object. Row titles give the hand
    occlusion and the sample's root-relative joint error and object centre error (mm).
    """
    from hoimask.data import collate
    from hoimask.engine import to_device
    from hoimask.engine.figures import (
        GROUND_TRUTH_COLOUR,
        PREDICTED_COLOUR,
        draw_box,
        draw_skeleton,
        enlarge,
        label_grid,
        picture_from_image,
        points_box,
    )
    from hoimask.geometry import project
    from hoimask.models._batch import default_intrinsics

    samples = [dataset[i] for i in range(min(count, len(dataset)))]
    batch = to_device(collate(samples), torch.device(device))
    B, _, H, W = batch["image"].shape
    K = batch.get("K")
    K = default_intrinsics(B, (H, W), like=batch["image"]) if K is None else K
    gt = batch.get("joints_3d")
    known = gt is not None and bool(torch.isfinite(gt).all())
    pred = predict_batch(model, batch, gt[:, 0, 2] if known and root_depth == "ground-truth" else None, boxes=boxes)
    pred_uv = project(pred["joints"].float(), K.float())  # (B, 21, 2) px
    gt_uv = batch.get("joints_2d")
    if gt_uv is None and known:
        gt_uv = project(gt.float(), K.float())
    points = batch.get("object_points")
    has_object = batch.get("has_object")
    posed = points is not None and has_object is not None and "object_rotation" in batch and "object_translation" in batch
    with_object = has_object.bool() if posed else torch.zeros(B, dtype=torch.bool, device=K.device)

    def box(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # (B, 3, 3), (B, 3) -> (B, 4) px
        return points_box(project(points.float() @ R.float().transpose(-1, -2) + t.float()[:, None], K.float()))

    gt_box = box(batch["object_rotation"], batch["object_translation"]) if with_object.any() else None
    predicts_objects = "object_rotation" in pred  # a hand-only model (HandMIMPoseModel) draws no object box
    pred_box = box(pred["object_rotation"], pred["object_translation"]) if with_object.any() and predicts_objects \
        else None
    factor = max(1, 256 // max(H, W))  # small test images are enlarged so the skeletons stay readable
    images = picture_from_image(batch["image"])  # (B, H, W, 3)
    rows, titles = [], []
    for b in range(B):
        base = enlarge(images[b], factor)
        truth, guess = base, base
        if gt_uv is not None:
            truth = draw_skeleton(truth, gt_uv[b].cpu() * factor, colour=GROUND_TRUTH_COLOUR)
        guess = draw_skeleton(guess, pred_uv[b].cpu() * factor, colour=PREDICTED_COLOUR)
        both = draw_skeleton(truth, pred_uv[b].cpu() * factor, colour=PREDICTED_COLOUR)
        if with_object[b]:
            truth = draw_box(truth, gt_box[b].cpu() * factor, colour=GROUND_TRUTH_COLOUR)
            both = draw_box(both, gt_box[b].cpu() * factor, colour=GROUND_TRUTH_COLOUR)
            if pred_box is not None and bool(torch.isfinite(pred_box[b]).all()):  # UniHOPE: none where not reported
                guess = draw_box(guess, pred_box[b].cpu() * factor, colour=PREDICTED_COLOUR)
                both = draw_box(both, pred_box[b].cpu() * factor, colour=PREDICTED_COLOUR)
        rows.append([truth, guess, both])
        lines = [f"test sample {b}"]
        occlusion = batch.get("occlusion_ratio")
        if occlusion is not None and torch.isfinite(occlusion[b]):
            lines.append(f"hand occlusion {100 * float(occlusion[b]):.0f} %")
        if known:
            rel = (pred["joints"][b] - pred["joints"][b, :1]) - (gt[b] - gt[b, :1])
            lines.append(f"joint error {1000 * float(rel.norm(dim=-1).mean()):.0f} mm")
            if with_object[b] and predicts_objects and bool(torch.isfinite(pred["object_translation"][b]).all()):
                centre = (pred["object_translation"][b] - batch["object_translation"][b]).norm()
                lines.append(f"object centre error {1000 * float(centre):.0f} mm")
        else:
            lines.append("no ground truth")
        titles.append("\n".join(lines))
    legend = [("ground-truth hand skeleton", GROUND_TRUTH_COLOUR, "skeleton"),
              ("ground-truth object box", GROUND_TRUTH_COLOUR, "box"),
              ("predicted hand skeleton", PREDICTED_COLOUR, "skeleton"),
              *([("predicted object box", PREDICTED_COLOUR, "box")] if predicts_objects else [])]
    return label_grid(rows, row_titles=titles, column_titles=["ground truth", "prediction", "both"], title=title,
                      legend=legend, row_title_width=180)


def write_pictures(folder: Path, *, model, dataset, results: dict, root_depth: str, device, label: str,
                   boxes: str = "predicted") -> list[Path]:
    """Write ``predictions.png`` and (when the results hold per-occlusion numbers) ``error_by_occlusion.png``
    into ``folder``; returns the paths written."""
    from hoimask.engine.figures import error_by_occlusion, save_figure

    joint_error = "joint error = root-relative mean joint error" if results.get("num_samples") else "no ground truth"
    written = [save_figure(folder / "predictions.png", prediction_picture(
        model, dataset, root_depth=root_depth, device=device, boxes=boxes,
        title=f"{label}: the first {min(PICTURE_SAMPLES, len(dataset))} samples (wrist depth: {root_depth}; "
              f"{joint_error})"))]
    try:
        chart = error_by_occlusion(results, results.get("baselines"),
                                   title=f"{label}: error per hand-occlusion level, model vs constant predictors")
    except ValueRangeError:  # no ground truth (HO3D's evaluation split): nothing to break down
        return written
    written.append(save_figure(folder / "error_by_occlusion.png", chart))
    return written


def write_dexycb_results(folder: Path, dataset, collected: dict[str, list]) -> list[str]:
    """The DexYCB toolkit's HPE and BOP result files of the collected predictions; returns lines to print."""
    from hoimask.data.dexycb_ids import dexycb_toolkit_ids
    from hoimask.metrics import write_dexycb_bop_results, write_dexycb_hpe_results

    ids = dexycb_toolkit_ids(dataset)
    joints = torch.cat(collected["joints"]).numpy()
    hpe = write_dexycb_hpe_results(folder / "hpe_s0_test.txt", ids["image_id"], joints, mirrored=ids["mirrored"])
    if "object_rotation" not in collected:  # a hand-only model: no BOP file
        return [f"DexYCB toolkit file: {hpe} (the model predicts no object pose: no BOP results); score it in a "
                "dex-ycb-toolkit checkout (docs/metrics.md) with",
                f"  python examples/evaluate_hpe.py --name s0_test --res_file {hpe}"]
    R, t = (torch.cat(collected[k]).numpy() for k in ("object_rotation", "object_translation"))
    reported = np.isfinite(R).all(axis=(1, 2)) & np.isfinite(t).all(axis=1)  # UniHOPE: NaN where no grasp is reported
    key = ids["is_bop_target"] & reported
    bop = write_dexycb_bop_results(folder / "bop_s0_test.csv", ids["scene_id"][key], ids["im_id"][key],
                                   ids["obj_id"][key], R[key], t[key], mirrored=ids["mirrored"][key])
    skipped = int((ids["is_bop_target"] & ~reported).sum())
    note = [f"  ({skipped} BOP target frame(s) without a reported object pose are not in {Path(bop).name})"] if skipped else []
    return [f"DexYCB toolkit files: {hpe}, {bop}; score them in a dex-ycb-toolkit checkout (docs/metrics.md) with",
            *note,
            f"  python examples/evaluate_hpe.py --name s0_test --res_file {hpe}",
            f"  python examples/evaluate_bop.py --name s0_test --res_file {bop}",
            "  (the same numbers as this evaluation with --protocol official)"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with errors_name_flags(build_parser()):  # errors name the flag the user typed
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    hand_layer = mano_layer(args.dataset, args.mano_dir)
    with errors_name_flag("--checkpoint"):  # missing, corrupt or not a finetune.py model.pt
        model, baselines, crop_padding = _load(args.checkpoint, hand_layer=hand_layer, device=device)
    if args.dataset != "synthetic":
        crop_padding = None  # the real datasets are always cropped around hand ∪ object
    image_size = model.config.img_size if isinstance(model, (HOISDF, UniHOPE)) else model.img_size
    if isinstance(model, HOISDF) and args.root_depth != "ground-truth":
        print(f"error: argument --root-depth: HOISDF is evaluated at the ground-truth hand root, got {args.root_depth!r}",
              file=sys.stderr)
        return 2
    if args.boxes is not None and not isinstance(model, UniHOPE):
        print(f"error: argument --boxes: only a UniHOPE model takes RoI boxes; {args.checkpoint} holds a "
              f"{type(model).__name__}", file=sys.stderr)
        return 2
    boxes = args.boxes or "ground-truth"
    with errors_name_flag("--data-root"):
        dataset = build_dataset(
            args.dataset, image_size=image_size, train=False, root=args.data_root, mano_dir=args.mano_dir,
            num_samples=args.num_samples, seed=args.seed, num_sdf_points=16 if args.dataset == "synthetic" else 0,
            num_object_points=256, hand_only_prob=1.0 if args.hand_only else 0.1,
            require_hand=True,  # DexYCB: the annotated test frames, as the toolkit's evaluation
            hands="mirror" if args.dexycb_results else "right",
            crop_padding=crop_padding,  # the framing the model was trained with (finetune.py --crop-padding)
        )
    if baselines is None and args.dataset != "ho3d":  # HO3D's evaluation split has no ground truth to compare
        print(f"fitting the constant baselines on {args.baseline_samples} training samples "
              "(the checkpoint stores none)")
        train = build_dataset(
            args.dataset, image_size=image_size, train=True, root=args.data_root, mano_dir=args.mano_dir,
            num_samples=args.baseline_samples, seed=args.seed, num_sdf_points=0, num_object_points=1,
            require_hand=True, crop_padding=crop_padding,
        )
        baselines = fit_constant_baselines(train, max_samples=args.baseline_samples)
    collected: dict[str, list] | None = {} if args.dexycb_results else None
    not_reported: dict[str, int] = {}
    out = evaluate(model, dataset, batch_size=args.batch_size, protocol=args.protocol, device=device,
                   baselines=baselines, root_depth=args.root_depth, collect=collected,
                   exclude_objects=args.exclude_objects, not_reported=not_reported, boxes=boxes)
    evaluator, constants = out if baselines is not None else (out, {})
    split = "hand-only" if args.hand_only else "test"
    framing = "" if crop_padding is None else f", cropped around hand ∪ object with padding {crop_padding:g}"
    rois = f", {boxes} RoI boxes" if isinstance(model, UniHOPE) else ""
    print(f"{args.checkpoint} on {args.dataset} ({split}, {len(dataset)} samples{framing}, protocol {args.protocol}, "
          f"{args.root_depth} wrist depth{rois})")
    results = evaluator.compute()
    results["crop_padding"] = crop_padding
    results["root_depth"] = args.root_depth
    results["exclude_objects"] = evaluator.excluded_object_counts  # name -> samples left out of the object metrics
    if args.exclude_objects:
        why = " (HOISDF's HO3D protocol; --exclude-objects none keeps them)" if args.exclude_objects_default else ""
        counts = ", ".join(f"{name}: {n} sample{'' if n == 1 else 's'}" for name, n in results["exclude_objects"].items())
        print(f"object metrics exclude {' '.join(args.exclude_objects)}{why}; affected: {counts}")
    if isinstance(model, UniHOPE):  # its switcher gates the object pose: the samples without one are counted
        results["boxes"] = boxes
        results["object_not_reported"] = {"samples": 0, **not_reported}
        labels = ", ".join(f"{not_reported[k]} labelled {k.replace('_', ' ')}" for k in ("grasping", "not_grasping")
                           if k in not_reported)
        print(f"object pose not reported (switcher: not grasping) for {results['object_not_reported']['samples']} "
              f"sample(s) with an object{f' ({labels})' if labels else ''}: no object metric for them")
    if results.get("num_samples"):
        print(evaluator.format_tables())
        consts = {name: ev.compute() for name, ev in constants.items()}
        if consts:
            print()
            print(format_baseline_table(results, consts))
            results["baselines"] = consts
            results["ratios"] = baseline_ratios(results, consts)
    output = args.output or args.checkpoint.with_name(f"eval-{args.dataset}{'-hand-only' if args.hand_only else ''}.json")
    with errors_name_flag("--output"):  # e.g. a folder that cannot be written
        atomic_write(output, json.dumps(results, indent=2, default=float) + "\n")
    print(f"results: {output}")
    if not args.no_pictures:
        folder = args.pictures or output.with_name(f"{output.stem}-pictures")
        label = f"{args.checkpoint.parent.name}/{args.checkpoint.name} on {args.dataset} {split}"
        for path in write_pictures(folder, model=model, dataset=dataset, results=results,
                                   root_depth=args.root_depth, device=device, label=label, boxes=boxes):
            print(f"picture: {path}")
    if collected is not None:
        with errors_name_flag("--dexycb-results"):
            for line in write_dexycb_results(args.dexycb_results, dataset, collected):
                print(line)
    if args.dataset == "ho3d":
        submission = args.submission or args.checkpoint.with_name("pred.zip")
        print(f"HO3D submission: {evaluator.write_ho3d_submission(submission)}")
    return 0


if __name__ == "__main__":
    sys.exit(exit_with_usage_errors(main))
