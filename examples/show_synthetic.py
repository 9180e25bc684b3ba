"""Draw synthetic hand–object samples and their labels (the pictures in docs/data.md).

Usage:
    python examples/show_synthetic.py [--out runs/pictures] [--num 6] [--size 128] [--seed 0]
    python examples/show_synthetic.py --out docs/images        # the pictures of docs/data.md

Writes ``synthetic_samples.png`` (rows: image with the 2D skeleton, visible
segmentation with the hand hidden by the object hatched, depth, the
de-occluded twin) and ``synthetic_transforms.png`` (one sample under random
crops/rotations and colour jitter, skeleton re-projected from ``joints_3d``
with the new ``K``), titled and with legends in the shared colours
(``hoimask.engine.figures``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from hoimask.data import ColorJitter, Compose, GaussianBlur, RandomCropResize, SyntheticHOI
from hoimask.engine.cli import exit_with_usage_errors
from hoimask.engine.figures import (
    GROUND_TRUTH_COLOUR,
    HIDDEN_HAND_COLOUR,
    SEGMENTATION_LEGEND,
    colour_segmentation,
    draw_skeleton,
    enlarge,
    label_grid,
    picture_from_image,
    save_figure,
)
from hoimask.engine.flags import HelpFormatter, errors_name_flag, integer, output_folder
from hoimask.geometry import project

#: Legend of the skeleton pictures.
SKELETON_LEGEND = [("ground-truth 2D skeleton", GROUND_TRUTH_COLOUR, "skeleton")]


def image_with_skeleton(image: torch.Tensor, uv: torch.Tensor, scale: int) -> torch.Tensor:
    """``(scale H, scale W, 3)`` uint8: the image enlarged ``scale`` times with its 2D skeleton."""
    return draw_skeleton(enlarge(picture_from_image(image), scale), uv * scale, colour=GROUND_TRUTH_COLOUR)


def label_picture(s: dict) -> torch.Tensor:
    """``(H, W, 3)`` uint8: the segmentation, the hand hidden by the object hatched (amodal mask)."""
    return colour_segmentation(s["segmentation"], hidden_hand=s["amodal_hand_mask"])


def depth_picture(depth: torch.Tensor) -> torch.Tensor:
    fg = depth > 0
    out = torch.zeros_like(depth)
    if fg.any():
        lo, hi = depth[fg].min(), depth[fg].max()
        out[fg] = 1 - 0.8 * (depth[fg] - lo) / (hi - lo + 1e-9)
    return out[None].expand(3, -1, -1)


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags (``--help`` documents each; values are checked as they are parsed)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=HelpFormatter)
    parser.add_argument("--out", type=output_folder, default="runs/pictures",
                        help="folder for the two PNGs (the default is ignored by git; docs/images holds the docs' copies)")
    parser.add_argument("--num", type=integer(1, 64), default=6, help="samples (columns of the pictures), in [1, 64]")
    parser.add_argument("--size", type=integer(8, 1024), default=128, help="image side in pixels, in [8, 1024]")
    parser.add_argument("--seed", type=integer(low=0), default=0, help="seed of SyntheticHOI (the scenes drawn)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    with errors_name_flag("--out"):  # e.g. a folder that cannot be created
        out.mkdir(parents=True, exist_ok=True)
    ds = SyntheticHOI(num_samples=1000, image_size=args.size, seed=args.seed, deoccluded=True, hand_only_prob=0.15)
    scale = 2
    columns, titles = [], []
    for k in range(args.num):
        s = ds[k]
        columns.append([
            image_with_skeleton(s["image"], s["joints_2d"], scale),
            enlarge(label_picture(s), scale),
            enlarge(picture_from_image(depth_picture(s["depth"])), scale),
            enlarge(picture_from_image(s["deoccluded_image"]), scale),
        ])
        titles.append(f"sample {k}: {'grasped' if bool(s['grasped']) else 'not grasped'}\n"
                      f"hand occlusion {100 * float(s['occlusion_ratio']):.0f} %")
    samples = label_grid(
        [list(row) for row in zip(*columns)],
        row_titles=["image, 2D skeleton", "segmentation (hatched: hand hidden by the object)",
                    "depth (near = bright)", "de-occluded twin (object removed)"],
        column_titles=titles, title=f"SyntheticHOI(seed={args.seed}): samples and their labels",
        legend=[*SEGMENTATION_LEGEND, ("hand hidden by the object", HIDDEN_HAND_COLOUR), *SKELETON_LEGEND],
        row_title_width=110,
    )
    save_figure(out / "synthetic_samples.png", samples)

    aug = Compose([RandomCropResize(args.size, max_rotation=40.0), ColorJitter(), GaussianBlur(p=0.3)])
    base = ds[1]
    row = []
    for k in range(args.num):
        s = aug(base, generator=torch.Generator().manual_seed(k))
        uv = project(s["joints_3d"], s["K"])  # re-projected with the updated intrinsics
        row.append(image_with_skeleton(s["image"], uv, scale))
    transforms = label_grid(
        [row], column_titles=[f"augmentation seed {k}" for k in range(args.num)],
        title="One sample under RandomCropResize (rotation up to 40 deg), ColorJitter and GaussianBlur; "
              "skeleton re-projected from joints_3d with the new K",
        legend=SKELETON_LEGEND,
    )
    save_figure(out / "synthetic_transforms.png", transforms)
    print(f"wrote {out / 'synthetic_samples.png'} and {out / 'synthetic_transforms.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(exit_with_usage_errors(main))
