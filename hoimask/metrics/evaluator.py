"""Dataset-level evaluator: accumulate batches, report MaskHOI Tables I-III and breakdowns.

:class:`Evaluator` takes, batch by batch, predicted and ground-truth joints
(and optionally MANO vertices and object poses with their model points), and
reports means over the dataset in millimetres (AUC, F-scores and ADD-0.5D in
percent), overall and per group: scene type (object in view or not), grasp
status (UniHOPE's hand-only / hand-object scenes), occlusion level (UniHOPE
Table 6); with UniHOPE's inputs also the object switcher's accuracy and
ADD-0.5D per object (:mod:`hoimask.metrics.unihope`). Batches without ground
truth (HO3D's hidden test set) only feed the CodaLab submission file.

Per-sample values are kept (a few floats per sample); PCK curves for the AUCs
are accumulated as per-threshold counts (:class:`PCKAccumulator`), so memory
does not grow with the number of vertices times samples.

Non-finite values (docs/conventions.md, "Non-finite values"): a NaN or
infinite *prediction* makes :meth:`Evaluator.update` raise ``ValueRangeError``
(naming the argument and the first offending index) and store nothing; a
non-finite *ground-truth* joint, vertex or object pose is unannotated: it is
left out of the means and counted (``excluded_*`` keys of :meth:`compute`, and
the first line of :meth:`format_tables`).

Objects left out by name (``exclude_objects``, e.g. HOISDF's HO3D protocol,
which skips ``019_pitcher_base``): a sample whose ``object_name`` is listed
feeds no object metric, as if its object pose were unannotated, and is counted
(``excluded_objects_by_name``, :attr:`Evaluator.excluded_object_counts`); its
hand metrics are unchanged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np
import torch

from hoimask._checks import (
    ValueRangeError,
    check_choice,
    check_in_range,
    check_positive,
    check_shape,
)
from hoimask.metrics._arrays import to_tensors
from hoimask.metrics._finite import check_prediction
from hoimask.metrics._hand_batch import hand_batch_metrics
from hoimask.metrics._object_batch import object_batch_metrics
from hoimask.metrics._object_names import (
    HOISDF_HO3D_EXCLUDED_OBJECTS,
    batch_object_names,
    check_exclude_objects,
    excluded_by_name,
)
from hoimask.metrics.auc import PCKAccumulator
from hoimask.metrics.hand import joint_index
from hoimask.metrics.nearest import DEFAULT_MAX_ELEMENTS
from hoimask.metrics.report import format_tables
from hoimask.metrics.submission import write_ho3d_submission
from hoimask.metrics.unihope import (
    GRASP_GROUPS,
    format_unihope_tables,
    grasp_labels,
    per_object_add,
    switcher_correct,
)

__all__ = ["Evaluator"]

_UNITS_TO_MM = {"m": 1000.0, "mm": 1.0}
_ALIGNMENTS = ("", "rr_", "pa_")  # absolute, root-relative, Procrustes-aligned


class Evaluator:
    """Accumulates predictions over a dataset and reports the benchmark metrics.

    Metric keys of :meth:`compute` (lengths in mm, ``*auc``/``f*``/``add_0.5d``
    in percent); the prefix ``rr_`` means root-relative, ``pa_`` Procrustes
    aligned, ``st_`` scale-translation aligned (HO3D):

    * joints: ``mje``, ``rr_mje``, ``pa_mje``, ``st_mje``, ``jauc``, ``rr_jauc``, ``pa_jauc``;
    * vertices: ``mme``, ``rr_mme`` (vertices minus the root joint), ``pa_mme``,
      ``vauc``, ``rr_vauc``, ``pa_vauc``, ``f5``, ``f15``, ``rr_f5`` ... ``pa_f15``
      (the F thresholds are configurable; keys use their values in mm);
    * objects: ``oce``, ``mce``, ``add_s``, ``ome``, ``add_0.5d`` (the latter
      only when diameters are given);
    * ``num_samples``; and the same keys prefixed ``"<group>/"`` for the groups
      ``hand_only``, ``hand_object`` (by ``hand_only``: an object in view or
      not), ``not_grasping``, ``grasping`` (by the ground-truth ``grasped``
      label: UniHOPE's hand-only / hand-object scenes) and
      ``occlusion_<lo>-<hi>`` (percent);
    * UniHOPE (:mod:`hoimask.metrics.unihope`): ``switcher_accuracy`` (percent,
      overall and per group; only when ``grasp_probability`` is fed),
      ``object_<name>/add_0.5d``, ``object_<name>/num_samples`` and
      ``add_0.5d_mean_over_objects`` (when ADD-0.5D and ``object_name`` are fed);
    * what was excluded because the ground truth was not finite (overall only):
      ``excluded_samples`` (samples without any finite ground-truth joint: no
      hand metric), ``excluded_joints`` (non-finite ground-truth joints, those
      of excluded samples included), ``excluded_vertices`` (when vertices were
      fed) and ``excluded_objects`` (samples with an object whose ground-truth
      pose is not finite; when object poses were fed). A sample whose root
      (wrist) is not annotated is also left out of the ``rr_*`` metrics, and
      one without the wrist or the middle MCP out of ``st_mje``;
    * ``excluded_objects_by_name`` (when ``exclude_objects`` is set and object
      poses were fed): samples with an object named in ``exclude_objects``,
      left out of every object metric (not counted in ``excluded_objects``);
      per name in :attr:`excluded_object_counts`.

    Args:
        units: units of every input, ``"m"`` (default) or ``"mm"``.
        f_thresholds_mm: F-score thresholds in mm (MaskHOI Table III: 5, 15).
        auc_max_mm: upper end of the AUC thresholds, from 0 (HO3D, DexYCB: 50 mm).
        auc_steps: number of AUC thresholds (official: 100).
        allow_reflection: Procrustes convention of ``pa_*`` (official HO3D/
            FreiHAND/DexYCB: ``True``; HOISDF: ``False``).
        add_s_direction: ``"gt_to_pred"`` (BOP ``adi``) or ``"pred_to_gt"`` (HOISDF).
        add_fraction: diameter fraction of ``add_0.5d`` (UniHOPE: 0.5).
        occlusion_bins: ascending edges in [0, 1]; bin ``i`` is
            ``[edge_i, edge_{i+1})``, the last one closed.
        root: root joint for ``rr_*`` metrics, by name or index.
        joint_order: order of the 21 joints fed in.
        keep_predictions: keep predicted joints/vertices for
            :meth:`write_ho3d_submission`.
        max_elements: memory bound of the nearest-neighbour searches.
        exclude_objects: object names whose samples feed no object metric
            (matched against :meth:`update`'s ``object_name``); HOISDF's HO3D
            protocol: :attr:`HOISDF_HO3D_EXCLUDED_OBJECTS`. Hand metrics are
            unaffected. Default: none.
    """

    #: HOISDF's HO3D evaluation leaves these objects out of the object metrics (``exclude_objects``).
    HOISDF_HO3D_EXCLUDED_OBJECTS: tuple[str, ...] = HOISDF_HO3D_EXCLUDED_OBJECTS

    def __init__(
        self,
        *,
        units: str = "m",
        f_thresholds_mm: tuple[float, ...] = (5.0, 15.0),
        auc_max_mm: float = 50.0,
        auc_steps: int = 100,
        allow_reflection: bool = True,
        add_s_direction: str = "gt_to_pred",
        add_fraction: float = 0.5,
        occlusion_bins: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0),
        root: int | str = "wrist",
        joint_order: str = "canonical",
        keep_predictions: bool = True,
        max_elements: int = DEFAULT_MAX_ELEMENTS,
        exclude_objects: Iterable[str] = (),
    ) -> None:
        check_choice(units, _UNITS_TO_MM, name="units")
        check_choice(add_s_direction, ("gt_to_pred", "pred_to_gt"), name="add_s_direction")
        edges = [float(e) for e in occlusion_bins]
        if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])) or edges[0] < 0 or edges[-1] > 1:
            raise ValueRangeError(
                f"Evaluator.__init__(): argument 'occlusion_bins' expected >= 2 strictly ascending "
                f"edges in [0, 1], got {tuple(occlusion_bins)}"
            )
        if not f_thresholds_mm or any(not (float(f) > 0) for f in f_thresholds_mm):
            raise ValueRangeError(
                f"Evaluator.__init__(): argument 'f_thresholds_mm' expected positive values, got {f_thresholds_mm}"
            )
        self.scale = _UNITS_TO_MM[units]
        self.f_thresholds_mm = tuple(float(f) for f in f_thresholds_mm)
        self.auc_max_mm = check_in_range(auc_max_mm, name="auc_max_mm", low=0.0, low_inclusive=False)
        if isinstance(auc_steps, bool) or not isinstance(auc_steps, int) or auc_steps < 2:
            raise ValueRangeError(f"Evaluator.__init__(): argument 'auc_steps' expected an int >= 2, got {auc_steps!r}")
        self.auc_steps = auc_steps
        self.allow_reflection = bool(allow_reflection)
        self.add_s_direction = add_s_direction
        self.add_fraction = check_in_range(add_fraction, name="add_fraction", low=0.0, low_inclusive=False)
        self.occlusion_bins = tuple(edges)
        self.root = joint_index(root, joint_order, num_joints=21)
        self.joint_order = joint_order
        self.keep_predictions = bool(keep_predictions)
        self.max_elements = int(check_positive(max_elements, name="max_elements"))
        self.exclude_objects = check_exclude_objects(exclude_objects, fn="Evaluator.__init__")
        self.reset()

    #: Conventions of each protocol (see docs/metrics.md, "Where the official codes disagree").
    PROTOCOLS: dict[str, dict[str, object]] = {
        "official": {"allow_reflection": True, "add_s_direction": "gt_to_pred"},  # HO3D/DexYCB/BOP
        "hoisdf": {"allow_reflection": False, "add_s_direction": "pred_to_gt"},  # HOISDF, MaskHOI tables
    }

    @classmethod
    def from_protocol(cls, protocol: str, **kwargs) -> Evaluator:
        """An evaluator with the Procrustes and ADD-S conventions of a protocol.

        Args:
            protocol: ``"official"`` (HO3D/FreiHAND/DexYCB ``align_w_scale`` with
                reflections, BOP ``adi``; the constructor's defaults) or
                ``"hoisdf"`` (proper-rotation Procrustes, ADD-S from predicted
                points, as HOISDF's ``main/test.py`` and so MaskHOI's DexYCB table).
            **kwargs: any other constructor argument.

        Returns:
            The configured :class:`Evaluator`.
        """
        check_choice(protocol, cls.PROTOCOLS, name="protocol", fn="Evaluator.from_protocol")
        clash = set(kwargs) & set(cls.PROTOCOLS[protocol])
        if clash:
            raise ValueRangeError(
                f"Evaluator.from_protocol(): {sorted(clash)} are set by the protocol {protocol!r}; "
                "use the constructor to choose them freely"
            )
        return cls(**cls.PROTOCOLS[protocol], **kwargs)

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self._values: dict[str, list[np.ndarray]] = defaultdict(list)  # key -> per-batch (B,) arrays
        self._groups: list[np.ndarray] = []  # per-batch (B, G) bool membership
        self._pck: dict[tuple[str, str], PCKAccumulator] = {}
        self._pending_values: dict[str, np.ndarray] = {}
        self._pending_pck: list[tuple[str, torch.Tensor, np.ndarray]] = []
        self._num = 0
        self._pred_joints: list[np.ndarray] = []
        self._pred_verts: list[np.ndarray | None] = []
        self._excluded: dict[str, int] = {}  # excluded_* key -> count (non-finite ground truth, excluded names)
        self._pending_excluded: dict[str, int] = {}
        self._excluded_names = dict.fromkeys(self.exclude_objects, 0)  # name -> samples left out by name
        self._pending_names: dict[str, int] = {}
        self._object_names: list[np.ndarray] = []  # per-batch (B,) object names ("" unnamed)
        self._pending_object_names: np.ndarray | None = None

    @property
    def excluded_object_counts(self) -> dict[str, int]:
        """Samples whose object metrics ``exclude_objects`` left out so far, per name (every name, 0 included)."""
        return dict(self._excluded_names)

    @property
    def group_names(self) -> list[str]:
        """Names of the breakdown groups, in report order."""
        e = self.occlusion_bins
        occ = [f"occlusion_{round(100 * a)}-{round(100 * b)}" for a, b in zip(e, e[1:])]
        return ["hand_only", "hand_object", *GRASP_GROUPS, *occ]

    def _membership(self, B: int, occlusion, hand_only, grasped: np.ndarray | None = None) -> np.ndarray:
        """(B, G) bool: which groups each sample belongs to (``grasped``: :func:`grasp_labels`)."""
        groups = np.zeros((B, len(self.group_names)), dtype=bool)
        if grasped is not None:
            groups[:, 2], groups[:, 3] = grasped == 0, grasped == 1  # NaN (unknown): neither
        if hand_only is not None:
            h = torch.as_tensor(hand_only, device="cpu")
            check_shape(h, "B", name="hand_only", dims={"B": B}, fn="Evaluator.update")
            h = h.numpy().astype(bool)
            groups[:, 0], groups[:, 1] = h, ~h
        if occlusion is not None:
            _, t = to_tensors("Evaluator.update", occlusion=occlusion)
            o = t["occlusion"].detach().cpu().double()
            check_shape(o, "B", name="occlusion", dims={"B": B}, fn="Evaluator.update")
            o = o.numpy()
            if not np.all(np.isfinite(o)) or o.min() < 0 or o.max() > 1:
                raise ValueRangeError(
                    f"Evaluator.update(): argument 'occlusion' expected ratios in [0, 1], got values in "
                    f"[{o.min():.4g}, {o.max():.4g}]"
                )
            e = self.occlusion_bins
            for i, (a, b) in enumerate(zip(e, e[1:])):
                last = i == len(e) - 2
                groups[:, 2 + len(GRASP_GROUPS) + i] = (o >= a) & ((o <= b) if last else (o < b))
        return groups

    def _add(self, key: str, values: torch.Tensor, B: int, valid: np.ndarray | None = None) -> None:
        out = np.full(B, np.nan)
        v = values.detach().cpu().double().numpy()
        if valid is None:
            out[:] = v
        else:
            out[valid] = v
        self._pending_values[key] = out

    def _commit(self, groups: np.ndarray | None, pred_entry) -> None:
        """Store a fully validated batch (nothing is stored if update() raised)."""
        if pred_entry is not None:
            self._pred_joints.append(pred_entry[0])
            self._pred_verts.append(pred_entry[1])
        if groups is None:
            return
        B = groups.shape[0]
        for key, n in self._pending_excluded.items():
            self._excluded[key] = self._excluded.get(key, 0) + n
        for name, n in self._pending_names.items():
            self._excluded_names[name] += n
        names = self._pending_object_names
        self._object_names.append(np.full(B, "", dtype=object) if names is None else names)
        for key in set(self._values) | set(self._pending_values):
            if key not in self._values and self._num:  # first batch with this metric
                self._values[key].append(np.full(self._num, np.nan))
            self._values[key].append(self._pending_values.get(key, np.full(B, np.nan)))
        for kind, errors, g in self._pending_pck:
            self._commit_pck(kind, errors, g)
        self._groups.append(groups)
        self._num += B

    def _commit_pck(self, kind: str, errors: torch.Tensor, groups: np.ndarray) -> None:
        K = errors.shape[1]
        for gi, g in enumerate(["all", *self.group_names]):
            sel = slice(None) if g == "all" else torch.from_numpy(groups[:, gi - 1]).to(errors.device)
            e = errors[sel]
            if e.shape[0] == 0:
                continue
            acc = self._pck.get((g, kind))
            if acc is None:
                acc = self._pck[(g, kind)] = PCKAccumulator(K, 0.0, self.auc_max_mm, self.auc_steps)
            acc.update(e)

    # ----------------------------------------------------------------- update
    @torch.no_grad()
    def update(
        self,
        pred_joints,
        gt_joints=None,
        *,
        pred_verts=None,
        gt_verts=None,
        pred_obj_R=None,
        pred_obj_t=None,
        gt_obj_R=None,
        gt_obj_t=None,
        obj_points=None,
        obj_diameter=None,
        occlusion=None,
        hand_only=None,
        object_name=None,
        grasped=None,
        grasp_probability=None,
    ) -> None:
        """Add one batch. Tensors or NumPy arrays, all in ``units``, OpenCV frame.

        Predictions must be finite; non-finite ground truth is excluded and
        counted (see the class docstring).

        Args:
            pred_joints: ``(B, 21, 3)`` predicted joints (``joint_order``).
            gt_joints: ``(B, 21, 3)`` ground truth, or ``None`` when unknown (the
                batch then feeds the object metrics if object ground truth is
                given, and the submission file); non-finite joints are unannotated.
            pred_verts: ``(B, V, 3)`` predicted MANO vertices (optional).
            gt_verts: ``(B, V, 3)`` ground-truth MANO vertices (optional);
                non-finite vertices are unannotated.
            pred_obj_R: ``(B, 3, 3)`` predicted object rotations (model -> camera).
            pred_obj_t: ``(B, 3)`` predicted object translations.
            gt_obj_R: ``(B, 3, 3)`` ground-truth object rotations (model -> camera).
            gt_obj_t: ``(B, 3)`` ground-truth object translations.
            obj_points: ``(P, 3)`` or ``(B, P, 3)`` object model points (mesh
                vertices), or a list of ``B`` arrays ``(P_i, 3)`` for objects with
                different point counts.
            obj_diameter: optional ``(B,)`` object diameters (for ``add_0.5d``).
            occlusion: optional ``(B,)`` hand occlusion ratios in [0, 1].
            hand_only: optional ``(B,)`` bools, ``True`` for scenes without an
                object; their object metrics are skipped.
            object_name: optional ``B`` object names (str; a batch's
                ``object_name``, ``""`` for an unnamed object). Required with
                object inputs when the evaluator has ``exclude_objects``:
                samples named there feed no object metric.
            grasped: optional ``B`` ground-truth grasp labels (a batch's
                ``grasped``; NaN or ``None`` where unknown): the groups
                ``grasping`` / ``not_grasping`` and the switcher's accuracy.
            grasp_probability: optional ``(B,)`` the object switcher's grasp
                probabilities (UniHOPE's prediction ``grasp_probability``),
                scored against ``grasped`` at 0.5 (``switcher_accuracy``).

        Raises:
            ValueRangeError: a prediction (joints, vertices, object pose), an
                object point or a diameter holds a NaN or infinity; the message
                names the argument and the index of the first one; or object
                inputs without ``object_name`` while ``exclude_objects`` is set.
                Nothing of the batch is stored.
            DTypeError, ShapeError: ``object_name`` is not a list of ``B`` str.

        Shape:
            see Args; ``B`` must agree across arguments.
        """
        _, t = to_tensors(
            "Evaluator.update", pred_joints=pred_joints, gt_joints=gt_joints,
            pred_verts=pred_verts, gt_verts=gt_verts,
        )  # fmt: skip
        dims = check_shape(t["pred_joints"], "B 21 3", name="pred_joints", fn="Evaluator.update")
        B = dims["B"]
        pj = t["pred_joints"]
        if t["pred_verts"] is not None:
            check_shape(t["pred_verts"], "B V 3", name="pred_verts", dims=dims, fn="Evaluator.update")
        check_prediction(pj, name="pred_joints", fn="Evaluator.update")
        check_prediction(t["pred_verts"], name="pred_verts", fn="Evaluator.update")
        names = batch_object_names(object_name, B, fn="Evaluator.update")
        labels = None if grasped is None else grasp_labels(grasped, B, fn="Evaluator.update")
        if grasp_probability is not None and labels is None:
            raise ValueRangeError("Evaluator.update(): argument 'grasp_probability' needs the ground-truth 'grasped' "
                                  "labels to be scored; pass the batch's 'grasped'")
        switcher = None if grasp_probability is None else switcher_correct(grasp_probability, labels,
                                                                            fn="Evaluator.update")
        objects_fed = any(x is not None for x in (pred_obj_R, pred_obj_t, gt_obj_R, gt_obj_t, obj_points))
        if self.exclude_objects and names is None and objects_fed:
            raise ValueRangeError(
                "Evaluator.update(): argument 'object_name' is required with object inputs when the evaluator "
                f"excludes objects (exclude_objects={self.exclude_objects}); pass the batch's 'object_name', "
                "or build the Evaluator without exclude_objects"
            )
        self._pending_values, self._pending_pck, self._pending_excluded = {}, [], {}
        self._pending_names = {}
        self._pending_object_names = None if names is None else np.array(names, dtype=object)
        if switcher is not None:
            self._pending_values["switcher_accuracy"] = switcher
        pred_entry = None
        if self.keep_predictions:
            metres = self.scale / 1000.0
            pv = t["pred_verts"]
            pred_entry = (
                (pj.detach().cpu().double() * metres).numpy().astype(np.float32),
                None if pv is None else (pv.detach().cpu().double() * metres).numpy().astype(np.float32),
            )
        if t["gt_joints"] is None:
            if t["gt_verts"] is not None:
                raise ValueRangeError("Evaluator.update(): 'gt_joints' is required when 'gt_verts' is given")
            if gt_obj_R is None and gt_obj_t is None:
                self._commit(None, pred_entry)  # predictions only (a hidden test set)
                return
            # object ground truth without hand ground truth (HO3D's evaluation split): object metrics only
            groups = self._membership(B, occlusion, hand_only, labels)
            self._update_object(
                pred_obj_R, pred_obj_t, gt_obj_R, gt_obj_t, obj_points, obj_diameter, hand_only, names, groups, B
            )
            self._commit(groups, pred_entry)
            return
        check_shape(t["gt_joints"], "B 21 3", name="gt_joints", dims=dims, fn="Evaluator.update")
        groups = self._membership(B, occlusion, hand_only, labels)
        s = self.scale
        pv, gv = t["pred_verts"], t["gt_verts"]
        if (pv is None) != (gv is None):
            raise ValueRangeError("Evaluator.update(): give both 'pred_verts' and 'gt_verts' or neither")
        if gv is not None:
            check_shape(gv, "B V 3", name="gt_verts", dims=dims, fn="Evaluator.update")
            pv, gv = pv.double() * s, gv.double() * s  # mm
        values, errors, excluded = hand_batch_metrics(
            pj.double() * s, t["gt_joints"].double() * s, pv, gv, root=self.root,
            joint_order=self.joint_order, allow_reflection=self.allow_reflection,
            f_thresholds_mm=self.f_thresholds_mm, max_elements=self.max_elements,
        )  # fmt: skip
        self._pending_excluded["excluded_joints"] = int(excluded["joints"].sum())
        self._pending_excluded["excluded_samples"] = int((excluded["joints"] == 21).sum())
        if "vertices" in excluded:
            self._pending_excluded["excluded_vertices"] = int(excluded["vertices"].sum())
        for key, v in values.items():
            self._add(key, v, B)
        for kind, e in errors.items():  # (B, K) errors in mm, fed to the PCK accumulators on commit
            self._pending_pck.append((kind, e, groups))
        self._update_object(
            pred_obj_R, pred_obj_t, gt_obj_R, gt_obj_t, obj_points, obj_diameter, hand_only, names, groups, B
        )
        self._commit(groups, pred_entry)

    def _update_object(self, R_p, t_p, R_g, t_g, points, diameter, hand_only, names, groups, B) -> None:
        if all(x is None for x in (R_p, t_p, R_g, t_g, points)):
            return
        valid = ~groups[:, 0] if hand_only is not None else np.ones(B, dtype=bool)
        if self.exclude_objects:  # update() made sure the names are given
            named, self._pending_names = excluded_by_name(names, self.exclude_objects, valid)
            self._pending_excluded["excluded_objects_by_name"] = int(named.sum())
            valid = valid & ~named  # left out as an unannotated object is: NaN, so out of every mean
        metrics = object_batch_metrics(
            R_p, t_p, R_g, t_g, points, diameter, valid, scale=self.scale,
            add_s_direction=self.add_s_direction, add_fraction=self.add_fraction,
            max_elements=self.max_elements,
        )  # fmt: skip
        self._pending_excluded["excluded_objects"] = int(torch.isnan(metrics["oce"]).sum())
        for key, vals in metrics.items():
            self._add(key, vals, B, valid)

    # ---------------------------------------------------------------- results
    def compute(self) -> dict[str, float]:
        """Dataset means (mm; AUC, F and ADD-0.5D in percent), overall and per group.

        Returns:
            A flat dictionary (see the class docstring for the keys). A metric
            with no valid sample in a group is left out.
        """
        out: dict[str, float] = {"num_samples": float(self._num)}
        if self._num == 0:
            return out
        out.update({key: float(n) for key, n in sorted(self._excluded.items())})
        groups = np.concatenate(self._groups)  # (S, G)
        values = {k: np.concatenate(v) for k, v in self._values.items()}
        for gi, g in enumerate(["all", *self.group_names]):
            sel = np.ones(self._num, dtype=bool) if g == "all" else groups[:, gi - 1]
            prefix = "" if g == "all" else f"{g}/"
            if g != "all":
                if not sel.any():
                    continue
                out[f"{prefix}num_samples"] = float(sel.sum())
            for key, v in values.items():
                v = v[sel]
                v = v[~np.isnan(v)]
                if v.size:
                    out[prefix + key] = float(v.mean())
            for (group, kind), acc in self._pck.items():
                res = acc.result() if group == g else None
                if res is not None:
                    out[prefix + kind] = float(res.auc) * 100.0
        not_grasping = groups[:, self.group_names.index(GRASP_GROUPS[0])]
        out.update(per_object_add(values.get("add_0.5d"), np.concatenate(self._object_names), not_grasping))
        return out

    def format_tables(self) -> str:
        """Plain-text tables in the layout of MaskHOI Tables I-III plus the breakdowns.

        Returns:
            The tables of :func:`hoimask.metrics.report.format_tables` and
            :func:`hoimask.metrics.unihope.format_unihope_tables` for :meth:`compute`; with
            ``exclude_objects``, the header also names the objects left out and their sample counts.
        """
        results = self.compute()
        text = "\n\n".join([format_tables(results, self.group_names, self.f_thresholds_mm),
                            *format_unihope_tables(results, self.f_thresholds_mm)])
        if "excluded_objects_by_name" not in results:
            return text
        counts = ", ".join(f"{name} ({n} sample{'' if n == 1 else 's'})" for name, n in self._excluded_names.items())
        head, sep, rest = text.partition("\n\n")  # the header paragraph, then the tables
        return f"{head}\nExcluded by name, no object metric (exclude_objects): {counts}{sep}{rest}"

    def write_ho3d_submission(self, path, *, expected_num_samples: int | None = None) -> str:
        """Write the HO3D CodaLab ``pred.json`` (or ``.zip``) of every prediction fed.

        Predictions are written in the order they were fed (it must be that of
        HO3D's ``evaluation.txt``), converted to metres, OpenGL axes and HO3D's
        joint order (see :func:`hoimask.metrics.write_ho3d_submission`).

        Args:
            path: output file; a ``.zip`` path gets a zip holding ``pred.json``.
            expected_num_samples: if given, the number of samples fed must equal it.

        Returns:
            The path written.

        Raises:
            ValueRangeError: predictions were not kept, or a batch had no vertices.
        """
        if not self.keep_predictions:
            raise ValueRangeError("Evaluator.write_ho3d_submission(): the evaluator was built with keep_predictions=False")
        if not self._pred_joints:
            raise ValueRangeError("Evaluator.write_ho3d_submission(): no predictions were fed")
        if any(v is None for v in self._pred_verts):
            raise ValueRangeError(
                "Evaluator.write_ho3d_submission(): the HO3D server needs vertices for every sample, "
                "but some batches were fed without 'pred_verts'"
            )
        joints = np.concatenate(self._pred_joints)
        verts = np.concatenate(self._pred_verts)  # type: ignore[arg-type]
        return write_ho3d_submission(
            path, joints, verts, joint_order=self.joint_order, expected_num_samples=expected_num_samples
        )

    def __repr__(self) -> str:
        return f"Evaluator(samples={self._num}, units_to_mm={self.scale:g}, allow_reflection={self.allow_reflection})"
