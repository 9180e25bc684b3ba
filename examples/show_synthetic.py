"""Draw synthetic hand–object samples and their labels (the pictures in docs/data.md).

Usage:
    python examples/show_synthetic.py [--out docs/images] [--num 6] [--size 128] [--seed 0]

Writes ``synthetic_samples.png`` (rows: image with the 2D skeleton, visible
segmentation over the amodal hand mask, depth, the de-occluded twin) and
``synthetic_transforms.png`` (one sample under random crops/rotations and
colour jitter, skeleton re-projected from ``joints_3d`` with the new ``K``).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from hoimask.data import ColorJitter, Compose, GaussianBlur, RandomCropResize, SyntheticHOI
from hoimask.engine import atomic_write
from hoimask.geometry import project
from hoimask.skeleton import PARENTS

FINGER_COLOURS = [(255, 255, 255), (255, 80, 80), (255, 200, 0), (80, 220, 80), (60, 160, 255), (220, 90, 255)]


def to_pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray((image.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def draw_skeleton(img: Image.Image, uv: torch.Tensor, scale: float) -> Image.Image:
    draw = ImageDraw.Draw(img)
    pts = (uv * scale).tolist()
    for j, p in enumerate(PARENTS):
        if p >= 0:
            draw.line([tuple(pts[p]), tuple(pts[j])], fill=FINGER_COLOURS[1 + (j - 1) // 4], width=2)
    for x, y in pts:
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(255, 255, 255))
    return img


def label_picture(s: dict) -> torch.Tensor:
    seg = s["segmentation"]
    pic = torch.zeros(3, *seg.shape)
    pic[:, s["amodal_hand_mask"]] = torch.tensor([0.45, 0.2, 0.3])[:, None]  # hidden hand
    pic[:, seg == 1] = torch.tensor([1.0, 0.35, 0.55])[:, None]
    pic[:, seg == 2] = torch.tensor([0.25, 0.85, 0.35])[:, None]
    return pic


def depth_picture(depth: torch.Tensor) -> torch.Tensor:
    fg = depth > 0
    out = torch.zeros_like(depth)
    if fg.any():
        lo, hi = depth[fg].min(), depth[fg].max()
        out[fg] = 1 - 0.8 * (depth[fg] - lo) / (hi - lo + 1e-9)
    return out[None].expand(3, -1, -1)


def save_atomic(img: Image.Image, path: Path) -> None:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write(path, buf.getvalue())  # temp file + os.replace, normal permissions, no temp left on failure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="docs/images")
    parser.add_argument("--num", type=int, default=6)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ds = SyntheticHOI(num_samples=1000, image_size=args.size, seed=args.seed, deoccluded=True, hand_only_prob=0.15)
    scale = 2
    S = args.size * scale
    grid = Image.new("RGB", (S * args.num, S * 4))
    for k in range(args.num):
        s = ds[k]
        tiles = [
            draw_skeleton(to_pil(s["image"]).resize((S, S), Image.NEAREST), s["joints_2d"], scale),
            to_pil(label_picture(s)).resize((S, S), Image.NEAREST),
            to_pil(depth_picture(s["depth"])).resize((S, S), Image.NEAREST),
            to_pil(s["deoccluded_image"]).resize((S, S), Image.NEAREST),
        ]
        for r, tile in enumerate(tiles):
            grid.paste(tile, (k * S, r * S))
        occl = float(s["occlusion_ratio"])
        ImageDraw.Draw(grid).text((k * S + 4, 4), f"grasped={bool(s['grasped'])} occl={occl:.2f}", fill=(255, 255, 255))
    save_atomic(grid, out / "synthetic_samples.png")

    aug = Compose([RandomCropResize(args.size, max_rotation=40.0), ColorJitter(), GaussianBlur(p=0.3)])
    base = ds[1]
    row = Image.new("RGB", (S * args.num, S))
    for k in range(args.num):
        s = aug(base, generator=torch.Generator().manual_seed(k))
        uv = project(s["joints_3d"], s["K"])  # re-projected with the updated intrinsics
        row.paste(draw_skeleton(to_pil(s["image"]).resize((S, S), Image.NEAREST), uv, scale), (k * S, 0))
    save_atomic(row, out / "synthetic_transforms.png")
    print(f"wrote {out / 'synthetic_samples.png'} and {out / 'synthetic_transforms.png'}")


if __name__ == "__main__":
    main()
