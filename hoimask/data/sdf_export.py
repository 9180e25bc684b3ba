"""Export HOISDF / AlignSDF-format SDF samples of DexYCB and HO3D frames (the library side of ``python -m hoimask.data.export_sdf``).

HOISDF, AlignSDF, gSDF and grasping_field read per-frame SDF samples that
their authors computed with a C++/OpenGL tool and did not release for every
split. This command writes them from the official datasets and MANO, frame
by frame, with the sampling of :mod:`hoimask.data.sdf_samples` (exact signed
distances, nothing dropped) in the layouts of :mod:`hoimask.data.sdf_files`::

    python -m hoimask.data.export_sdf --dataset dexycb --root $DEX_YCB_DIR --mano-root MANO \\
        --setup s0 --split train --out sdf/train --workers 8 [--layout both] [--naming gsdf]
    python -m hoimask.data.export_sdf --dataset ho3d --root HO3D_v3 --mano-root MANO --out sdf/ho3d

Output folder (``--layout hoisdf`` is the default, ``alignsdf`` the raw
layout, ``both`` both)::

    OUT/sdf_processed/<name>.npy, OUT/sdf_index.npy          HOISDF's processed layout
    OUT/norm/, OUT/sdf_hand/, OUT/sdf_obj/<name>.npz           AlignSDF's raw layout
    OUT/hoimask_sdf_export.json                               configuration; frame table when complete
    OUT/hoimask_sdf_export.done.jsonl                         one line per finished (or skipped) frame

**Safety.** Every file is written to a temporary name and moved into place
(``os.replace``); a frame counts as done only once its line is in the
done-log, written after its files. An interrupted export resumes where it
stopped when run again with the same options (frames are seeded by their
name, so a frame written twice is bit-identical). The exporter refuses to
write into a folder that holds SDF files or another export's configuration
unless ``--overwrite`` is given. Any data error stops the export with the
frame's name and the file concerned; frames without a hand annotation (or
without an object pose) are skipped and counted.
"""

from __future__ import annotations

import json
import os
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hoimask._checks import FileFormatError, HoimaskError, check_choice, check_int
from hoimask._io import atomic_replace

from .cache import _index_seed, atomic_write_text
from .sdf_files import (
    DONE_LOG_NAME,
    EXPORT_FORMAT,
    MANIFEST_NAME,
    alignsdf_arrays,
    hoisdf_rows,
    read_export_state,
)
from .sdf_samples import ALIGNSDF_NUM_SAMPLES, sample_frame_sdf

__all__ = ["ExportSummary", "export_sdf_samples"]

_LAYOUTS = ("hoisdf", "alignsdf", "both")
_FOLDERS = {"hoisdf": ("sdf_processed",), "alignsdf": ("norm", "sdf_hand", "sdf_obj")}


@dataclass
class ExportSummary:
    """What one call of :func:`export_sdf_samples` did.

    Attributes:
        out_dir: the export folder.
        written: frames written by this call.
        resumed: frames found done and skipped.
        skipped: frames without a hand annotation or an object pose, name -> reason (all runs).
        total: frames done in the folder after this call.
    """

    out_dir: Path
    written: int = 0
    resumed: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    total: int = 0


def _frame_files(out: Path, name: str, layout: str) -> list[Path]:
    """The files frame ``name`` gets, in the order they are written (HOISDF's last)."""
    files = []
    if layout in ("alignsdf", "both"):
        files += [out / d / f"{name}.npz" for d in _FOLDERS["alignsdf"]]
    if layout in ("hoisdf", "both"):
        files.append(out / "sdf_processed" / f"{name}.npy")
    return files


def _save_npy(path: Path, array: np.ndarray, allow_pickle: bool = False) -> None:
    with atomic_replace(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=allow_pickle)
        fh.flush()
        os.fsync(fh.fileno())


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_replace(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())


def _describe(dataset) -> dict:
    """JSON description of the dataset an export was made from (part of its configuration)."""
    kind = type(dataset).__name__
    desc = {"dataset": kind, "root": str(Path(getattr(dataset, "root", ".")).resolve())}
    for key in ("setup", "split", "hands"):
        if hasattr(dataset, key):
            desc[key] = getattr(dataset, key)
    return desc


def _export_frame(dataset, index: int, name: str, out: Path, layout: str, num_samples: int, seed: int) -> dict:
    """Compute and write one frame; the done-log record (or a skip record).

    Raises:
        HoimaskError / OSError subclasses with the frame's name and the file concerned.
    """
    source = "?"
    try:
        meshes = dataset.frame_meshes(index)
        source = str(meshes.source)
        if meshes.hand_vertices is None:
            return {"name": name, "index": index, "skipped": "no hand annotation"}
        if meshes.object_vertices is None:
            return {"name": name, "index": index, "skipped": "no object model or pose"}
        g = torch.Generator().manual_seed(_index_seed(seed, zlib.crc32(name.encode())))
        samples = sample_frame_sdf(
            meshes.hand_vertices, meshes.hand_faces, meshes.hand_weights, meshes.object_vertices,
            meshes.object_faces, num_samples=num_samples, generator=g,
        )  # fmt: skip
    except HoimaskError as err:
        raise type(err)(f"export_sdf_samples: frame {name!r} (index {index}, {source}): {err}") from err
    except (ValueError, TypeError, KeyError, IndexError, RuntimeError, OSError) as err:  # malformed data
        raise FileFormatError(f"export_sdf_samples: frame {name!r} (index {index}, {source}): "
                              f"{type(err).__name__}: {err}") from err
    files = _frame_files(out, name, layout)
    target = files[0]
    try:
        if layout in ("alignsdf", "both"):
            arrays = alignsdf_arrays(samples)
            for folder, path in zip(_FOLDERS["alignsdf"], files):
                target = path
                _save_npz(path, arrays[folder])
        if layout in ("hoisdf", "both"):
            target = files[-1]
            _save_npy(target, hoisdf_rows(samples))
    except OSError as err:
        raise OSError(err.errno, f"export_sdf_samples: frame {name!r} (index {index}): could not write {target}: {err}") from err
    return {"name": name, "index": index, "num_hand": samples.num_hand, "num_object": samples.num_object}


_WORKER: dict = {}


def _init_worker(dataset, out: str, layout: str, num_samples: int, seed: int) -> None:
    torch.set_num_threads(1)
    _WORKER.update(dataset=dataset, out=Path(out), layout=layout, num_samples=num_samples, seed=seed)


def _work(job: tuple[int, str]) -> dict:
    w = _WORKER
    return _export_frame(w["dataset"], job[0], job[1], w["out"], w["layout"], w["num_samples"], w["seed"])


def _write_index(out: Path, frames: dict[str, list[int]], index_format: str) -> None:
    names = sorted(frames)
    if index_format == "array":
        _save_npy(out / "sdf_index.npy", np.array([frames[n] for n in names], dtype=np.int64).reshape(-1, 2))
    else:
        _save_npy(out / "sdf_index.npy", np.array({n: list(frames[n]) for n in names}, dtype=object), allow_pickle=True)


def _check_folder(out: Path, config: dict, jobs: list[tuple[int, str]], layout: str, overwrite: bool) -> dict:
    """Refuse foreign files or another export's configuration; the done state to resume from."""
    manifest = out / MANIFEST_NAME
    if not overwrite and manifest.is_file():
        state = read_export_state(out)
        if state["config"] == config:
            return state
        diff = sorted(k for k in set(config) | set(state["config"]) if config.get(k) != state["config"].get(k))
        raise FileFormatError(
            f"export_sdf_samples: {out} holds an export with other options (differing: {', '.join(diff)}; see {manifest}); "
            "pass overwrite=True (--overwrite) to replace its files, or choose another output folder"
        )
    if not overwrite:
        existing = [p for _, n in jobs for p in _frame_files(out, n, layout) if p.exists()]
        existing += [p for p in (out / "sdf_index.npy",) if p.exists()]
        if existing:
            raise FileFormatError(
                f"export_sdf_samples: {out} already holds {len(existing)} SDF file(s) not written by a hoimask export, "
                f"e.g. {existing[0]}; pass overwrite=True (--overwrite) to replace them, or choose another output folder"
            )
    (out / DONE_LOG_NAME).unlink(missing_ok=True)
    return {"config": config, "frames": {}, "skipped": {}}


def export_sdf_samples(
    dataset,
    out_dir: str | os.PathLike,
    *,
    num_samples: int = ALIGNSDF_NUM_SAMPLES,
    layout: str = "hoisdf",
    naming: str = "hoisdf",
    index_format: str = "array",
    frames: Sequence[int] | None = None,
    workers: int = 1,
    overwrite: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> ExportSummary:
    """Write the SDF samples of ``dataset``'s frames in HOISDF's and/or AlignSDF's layout.

    Args:
        dataset: a :class:`~hoimask.data.DexYCB` or :class:`~hoimask.data.HO3D`
            (anything with ``frame_meshes(i)`` and ``frame_name(i, naming)``).
        out_dir: the output folder (created).
        num_samples: samples per mesh and frame (AlignSDF: 20000; a frame has twice as many rows).
        layout: ``"hoisdf"`` (``sdf_processed/`` + ``sdf_index.npy``),
            ``"alignsdf"`` (``norm/``, ``sdf_hand/``, ``sdf_obj/``) or ``"both"``.
        naming: DexYCB file names, ``"hoisdf"`` or ``"gsdf"`` (see ``DexYCB.frame_name``).
        index_format: ``sdf_index.npy`` as HOISDF's pre-processing and DexYCB
            loader read it (``"array"``, ``(F, 2)`` in sorted name order) or as
            its HO3D loader reads it (``"dict"``, a pickled ``{name: (n_hand, n_obj)}``).
        frames: dataset indices to export (default all).
        workers: processes; each uses one thread.
        overwrite: replace existing SDF files / another export's configuration.
        seed: base seed; frame ``name`` is seeded by ``(seed, crc32(name))``.
        progress: show a tqdm bar.

    Returns:
        :class:`ExportSummary`.

    Raises:
        FileFormatError: foreign files or another configuration without
            ``overwrite``; a data error (message: frame, index and file).
        ValueRangeError, DTypeError: bad arguments.
    """
    fn = "export_sdf_samples"
    check_int(num_samples, name="num_samples", low=1, fn=fn)
    check_choice(layout, _LAYOUTS, name="layout", fn=fn)
    check_choice(naming, ("hoisdf", "gsdf"), name="naming", fn=fn)
    check_choice(index_format, ("array", "dict"), name="index_format", fn=fn)
    check_int(workers, name="workers", low=1, fn=fn)
    indices = list(range(len(dataset))) if frames is None else [int(i) for i in frames]
    out = Path(out_dir)
    jobs, seen = [], {}
    for i in indices:
        name = dataset.frame_name(i, naming)
        if name in seen:
            raise FileFormatError(f"{fn}: frames {seen[name]} and {i} both map to the file name {name!r} "
                                  f"(naming={naming!r}); choose another naming")  # fmt: skip
        seen[name] = i
        jobs.append((i, name))
    config = {"format_version": 1, **_describe(dataset), "num_samples": int(num_samples), "layout": layout,
              "naming": naming, "seed": int(seed)}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    state = _check_folder(out, config, jobs, layout, overwrite)
    done, skipped = dict(state["frames"]), dict(state["skipped"])
    todo = [(i, n) for i, n in jobs
            if not ((n in done and all(p.is_file() for p in _frame_files(out, n, layout))) or n in skipped)]  # fmt: skip
    summary = ExportSummary(out_dir=out, resumed=len(jobs) - len(todo))
    manifest = {"format": EXPORT_FORMAT, "version": 1, "status": "incomplete", "config": config,
                "frames": done, "skipped": skipped}  # fmt: skip
    atomic_write_text(out / MANIFEST_NAME, json.dumps(manifest, indent=1, sort_keys=True))
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), initial=summary.resumed, desc="exporting SDF samples", unit="frame",
               disable=not progress)  # fmt: skip
    try:
        with open(out / DONE_LOG_NAME, "a") as log:

            def record(rec: dict) -> None:
                if "skipped" in rec:
                    skipped[rec["name"]] = rec["skipped"]
                else:
                    done[rec["name"]] = [rec["num_hand"], rec["num_object"]]
                    summary.written += 1
                log.write(json.dumps(rec) + "\n")
                log.flush()
                bar.update(1)

            if workers == 1 or len(todo) <= 1:
                for i, name in todo:
                    record(_export_frame(dataset, i, name, out, layout, num_samples, seed))
            else:
                import multiprocessing as mp

                ctx = mp.get_context("spawn")  # no fork of a process that holds torch's thread pools
                with ctx.Pool(workers, initializer=_init_worker,
                              initargs=(dataset, str(out), layout, num_samples, seed)) as pool:  # fmt: skip
                    for rec in pool.imap_unordered(_work, todo):
                        record(rec)
    finally:
        bar.close()
    if layout in ("hoisdf", "both"):
        _write_index(out, done, index_format)
    manifest.update(status="complete" if len(done) + len(skipped) >= len(jobs) else "incomplete",
                    frames=dict(sorted(done.items())), skipped=dict(sorted(skipped.items())))  # fmt: skip
    atomic_write_text(out / MANIFEST_NAME, json.dumps(manifest, indent=1, sort_keys=True))
    if layout in ("hoisdf", "both"):
        foreign = [p.stem for p in (out / "sdf_processed").glob("*.npy") if p.stem not in done]
        if foreign:
            warnings.warn(f"export_sdf_samples: {out / 'sdf_processed'} holds {len(foreign)} file(s) this export did not "
                          f"write (e.g. {foreign[0]}.npy); sdf_index.npy lists only the export's {len(done)} frames, "
                          "and HOISDF's DexYCB loader expects one row per file", stacklevel=2)  # fmt: skip
    summary.skipped, summary.total = skipped, len(done)
    return summary
