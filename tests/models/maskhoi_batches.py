"""Random but self-consistent HOI batches for the model tests (no dependency on hoimask.data).

A procedural hand with a small random pose sits 0.5 m in front of a pinhole
camera; a sphere "object" touches it. Joints project to ``joints_2d``; the
segmentation paints disks around the projected joints (hand) and the projected
sphere (object); the image colours the classes so they are learnable; SDF
targets are the hand's analytic SDF and the sphere's exact SDF.
"""

from __future__ import annotations

import torch

from hoimask.geometry import axis_angle_to_matrix, project
from hoimask.hand import ProceduralHand

_HAND = ProceduralHand()


def make_batch(
    batch_size: int = 2,
    image_size: int = 64,
    num_points: int = 64,
    *,
    seed: int = 0,
    object_present: bool | list[bool] = True,
) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    B, S, Q = batch_size, image_size, num_points
    pose = 0.2 * torch.randn(B, 16, 3, generator=g)
    shape = 0.5 * torch.randn(B, 10, generator=g)
    trans = torch.tensor([0.0, 0.0, 0.5]) + 0.02 * torch.randn(B, 3, generator=g)
    with torch.no_grad():
        hand = _HAND(pose, shape, trans)
    f = 1.6 * S
    K = torch.tensor([[f, 0.0, S / 2], [0.0, f, S / 2], [0.0, 0.0, 1.0]]).expand(B, 3, 3).clone()
    joints_3d = hand.joints
    joints_2d = project(joints_3d, K)
    radius = 0.03
    center = joints_3d[:, 9] + torch.tensor([0.0, 0.0, 0.04])  # behind the middle MCP
    rotation = axis_angle_to_matrix(torch.randn(B, 3, generator=g))
    points = center[:, None] + 0.08 * (torch.rand(B, Q, 3, generator=g) - 0.5)
    with torch.no_grad():
        sdf_hand = _HAND.sdf(points, pose, shape, trans)
    sdf_object = (points - center[:, None]).norm(dim=-1) - radius
    present = torch.tensor([object_present] * B if isinstance(object_present, bool) else object_present)
    sdf_object[~present] = float("nan")
    rotation[~present] = float("nan")
    center_t = center.clone()
    center_t[~present] = float("nan")
    # segmentation: object disk first, hand disks on top
    ys, xs = torch.meshgrid(torch.arange(S) + 0.5, torch.arange(S) + 0.5, indexing="ij")
    pix = torch.stack([xs, ys], -1)  # (S, S, 2)
    seg = torch.zeros(B, S, S, dtype=torch.long)
    c2d = project(center, K)
    r2d = f * radius / center[:, 2]
    obj = (pix[None] - c2d[:, None, None]).norm(dim=-1) < r2d[:, None, None]
    seg[obj & present[:, None, None]] = 2
    near = (pix[None, None] - joints_2d[:, :, None, None]).norm(dim=-1).min(dim=1).values < S / 32
    seg[near] = 1
    palette = torch.tensor([[0.15, 0.15, 0.6], [0.9, 0.6, 0.35], [0.3, 0.85, 0.7]])  # RGB in [0, 1], as datasets give
    image = (palette[seg].permute(0, 3, 1, 2) + 0.05 * torch.randn(B, 3, S, S, generator=g)).clamp(0, 1)
    return {
        "image": image,
        "segmentation": seg,
        "joints_2d": joints_2d,
        "joints_3d": joints_3d,
        "K": K,
        "sdf_points": points,
        "sdf_hand": sdf_hand,
        "sdf_object": sdf_object,
        "hand_pose": pose,
        "hand_shape": shape,
        "object_rotation": rotation,
        "object_translation": center_t,
        "grasped": present.clone(),
    }
