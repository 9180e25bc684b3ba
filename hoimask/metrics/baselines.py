"""Trivial constant predictors, so every evaluation shows whether a model learned anything.

A pose model that predicts the same hand pose and object pose for every image
can reach a plausible-looking MJE. :class:`ConstantBaselines` fits such
predictors on the *training* split — the statistics a model could have learned
without looking at any image — and :meth:`ConstantBaselines.predict` returns
their predictions for a test batch, to be fed to a second
:class:`~hoimask.metrics.Evaluator` beside the model's:

* ``mean_pose``: the mean root-relative training pose placed at the mean
  training wrist position; the object at the mean training translation with the
  chordal mean rotation (the rotation closest to the mean rotation matrix).
* ``wrist``: all 21 joints at the mean training wrist position (the object as
  in ``mean_pose``).

Given the test samples' ground-truth wrist (``predict(..., root=...)``, the
anchor of HOISDF's evaluation, which lifts the object centre to the
ground-truth hand-root depth), both constants are placed there instead: the
hand at that wrist, the object at the wrist plus the mean training offset of the
object centre from the wrist. They then see the whole wrist position, more than
a model anchored at its depth only.

:func:`baseline_ratios` and :func:`format_baseline_table` put the model's
metrics next to theirs as ratios (model / constant; below 1 is better than the
constant). ``examples/evaluate.py`` prints and stores them.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from hoimask._checks import ValueRangeError, check_shape
from hoimask.metrics.report import format_table

__all__ = ["BASELINE_METRICS", "ConstantBaselines", "baseline_ratios", "format_baseline_table"]

#: Metrics compared with the constants (lengths in mm; lower is better).
BASELINE_METRICS: tuple[str, ...] = ("rr_mje", "pa_mje", "mje", "oce", "mce", "add_s")


class ConstantBaselines:
    """Accumulate training-split statistics; predict the constant baselines for any batch.

    Example:
        >>> base = ConstantBaselines()
        >>> joints = torch.rand(8, 21, 3)
        >>> base.update(joints, torch.eye(3).expand(8, 3, 3), torch.rand(8, 3))
        >>> preds = base.predict(2)
        >>> sorted(preds), tuple(preds["mean_pose"]["joints"].shape)
        (['mean_pose', 'wrist'], (2, 21, 3))
    """

    NAMES: tuple[str, ...] = ("mean_pose", "wrist")

    def __init__(self) -> None:
        self._n = 0
        self._rel = torch.zeros(21, 3, dtype=torch.float64)
        self._root = torch.zeros(3, dtype=torch.float64)
        self._n_obj = 0
        self._R = torch.zeros(3, 3, dtype=torch.float64)
        self._t = torch.zeros(3, dtype=torch.float64)
        self._n_offset = 0
        self._offset = torch.zeros(3, dtype=torch.float64)
        self._n_excluded = 0  # training samples with a non-finite joint
        self._n_excluded_obj = 0  # training samples with an object but a non-finite pose

    def update(
        self,
        joints: torch.Tensor,
        object_rotation: torch.Tensor | None = None,
        object_translation: torch.Tensor | None = None,
        has_object: torch.Tensor | None = None,
    ) -> None:
        """Add training samples.

        Non-finite values are unannotated ground truth (docs/conventions.md):
        they are left out of the statistics and counted in
        :attr:`num_excluded` / :attr:`num_excluded_objects`.

        Args:
            joints: ``(B, 21, 3)`` camera-frame joints (wrist first); samples
                with a non-finite joint are excluded (and counted).
            object_rotation: ``(B, 3, 3)`` object rotations, or None.
            object_translation: ``(B, 3)`` object translations, or None.
            has_object: ``(B,)`` bool; samples without an object do not count
                for the object statistics, samples with an object but a
                non-finite pose are excluded (and counted).
        """
        dims = check_shape(joints, "B 21 3", name="joints", fn="ConstantBaselines.update")
        j = joints.detach().double().cpu()
        ok = torch.isfinite(j).flatten(1).all(1)
        wrist = j[:, 0]  # (B, 3); the object statistics index all B samples
        j = j[ok]
        self._n += int(j.shape[0])
        self._n_excluded += int((~ok).sum())
        self._rel += (j - j[:, :1]).sum(0)
        self._root += j[:, 0].sum(0)
        if object_rotation is None or object_translation is None:
            return
        check_shape(object_rotation, "B 3 3", name="object_rotation", dims=dims, fn="ConstantBaselines.update")
        check_shape(object_translation, "B 3", name="object_translation", dims=dims, fn="ConstantBaselines.update")
        R, t = object_rotation.detach().double().cpu(), object_translation.detach().double().cpu()
        finite = torch.isfinite(R).flatten(1).all(1) & torch.isfinite(t).all(1)
        keep = finite.clone()
        if has_object is not None:
            check_shape(has_object, "B", name="has_object", dims=dims, fn="ConstantBaselines.update")
            present = has_object.detach().cpu().bool()
            keep &= present
            self._n_excluded_obj += int((present & ~finite).sum())
        else:
            self._n_excluded_obj += int((~finite).sum())
        self._n_obj += int(keep.sum())
        self._R += R[keep].sum(0)
        self._t += t[keep].sum(0)
        keep &= ok  # the offset from the wrist needs the wrist too
        self._n_offset += int(keep.sum())
        self._offset += (t[keep] - wrist[keep]).sum(0)

    @property
    def num_samples(self) -> int:
        """Training samples with finite joints seen so far."""
        return self._n

    @property
    def num_excluded(self) -> int:
        """Training samples left out because a joint was not finite (unannotated)."""
        return self._n_excluded

    @property
    def num_excluded_objects(self) -> int:
        """Training samples with an object left out of the object statistics because its pose was not finite."""
        return self._n_excluded_obj

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The fitted constants (float64 tensors), e.g. to store in a checkpoint."""
        if self._n == 0:
            raise ValueRangeError("ConstantBaselines.state_dict(): no training sample was added (call update first)")
        out = {
            "num_samples": torch.tensor(self._n),
            "mean_relative_joints": self._rel / self._n,
            "mean_root": self._root / self._n,
            "num_objects": torch.tensor(self._n_obj),
        }
        if self._n_obj:
            U, _, Vh = torch.linalg.svd(self._R / self._n_obj)
            D = torch.diag(torch.tensor([1.0, 1.0, float(torch.sign(torch.linalg.det(U @ Vh)))], dtype=torch.float64))
            out["mean_object_rotation"] = U @ D @ Vh  # chordal L2 mean, a proper rotation
            out["mean_object_translation"] = self._t / self._n_obj
        if self._n_offset:
            out["num_offsets"] = torch.tensor(self._n_offset)
            out["mean_object_offset"] = self._offset / self._n_offset  # object centre minus wrist
        return out

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor]) -> ConstantBaselines:
        """Rebuild from :meth:`state_dict` (the sums are restored from the means)."""
        missing = [k for k in ("num_samples", "mean_relative_joints", "mean_root", "num_objects") if k not in state]
        if missing:
            raise ValueRangeError(f"ConstantBaselines.from_state_dict(): argument 'state' lacks {missing}")
        base = cls()
        n, n_obj = int(state["num_samples"]), int(state["num_objects"])
        base._n, base._n_obj = n, n_obj
        base._rel = state["mean_relative_joints"].double().cpu() * n
        base._root = state["mean_root"].double().cpu() * n
        if n_obj:
            base._R = state["mean_object_rotation"].double().cpu() * n_obj
            base._t = state["mean_object_translation"].double().cpu() * n_obj
        if "mean_object_offset" in state:  # absent from files written before it was stored
            base._n_offset = int(state["num_offsets"])
            base._offset = state["mean_object_offset"].double().cpu() * base._n_offset
        return base

    def predict(self, batch_size: int, *, dtype: torch.dtype = torch.float32,
                device: torch.device | str = "cpu",
                root: torch.Tensor | None = None) -> dict[str, dict[str, torch.Tensor]]:
        """Predictions of every baseline for a batch of ``batch_size`` test samples.

        Args:
            batch_size: B.
            dtype: dtype of the returned tensors.
            device: device of the returned tensors.
            root: ``(B, 3)`` ground-truth wrist positions to anchor the
                constants at (see the module docstring), or None for the
                mean training wrist. A row that is not finite (a test
                sample without hand annotation) is anchored at the mean
                training wrist, so the predictions stay finite; that
                sample's hand metrics are excluded by the ``Evaluator``
                anyway, as its ground truth is not finite either.

        Returns:
            ``{name: {"joints": (B, 21, 3), "object_rotation": (B, 3, 3), "object_translation": (B, 3)}}``
            for the names in :attr:`NAMES` (object entries only when the
            training data had objects).
        """
        state = self.state_dict()
        B = int(batch_size)

        def expand(x: torch.Tensor) -> torch.Tensor:
            return x.to(device=device, dtype=dtype).expand(B, *x.shape).clone()

        if root is None:
            anchor = expand(state["mean_root"])  # (B, 3)
            translation = expand(state.get("mean_object_translation", state["mean_root"]))
        else:
            check_shape(root, f"{B} 3", name="root", fn="ConstantBaselines.predict")
            anchor = root.detach().to(device=device, dtype=dtype)
            known = torch.isfinite(anchor).all(dim=1, keepdim=True)  # (B, 1)
            anchor = torch.where(known, anchor, expand(state["mean_root"]))
            if "mean_object_rotation" in state and "mean_object_offset" not in state:
                raise ValueRangeError("ConstantBaselines.predict(): argument 'root' needs the mean object offset "
                                      "from the wrist, which these constants lack (fitted by an older version)")
            translation = anchor + expand(state.get("mean_object_offset", torch.zeros(3, dtype=torch.float64)))
        poses = {"mean_pose": anchor[:, None] + expand(state["mean_relative_joints"]),
                 "wrist": anchor[:, None].expand(B, 21, 3).clone()}
        out: dict[str, dict[str, torch.Tensor]] = {}
        for name, joints in poses.items():
            out[name] = {"joints": joints}
            if "mean_object_rotation" in state:
                out[name]["object_rotation"] = expand(state["mean_object_rotation"])
                out[name]["object_translation"] = translation.clone()
        return out


def baseline_ratios(model: Mapping[str, float], baselines: Mapping[str, Mapping[str, float]],
                    metrics: tuple[str, ...] = BASELINE_METRICS) -> dict[str, dict[str, float]]:
    """``{baseline: {metric: model / baseline}}`` for the metrics both have (and a non-zero baseline)."""
    out: dict[str, dict[str, float]] = {}
    for name, res in baselines.items():
        out[name] = {k: float(model[k]) / float(res[k]) for k in metrics
                     if model.get(k) is not None and res.get(k) not in (None, 0)}
    return out


def format_baseline_table(model: Mapping[str, float], baselines: Mapping[str, Mapping[str, float]],
                          metrics: tuple[str, ...] = BASELINE_METRICS) -> str:
    """A table: each metric for the model and each constant, and model / constant.

    Example:
        >>> print(format_baseline_table({"rr_mje": 20.0}, {"mean_pose": {"rr_mje": 100.0}}))
        Model vs. constant predictors fitted on the training split (mm; ratio < 1: better than the constant)
        | metric | model | mean_pose | model / mean_pose |
        |-------:|------:|----------:|------------------:|
        | rr_mje | 20.00 |    100.00 |              0.20 |
    """
    ratios = baseline_ratios(model, baselines, metrics)
    names = list(baselines)
    header = ["metric", "model", *names, *(f"model / {n}" for n in names)]
    rows = []
    for k in metrics:
        if model.get(k) is None:
            continue
        cells = [k, f"{model[k]:.2f}"]
        cells += ["-" if baselines[n].get(k) is None else f"{baselines[n][k]:.2f}" for n in names]
        cells += ["-" if k not in ratios[n] else f"{ratios[n][k]:.2f}" for n in names]
        rows.append(cells)
    title = "Model vs. constant predictors fitted on the training split (mm; ratio < 1: better than the constant)"
    return format_table(title, header, rows)
