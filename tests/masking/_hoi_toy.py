"""A tiny 2D hand-object scene generator for the masking tests (joints + segmentation)."""

from __future__ import annotations

import math

import torch

from hoimask.skeleton import BONES

# Finger fan angles (radians, relative to the hand axis) and phalanx lengths (fraction of hand size).
_FAN = (-1.1, -0.35, -0.05, 0.22, 0.48)
_BASE = (0.22, 0.45, 0.47, 0.45, 0.42)
_PHALANX = ((0.18, 0.15, 0.12), (0.2, 0.13, 0.1), (0.22, 0.15, 0.1), (0.2, 0.14, 0.1), (0.16, 0.11, 0.09))


def toy_joints(batch: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``(B, 21, 2)`` plausible hand joints in pixels, canonical order, inside a ``size`` image."""
    u = torch.rand(batch, 8, generator=generator, dtype=torch.float64)
    wrist = torch.stack([size * (0.3 + 0.4 * u[:, 0]), size * (0.62 + 0.2 * u[:, 1])], dim=-1)  # (B, 2)
    axis = -math.pi / 2 + (u[:, 2] - 0.5)  # roughly upwards
    scale = size * (0.45 + 0.2 * u[:, 3])
    curl = 0.5 * u[:, 4:5] * torch.rand(batch, 5, generator=generator, dtype=torch.float64)  # (B, 5)
    joints = torch.zeros(batch, 21, 2, dtype=torch.float64)
    joints[:, 0] = wrist
    for f in range(5):
        ang = axis + _FAN[f]
        point = wrist + _BASE[f] * scale.unsqueeze(-1) * torch.stack([torch.cos(ang), torch.sin(ang)], -1)
        joints[:, 1 + 4 * f] = point
        for k in range(3):
            ang = ang + curl[:, f] * (1 if f else -1)
            step = _PHALANX[f][k] * scale.unsqueeze(-1) * torch.stack([torch.cos(ang), torch.sin(ang)], -1)
            point = point + step
            joints[:, 1 + 4 * f + k + 1] = point
    return joints.float()


def _segment_distance(pixels: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """pixels (P, 2), a/b (B, S, 2) -> (B, S, P) distances."""
    d = (b - a).unsqueeze(2)  # (B, S, 1, 2)
    rel = pixels.view(1, 1, -1, 2) - a.unsqueeze(2)  # (B, S, P, 2)
    t = ((rel * d).sum(-1) / (d * d).sum(-1).clamp_min(1e-9)).clamp(0, 1)
    return (rel - t.unsqueeze(-1) * d).norm(dim=-1)


def toy_scene(
    batch: int,
    size: int,
    generator: torch.Generator,
    *,
    with_object: bool = True,
    hand_width: float = 0.05,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Joints ``(B, 21, 2)`` and a uint8 segmentation ``(B, size, size)`` (0 bg, 1 hand, 2 object)."""
    joints = toy_joints(batch, size, generator)
    ys, xs = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    pixels = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)  # (P, 2)
    parent = torch.tensor([p for p, _ in BONES])
    child = torch.tensor([c for _, c in BONES])
    palm_a = joints[:, [0, 0, 0, 0, 0, 5, 9, 13]]
    palm_b = joints[:, [5, 9, 13, 17, 1, 9, 13, 17]]
    starts = torch.cat([joints[:, parent], palm_a], 1)
    ends = torch.cat([joints[:, child], palm_b], 1)
    width = torch.tensor([hand_width] * 20 + [0.09] * 8) * size  # (S,)
    dist = _segment_distance(pixels, starts, ends)  # (B, S, P)
    hand = (dist <= width.view(1, -1, 1)).any(1)  # (B, P)
    seg = torch.zeros(batch, size * size, dtype=torch.uint8)
    if with_object:
        u = torch.rand(batch, 3, generator=generator)
        tips = joints[:, [4, 8, 12, 16, 20]].mean(1)  # (B, 2)
        centre = tips + (u[:, :2] - 0.5) * 0.2 * size
        radius = size * (0.12 + 0.1 * u[:, 2])
        obj = (pixels.unsqueeze(0) - centre.unsqueeze(1)).norm(dim=-1) <= radius.unsqueeze(-1)
        seg[obj] = 2
    seg[hand] = 1
    return joints, seg.reshape(batch, size, size)
