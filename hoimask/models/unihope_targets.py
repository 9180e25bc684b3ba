"""The geometry of :class:`~hoimask.models.UniHOPE`'s boxes and object key points, and its hand and object losses.

* :func:`object_box_points` — the 8 corners and the centre of an object's 3D
  box: the key points of UniHOPE's object branch (§3.4, "the keypoints in the
  3D bounding box of the object mesh").
* :func:`ground_truth_boxes` — the training RoIs: the 2D joints' box and the
  box of the projected 3D object box, enlarged by ``scale``.
* :func:`pose_from_key_points` — the object pose from the 9 key points and
  the object's template by the normalised DLT (UniHOPE is template-based).
* :func:`object_centre_depth` — the camera depth of the box centre (the target of
  :attr:`UniHOPEConfig.object_depth`'s relative depth).
* ``hand_terms`` — L^h (eq. 9) and the wrist depth.
* ``object_terms`` — L^o (eq. 10) over the bins of the object RoI, and the relative depth's term.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import torch

from hoimask._checks import check_shape
from hoimask.geometry import project
from hoimask.losses._reduce import finite_rows, masked_mean, zero_unknown
from hoimask.losses.image import heatmap_kl_divergence
from hoimask.losses.pose import mano_parameter_loss
from hoimask.models._batch import object_present, optional

__all__ = ["NUM_OBJECT_POINTS", "bin_centres", "box_code", "expected_position", "ground_truth_boxes", "hand_terms",
           "object_box_points", "object_centre_depth", "object_terms", "pose_from_key_points"]

NUM_OBJECT_POINTS = 9  #: the 8 corners of the object's 3D box and its centre (§3.4, "keypoints in the 3D bounding box")


def object_box_points(points: torch.Tensor) -> torch.Tensor:
    """The 8 corners of the axis-aligned box of model points, then its centre (model frame).

    Args:
        points: ``(B, P, 3)`` object model points.

    Returns:
        ``(B, 9, 3)``: corners in ``itertools.product`` order of (min, max) per axis, then the centre.

    Shape:
        ``(B, P, 3) -> (B, 9, 3)``

    Example:
        >>> object_box_points(torch.tensor([[[0.0, 0, 0], [1, 2, 3]]]))[0, [0, 7, 8]].tolist()
        [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [0.5, 1.0, 1.5]]
    """
    check_shape(points, "B P 3", name="points", fn="object_box_points")
    low, high = points.amin(dim=1), points.amax(dim=1)  # (B, 3)
    ends = torch.stack([low, high], dim=1)  # (B, 2, 3)
    corners = [torch.stack([ends[:, i, 0], ends[:, j, 1], ends[:, k, 2]], dim=-1)
               for i, j, k in itertools.product((0, 1), repeat=3)]
    return torch.stack([*corners, (low + high) / 2], dim=1)  # (B, 9, 3)


def _box_around(points: torch.Tensor, scale: float) -> torch.Tensor:
    """``(B, 4)`` box ``(x0, y0, x1, y1)`` of ``(B, N, 2)`` points, enlarged by ``scale`` about its centre."""
    low, high = points.amin(dim=1), points.amax(dim=1)
    centre, half = (low + high) / 2, (high - low).clamp_min(1.0) * scale / 2  # at least a pixel wide
    return torch.cat([centre - half, centre + half], dim=-1)


def ground_truth_boxes(batch: Mapping[str, Any], K: torch.Tensor, size: tuple[int, int],
                       scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Ground-truth boxes: the 2D joints' box, the projected object box (9 points) and those 9 points.

    The boxes UniHOPE trains in and, as its released test loader, evaluates in. A
    sample without 2D (or 3D) joints takes the dataset's hand box ``batch["box"]``
    ``(B, 4)`` (HO3D's evaluation split) where it has one; samples without the
    target get the whole image. Returns ``hand_box (B, 4)``,
    ``object_box (B, 4)`` (pixels) and ``object_points_2d (B, 9, 2)`` (NaN where no
    object; ``None`` when the batch holds no object pose).
    """
    B = K.shape[0]
    H, W = size
    full = K.new_tensor([0.0, 0.0, W, H]).expand(B, 4)
    j2d = optional(batch, "joints_2d")
    joints = optional(batch, "joints_3d")
    if j2d is None and joints is not None:
        j2d = project(joints.to(K.dtype), K)
    hand_box = full
    known = torch.zeros(B, dtype=torch.bool, device=K.device)
    if j2d is not None:
        known = finite_rows(j2d)
        hand_box = torch.where(known[:, None], _box_around(zero_unknown(j2d.to(K.dtype), known), scale), full)
    given = optional(batch, "box")
    if given is not None and not bool(known.all()):
        usable = finite_rows(given) & ~known
        corners = zero_unknown(given.to(K.dtype), usable).reshape(B, 2, 2)
        hand_box = torch.where(usable[:, None], _box_around(corners, scale), hand_box)
    posed = _posed_box_points(batch, K.dtype)
    if posed is None:
        return hand_box, full, None
    camera, ok = posed
    ok = ok & (camera[..., 2] > 0).all(dim=1)
    uv = project(torch.where(ok[:, None, None], camera, torch.ones_like(camera)), K)  # (B, 9, 2)
    object_box = torch.where(ok[:, None], _box_around(uv, scale), full)
    return hand_box, object_box, torch.where(ok[:, None, None], uv, torch.nan)


def object_centre_depth(batch: Mapping[str, Any], dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
    """``(B,)`` camera-frame depth (m) of the centre of the object's model-point box — the key point
    :attr:`UniHOPEConfig.object_depth` places the object by — NaN where the sample has no object pose;
    ``None`` when the batch holds none."""
    posed = _posed_box_points(batch, dtype)
    if posed is None:
        return None
    camera, ok = posed
    return torch.where(ok, camera[:, -1, 2], torch.nan)


def _posed_box_points(batch: Mapping[str, Any], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(camera (B, 9, 3), ok (B,))``: the object's box key points in the camera frame (zeros where not ``ok``)
    and the samples whose object pose counts; ``None`` when the batch holds no object pose."""
    R, t, pts = (optional(batch, k) for k in ("object_rotation", "object_translation", "object_points"))
    if R is None or t is None or pts is None:
        return None
    ok = object_present(batch, R, t) & finite_rows(pts)
    R, t, pts = zero_unknown(R, ok).to(dtype), zero_unknown(t, ok).to(dtype), zero_unknown(pts, ok).to(dtype)
    return object_box_points(pts) @ R.transpose(1, 2) + t[:, None], ok


def hand_terms(batch: Mapping[str, Any], out: Mapping[str, torch.Tensor], K: torch.Tensor, size: tuple[int, int],
               hand_layer: torch.nn.Module) -> dict[str, torch.Tensor]:
    """L^h (eq. 9): J2D, J3D, V (L2 per point), MANO (MSE); and the wrist depth — the terms whose targets the
    batch holds. ``out``: :meth:`UniHOPE._run`'s outputs; ``size``: the image's ``(H, W)``; ``hand_layer`` poses
    the ground-truth hand for the vertex target."""
    terms: dict[str, torch.Tensor] = {}
    dtype = out["relative_joints"].dtype
    joints = optional(batch, "joints_3d")
    j2d = optional(batch, "joints_2d")
    if j2d is None and joints is not None:
        j2d = project(joints.to(K.dtype), K)
    if j2d is not None:
        known = torch.isfinite(j2d).all(dim=-1)  # (B, 21)
        error = (out["keypoints_2d"] - zero_unknown(j2d, known).to(dtype)).norm(dim=-1) / max(size)
        terms["joints_2d"] = masked_mean(error, known)
        if "joint_depth" in out:  # hand_init="keypoints": Gaussian heatmap targets in the RoI's bins
            box = out["hand_box"].to(dtype)
            R = out["heatmaps"].shape[-1]
            in_roi = (j2d.to(dtype) - box[:, None, :2]) / (box[:, None, 2:] - box[:, None, :2]) * R  # bin units
            terms["joints_heatmap"] = heatmap_kl_divergence(out["heatmaps"], in_roi, (R, R))
    if joints is not None:
        known = finite_rows(joints)
        gt = zero_unknown(joints, known).to(dtype)
        error = (out["relative_joints"] - (gt - gt[:, :1])).norm(dim=-1)  # (B, 21)
        terms["joints_3d"] = masked_mean(error, known[:, None])
        terms["root_depth"] = masked_mean((out["wrist_depth"] - gt[:, 0, 2]).abs(), known)
        if "joint_depth" in out:  # hand_init="keypoints": the 2.5D keypoints the rotations start from
            rel = gt - gt[:, :1]
            terms["joints_depth"] = masked_mean((out["joint_depth"] - rel[..., 2]).abs().mean(-1), known)
            lifted = out["keypoint_joints"] - out["keypoint_joints"][:, :1]
            terms["keypoint_joints"] = masked_mean((lifted - rel).abs().mean((-2, -1)), known)
    pose, beta = optional(batch, "hand_pose"), optional(batch, "hand_shape")
    if pose is not None and beta is not None:
        terms["mano"] = mano_parameter_loss(out["rotation_6d"], out["shape"], pose, beta)
        known = finite_rows(pose) & finite_rows(beta)
        with torch.no_grad():
            gt = hand_layer(zero_unknown(pose, known).to(dtype), zero_unknown(beta, known).to(dtype),
                                 beta.new_zeros(beta.shape[0], 3).to(dtype))
            vertices = gt.vertices - gt.joints[:, :1]
        terms["vertices"] = masked_mean((out["relative_vertices"] - vertices).norm(dim=-1), known[:, None])
    return terms


def pose_from_key_points(uv: torch.Tensor, model: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Object rotation and translation from 2D-3D correspondences by the normalised DLT (float64, no RANSAC).

    ``uv (B, N, 2)`` pixels, ``model (B, N, 3)`` model points (N ≥ 6, not coplanar), ``K (B, 3, 3)``
    -> ``R (B, 3, 3)``, ``t (B, 3)`` with ``uv ≈ project(R model + t, K)``.
    """
    dtype = uv.dtype
    uv, model, K = uv.double(), model.double(), K.double()
    rays = torch.linalg.solve(K[:, None], torch.cat([uv, torch.ones_like(uv[..., :1])], -1)[..., None])[..., 0]
    x, y = rays[..., 0] / rays[..., 2], rays[..., 1] / rays[..., 2]  # (B, N) normalised camera coordinates
    centre = model.mean(dim=1, keepdim=True)  # (B, 1, 3)
    spread = (model - centre).norm(dim=-1).mean(dim=1).clamp_min(1e-9)[:, None, None]  # (B, 1, 1)
    X = torch.cat([(model - centre) / spread, torch.ones_like(model[..., :1])], -1)  # (B, N, 4)
    zero = torch.zeros_like(X)
    rows_u = torch.cat([X, zero, -x[..., None] * X], -1)  # (B, N, 12)
    rows_v = torch.cat([zero, X, -y[..., None] * X], -1)
    _, _, Vh = torch.linalg.svd(torch.cat([rows_u, rows_v], dim=1))
    P = Vh[:, -1].reshape(-1, 3, 4)
    flip = torch.linalg.det(P[:, :, :3]) < 0  # det > 0: the points lie in front of the camera
    P = torch.where(flip[:, None, None], -P, P)
    U, S, Vt = torch.linalg.svd(P[:, :, :3])
    R = U @ Vt
    t = P[:, :, 3] / S.mean(dim=-1, keepdim=True).clamp_min(1e-12)  # translation of the normalised points
    t = spread[:, 0] * t - (R @ centre.transpose(1, 2))[..., 0]
    return R.to(dtype), t.to(dtype)


def expected_position(heatmaps: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Soft-argmax of ``(B, J, R, R)`` heatmaps over the bins of ``(B, 4)`` boxes -> ``(B, J, 2)`` pixels."""
    B, J, h, w = heatmaps.shape
    prob = torch.softmax(heatmaps.flatten(2), dim=-1).reshape(B, J, h, w)
    u = (torch.arange(w, device=heatmaps.device, dtype=heatmaps.dtype) + 0.5) / w
    v = (torch.arange(h, device=heatmaps.device, dtype=heatmaps.dtype) + 0.5) / h
    fu, fv = (prob.sum(dim=2) * u).sum(-1), (prob.sum(dim=3) * v).sum(-1)  # (B, J) fractions of the box
    x0, y0, x1, y1 = boxes[:, None].unbind(-1)  # (B, 1) each
    return torch.stack([x0 + fu * (x1 - x0), y0 + fv * (y1 - y0)], dim=-1)


def bin_centres(boxes: torch.Tensor, bins: int) -> torch.Tensor:
    """``(B, R R, 2)`` pixel centres of the ``R × R`` bins of ``(B, 4)`` boxes (row-major, as ``flatten``)."""
    f = (torch.arange(bins, device=boxes.device, dtype=boxes.dtype) + 0.5) / bins
    fy, fx = torch.meshgrid(f, f, indexing="ij")
    x = boxes[:, 0:1] + fx.reshape(1, -1) * (boxes[:, 2:3] - boxes[:, 0:1])
    y = boxes[:, 1:2] + fy.reshape(1, -1) * (boxes[:, 3:4] - boxes[:, 1:2])
    return torch.stack([x, y], dim=-1)


def box_code(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(..., 4)`` pixel boxes -> ``(cx, cy, w, h)`` in image units."""
    H, W = size
    scale = boxes.new_tensor([W, H])
    return torch.cat([(boxes[..., :2] + boxes[..., 2:]) / 2 / scale, (boxes[..., 2:] - boxes[..., :2]) / scale], -1)


def object_terms(out: Mapping[str, torch.Tensor], uv: torch.Tensor, use: torch.Tensor,
                  bins: int, relative_depth: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """L^o (eq. 10): L1 on every bin's key-point offsets and confidences, on the samples ``use`` selects.

    With ``relative_depth`` ``(B,)`` (the box centre's depth minus the wrist's, m; NaN where unknown) and
    the model's ``object_depth_map`` (``config.object_depth``), also ``object_depth``: the L1 of every
    bin's relative depth (m), as every bin predicts the offsets.

    The confidence target of a bin is ``exp(−d / σ)``, ``d`` the distance (box units) from
    the bin's centre to the key point and ``σ = 2 / R``: a fixed target, where
    Liu et al.'s grid proposals measure ``d`` from the predicted point (a moving one).
    """
    box = out["object_box"]
    dtype = out["object_offsets"].dtype
    uv = zero_unknown(uv, use).to(dtype)  # (B, 9, 2)
    extent = (box[:, 2:] - box[:, :2])[:, None, :, None]  # (B, 1, 2, 1)
    centres = bin_centres(box, bins).transpose(1, 2)[:, None]  # (B, 1, 2, R R)
    target = (uv[..., None] - centres) / extent  # (B, 9, 2, R R) box units
    confidence = torch.exp(-target.norm(dim=2) * bins / 2)  # (B, 9, R R)
    rows = use.to(uv.device)
    terms = {
        "object_points": masked_mean((out["object_offsets"] - target).abs().flatten(1).mean(dim=1), rows),
        "object_confidence": masked_mean((out["object_confidence"] - confidence).abs().flatten(1).mean(dim=1), rows),
    }
    if relative_depth is not None and "object_depth_map" in out:
        known = rows & torch.isfinite(relative_depth).to(rows.device)
        depth = zero_unknown(relative_depth.to(rows.device), known).to(dtype)[:, None]  # (B, 1)
        terms["object_depth"] = masked_mean((out["object_depth_map"] - depth).abs().mean(dim=1), known)
    return terms
