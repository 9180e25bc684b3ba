"""Write a PNG grid comparing hoimask's maskers on a few hand-object images.

Rows are images; columns are the image, its segmentation with the 2D skeleton,
and the masks of RandomMasker (MAE), RegionRatioMasker (RMRA),
SkeletonGuidedMasker, HybridMasker and TargetFocusedMasker (HOMAE). Images
come from the built-in synthetic HOI generator (``hoimask.data.SyntheticHOI``);
``--source shapes`` draws simple hand/object shapes instead.

    python examples/visualize_masks.py                       # writes runs/pictures/masks.png
    python examples/visualize_masks.py --out docs/images/masks.png --rows 3
    python examples/visualize_masks.py --patterns --out docs/images/masks_patterns.png
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from hoimask.engine.cli import exit_with_usage_errors
from hoimask.engine.figures import (
    GROUND_TRUTH_COLOUR,
    MASKED_COLOUR,
    SEGMENTATION_COLOURS,
    SEGMENTATION_LEGEND,
    colour_segmentation,
    draw_skeleton,
    label_grid,
    picture_from_image,
    save_figure,
)
from hoimask.engine.flags import HelpFormatter, errors_name_flag, integer, output_file
from hoimask.masking import (
    HybridMasker,
    RandomMasker,
    RegionRatioMasker,
    SkeletonGuidedMasker,
    TargetFocusedMasker,
    draw_mask,
)
from hoimask.skeleton import BONES

#: The shared colours of background, hand and object (hoimask.engine.figures), for the drawn scenes too.
SEG_COLOURS = torch.tensor(SEGMENTATION_COLOURS, dtype=torch.uint8)


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
    """``(S, S, 3)`` uint8: the segmentation in the shared colours with the ground-truth 2D skeleton."""
    return draw_skeleton(colour_segmentation(seg), joints, colour=GROUND_TRUTH_COLOUR, width=1)


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags (``--help`` documents each; values are checked as they are parsed)."""
    parser = argparse.ArgumentParser(description="Compare hoimask maskers on hand-object images.",
                                     formatter_class=HelpFormatter)
    parser.add_argument("--out", type=output_file, default="runs/pictures/masks.png",
                        help="PNG file to write (the default folder is ignored by git)")
    parser.add_argument("--rows", type=integer(1, 32), default=3, help="images (rows of the grid), in [1, 32]")
    parser.add_argument("--size", type=integer(8, 1024), default=224, help="image side in pixels, in [8, 1024]")
    parser.add_argument("--patch", type=integer(low=1), default=16,
                        help="patch side in pixels; must divide --size (the masks are drawn on the patch grid)")
    parser.add_argument("--seed", type=integer(low=0), default=0, help="seed of the images and of the masks")
    parser.add_argument("--source", choices=["synthetic", "shapes"], default="synthetic",
                        help="images: rendered SyntheticHOI scenes, or simple drawn hand/object shapes")
    parser.add_argument("--patterns", action="store_true",
                        help="compare the skeleton patterns (finger, fingertips, level, region) instead")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check the flags; a bad value exits with a usage error naming the flag (status 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.size % args.patch:
        divisors = [d for d in (4, 8, 14, 16, 32) if args.size % d == 0] or [1]
        parser.error(f"argument --patch: expected a divisor of --size {args.size} (e.g. "
                     f"{' or '.join(map(str, divisors))}), got {args.patch}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

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
    columns = {"image": picture_from_image(images),
               "segmentation": torch.stack([segmentation_picture(seg[b], joints[b]) for b in range(B)])}
    for name, masker in maskers.items():
        g = torch.Generator().manual_seed(args.seed)
        out = masker(B, grid, segmentation=seg, joints_2d=joints, generator=g)
        columns[name] = draw_mask(images, out.mask, args.patch, fill=MASKED_COLOUR, masked_alpha=0.15)

    figure = label_grid(
        [[columns[name][r] for name in columns] for r in range(B)],
        row_titles=[f"{args.source} sample {r}" for r in range(B)],
        column_titles=list(columns),
        title=("Skeleton-guided patterns" if args.patterns else "hoimask's maskers on the same images")
        + f" ({args.patch} px patches; masked patches grey, the image faintly visible)",
        legend=[*SEGMENTATION_LEGEND, ("masked patch", MASKED_COLOUR),
                ("ground-truth 2D skeleton", GROUND_TRUTH_COLOUR, "skeleton")],
        row_title_width=90,
    )
    with errors_name_flag("--out"):  # e.g. a folder that cannot be written
        out_path = save_figure(Path(args.out), figure)  # atomic, with the permissions of a normally created file
    print(f"wrote {out_path.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(exit_with_usage_errors(main))
