"""Load published ViT weights (MAE, MultiMAE, timm) into :class:`~hoimask.nn.ViTEncoder`.

Checkpoints are read from a local file with ``torch.load(weights_only=True)``
(no pickled code runs) and mapped by key:

* **timm** (``vit_base_patch16_224`` etc.) and **MAE** (``mae_pretrain_vit_base.pth``,
  wrapped in ``{"model": ...}``) use our names already: ``patch_embed.proj``,
  ``cls_token``, ``pos_embed`` ``(1, 1 + N, D)``, ``blocks.i.*``, ``norm``.
  MAE's decoder (``decoder_*``, ``mask_token``) and classifier heads are
  reported as unexpected and skipped.
* **MultiMAE** uses ``input_adapters.rgb.proj`` (patch embedding),
  ``input_adapters.rgb.pos_emb`` ``(1, D, gh, gw)``, ``global_tokens`` (class
  token) and ``encoder.i.*`` (blocks); it has no final norm, so ``norm.*`` is
  reported missing and keeps its initial (identity) value.

Position embeddings built for another grid are resized (bicubic on the patch
part; the class-token position is kept). Every other shape mismatch is an
error that lists all mismatched keys.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from hoimask._checks import FileFormatError, check_choice

__all__ = ["LoadReport", "load_vit_checkpoint", "convert_vit_state_dict", "detect_checkpoint_format"]

FORMATS = ("auto", "timm", "mae", "multimae")


class LoadReport(NamedTuple):
    """Outcome of :func:`load_vit_checkpoint` and :func:`~hoimask.nn.load_resnet_checkpoint`."""

    format: str  #: the detected (or given) key format
    missing_keys: list[str]  #: model parameters the checkpoint did not provide
    unexpected_keys: list[str]  #: checkpoint entries that were not used


def _unwrap(obj) -> dict[str, torch.Tensor]:
    for key in ("model", "state_dict", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise FileFormatError("load_vit_checkpoint(): the file does not hold a state dict of tensors")
    return {re.sub(r"^module\.", "", k): v for k, v in obj.items()}


def _read_checkpoint(path: str | os.PathLike, fn: str) -> object:
    """``torch.load(path, weights_only=True)`` on CPU; :class:`FileFormatError` naming ``fn`` and the file otherwise."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileFormatError(f"{fn}(): argument 'path' is not a file: {path!r}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised as a typed error naming the file
        detail = str(exc).strip()
        if detail.startswith("Weights only load failed"):  # torch's long advice to load untrusted code: not ours
            detail = "torch.load(weights_only=True) refused it"
        else:
            detail = f"{type(exc).__name__}: {detail.splitlines()[0].split('. ')[0] if detail else ''}"
        raise FileFormatError(f"{fn}(): cannot read {path!r} as a tensor checkpoint (a torch.save file of "
                              f"tensors): {detail}") from exc


def _shape_mismatches(state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]) -> list[str]:
    """``"key: checkpoint (..) vs model (..)"`` for every shared key whose shapes differ."""
    return [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]


def detect_checkpoint_format(state_dict: dict[str, torch.Tensor]) -> str:
    """Guess the key format of a ViT state dict.

    Args:
        state_dict: unwrapped checkpoint entries.

    Returns:
        ``"multimae"`` (input adapters / global tokens), ``"mae"`` (MAE decoder
        keys present) or ``"timm"``.
    """
    keys = list(state_dict)
    if any(k.startswith(("input_adapters.", "global_tokens")) for k in keys):
        return "multimae"
    if any(k.startswith(("decoder_", "mask_token")) for k in keys):
        return "mae"
    return "timm"


def _rename(
    state_dict: dict[str, torch.Tensor], fmt: str
) -> tuple[dict[str, torch.Tensor], list[str], tuple[int, int] | None]:
    """Map checkpoint keys to ViTEncoder keys.

    Returns:
        ``(mapped, not mapped, patch grid of the position embedding)``; the grid
        is known only for MultiMAE, whose embedding is stored as ``(1, D, gh, gw)``.
    """
    mapped: dict[str, torch.Tensor] = {}
    unused: list[str] = []
    grid: tuple[int, int] | None = None
    for key, value in state_dict.items():
        if fmt == "multimae":
            if key.startswith("input_adapters.rgb.proj."):
                mapped["patch_embed." + key[len("input_adapters.rgb.") :]] = value
            elif key == "input_adapters.rgb.pos_emb":
                mapped["pos_embed"] = rearrange(value, "1 d h w -> 1 (h w) d")
                grid = (int(value.shape[-2]), int(value.shape[-1]))
            elif key == "global_tokens":
                mapped["cls_token"] = value[:, :1]
            elif re.match(r"^encoder\.\d+\.", key):
                mapped["blocks." + key[len("encoder.") :]] = value
            else:
                unused.append(key)
        else:
            if re.match(r"^(patch_embed\.proj\.|cls_token$|pos_embed$|blocks\.\d+\.|norm\.)", key):
                mapped[key] = value
            else:
                unused.append(key)
    return mapped, unused, grid


def _resize_pos_embed(pos: torch.Tensor, model: nn.Module, src_grid: tuple[int, int] | None) -> torch.Tensor:
    """Fit a checkpoint position embedding ``(1, [prefix +] M, D)`` to the model's grid."""
    target = model.pos_embed
    prefix = model.num_prefix_tokens
    gh, gw = model.grid_size
    n_src = pos.shape[1]
    if n_src == gh * gw + prefix and pos.shape[2] == target.shape[2]:
        return pos
    # Split off the prefix position if the checkpoint has one.
    if src_grid is not None:
        sh, sw = src_grid
        body, head = pos, pos.new_zeros(1, prefix, pos.shape[2])
    else:
        for extra in (1, 0):
            side = int(round((n_src - extra) ** 0.5))
            if side * side == n_src - extra:
                sh = sw = side
                head = pos[:, :extra] if extra else pos.new_zeros(1, 0, pos.shape[2])
                body = pos[:, extra:]
                break
        else:
            return pos  # cannot interpret; the shape check reports it
        if head.shape[1] != prefix:
            head = pos.new_zeros(1, prefix, pos.shape[2]) if head.shape[1] == 0 else head[:, :prefix]
    if (sh, sw) != (gh, gw):
        grid = rearrange(body, "1 (h w) d -> 1 d h w", h=sh, w=sw)
        grid = F.interpolate(grid.float(), size=(gh, gw), mode="bicubic", align_corners=False).to(pos.dtype)
        body = rearrange(grid, "1 d h w -> 1 (h w) d")
    return torch.cat([head, body], dim=1)


def convert_vit_state_dict(
    state_dict: dict[str, torch.Tensor], model: nn.Module, *, format: str = "auto"
) -> tuple[dict[str, torch.Tensor], list[str], str]:
    """Map a (MAE / MultiMAE / timm) state dict onto ``model``'s keys and shapes.

    Args:
        state_dict: the checkpoint's tensors (wrappers like ``{"model": ...}`` are removed).
        model: a :class:`~hoimask.nn.ViTEncoder`.
        format: ``"auto"``, ``"timm"``, ``"mae"`` or ``"multimae"``.

    Returns:
        ``(mapped state dict, unexpected keys, format)``.

    Raises:
        FileFormatError: some mapped tensors have the wrong shape (all are listed).
    """
    check_choice(format, FORMATS, name="format")
    state_dict = _unwrap(state_dict)
    fmt = detect_checkpoint_format(state_dict) if format == "auto" else format
    mapped, unused, grid = _rename(state_dict, fmt)
    if "pos_embed" in mapped:
        mapped["pos_embed"] = _resize_pos_embed(mapped["pos_embed"], model, grid)
    own = model.state_dict()
    wrong = _shape_mismatches(mapped, own)
    if wrong:
        raise FileFormatError(
            f"load_vit_checkpoint(): {len(wrong)} tensors have mismatched shapes ({fmt} format):\n  " + "\n  ".join(wrong)
        )
    unused += [k for k in mapped if k not in own]
    mapped = {k: v for k, v in mapped.items() if k in own}
    return mapped, unused, fmt


def load_vit_checkpoint(
    path: str | os.PathLike, model: nn.Module, *, format: str = "auto", strict: bool = False
) -> LoadReport:
    """Load ViT weights from a local MAE, MultiMAE or timm checkpoint into ``model``.

    Args:
        path: a ``.pth``/``.pt`` file (``torch.save`` format, tensors only).
        model: a :class:`~hoimask.nn.ViTEncoder` with matching size.
        format: key format, detected when ``"auto"``.
        strict: raise if any key is missing or unexpected.

    Returns:
        :class:`LoadReport` naming missing and unexpected keys.

    Raises:
        FileFormatError: missing/unreadable file, mismatched shapes (listed), or
            (``strict``) missing/unexpected keys.

    Shape:
        not applicable (loads parameters in place).
    """
    path = os.fspath(path)
    raw = _read_checkpoint(path, "load_vit_checkpoint")
    mapped, unexpected, fmt = convert_vit_state_dict(raw, model, format=format)
    missing = sorted(k for k in model.state_dict() if k not in mapped)
    if strict and (missing or unexpected):
        raise FileFormatError(
            f"load_vit_checkpoint(): strict load of {path!r} failed; missing {missing}, unexpected {unexpected}"
        )
    model.load_state_dict(mapped, strict=False)
    return LoadReport(fmt, missing, sorted(unexpected))
