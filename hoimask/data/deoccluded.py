"""De-occluded twins of real frames (UniHOPE §3.3), read from a folder that mirrors the dataset's images.

UniHOPE pairs each training image with a *de-occluded* twin: the same frame
with the grasped object removed and the hand repainted, made by a generative
de-occluder that is not released. Make the twins with any tool, then give the
loaders the folder they are in (``deoccluded_root=``). The layout mirrors the
colour images' paths relative to the dataset root, with the suffix free::

    <deoccluded_root>/<path of the colour image relative to the dataset root, suffix .png, .jpg or .jpeg>

    DexYCB  ROOT/20200709-subject-01/20200709_141754/836212060125/color_000000.jpg
       ->   DEOCCLUDED/20200709-subject-01/20200709_141754/836212060125/color_000000.png
    HO3D    ROOT/train/ABF10/rgb/0000.jpg
       ->   DEOCCLUDED/train/ABF10/rgb/0000.png

Suffixes are tried in the order of :data:`DEOCCLUDED_SUFFIXES` (lower or upper
case). A twin has the colour image's size (the original frame, before any
crop, resize or mirroring: the loader applies those to both images); a twin of
another size raises :class:`~hoimask._checks.FileFormatError` naming both files.
A frame without a twin gets ``has_deoccluded = False`` and a black placeholder
``deoccluded_image`` (:func:`deoccluded_placeholder`) so that batches stay
dense; :class:`hoimask.models.UniHOPE` never runs the placeholder, and its
enhancement losses skip the sample. The folder is scanned once at construction;
the loader warns with the number of frames that have no twin.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from hoimask._checks import DTypeError, FileFormatError

from ._io import read_image

__all__ = ["DEOCCLUDED_KEYS", "DEOCCLUDED_SUFFIXES", "DeoccludedPairs", "deoccluded_placeholder"]

#: Suffixes of a twin, in the order they are looked for.
DEOCCLUDED_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")
#: The sample keys a pair adds: the twin (3, H, W) float32 and whether it is real, () bool.
DEOCCLUDED_KEYS: tuple[str, ...] = ("deoccluded_image", "has_deoccluded")


def deoccluded_placeholder(image: torch.Tensor) -> torch.Tensor:
    """The ``deoccluded_image`` of a sample without a twin: black, of ``image``'s shape, dtype and device.

    It only keeps a batch dense; it must never reach a loss (``has_deoccluded`` is False).

    Example:
        >>> deoccluded_placeholder(torch.rand(3, 4, 5)).abs().sum()
        tensor(0.)
    """
    return torch.zeros_like(image)


def _scan(root: Path) -> tuple[set[str], dict[str, str]]:
    """Relative POSIX paths (suffix lower-cased) of the image files under ``root``, and the real names of
    those whose suffix is not lower case (``"a/0.png" -> "a/0.PNG"``)."""
    found: set[str] = set()
    cased: dict[str, str] = {}
    for folder, _, files in os.walk(root):
        rel = Path(folder).relative_to(root)
        for name in files:
            stem, dot, suffix = name.rpartition(".")
            if dot and f".{suffix.lower()}" in DEOCCLUDED_SUFFIXES:
                key = (rel / f"{stem}.{suffix.lower()}").as_posix()
                found.add(key)
                if suffix != suffix.lower():
                    cased[key] = (rel / name).as_posix()
    return found, cased


class DeoccludedPairs:
    """Which frames of a loader have a de-occluded twin under ``root``, and how to read it.

    Args:
        root: the twins' folder (``deoccluded_root`` of the loader).
        stems: per frame of the loader, the colour image's path relative to
            the dataset root without its suffix (``"<subject>/<sequence>/<serial>/color_000000"``).
        dataset_root: the dataset root (refused as ``root``: the colour images would pair with themselves).
        who: the loader, for messages (``"DexYCB"``).

    Raises:
        FileFormatError: ``root`` is not a directory, or is the dataset root (the message names the argument).
        DTypeError: ``root`` is not a str or path.
    """

    def __init__(self, root: str | os.PathLike, stems: Sequence[str], *, dataset_root: Path, who: str) -> None:
        if not isinstance(root, (str, os.PathLike)):
            raise DTypeError(f"{who}(): argument 'deoccluded_root' expected a folder (str or path), got "
                             f"{type(root).__name__}")
        self.root = Path(root)
        self.who = who
        if not self.root.is_dir():
            raise FileFormatError(f"{who}(): argument 'deoccluded_root' {self.root} is not a directory; expected a "
                                  "folder that mirrors the colour images' relative paths (docs/data.md, "
                                  "'De-occluded pairs')")
        if self.root.resolve() == Path(dataset_root).resolve():
            raise FileFormatError(f"{who}(): argument 'deoccluded_root' {self.root} is the dataset root; the colour "
                                  "images would pair with themselves. Give the folder of the de-occluded twins")
        found, self._cased = _scan(self.root)
        which = np.full(len(stems), -1, dtype=np.int8)  # per frame: index into DEOCCLUDED_SUFFIXES, -1 = no twin
        for i, stem in enumerate(stems):
            for k, suffix in enumerate(DEOCCLUDED_SUFFIXES):
                if stem + suffix in found:
                    which[i] = k
                    break
        self._suffix = which
        self.count = int((which >= 0).sum())
        missing = len(stems) - self.count
        if missing:
            first = stems[int(np.flatnonzero(which < 0)[0])]
            warnings.warn(f"{who}: {missing} of {len(stems)} frames have no de-occluded twin under {self.root} "
                          f"(e.g. {self.root / first}{DEOCCLUDED_SUFFIXES[0]}); their samples get "
                          "has_deoccluded=False and no enhancement loss", stacklevel=3)

    def __len__(self) -> int:
        return len(self._suffix)

    def path(self, index: int, stem: str) -> Path | None:
        """The twin of frame ``index`` (whose colour stem is ``stem``), or ``None``."""
        k = int(self._suffix[index])
        if k < 0:
            return None
        key = f"{stem}{DEOCCLUDED_SUFFIXES[k]}"
        return self.root / self._cased.get(key, key)

    def read(self, index: int, stem: str, image: torch.Tensor, image_path: Path) -> dict[str, torch.Tensor]:
        """The :data:`DEOCCLUDED_KEYS` of frame ``index``: its twin (or the placeholder) and whether it is real.

        Args:
            index: the frame (the loader's index).
            stem: its colour image's relative path without the suffix.
            image: ``(3, H, W)`` the colour image as read (before crop, resize or mirroring).
            image_path: the colour image's file (named in errors).

        Raises:
            FileFormatError: the twin cannot be decoded, or its size is not the image's (both files named).
        """
        path = self.path(index, stem)
        if path is None:
            return {"deoccluded_image": deoccluded_placeholder(image), "has_deoccluded": torch.tensor(False)}
        twin = read_image(path)
        if twin.shape != image.shape:
            raise FileFormatError(f"{path}: de-occluded image is {tuple(twin.shape[1:])} (H, W), but its colour image "
                                  f"{image_path} is {tuple(image.shape[1:])}; a pair must have one size")
        return {"deoccluded_image": twin, "has_deoccluded": torch.tensor(True)}
