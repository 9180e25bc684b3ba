"""FreiHAND's official evaluation (``eval.py`` of lmb-freiburg/freihand), batched and accumulating.

For every sample, with ground-truth joints ``xyz`` ``(21, 3)`` and MANO
vertices ``verts`` ``(778, 3)``, ``eval.py`` measures

* the joint errors ``||p_j - g_j||`` unaligned and after ``align_w_scale(xyz,
  xyz_pred)`` (similarity Procrustes of the prediction onto the ground truth,
  SciPy ``orthogonal_procrustes``: reflections allowed);
* the vertex errors likewise, the mesh aligned with its *own* fit
  (``align_w_scale(verts, verts_pred)``) -- when the predicted mesh has as many
  vertices as MANO's (``shape_is_mano``);
* the F-scores at 5 and 15 mm (``calculate_fscore``) of the predicted mesh
  and of the aligned mesh against ``verts``.

and reports over the dataset (``EvalUtil.get_measures(0.0, 0.05, 100)``): the
mean error (the mean over keypoints of each keypoint's mean over samples),
the AUC of the PCK curve on ``linspace(0, 0.05, 100)`` (``error <= t``,
trapezoid, divided by the range, averaged over keypoints) for each of the four
error kinds, and the mean F-scores. :class:`FreiHANDEvaluator` accumulates
those numbers batch by batch under the names ``eval.py`` writes to
``scores.txt``; :func:`freihand_metrics` is the one-call form. The maths is
hoimask's: :func:`hoimask.metrics.pa_mpjpe`'s Procrustes
(:func:`~hoimask.metrics._finite.masked_procrustes_align`), the PCK counts of
:mod:`hoimask.metrics.auc` and the F-score of :mod:`hoimask.metrics.fscore`.

Differences from ``eval.py``, all deliberate:

* **Units.** Values come back in the input's units (metres in, metres out);
  ``scores.txt`` prints the mean errors in cm (``x 100``). The AUC range and
  the F thresholds are in the input's units too (defaults for metres).
* **No prediction mesh.** A prediction with a different vertex count than the
  ground truth is not a MANO mesh: ``eval.py`` then reports ``-1`` for the
  four mesh numbers (here NaN) and aligns the mesh for the aligned F-scores
  with the *joints'* fit through ``align_by_trafo``. That function is
  reproduced as written, including its quirk: the vertices are centred on
  their own mean but never divided by the joints' norm, so their scale is off
  by ``||xyz_pred - mean||`` (see ``docs/metrics.md``).
* **Procrustes normalisation.** ``align_w_scale`` divides each set by
  ``||.||_F + 1e-8``; hoimask fits the exact Umeyama transform, which differs
  by that ``1e-8`` only (agreement to 1e-6 is tested).
* **Non-finite values** (docs/conventions.md): a non-finite prediction raises;
  a non-finite ground-truth joint or vertex is unannotated and left out, as
  the keypoints ``EvalUtil.feed`` drops with its visibility mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from hoimask._checks import (
    ShapeError,
    ValueRangeError,
    check_in_range,
    check_int,
    check_positive,
    check_shape,
)
from hoimask.geometry import similarity_procrustes
from hoimask.metrics._arrays import ArrayLike, like_input, to_tensors
from hoimask.metrics._finite import annotated, check_prediction, masked_procrustes_align, sanitise
from hoimask.metrics.auc import PCKAccumulator, PCKResult
from hoimask.metrics.fscore import f_score_from_distances
from hoimask.metrics.nearest import DEFAULT_MAX_ELEMENTS, _nearest

__all__ = ["FREIHAND_ERROR_KINDS", "FreiHANDErrors", "FreiHANDEvaluator", "freihand_errors", "freihand_metrics"]

#: The four error kinds of ``eval.py`` and the prefixes of their ``scores.txt`` keys.
FREIHAND_ERROR_KINDS: tuple[str, ...] = ("xyz", "xyz_al", "mesh", "mesh_al")


class FreiHANDErrors(NamedTuple):
    """Per-sample errors of :func:`freihand_errors` (NaN where the ground truth is not annotated)."""

    joints: ArrayLike  #: (B, J) unaligned joint distances
    joints_aligned: ArrayLike  #: (B, J) after the joints' similarity Procrustes
    vertices: ArrayLike | None  #: (B, V) unaligned vertex distances; None without (MANO-shaped) vertices
    vertices_aligned: ArrayLike | None  #: (B, V) after the mesh's own similarity Procrustes
    f_scores: ArrayLike | None  #: (B, T) F-scores of the predicted mesh; None without vertices
    f_scores_aligned: ArrayLike | None  #: (B, T) F-scores of the aligned mesh


def _check_thresholds(f_thresholds: Sequence[float], fn: str) -> list[float]:
    if isinstance(f_thresholds, (str, bytes)) or not isinstance(f_thresholds, Sequence) or not f_thresholds:
        raise ValueRangeError(f"{fn}(): argument 'f_thresholds' expected a non-empty sequence of distances > 0, "
                              f"got {f_thresholds!r}")
    return [check_positive(t, name="f_thresholds", fn=fn) for t in f_thresholds]


def _distances(p: torch.Tensor, g: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B, N, 3), (B, N, 3), (B, N) -> (B, N) distances, NaN where not ``valid``."""
    d = torch.linalg.vector_norm(p - g, dim=-1)
    return torch.where(valid, d, torch.full_like(d, float("nan")))


def _f_scores(p: torch.Tensor, g: torch.Tensor, valid: torch.Tensor, th: torch.Tensor, max_elements: int):
    """``calculate_fscore`` of each sample: (B, P, 3), (B, G, 3) sanitised, (B, G) -> (B, T)."""
    d_pred = _nearest(p, g, max_elements, valid)  # (B, P) each predicted point to the ground truth
    d_gt = _nearest(g, p, max_elements)  # (B, G) each ground-truth point to the prediction
    return f_score_from_distances(d_pred, d_gt, th, valid)


def _align_by_joint_fit(pv: torch.Tensor, pj: torch.Tensor, gj: torch.Tensor, vj: torch.Tensor) -> torch.Tensor:
    """``eval.py``'s ``align_by_trafo(verts_pred, align_w_scale(xyz, xyz_pred, return_trafo=True))``.

    With the joints' fit ``(R, s, s1, t1 - t2)`` (``t1``, ``t2`` the joint means,
    ``s1 = ||xyz - t1||``, ``s`` the scale between the norm-1 sets), the
    official code returns ``(v - mean(v)) R^T s s1 + (t1 - t2) + mean(v)``;
    ``s s1`` is Umeyama's scale times ``||xyz_pred - t2||``. Rows without an
    annotated joint are returned unchanged.
    """
    B, _, D = pj.shape
    scale = pj.new_zeros(B)  # s * s1
    R = torch.eye(D, dtype=pj.dtype, device=pj.device).repeat(B, 1, 1)
    shift = pj.new_zeros(B, D)  # t1 - t2
    groups = [(vj.all(dim=1).nonzero().flatten(), slice(None))]
    partial = (~vj.all(dim=1) & vj.any(dim=1)).nonzero().flatten().tolist()
    groups += [(torch.tensor([b], device=pj.device), vj[b]) for b in partial]
    for rows, keep in groups:
        if rows.numel() == 0:
            continue
        src, dst = pj[rows][:, keep], gj[rows][:, keep]  # (b, n, 3)
        umeyama, R[rows], _ = similarity_procrustes(src, dst, allow_reflection=True)
        centred = src - src.mean(dim=1, keepdim=True)
        scale[rows] = umeyama * torch.linalg.vector_norm(centred.flatten(1), dim=1)
        shift[rows] = dst.mean(dim=1) - src.mean(dim=1)
    mean = pv.mean(dim=1, keepdim=True)  # (B, 1, 3)
    aligned = (pv - mean) @ R.transpose(1, 2) * scale[:, None, None] + shift[:, None] + mean
    return torch.where(vj.any(dim=1)[:, None, None], aligned, pv)


def freihand_errors(
    pred_joints: ArrayLike,
    gt_joints: ArrayLike,
    pred_vertices: ArrayLike | None = None,
    gt_vertices: ArrayLike | None = None,
    *,
    f_thresholds: Sequence[float] = (0.005, 0.015),
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> FreiHANDErrors:
    """Per-sample errors of FreiHAND's ``eval.py``: joints and vertices, unaligned and aligned, and F-scores.

    Args:
        pred_joints: predicted joints (canonical order = FreiHAND's), finite.
        gt_joints: ground-truth joints; non-finite joints are unannotated
            (left out of the Procrustes fit and NaN in the output).
        pred_vertices: predicted mesh vertices, finite; MANO's 778 give the
            vertex errors, any other count only the F-scores (``eval.py``'s
            ``shape_is_mano`` is false). Give both vertex arguments or neither.
        gt_vertices: ground-truth MANO vertices; non-finite ones are unannotated.
        f_thresholds: F-score distances in the inputs' units (``eval.py``: 5 and 15 mm).
        max_elements: memory bound of the nearest-neighbour search.

    Returns:
        :class:`FreiHANDErrors` in the input's array type and units.

    Raises:
        ShapeError: shapes that disagree, or an empty mesh.
        ValueRangeError: a non-finite prediction, a bad threshold, or one vertex argument without the other.

    Shape:
        - pred_joints, gt_joints: ``(B, J, 3)``
        - pred_vertices: ``(B, P, 3)``; gt_vertices: ``(B, V, 3)``
        - joints, joints_aligned: ``(B, J)``; vertices, vertices_aligned: ``(B, V)``;
          f_scores, f_scores_aligned: ``(B, T)``

    Example:
        >>> gt = torch.rand(2, 21, 3, dtype=torch.float64)
        >>> e = freihand_errors(2 * gt + 1, gt)      # a similarity transform of the truth
        >>> bool(e.joints_aligned.abs().max() < 1e-9), e.vertices is None
        (True, True)
    """
    fn = "freihand_errors"
    was_numpy, t = to_tensors(fn, pred_joints=pred_joints, gt_joints=gt_joints, pred_vertices=pred_vertices,
                              gt_vertices=gt_vertices)  # fmt: skip
    pj, gj, pv, gv = t["pred_joints"], t["gt_joints"], t["pred_vertices"], t["gt_vertices"]
    dims = check_shape(pj, "B J 3", name="pred_joints", fn=fn)
    check_shape(gj, "B J 3", name="gt_joints", dims=dims, fn=fn)
    if (pv is None) != (gv is None):
        raise ValueRangeError(f"{fn}(): give both 'pred_vertices' and 'gt_vertices' or neither")
    thresholds = _check_thresholds(f_thresholds, fn)
    check_positive(max_elements, name="max_elements", fn=fn)
    check_prediction(pj, name="pred_joints", fn=fn)
    vj = annotated(gj)  # (B, J)
    gj = sanitise(gj, vj)
    joints = _distances(pj, gj, vj)
    joints_al = _distances(masked_procrustes_align(pj, gj, vj, allow_reflection=True), gj, vj)
    verts = verts_al = f = f_al = None
    if pv is not None:
        vdims = check_shape(pv, "B P 3", name="pred_vertices", dims={"B": dims["B"]}, fn=fn)
        check_shape(gv, "B V 3", name="gt_vertices", dims=vdims, fn=fn)
        if vdims["P"] == 0 or vdims["V"] == 0:
            raise ShapeError(f"{fn}(): 'pred_vertices' and 'gt_vertices' need at least one vertex each, "
                             f"got P={vdims['P']}, V={vdims['V']}")
        check_prediction(pv, name="pred_vertices", fn=fn)
        vv = annotated(gv)  # (B, V)
        gv = sanitise(gv, vv)
        if vdims["P"] == vdims["V"]:  # eval.py: shape_is_mano
            verts = _distances(pv, gv, vv)
            pv_al = masked_procrustes_align(pv, gv, vv, allow_reflection=True)
            verts_al = _distances(pv_al, gv, vv)
        else:
            pv_al = _align_by_joint_fit(pv, pj, gj, vj)
        th = torch.tensor(thresholds, dtype=pv.dtype, device=pv.device)
        f = _f_scores(pv, gv, vv, th, int(max_elements))
        f_al = _f_scores(pv_al, gv, vv, th, int(max_elements))
    out = (joints, joints_al, verts, verts_al, f, f_al)
    return FreiHANDErrors(*(None if x is None else like_input(was_numpy, x) for x in out))


class FreiHANDEvaluator:
    """Accumulates :func:`freihand_errors` over a dataset and reports ``eval.py``'s numbers.

    :meth:`compute` returns, in the inputs' units (the keys of ``scores.txt``):
    ``xyz_mean3d``, ``xyz_auc3d``, ``xyz_al_mean3d``, ``xyz_al_auc3d``,
    ``mesh_mean3d``, ``mesh_auc3d``, ``mesh_al_mean3d``, ``mesh_al_auc3d``
    (NaN without MANO-shaped vertices), ``f_score_<k>`` and
    ``f_al_score_<k>`` with ``k = round(1000 * threshold)`` (``f_score_5``,
    ``f_score_15`` for metres; NaN without vertices), and ``num_samples``.

    Args:
        f_thresholds: F-score distances (> 0), in the inputs' units.
        auc_range: ``(lo, hi)`` of the PCK thresholds (``eval.py``: 0 to 0.05 m).
        auc_steps: number of PCK thresholds (``eval.py``: 100).
        max_elements: memory bound of the nearest-neighbour search.

    Example:
        >>> gt = torch.rand(4, 21, 3, dtype=torch.float64) * 0.1
        >>> ev = FreiHANDEvaluator()
        >>> ev.update(gt + 0.001, gt)
        >>> s = ev.compute()
        >>> round(s["xyz_mean3d"], 6), s["xyz_auc3d"] > 0.9, s["num_samples"]
        (0.001732, True, 4)
    """

    def __init__(self, *, f_thresholds: Sequence[float] = (0.005, 0.015), auc_range: tuple[float, float] = (0.0, 0.05),
                 auc_steps: int = 100, max_elements: int = DEFAULT_MAX_ELEMENTS) -> None:
        fn = "FreiHANDEvaluator"
        self.f_thresholds = tuple(_check_thresholds(f_thresholds, fn))
        names = [round(1000 * t) for t in self.f_thresholds]
        if len(set(names)) != len(names):
            raise ValueRangeError(f"{fn}(): argument 'f_thresholds' gives two thresholds the same key "
                                  f"f_score_<round(1000 t)>: {list(self.f_thresholds)}")
        self._f_names = names
        if not isinstance(auc_range, (tuple, list)) or len(auc_range) != 2:
            raise ValueRangeError(f"{fn}(): argument 'auc_range' expected (lo, hi), got {auc_range!r}")
        lo = check_in_range(auc_range[0], name="auc_range[0]", low=0.0, fn=fn)
        hi = check_in_range(auc_range[1], name="auc_range[1]", low=lo, low_inclusive=False, fn=fn)
        self.auc_range = (lo, hi)
        self.auc_steps = check_int(auc_steps, name="auc_steps", low=2, fn=fn)
        self.max_elements = int(check_positive(max_elements, name="max_elements", fn=fn))
        self.num_samples = 0
        self._sums: dict[str, torch.Tensor] = {}  # kind -> (K,) sum of the finite errors of each keypoint
        self._counts: dict[str, torch.Tensor] = {}  # kind -> (K,) how many
        self._pck: dict[str, PCKAccumulator] = {}
        self._f = {"f": torch.zeros(len(names), dtype=torch.float64), "f_al": torch.zeros(len(names), dtype=torch.float64)}
        self._f_count = torch.zeros(len(names), dtype=torch.int64)
        self._num_vertices: int | None = None  # predicted vertex count of the first batch with vertices

    def _feed(self, kind: str, errors: torch.Tensor) -> None:
        e = errors.detach().to("cpu", torch.float64)  # (B, K)
        if kind not in self._pck:
            self._pck[kind] = PCKAccumulator(e.shape[1], *self.auc_range, self.auc_steps)
            self._sums[kind] = torch.zeros(e.shape[1], dtype=torch.float64)
            self._counts[kind] = torch.zeros(e.shape[1], dtype=torch.int64)
        if e.shape[1] != self._sums[kind].shape[0]:
            raise ShapeError(f"FreiHANDEvaluator.update(): {kind} errors have {e.shape[1]} keypoints, earlier batches "
                             f"had {self._sums[kind].shape[0]}")
        ok = torch.isfinite(e)
        self._sums[kind] += torch.where(ok, e, torch.zeros_like(e)).sum(dim=0)
        self._counts[kind] += ok.sum(dim=0)
        self._pck[kind].update(e)

    def update(self, pred_joints: ArrayLike, gt_joints: ArrayLike, pred_vertices: ArrayLike | None = None,
               gt_vertices: ArrayLike | None = None) -> None:
        """Add a batch (arguments as :func:`freihand_errors`; every batch gives vertices or none does).

        Shape:
            pred_joints, gt_joints ``(B, J, 3)``; pred_vertices ``(B, P, 3)``; gt_vertices ``(B, V, 3)``.
        """
        e = freihand_errors(pred_joints, gt_joints, pred_vertices, gt_vertices, f_thresholds=self.f_thresholds,
                            max_elements=self.max_elements)  # fmt: skip
        e = FreiHANDErrors(*(None if x is None else torch.as_tensor(x) for x in e))
        count = None if e.f_scores is None else int(pred_vertices.shape[1])
        if self.num_samples and (count is None) != (self._num_vertices is None):
            raise ValueRangeError("FreiHANDEvaluator.update(): give vertices in every batch or in none "
                                  f"(earlier batches {'did' if self._num_vertices is not None else 'did not'})")
        if self.num_samples and count is not None and count != self._num_vertices:
            raise ShapeError(f"FreiHANDEvaluator.update(): argument 'pred_vertices' has {count} vertices, earlier "
                             f"batches had {self._num_vertices}")
        self._num_vertices = count
        self._feed("xyz", e.joints)
        self._feed("xyz_al", e.joints_aligned)
        if e.vertices is not None:
            self._feed("mesh", e.vertices)
            self._feed("mesh_al", e.vertices_aligned)
        if e.f_scores is not None:
            f, f_al = e.f_scores.detach().to("cpu", torch.float64), e.f_scores_aligned.detach().to("cpu", torch.float64)
            ok = torch.isfinite(f)  # NaN: no annotated ground-truth vertex
            self._f["f"] += torch.where(ok, f, torch.zeros_like(f)).sum(dim=0)
            self._f["f_al"] += torch.where(ok, f_al, torch.zeros_like(f_al)).sum(dim=0)
            self._f_count += ok.sum(dim=0)
        self.num_samples += e.joints.shape[0]

    def pck_curves(self) -> dict[str, PCKResult | None]:
        """The PCK curves of ``eval.py``'s plots: kind (:data:`FREIHAND_ERROR_KINDS`) -> :class:`PCKResult` or ``None``."""
        return {kind: (self._pck[kind].result() if kind in self._pck else None) for kind in FREIHAND_ERROR_KINDS}

    def compute(self) -> dict[str, float]:
        """``eval.py``'s numbers over everything fed so far (see the class docstring); NaN where nothing was measured."""
        nan = float("nan")
        out: dict[str, float] = {}
        curves = self.pck_curves()
        for kind in FREIHAND_ERROR_KINDS:
            measured = self._counts[kind] > 0 if kind in self._counts else None
            if measured is None or not bool(measured.any()):
                out[f"{kind}_mean3d"], out[f"{kind}_auc3d"] = nan, nan
                continue
            per_keypoint = self._sums[kind][measured] / self._counts[kind][measured]  # EvalUtil._get_epe means
            out[f"{kind}_mean3d"] = float(per_keypoint.mean())
            out[f"{kind}_auc3d"] = float(curves[kind].auc)
        for k, key in enumerate(self._f_names):
            n = int(self._f_count[k])
            out[f"f_score_{key}"] = float(self._f["f"][k] / n) if n else nan
            out[f"f_al_score_{key}"] = float(self._f["f_al"][k] / n) if n else nan
        out["num_samples"] = self.num_samples
        return out


def freihand_metrics(
    pred_joints: ArrayLike,
    gt_joints: ArrayLike,
    pred_vertices: ArrayLike | None = None,
    gt_vertices: ArrayLike | None = None,
    **kwargs,
) -> dict[str, float]:
    """FreiHAND's ``eval.py`` numbers of a whole set in one call (:class:`FreiHANDEvaluator`, one update).

    Args:
        pred_joints: ``(S, 21, 3)`` predicted joints of every sample (FreiHAND's order is the canonical one).
        gt_joints: ``(S, 21, 3)`` ground-truth joints.
        pred_vertices: ``(S, 778, 3)`` predicted meshes, or ``None`` (then ``gt_vertices`` too).
        gt_vertices: ``(S, 778, 3)`` ground-truth meshes, or ``None``.
        **kwargs: :class:`FreiHANDEvaluator`'s options (``f_thresholds``, ``auc_range``, ...).

    Returns:
        The dictionary of :meth:`FreiHANDEvaluator.compute`.

    Shape:
        see :func:`freihand_errors`.
    """
    ev = FreiHANDEvaluator(**kwargs)
    ev.update(pred_joints, gt_joints, pred_vertices, gt_vertices)
    return ev.compute()
