"""Write a PNG grid comparing hoimask's maskers on a few hand-object images.

Rows are images; columns are the image, its segmentation with the 2D skeleton,
and the masks of RandomMasker (MAE), RegionRatioMasker (RMRA),
SkeletonGuidedMasker, HybridMasker and TargetFocusedMasker (HOMAE). Images
come from the built-in synthetic HOI generator (``hoimask.data.SyntheticHOI``);
``--source shapes`` draws simple hand/object shapes instead.

    python examples/visualize_masks.py                       # writes masks.png
    python examples/visualize_masks.py --out docs/images/masks.png --rows 3
    python examples/visualize_masks.py --patterns --out docs/images/masks_patterns.png
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path

import torch

from hoimask.masking import (
    HybridMasker,
    RandomMasker,
    RegionRatioMasker,
    SkeletonGuidedMasker,
    TargetFocusedMasker,
    draw_mask,
)
from hoimask.skeleton import BONES

SEG_COLOURS = torch.tensor([[40, 40, 40], [230, 170, 140], [70, 130, 220]], dtype=torch.uint8)


def synthetic_images(rows: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images ``(B, 3, S, S)`` in [0, 1], segmentation ``(B, S, S)`` and joints ``(B, 21, 2)`` from SyntheticHOI."""
    from hoimask.data import SyntheticHOI

    data = SyntheticHOI(num_samples=rows, image_size=size, seed=seed, num_sdf_points=8, num_object_points=8,
                        hand_only_prob=0.0, not_grasped_prob=0.0)
    samples = [data[i] for i in range(rows)]
    return (torch.stack([s["image"] for s in samples]), torch.stack([s["segmentation"] for s in samples]),
            torch.stack([s["joints_2d"] for s in samples]))


def shape_images(rows: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Simple drawn scenes: a hand (finger capsules and palm) in front of a disk object."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(rows, 5, generator=g)
    wrist = torch.stack([size * (0.35 + 0.3 * u[:, 0]), size * (0.75 + 0.1 * u[:, 1])], -1)
    axis = -math.pi / 2 + (u[:, 2] - 0.5) * 0.8
    scale = size * (0.11 + 0.03 * u[:, 3])
    joints = torch.zeros(rows, 21, 2)
    joints[:, 0] = wrist
    for f in range(5):
        ang = axis + (-1.1 + 0.45 * f)
        step = torch.stack([torch.cos(ang), torch.sin(ang)], -1) * scale.unsqueeze(-1)
        base = 1.0 if f else 0.7
        for k in range(4):
            joints[:, 1 + 4 * f + k] = wrist + (base + 0.6 * k) * step
    ys, xs = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    pix = torch.stack([xs, ys], -1).view(1, 1, -1, 2)  # (1, 1, P, 2)
    a = joints[:, [p for p, _ in BONES]].unsqueeze(2)  # (B, 20, 1, 2)
    d = joints[:, [c for _, c in BONES]].unsqueeze(2) - a
    t = (((pix - a) * d).sum(-1) / (d * d).sum(-1).clamp_min(1e-6)).clamp(0, 1)
    dist = (pix - a - t.unsqueeze(-1) * d).norm(dim=-1)  # (B, 20, P)
    hand = (dist < 0.16 * scale.view(-1, 1, 1) * 2).any(1).view(rows, size, size)
    centre = joints[:, [4, 8, 12, 16, 20]].mean(1)
    obj = ((torch.stack([xs, ys], -1).unsqueeze(0) - centre.view(-1, 1, 1, 2)).norm(dim=-1)
           < (0.18 + 0.08 * u[:, 4]).view(-1, 1, 1) * size)
    seg = torch.zeros(rows, size, size, dtype=torch.int64)
    seg[obj] = 2
    seg[hand] = 1
    image = SEG_COLOURS[seg].permute(0, 3, 1, 2).float() / 255
    image = (image + 0.05 * torch.rand(image.shape, generator=g)).clamp(0, 1)
    return image, seg, joints


def segmentation_picture(seg: torch.Tensor, joints: torch.Tensor) -> torch.Tensor:
    """``(S, S, 3)`` uint8: label colours with the skeleton's bones drawn in white."""
    pic = SEG_COLOURS[seg].clone()
    S = seg.shape[-1]
    for p, c in BONES:
        a, b = joints[p], joints[c]
        steps = int((b - a).norm().item()) + 2
        for t in torch.linspace(0, 1, steps).tolist():
            x, y = (a + t * (b - a)).round().long().tolist()
            if 0 <= x < S and 0 <= y < S:
                pic[y, x] = 255
    return pic


def main() -> None:
    parser = argparse.ArgumentParser(description="Compare hoimask maskers on hand-object images.")
    parser.add_argument("--out", default="masks.png", help="PNG file to write")
    parser.add_argument("--rows", type=int, default=3)
    parser.add_argument("--size", type=int, default=224, help="image side in pixels")
    parser.add_argument("--patch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", choices=["synthetic", "shapes"], default="synthetic")
    parser.add_argument("--patterns", action="store_true",
                        help="compare the skeleton patterns (finger, fingertips, level, region) instead")
    args = parser.parse_args()

    make = synthetic_images if args.source == "synthetic" else shape_images
    images, seg, joints = make(args.rows, args.size, args.seed)
    grid = (args.size // args.patch, args.size // args.patch)
    B = images.shape[0]
    maskers = {
        "random (MAE)": RandomMasker(0.75),
        "RMRA": RegionRatioMasker(),
        "skeleton-guided": SkeletonGuidedMasker(),
        "hybrid p=0.5": HybridMasker(skeleton_prob=0.5),
        "target-focused": TargetFocusedMasker(),
    }
    if args.patterns:
        maskers = {f"skeleton: {p}": SkeletonGuidedMasker(hand_ratio=0.3, pattern_probs={p: 1.0})
                   for p in ("finger", "fingertips", "level", "region")}
    columns = {"image": (images.permute(0, 2, 3, 1) * 255).round().to(torch.uint8),
               "segmentation": torch.stack([segmentation_picture(seg[b], joints[b]) for b in range(B)])}
    for name, masker in maskers.items():
        g = torch.Generator().manual_seed(args.seed)
        out = masker(B, grid, segmentation=seg, joints_2d=joints, generator=g)
        columns[name] = draw_mask(images, out.mask, args.patch, masked_alpha=0.15)

    from PIL import Image, ImageDraw  # only the example needs Pillow

    S, pad, header = args.size, 4, 18
    canvas = Image.new("RGB", (len(columns) * (S + pad) + pad, header + B * (S + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, (name, pics) in enumerate(columns.items()):
        x = pad + c * (S + pad)
        draw.text((x + 2, 3), name, fill=(0, 0, 0))
        for r in range(B):
            canvas.paste(Image.fromarray(pics[r].numpy()), (x, header + pad + r * (S + pad)))
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, suffix=".png.tmp")
    os.close(fd)
    try:
        canvas.save(tmp, format="PNG")
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"wrote {out_path.resolve()}")


if __name__ == "__main__":
    main()
