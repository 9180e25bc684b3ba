"""HOISDF's loss terms (eq. 9 before weighting): L_img, L_sdf, L_off, L_mano, L_obj.

Each function returns the terms whose targets the batch holds; :class:`~hoimask.models.HOISDF` sums them
with :data:`~hoimask.models.hoisdf_config.HOISDF_LOSS_WEIGHTS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from hoimask._checks import check_finite, check_shape
from hoimask.geometry import matrix_to_axis_angle, project
from hoimask.losses import (
    hoisdf_image_loss,
    hoisdf_mano_loss,
    joint_vote_loss,
    point_object_pose_loss,
    sdf_l1_loss,
)
from hoimask.models._batch import optional

__all__ = ["image_terms", "pose_terms", "sdf_terms"]


def image_terms(batch: Mapping[str, Any], image: Mapping[str, torch.Tensor], K: torch.Tensor,
                size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """L_img: heatmap and hand / object segmentation terms of the targets the batch holds."""
    terms: dict[str, torch.Tensor] = {}
    seg = optional(batch, "segmentation")
    j2d = optional(batch, "joints_2d")
    joints = optional(batch, "joints_3d")
    if j2d is None and joints is not None:
        j2d = project(joints.to(K.dtype), K)
    if seg is None and j2d is None:
        return terms
    heatmaps = image["heatmaps"]
    B = heatmaps.shape[0]
    joints_2d = j2d if j2d is not None else heatmaps.new_full((B, 21, 2), float("nan"))
    h, w = heatmaps.shape[-2:]
    if seg is None:
        labels = torch.zeros(B, h, w, dtype=torch.long, device=heatmaps.device)
    else:  # hard targets at the logits' size, as HOISDF's loaders (nearest neighbour)
        labels = torch.nn.functional.interpolate(seg[:, None].float(), size=(h, w), mode="nearest")[:, 0].long()
    out = hoisdf_image_loss(heatmaps, image["hand_segmentation"], image["object_segmentation"],
                            joints_2d.to(heatmaps.dtype), labels == 1, labels == 2, image_size=size)
    if j2d is not None:
        terms["heatmap"] = out["heatmap"]
    if seg is not None:
        terms["hand_seg"], terms["object_seg"] = out["hand_seg"], out["object_seg"]
    return terms


def sdf_terms(model, batch: Mapping[str, Any], maps, K: torch.Tensor, size: tuple[int, int],
              hand_root: torch.Tensor, object_center: torch.Tensor, extra: dict, fn: str) -> dict[str, torch.Tensor]:
    """L_sdf at the batch's ``sdf_points`` (also stores the predicted distances, m, in ``extra``)."""
    terms: dict[str, torch.Tensor] = {}
    points = optional(batch, "sdf_points")
    if points is None or points.shape[1] == 0:
        return terms
    check_shape(points, "B Q 3", name="batch['sdf_points']", dims={"B": hand_root.shape[0]}, fn=fn)
    check_finite(points, name="batch['sdf_points']", fn=fn)
    points = points.to(hand_root.dtype)
    cfg = model.config
    for name, decoder, center in (("hand", model.hand_sdf, hand_root), ("object", model.object_sdf, object_center)):
        target = optional(batch, f"sdf_{name}")
        if target is None:
            continue
        check_shape(target, "B Q", name=f"batch['sdf_{name}']", dims={"B": points.shape[0], "Q": points.shape[1]},
                    fn=fn)
        pred = decoder(points, center, K, maps, size).sdf  # (B, Q) scaled units
        extra[f"sdf_{name}"] = pred / cfg.point_scale
        if bool(torch.isfinite(target).any()):
            terms[f"sdf_{name}"] = sdf_l1_loss(pred, target.to(pred.dtype) * cfg.point_scale,
                                               clamp_distance=cfg.sdf_clamp)
    return terms


def pose_terms(model, batch: Mapping[str, Any], raw: Mapping[str, Any], hand_root: torch.Tensor,
               object_center: torch.Tensor, has_object: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """L_off (votes), L_mano (every decoder layer) and L_obj (every object layer, where there is an object)."""
    terms: dict[str, torch.Tensor] = {}
    cfg = model.config
    joints = optional(batch, "joints_3d")
    if joints is not None:
        target = joints.to(hand_root.dtype) - hand_root[:, None]
        if cfg.num_vote_joints == 20:
            target = target[:, 1:]
        votes = raw["votes"]
        vote = joint_vote_loss(raw["relative"], votes.votes, votes.logits, raw["voted"], target,
                               radius=cfg.vote_radius)
        terms.update(vote_offset=vote.offset, vote_classification=vote.classification, vote_joints=vote.joints)
    terms.update(hoisdf_mano_loss(model.hand_layer, raw["rotation_6d"], raw["shape"],
                                  target_pose=optional(batch, "hand_pose"),
                                  target_shape=optional(batch, "hand_shape"), target_joints=joints))
    if has_object is None or not bool(has_object.any()):
        return terms
    R = batch["object_rotation"].to(hand_root.dtype)
    relative = batch["object_translation"].to(hand_root.dtype) - object_center
    safe = torch.where(has_object[:, None, None], R, torch.eye(3, dtype=R.dtype, device=R.device))
    obj = point_object_pose_loss(raw["object"].point_rotation, raw["object"].point_translation,
                                 matrix_to_axis_angle(safe), relative, has_object=has_object)
    terms.update(object_rotation=obj.rotation, object_translation=obj.translation)
    return terms
