"""Augmented views of a batch: made together (``batched_views``) against one sample at a time, in the same run.

The training scripts draw ``RandomRotateScale`` + ``ColorJitter`` views of a
cached pool of scenes (``hoimask.engine.AugmentedViews``). This measures what
a ``DataLoader`` pays per batch for them — the views plus the collate — with
``AugmentedViews(..., batched=True)`` (the default: the batch's views made
together) and ``batched=False`` (one sample at a time, the baseline), round
robin so that load changes affect both alike, and prints the median per
batch and the ratio. The samples are UniHOPE's (``--twins``: with their
de-occluded twins, cropped around hand ∪ object as the recipe does) or the
pose model's.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_views.py              # batch 16, 128 px, twins
    OMP_NUM_THREADS=1 python benchmarks/bench_views.py --no-twins --batch 8
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import torch

from hoimask.data import ColorJitter, Compose, RandomRotateScale, collate
from hoimask.engine import AugmentedViews
from hoimask.engine.datasets import build_dataset
from hoimask.engine.flags import HelpFormatter, integer


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--batch", type=integer(low=1), default=16, help="samples per batch")
    p.add_argument("--size", type=integer(low=8), default=128, help="image side, px")
    p.add_argument("--pool", type=integer(low=1), default=32, help="cached scenes the views are drawn from")
    p.add_argument("--repeats", type=integer(low=1), default=10, help="timed batches per path (median)")
    p.add_argument("--no-twins", action="store_true", help="samples without de-occluded twins")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    scenes = build_dataset("synthetic", image_size=args.size, num_samples=args.pool, seed=0, num_sdf_points=0,
                           num_object_points=256, hand_only_prob=0.3, require_hand=True,
                           deoccluded=not args.no_twins, crop_padding=1.3)  # as train_unihope.py builds them
    pool = [scenes[i] for i in range(args.pool)]
    transform = Compose([RandomRotateScale(), ColorJitter()])
    paths = {"one sample at a time": AugmentedViews(pool, transform, repeats=16, seed=0, batched=False),
             "batched_views": AugmentedViews(pool, transform, repeats=16, seed=0)}
    n_views = 15 * args.pool  # indices of views (not originals) only, as almost every training index is
    times: dict[str, list[float]] = {name: [] for name in paths}
    for r in range(args.repeats + 1):
        indices = [args.pool + (r * args.batch + k) * 7919 % n_views for k in range(args.batch)]
        for name, views in paths.items():
            start = time.perf_counter()
            collate(views.__getitems__(indices))
            if r:  # the first round warms up
                times[name].append(time.perf_counter() - start)
    print(f"# bench_views: batch {args.batch}, {args.size} px, twins {not args.no_twins}, torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d')}")
    base = statistics.median(times["one sample at a time"])
    print("| path | ms per batch | ms per view | speed-up |")
    print("| --- | ---: | ---: | ---: |")
    for name, values in times.items():
        t = statistics.median(values)
        print(f"| {name} | {t * 1e3:.1f} | {t * 1e3 / args.batch:.2f} | {base / t:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
