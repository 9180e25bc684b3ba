"""``python -m hoimask.data.export_sdf``: write HOISDF / AlignSDF-format SDF samples of DexYCB or HO3D frames.

::

    python -m hoimask.data.export_sdf --dataset dexycb --root $DEX_YCB_DIR --mano-root MANO \\
        --setup s0 --split train --out sdf/train --workers 8 [--layout both] [--naming gsdf]
    python -m hoimask.data.export_sdf --dataset ho3d --root HO3D_v3 --mano-root MANO --out sdf/ho3d

See :mod:`hoimask.data.sdf_export` (what is written, resuming, refusing to
overwrite), :mod:`hoimask.data.sdf_samples` (sampling) and
:mod:`hoimask.data.sdf_files` (layouts). Bad flags and data errors print one
``error:`` line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from hoimask._checks import HoimaskError

from .sdf_export import _LAYOUTS, export_sdf_samples
from .sdf_samples import ALIGNSDF_NUM_SAMPLES

__all__ = ["main"]


def _dataset_from_args(args: argparse.Namespace):
    from .dexycb import DexYCB
    from .ho3d import HO3D

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # counts of skipped sequences: reported by the summary instead
        if args.dataset == "dexycb":
            return DexYCB(args.root, mano_root=args.mano_root, setup=args.setup, split=args.split, hands=args.hands,
                          num_object_points=1, num_sdf_points=0)  # fmt: skip
        return HO3D(args.root, mano_root=args.mano_root, split=args.split, num_object_points=1, num_sdf_points=0)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m hoimask.data.export_sdf",
                                description="Write HOISDF / AlignSDF-format SDF samples of DexYCB or HO3D frames.")
    p.add_argument("--dataset", required=True, choices=("dexycb", "ho3d"))
    p.add_argument("--root", required=True, help="dataset root ($DEX_YCB_DIR, or the HO3D folder with models/)")
    p.add_argument("--mano-root", required=True, help="folder with MANO_RIGHT.pkl (and MANO_LEFT.pkl)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--setup", default="s0", choices=("s0", "s1", "s2", "s3"), help="DexYCB split setup")
    p.add_argument("--split", default="train", help="dexycb: train, val or test; ho3d: train")
    p.add_argument("--hands", default="right", choices=("right", "mirror"),
                   help="DexYCB: right hands only, or left hands too (stored unmirrored, as HOISDF does)")
    p.add_argument("--num-samples", type=int, default=ALIGNSDF_NUM_SAMPLES, help="samples per mesh and frame")
    p.add_argument("--layout", default="hoisdf", choices=_LAYOUTS)
    p.add_argument("--naming", default="hoisdf", choices=("hoisdf", "gsdf"), help="DexYCB file names")
    p.add_argument("--index-format", default="array", choices=("array", "dict"),
                   help="sdf_index.npy as HOISDF's DexYCB loader (array) or HO3D loader (dict) reads it")
    p.add_argument("--workers", type=int, default=1, help="processes (one thread each)")
    p.add_argument("--limit", type=int, default=None, help="export only the first N frames")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace existing SDF files or another export")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    splits = {"dexycb": ("train", "val", "test"), "ho3d": ("train",)}[args.dataset]
    if args.split not in splits:
        extra = "; HO3D's evaluation split has no hand annotation to sample" if args.dataset == "ho3d" else ""
        p.error(f"argument --split: expected one of {list(splits)} for --dataset {args.dataset}, got {args.split!r}{extra}")
    for flag, value, low in (("--num-samples", args.num_samples, 1), ("--workers", args.workers, 1),
                             ("--limit", args.limit, 1)):  # fmt: skip
        if value is not None and value < low:
            p.error(f"argument {flag}: expected an integer >= {low}, got {value}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """CLI (see the module docstring). Bad input: one ``error:`` line on stderr, exit status 2."""
    args = _parse(argv)
    try:
        dataset = _dataset_from_args(args)
        frames = None if args.limit is None else range(min(args.limit, len(dataset)))
        summary = export_sdf_samples(
            dataset, args.out, num_samples=args.num_samples, layout=args.layout, naming=args.naming,
            index_format=args.index_format, frames=frames, workers=args.workers, overwrite=args.overwrite,
            seed=args.seed, progress=not args.no_progress,
        )  # fmt: skip
    except HoimaskError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {summary.written} frames to {summary.out_dir} ({summary.resumed} already done, "
          f"{len(summary.skipped)} skipped without hand or object; {summary.total} in the folder)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
