"""The SDF file layouts of HOISDF and AlignSDF / gSDF, and a reader that serves them as loader targets.

**HOISDF's processed layout** (HOISDF ``tool/pre_process_sdf.py``, read by
its ``data/dexycb.py`` and ``data/ho3d.py``)::

    OUT/sdf_processed/<name>.npy   float32 (N, 6), rows [x, y, z, sdf_hand, sdf_obj, label],
                                   camera frame, metres; the n_hand rows of hand
                                   samples first, then the n_obj object samples;
                                   within each block the samples with a positive
                                   distance to their own mesh first, then the rest
    OUT/sdf_index.npy              int64 (F, 2): (n_hand, n_obj) per file, in the
                                   sorted order of the names in sdf_processed/

``label`` is the hand part (the *fine* label, 0–15) for hand rows and −1 where
``|sdf_hand| > 0.05`` in normalised units (``0.05 / scale`` metres); it is −1
for every object row. HOISDF's HO3D loader instead reads ``sdf_index.npy`` as
a pickled dict ``{name: (n_hand, n_obj)}`` (``index_format="dict"``).
HOISDF's pre-processing also drops rows with ``|sdf| ≥ 2`` normalised units;
hoimask keeps every row.

**AlignSDF's raw layout** (grasping_field / AlignSDF ``PreprocessMesh.cpp``
``writeSDFToNPZ`` and ``SaveNormalizationParamsToNPZ``; read by gSDF and by
HOISDF's pre-processing), in normalised units::

    OUT/norm/<name>.npz      offset float32 (3,), scale float32 (1,)
    OUT/sdf_hand/<name>.npz  pos, neg          float32 (n, 4): x, y, z, sdf to the hand (pos: sdf > 0)
                             pos_other, neg_other  float32 (n, 1): sdf to the object
                             lab_pos, lab_neg  int32 (n, 4): hand-part labels
                             lab_pos_other, lab_neg_other  int32 (n, 4): zeros
    OUT/sdf_obj/<name>.npz   the same for object samples (sdf to the object;
                             "other" = the hand; lab_* zeros, lab_*_other the
                             hand-part labels of the nearest hand part)

The four label columns are grasping_field's face-table columns: coarse part,
fine part, contact region, wrist seal; hoimask fills the first two and writes
0 in the others (see :mod:`hoimask.hand.parts`).

:class:`SDFSampleFiles` reads the processed layout (an export of
:mod:`hoimask.data.export_sdf`, or HOISDF's own files) and gives a loader
``sdf_points`` / ``sdf_hand`` / ``sdf_object`` targets.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from hoimask._checks import FileFormatError, check_choice, check_int, check_probability

from .sdf_samples import FrameSDFSamples

__all__ = [
    "HOISDF_LABEL_CLAMP",
    "SDFFrame",
    "SDFSampleFiles",
    "alignsdf_arrays",
    "hoisdf_rows",
    "read_export_state",
    "read_sdf_index",
]

#: HOISDF sets the part label of hand rows to -1 where |sdf_hand| exceeds this (normalised units).
HOISDF_LABEL_CLAMP = 0.05
#: Manifest and done-log of a hoimask export (see :mod:`hoimask.data.export_sdf`).
MANIFEST_NAME = "hoimask_sdf_export.json"
DONE_LOG_NAME = "hoimask_sdf_export.done.jsonl"
EXPORT_FORMAT = "hoimask-sdf-export"


def _positive_first(sdf: Tensor) -> Tensor:
    """Row order of one block: samples with ``sdf > 0`` (AlignSDF's ``pos``) then the others (``neg``)."""
    pos = sdf > 0
    return torch.cat([pos.nonzero()[:, 0], (~pos).nonzero()[:, 0]])


def hoisdf_rows(samples: FrameSDFSamples) -> np.ndarray:
    """The rows of HOISDF's ``sdf_processed/<name>.npy`` for one frame.

    Args:
        samples: the frame's samples.

    Returns:
        float32 ``(N, 6)`` rows ``[x, y, z, sdf_hand, sdf_obj, label]``; the
        ``samples.num_hand`` hand rows first (positive ``sdf_hand`` first),
        then the object rows (positive ``sdf_obj`` first); label as in the module docstring.

    Shape:
        ``-> (N, 6)``
    """
    nh = samples.num_hand
    clamp = HOISDF_LABEL_CLAMP / samples.scale  # metres
    label = samples.fine_part.to(torch.float32).clone()
    label[samples.sdf_hand.abs() > clamp] = -1
    label[nh:] = -1
    order = torch.cat([_positive_first(samples.sdf_hand[:nh]), nh + _positive_first(samples.sdf_object[nh:])])
    rows = torch.cat([samples.points, samples.sdf_hand[:, None], samples.sdf_object[:, None], label[:, None]], 1)
    return rows[order].numpy().astype(np.float32)


def alignsdf_arrays(samples: FrameSDFSamples) -> dict[str, dict[str, np.ndarray]]:
    """The arrays of AlignSDF's ``norm/``, ``sdf_hand/`` and ``sdf_obj/`` files for one frame.

    Args:
        samples: the frame's samples.

    Returns:
        ``{"norm": {...}, "sdf_hand": {...}, "sdf_obj": {...}}`` with the keys,
        dtypes and shapes of the module docstring (normalised units).
    """
    nh = samples.num_hand
    offset = samples.offset.to(torch.float64)
    xyz = ((samples.points.to(torch.float64) + offset) * samples.scale).to(torch.float32)
    sh, so = samples.sdf_hand * samples.scale, samples.sdf_object * samples.scale
    labels = torch.zeros(samples.points.shape[0], 4, dtype=torch.int32)
    labels[:, 0], labels[:, 1] = samples.coarse_part.to(torch.int32), samples.fine_part.to(torch.int32)
    zeros = torch.zeros_like(labels)

    def block(rows: slice, own: Tensor, other: Tensor, lab: Tensor, lab_other: Tensor) -> dict[str, np.ndarray]:
        pos = own[rows] > 0
        out = {}
        for key, mask in (("pos", pos), ("neg", ~pos)):
            out[key] = torch.cat([xyz[rows][mask], own[rows][mask, None]], 1).numpy().astype(np.float32)
            out[f"{key}_other"] = other[rows][mask, None].numpy().astype(np.float32)
            out[f"lab_{key}"] = lab[rows][mask].numpy()
            out[f"lab_{key}_other"] = lab_other[rows][mask].numpy()
        return out

    return {
        "norm": {"offset": offset.numpy().astype(np.float32), "scale": np.array([samples.scale], dtype=np.float32)},
        "sdf_hand": block(slice(0, nh), sh, so, labels, zeros),
        "sdf_obj": block(slice(nh, None), so, sh, zeros, labels),
    }


def read_sdf_index(path: str | os.PathLike) -> np.ndarray | dict[str, tuple[int, int]]:
    """Read HOISDF's ``sdf_index.npy``: an int ``(F, 2)`` array, or the pickled dict of its HO3D loader.

    The dict form is a pickled NumPy object array; it is read with hoimask's
    restricted unpickler (no code runs), never with ``allow_pickle=True``.

    Args:
        path: the file.

    Returns:
        The ``(F, 2)`` int64 array, or ``{name: (n_hand, n_obj)}``.

    Raises:
        FileFormatError: missing, unreadable or of another shape (the message names the file).
    """
    from hoimask.hand._unpickle import resolve, restricted_load

    p = Path(path)
    if not p.is_file():
        raise FileFormatError(f"{p}: file not found; expected HOISDF's sdf_index.npy")
    try:
        with open(p, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            _, _, dtype = header(fh)
            if dtype.hasobject:
                value = resolve(restricted_load(fh))
            else:
                fh.seek(0)
                value = np.load(fh, allow_pickle=False)
    except FileFormatError as e:
        raise type(e)(f"{p}: {e}") from e
    except Exception as e:  # noqa: BLE001 - any decoder failure is a format error of this file
        raise FileFormatError(f"{p}: could not read as an .npy array ({e})") from e
    if isinstance(value, np.ndarray) and value.dtype == object and value.shape == ():
        value = value.item()
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            arr = np.asarray(v)
            if not isinstance(k, str) or arr.shape != (2,) or not np.issubdtype(arr.dtype, np.integer):
                raise FileFormatError(f"{p}: entry {k!r} expected a name -> (n_hand, n_obj) pair of ints, got {v!r}")
            out[k] = (int(arr[0]), int(arr[1]))
        return out
    if not isinstance(value, np.ndarray) or value.ndim != 2 or value.shape[1] != 2 or not np.issubdtype(value.dtype, np.integer):
        got = getattr(value, "shape", type(value).__name__)
        raise FileFormatError(f"{p}: expected an integer (F, 2) array or a dict, got {got}")
    return value.astype(np.int64)


@dataclass(frozen=True)
class SDFFrame:
    """One frame of the processed layout, as tensors.

    Shape:
        points ``(N, 3)``, sdf_hand ``(N,)``, sdf_object ``(N,)``, label ``(N,)`` (float32);
        the first ``num_hand`` rows are hand samples.
    """

    points: Tensor
    sdf_hand: Tensor
    sdf_object: Tensor
    label: Tensor
    num_hand: int


class SDFSampleFiles:
    """SDF samples in HOISDF's processed layout, served as loader targets.

    Pass it as ``sdf_source=`` to :class:`~hoimask.data.DexYCB` or
    :class:`~hoimask.data.HO3D`: each sample's ``sdf_points``, ``sdf_hand``
    and ``sdf_object`` are then ``num_sdf_points`` rows of the frame's file
    (HOISDF's 600 hand + 200 object rows give ``hand_share = 0.75``), drawn
    without replacement from the hand block and the object block.

    ``root`` is an export of ``python -m hoimask.data.export_sdf`` (its
    manifest gives the naming and the row counts, complete or not) or a folder
    of HOISDF's own files (``sdf_processed/`` and ``sdf_index.npy``, array or
    dict form; names as HOISDF's loaders build them).

    Args:
        root: the folder holding ``sdf_processed/``.
        hand_share: fraction of the drawn rows taken from the hand block.
        naming: the DexYCB file naming, ``"hoisdf"`` or ``"gsdf"`` (read from
            the manifest of a hoimask export; give it for other folders).

    Raises:
        FileFormatError: no manifest and no ``sdf_index.npy``, a malformed
            index, or an index that does not match ``sdf_processed/``.

    Example:
        >>> SDFSampleFiles("missing-folder")
        Traceback (most recent call last):
        ...
        hoimask._checks.FileFormatError: missing-folder: neither hoimask_sdf_export.json nor sdf_index.npy found; expected a folder written by python -m hoimask.data.export_sdf or HOISDF's sdf_processed/ + sdf_index.npy
    """

    def __init__(self, root: str | os.PathLike, *, hand_share: float = 0.75, naming: str | None = None) -> None:
        self.root = Path(root)
        self.hand_share = check_probability(hand_share, name="hand_share", fn="SDFSampleFiles")
        manifest = self.root / MANIFEST_NAME
        if manifest.is_file():
            state = read_export_state(self.root)
            self.counts = {n: tuple(c) for n, c in state["frames"].items()}
            self.naming = state["config"].get("naming", "hoisdf") if naming is None else naming
        elif (self.root / "sdf_index.npy").is_file():
            index = read_sdf_index(self.root / "sdf_index.npy")
            if isinstance(index, dict):
                self.counts = index
            else:
                names = sorted(p.stem for p in (self.root / "sdf_processed").glob("*.npy"))
                if len(names) != len(index):
                    raise FileFormatError(f"{self.root / 'sdf_index.npy'}: {len(index)} rows but "
                                          f"{self.root / 'sdf_processed'} holds {len(names)} .npy files")  # fmt: skip
                self.counts = {n: (int(a), int(b)) for n, (a, b) in zip(names, index)}
            self.naming = "hoisdf" if naming is None else naming
        else:
            raise FileFormatError(
                f"{self.root}: neither {MANIFEST_NAME} nor sdf_index.npy found; expected a folder written by "
                "python -m hoimask.data.export_sdf or HOISDF's sdf_processed/ + sdf_index.npy"
            )
        check_choice(self.naming, ("hoisdf", "gsdf"), name="naming", fn="SDFSampleFiles")

    def __len__(self) -> int:
        return len(self.counts)

    def __contains__(self, name: object) -> bool:
        return name in self.counts

    @property
    def names(self) -> list[str]:
        """The frame names, sorted."""
        return sorted(self.counts)

    def path(self, name: str) -> Path:
        """``root/sdf_processed/<name>.npy``."""
        return self.root / "sdf_processed" / f"{name}.npy"

    def frame(self, name: str) -> SDFFrame:
        """All rows of frame ``name``.

        Raises:
            FileFormatError: the frame is not listed, or its file is missing,
                malformed or disagrees with the index (frame and file named).
        """
        path = self.path(name)
        if name not in self.counts:
            raise FileFormatError(f"SDFSampleFiles: frame {name!r} is not listed in {self.root} "
                                  f"({len(self)} frames); expected the file {path}")  # fmt: skip
        try:
            rows = np.load(path, allow_pickle=False)
        except FileNotFoundError as e:
            raise FileFormatError(f"{path}: file not found (frame {name!r} is listed in {self.root})") from e
        except Exception as e:  # noqa: BLE001
            raise FileFormatError(f"{path}: could not read frame {name!r} as an .npy array ({e})") from e
        nh, no = self.counts[name]
        if rows.ndim != 2 or rows.shape[1] != 6 or rows.shape[0] != nh + no or rows.dtype.kind != "f":
            raise FileFormatError(f"{path}: frame {name!r} expected float rows of shape ({nh + no}, 6) "
                                  f"(n_hand={nh}, n_obj={no}), got {rows.dtype} {rows.shape}")  # fmt: skip
        t = torch.from_numpy(rows.astype(np.float32))
        return SDFFrame(points=t[:, :3], sdf_hand=t[:, 3], sdf_object=t[:, 4], label=t[:, 5], num_hand=int(nh))

    def targets(
        self, name: str, num: int, *, generator: torch.Generator | None = None, mirror: bool = False
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``num`` rows of frame ``name`` as ``(sdf_points, sdf_hand, sdf_object)``.

        ``round(num · hand_share)`` rows come from the hand block, the rest
        from the object block (all from the other block when one is empty),
        each without replacement while the block is large enough.

        Args:
            name: the frame.
            num: ``Q``.
            generator: source of randomness.
            mirror: negate x (DexYCB left hands mirrored into right hands).

        Returns:
            Points ``(Q, 3)``, signed distances ``(Q,)``, ``(Q,)``, float32.
        """
        check_int(num, name="num", low=0, fn="SDFSampleFiles.targets")
        fr = self.frame(name)
        n = fr.points.shape[0]
        nh, no = fr.num_hand, n - fr.num_hand
        k_hand = round(num * self.hand_share) if nh and no else (num if nh else 0)
        picks = []
        for start, size, k in ((0, nh, k_hand), (nh, no, num - k_hand)):
            if k == 0:
                continue
            if size == 0:
                raise FileFormatError(f"{self.path(name)}: frame {name!r} has no rows to draw from")
            if k <= size:
                idx = torch.randperm(size, generator=generator)[:k]
            else:
                idx = torch.randint(size, (k,), generator=generator)
            picks.append(start + idx)
        idx = torch.cat(picks) if picks else torch.zeros(0, dtype=torch.int64)
        points = fr.points[idx].clone()
        if mirror:
            points[:, 0] = -points[:, 0]
        return points, fr.sdf_hand[idx].clone(), fr.sdf_object[idx].clone()


def read_export_state(root: str | os.PathLike) -> dict:
    """The configuration and the finished frames of a hoimask export (manifest plus done-log).

    Args:
        root: the export folder.

    Returns:
        ``{"config": dict, "frames": {name: [n_hand, n_obj]}, "skipped": {name: reason}}``.

    Raises:
        FileFormatError: a missing or malformed manifest (named). A torn last
            line of the done-log (an interrupted run) is ignored.
    """
    root = Path(root)
    path = root / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise FileFormatError(f"{path}: file not found; expected the manifest of a hoimask SDF export") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FileFormatError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
        raise FileFormatError(f"{path}: expected format {EXPORT_FORMAT!r}, got {manifest.get('format') if isinstance(manifest, dict) else manifest!r}")
    frames = dict(manifest.get("frames", {}))
    skipped = dict(manifest.get("skipped", {}))
    log = root / DONE_LOG_NAME
    if log.is_file():
        for line in log.read_text().splitlines():
            try:
                rec = json.loads(line)
                name = rec["name"]
                if "skipped" in rec:
                    skipped[name] = rec["skipped"]
                else:
                    frames[name] = [int(rec["num_hand"]), int(rec["num_object"])]
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # a torn line written when a run was killed
    for name, counts in frames.items():
        if not (isinstance(counts, list) and len(counts) == 2):
            raise FileFormatError(f"{path}: frame {name!r} expected [n_hand, n_obj], got {counts!r}")
    return {"config": manifest.get("config", {}), "frames": frames, "skipped": skipped}
