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

Position embeddings: a learned one (timm's ViTs) is kept as a learned
parameter, also in an encoder built with fixed sin-cos, and resized to the
encoder's grid with timm's or MAE's bicubic resize
(:func:`~hoimask.encoding.resize_pos_embed_2d`; the class-token position is
kept); a checkpoint table equal to the encoder's sin-cos keeps the exact
sin-cos. :attr:`LoadReport.pos_embed` says which happened. Every other shape
mismatch is an error that lists all mismatched keys.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import NamedTuple

import torch
from einops import rearrange
from torch import nn

from hoimask._checks import DTypeError, FileFormatError, check_choice
from hoimask.encoding import POS_EMBED_RESIZE_METHODS, resize_pos_embed_2d, sincos_pos_embed_2d

__all__ = ["LoadReport", "load_vit_checkpoint", "convert_vit_state_dict", "detect_checkpoint_format"]

FORMATS = ("auto", "timm", "mae", "multimae")
#: ``pos_embed_resize`` values of :func:`load_vit_checkpoint`.
POS_EMBED_RESIZE_CHOICES = ("auto", *POS_EMBED_RESIZE_METHODS)
#: The resize ``pos_embed_resize="auto"`` picks for each format: the one the checkpoint's own code uses
#: (timm's ``resample_abs_pos_embed``; MAE's ``interpolate_pos_embed``; MultiMAE's input adapter).
AUTO_POS_EMBED_RESIZE = {"timm": "timm", "mae": "mae", "multimae": "mae"}
_RESIZE_WORDS = {"timm": "timm: bicubic, antialiased", "mae": "MAE: bicubic, not antialiased"}


class LoadReport(NamedTuple):
    """Outcome of :func:`load_vit_checkpoint` and :func:`~hoimask.nn.load_resnet_checkpoint`."""

    format: str  #: the detected (or given) key format
    missing_keys: list[str]  #: model parameters the checkpoint did not provide
    unexpected_keys: list[str]  #: checkpoint entries that were not used
    #: what became of the checkpoint's position embedding (ViT checkpoints; None for ResNets), e.g.
    #: ``"learned (14x14) from the checkpoint, resized to 8x8 (timm: bicubic, antialiased); ..."``
    pos_embed: str | None = None


class _PosEmbedPlan(NamedTuple):
    learned: bool  #: hold the loaded embedding as learned (ViTEncoder.use_learned_pos_embed)
    resize: str  #: the encoder's resize method from now on (when ``learned``)
    report: str  #: LoadReport.pos_embed


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


def _split_pos_embed(
    pos: torch.Tensor, model: nn.Module, src_grid: tuple[int, int] | None
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]] | None:
    """``(prefix (1, P, D), patches (1, h·w, D), (h, w))`` of a checkpoint embedding, P = the model's prefix count.

    The checkpoint may or may not hold a class-token position (timm's ``no_embed_class`` models and
    MultiMAE do not; a missing one is zero, as MAE's). None if the layout cannot be read.
    """
    if pos.ndim != 3 or pos.shape[0] != 1:
        return None
    prefix = model.num_prefix_tokens
    gh, gw = model.grid_size
    n = pos.shape[1]
    zeros = pos.new_zeros(1, prefix, pos.shape[2])
    if src_grid is not None:  # MultiMAE: the patch positions only
        return zeros, pos, src_grid
    if n == gh * gw + prefix:
        return pos[:, :prefix], pos[:, prefix:], (gh, gw)
    for extra in (1, 0):  # with or without a class-token position, on a square grid
        side = math.isqrt(max(n - extra, 0))
        if side >= 1 and side * side == n - extra:
            head = pos[:, :extra][:, :prefix] if extra >= prefix else zeros
            return head, pos[:, extra:], (side, side)
    return None


def _is_sincos(head: torch.Tensor, body: torch.Tensor, grid: tuple[int, int]) -> bool:
    """Whether a checkpoint embedding is the fixed 2D sin-cos table (MAE / hoimask layout, zero class position)."""
    dim = body.shape[-1]
    if dim % 4 != 0:
        return False
    # float32 tables from numpy (MAE) and torch agree to ~1e-6; half-precision files round to their eps.
    atol = max(1e-4, 2 * torch.finfo(body.dtype).eps)
    table = sincos_pos_embed_2d(*grid, dim, dtype=torch.float64)[None]
    return bool(head.abs().max().item() <= atol if head.numel() else True) and torch.allclose(
        body.double(), table, rtol=0.0, atol=atol
    )


def _plan_pos_embed(
    pos: torch.Tensor, model: nn.Module, src_grid: tuple[int, int] | None, fmt: str, *, keep: bool, resize: str
) -> tuple[torch.Tensor, _PosEmbedPlan | None]:
    """The tensor to load as ``pos_embed`` (the model's shape when readable) and what to report about it."""
    parts = _split_pos_embed(pos, model, src_grid)
    if parts is None or pos.shape[-1] != model.pos_embed.shape[-1]:
        return pos, None  # not readable: the shape check reports it
    head, body, (h, w) = parts
    gh, gw = model.grid_size
    method = AUTO_POS_EMBED_RESIZE[fmt] if resize == "auto" else resize
    fixed = model.config.pos_embed == "sincos"
    what = f"{'fixed sin-cos' if _is_sincos(head, body, (h, w)) else 'learned'} ({h}x{w})"
    own = model.pos_embed.detach().clone()
    if not keep:
        mine = f"fixed sin-cos table ({gh}x{gw})" if fixed else f"learned embedding ({gh}x{gw}), unchanged"
        return own, _PosEmbedPlan(False, method, f"dropped (keep_pos_embed=False): the checkpoint's {what} "
                                                 f"embedding is not used; the encoder keeps its {mine}")
    if fixed and what.startswith("fixed"):
        return own, _PosEmbedPlan(False, method, f"{what} in the checkpoint, the same table as the encoder's: "
                                                 f"kept the encoder's exact fixed sin-cos ({gh}x{gw})")
    full = torch.cat([head, body], dim=1)
    loaded = resize_pos_embed_2d(full, (gh, gw), old_grid=(h, w), num_prefix_tokens=head.shape[1], method=method)
    how = f"resized to {gh}x{gw} ({_RESIZE_WORDS[method]})" if (h, w) != (gh, gw) else "used as is"
    text = f"{what} from the checkpoint, {how}"
    if fixed:
        text += "; replaces the encoder's fixed sin-cos as a learned parameter"
    text += f"; other grids resize it with {method!r}"
    return loaded, _PosEmbedPlan(True, method, text)


def _check_pos_embed_options(pos_embed_resize: str, keep_pos_embed: bool, fn: str) -> None:
    check_choice(pos_embed_resize, POS_EMBED_RESIZE_CHOICES, name="pos_embed_resize", fn=fn)
    if not isinstance(keep_pos_embed, bool):
        raise DTypeError(f"{fn}(): argument 'keep_pos_embed' expected a bool, got {keep_pos_embed!r} "
                         f"({type(keep_pos_embed).__name__})")


def _convert(
    state_dict, model: nn.Module, fmt_arg: str, resize: str, keep: bool
) -> tuple[dict[str, torch.Tensor], list[str], str, _PosEmbedPlan | None]:
    state_dict = _unwrap(state_dict)
    fmt = detect_checkpoint_format(state_dict) if fmt_arg == "auto" else fmt_arg
    mapped, unused, grid = _rename(state_dict, fmt)
    plan = None
    if "pos_embed" in mapped:
        mapped["pos_embed"], plan = _plan_pos_embed(mapped["pos_embed"], model, grid, fmt, keep=keep, resize=resize)
    own = model.state_dict()
    wrong = _shape_mismatches(mapped, own)
    if wrong:
        raise FileFormatError(
            f"load_vit_checkpoint(): {len(wrong)} tensors have mismatched shapes ({fmt} format):\n  " + "\n  ".join(wrong)
        )
    unused += [k for k in mapped if k not in own]
    mapped = {k: v for k, v in mapped.items() if k in own}
    return mapped, unused, fmt, plan


def convert_vit_state_dict(
    state_dict: dict[str, torch.Tensor],
    model: nn.Module,
    *,
    format: str = "auto",
    pos_embed_resize: str = "auto",
    keep_pos_embed: bool = True,
) -> tuple[dict[str, torch.Tensor], list[str], str]:
    """Map a (MAE / MultiMAE / timm) state dict onto ``model``'s keys and shapes.

    Does not change ``model``. The returned ``pos_embed`` has the model's shape:
    the checkpoint's, resized to the model's grid; or the model's own when it
    is kept (a sin-cos encoder and a sin-cos checkpoint, or
    ``keep_pos_embed=False``). Loading a learned one into a sin-cos encoder
    with ``load_state_dict`` alone leaves that encoder fixed sin-cos (other
    grids would recompute sin-cos); :func:`load_vit_checkpoint` also makes it
    learned.

    Args:
        state_dict: the checkpoint's tensors (wrappers like ``{"model": ...}`` are removed).
        model: a :class:`~hoimask.nn.ViTEncoder`.
        format: ``"auto"``, ``"timm"``, ``"mae"`` or ``"multimae"``.
        pos_embed_resize: as in :func:`load_vit_checkpoint`.
        keep_pos_embed: as in :func:`load_vit_checkpoint`.

    Returns:
        ``(mapped state dict, unexpected keys, format)``.

    Raises:
        FileFormatError: some mapped tensors have the wrong shape (all are listed).
        ValueRangeError: bad ``format`` or ``pos_embed_resize``.
        DTypeError: ``keep_pos_embed`` is not a bool.
    """
    check_choice(format, FORMATS, name="format", fn="convert_vit_state_dict")
    _check_pos_embed_options(pos_embed_resize, keep_pos_embed, "convert_vit_state_dict")
    mapped, unused, fmt, _ = _convert(state_dict, model, format, pos_embed_resize, keep_pos_embed)
    return mapped, unused, fmt


def load_vit_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    format: str = "auto",
    strict: bool = False,
    pos_embed_resize: str = "auto",
    keep_pos_embed: bool = True,
) -> LoadReport:
    """Load ViT weights from a local MAE, MultiMAE or timm checkpoint into ``model``.

    The checkpoint's position embedding:

    * **learned** (timm's ViTs; anything that is not the encoder's sin-cos
      table): kept. It is resized to the encoder's grid if that differs (the
      class-token position is kept) and held as a learned parameter, also by an
      encoder built with ``pos_embed="sincos"`` (the default), which becomes
      ``pos_embed="learned"`` (:meth:`~hoimask.nn.ViTEncoder.use_learned_pos_embed`;
      build the optimizer after loading). The encoder resizes it the same way
      when run at another image size.
    * **the fixed sin-cos table** (MAE's, hoimask's own exports) into a sin-cos
      encoder: the encoder keeps its exact sin-cos table, for its grid and any other.
    * ``keep_pos_embed=False``: not used; the encoder keeps its own (as the
      loader did for sin-cos encoders before), and the report says so.

    Args:
        path: a ``.pth``/``.pt`` file (``torch.save`` format, tensors only).
        model: a :class:`~hoimask.nn.ViTEncoder` with matching size.
        format: key format, detected when ``"auto"``.
        strict: raise if any key is missing or unexpected.
        pos_embed_resize: how a learned embedding is resized, now and when the
            encoder later runs on another grid: ``"timm"`` (bicubic,
            antialiased: timm's ``resample_abs_pos_embed``), ``"mae"`` (bicubic,
            not antialiased: MAE's ``interpolate_pos_embed``, MultiMAE's adapter)
            or ``"auto"``: ``"timm"`` for the timm format, ``"mae"`` for MAE and
            MultiMAE (:data:`AUTO_POS_EMBED_RESIZE`).
        keep_pos_embed: ``False`` drops the checkpoint's position embedding.

    Returns:
        :class:`LoadReport` naming missing and unexpected keys and, in
        ``pos_embed``, what became of the position embedding.

    Raises:
        FileFormatError: missing/unreadable file, mismatched shapes (listed), or
            (``strict``) missing/unexpected keys. Nothing is loaded then.
        ValueRangeError: bad ``format`` or ``pos_embed_resize``.
        DTypeError: ``keep_pos_embed`` is not a bool.

    Shape:
        not applicable (loads parameters in place).
    """
    fn = "load_vit_checkpoint"
    check_choice(format, FORMATS, name="format", fn=fn)
    _check_pos_embed_options(pos_embed_resize, keep_pos_embed, fn)
    path = os.fspath(path)
    raw = _read_checkpoint(path, fn)
    mapped, unexpected, fmt, plan = _convert(raw, model, format, pos_embed_resize, keep_pos_embed)
    missing = sorted(k for k in model.state_dict() if k not in mapped)
    if strict and (missing or unexpected):
        raise FileFormatError(
            f"load_vit_checkpoint(): strict load of {path!r} failed; missing {missing}, unexpected {unexpected}"
        )
    model.load_state_dict(mapped, strict=False)
    if plan is not None and plan.learned:
        model.use_learned_pos_embed(mapped["pos_embed"], resize=plan.resize)
    if plan is not None:
        note = plan.report
    else:
        kind = "fixed sin-cos" if model.config.pos_embed == "sincos" else "learned"
        note = f"not in the checkpoint; the encoder keeps its own {kind} embedding"
    return LoadReport(fmt, missing, sorted(unexpected), note)
