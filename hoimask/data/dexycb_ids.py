"""The DexYCB toolkit's ids of a :class:`~hoimask.data.DexYCB` frame, for its result files.

The toolkit's evaluators (``NVlabs/dex-ycb-toolkit``) name images by ids of
its own ``DexYCBDataset`` (``dex_ycb_toolkit/dex_ycb.py``):

* **HPE image index**: the position of the frame in the toolkit's split. The
  toolkit lists, subject by subject (in the split's order), the subject's
  sorted sequence folders picked by the split (*all* of them, left hands
  included), and within each sequence every camera of the split, and within
  each camera every frame: ``index = offset(sequence) + camera * num_frames + frame``,
  ``offset`` being the number of frames (times cameras) of the sequences before it.
* **BOP ids** (``get_bop_id_from_idx``): ``scene_id = sequence * num_cameras +
  camera``, ``im_id = frame``, with ``sequence`` the position of the sequence
  in that list; only frames with ``frame % 4 == 0`` are BOP keyframes
  (``is_bop_target``).

hoimask's :class:`~hoimask.data.DexYCB` may skip left-hand sequences
(``hands="right"``) or unannotated frames (``require_hand=True``), so its own
indices differ; :func:`dexycb_toolkit_ids` recomputes the toolkit's ids from the
folders, as the toolkit does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hoimask._checks import FileFormatError

from ._io import number_field, read_yaml
from .dexycb import DEXYCB_SUBJECTS, DexYCB, dexycb_split

__all__ = ["BOP_KEYFRAME_STEP", "dexycb_toolkit_ids"]

#: The toolkit evaluates BOP on every 4th frame (``_BOP_EVAL_SUBSAMPLING_FACTOR``).
BOP_KEYFRAME_STEP = 4


def dexycb_toolkit_ids(dataset: DexYCB) -> dict[str, np.ndarray]:
    """The toolkit's HPE and BOP ids of every frame of ``dataset``, in ``dataset`` order.

    Reads ``meta.yml`` (``num_frames``) of every sequence of the split,
    including the left-hand ones that ``hands="right"`` skips, because they
    shift the toolkit's indices.

    Args:
        dataset: a :class:`~hoimask.data.DexYCB` over a complete split (the
            toolkit itself requires every subject of the split with its 100
            sequences).

    Returns:
        Dict of ``(N,)`` arrays, ``N = len(dataset)``: ``image_id`` (int64,
        the HPE index), ``scene_id``, ``im_id`` (int64, BOP), ``obj_id`` (int64,
        YCB id of the grasped object), ``mirrored`` (bool: a left hand mirrored
        by ``hands="mirror"``; the result writers undo it), ``is_bop_target``
        (bool: a BOP keyframe).

    Raises:
        FileFormatError: a subject of the split is missing, holds other than
            100 sequences, or a ``meta.yml`` lacks ``num_frames`` or holds no int >= 1 there.

    Shape:
        every value ``(len(dataset),)``.
    """
    subj_ind, _, seq_ind = dexycb_split(dataset.setup, dataset.split)
    subjects = [DEXYCB_SUBJECTS[i] for i in subj_ind]
    cameras = len(dataset.serials)
    where: dict[Path, tuple[int, int, int]] = {}  # sequence dir -> (toolkit sequence, offset, num_frames)
    position, offset = 0, 0
    for subject in subjects:
        sdir = Path(dataset.root) / subject
        seqs = sorted(p.name for p in sdir.iterdir() if p.is_dir()) if sdir.is_dir() else []
        if len(seqs) != 100:
            raise FileFormatError(
                f"dexycb_toolkit_ids(): {sdir} holds {len(seqs)} sequences; the toolkit's ids need every "
                f"subject of {dataset.setup}_{dataset.split} with its 100 sequences"
            )
        for qi in seq_ind:
            qdir = sdir / seqs[qi]
            meta = qdir / "meta.yml"
            num_frames = number_field(meta, read_yaml(meta, ("num_frames",))["num_frames"], "num_frames",
                                      integer=True, minimum=1)
            where[qdir.resolve()] = (position, offset, num_frames)
            position += 1
            offset += num_frames * cameras
    frames = np.asarray(dataset.frames, dtype=np.int64)  # (N, 3): sequence k, camera, frame
    out = {key: np.zeros(len(frames), dtype=np.int64) for key in ("image_id", "scene_id", "im_id", "obj_id")}
    out["mirrored"] = np.zeros(len(frames), dtype=bool)
    for k, seq in enumerate(dataset.sequences):
        rows = np.flatnonzero(frames[:, 0] == k)
        seq_pos, seq_offset, num_frames = where[Path(seq["dir"]).resolve()]
        cam, frame = frames[rows, 1], frames[rows, 2]
        out["image_id"][rows] = seq_offset + cam * num_frames + frame
        out["scene_id"][rows] = seq_pos * cameras + cam
        out["im_id"][rows] = frame
        out["obj_id"][rows] = seq["ycb_ids"][seq["grasp"]]
        out["mirrored"][rows] = seq["side"] == "left"
    out["is_bop_target"] = out["im_id"] % BOP_KEYFRAME_STEP == 0
    return out
