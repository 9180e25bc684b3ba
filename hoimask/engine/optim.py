"""AdamW parameter groups: no weight decay on norms/biases/embeddings, optional layer-wise lr decay.

Layer-wise decay (BEiT/MAE fine-tuning) scales block ``i`` of ``num_layers``
by ``layer_decay ** (num_layers + 1 - layer_id)`` where the patch/position
embeddings are layer 0, ``blocks.i`` is layer ``i + 1`` and everything after the
encoder (decoders, heads) is layer ``num_layers + 1`` (scale 1).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import torch
from torch import nn

from hoimask._checks import DTypeError, ValueRangeError, check_in_range, check_positive

__all__ = ["param_groups", "build_optimizer", "vit_layer_id", "NO_DECAY_NAMES"]

#: Parameter-name fragments that never receive weight decay (besides every 0-/1-D tensor).
NO_DECAY_NAMES: tuple[str, ...] = ("pos_embed", "cls_token", "mask_token", "query_embed", "rel_pos")

_BLOCK = re.compile(r"(?:^|\.)(?:blocks|layers)\.(\d+)\.")


def vit_layer_id(name: str, num_layers: int, *, encoder_prefix: str = "encoder.") -> int:
    """Layer index of a parameter for layer-wise learning-rate decay.

    Args:
        name: the parameter's qualified name, e.g. ``"encoder.blocks.3.attn.qkv.weight"``.
        num_layers: number of transformer blocks of the encoder.
        encoder_prefix: names that start with it belong to the encoder; an
            empty string treats every parameter as an encoder parameter.

    Returns:
        ``0`` for embeddings, ``i + 1`` for ``blocks.i``, ``num_layers + 1`` otherwise
        (encoder norm, decoders, heads).

    Shape:
        Not applicable.

    Example:
        >>> vit_layer_id("encoder.blocks.3.mlp.fc1.weight", 12)
        4
        >>> vit_layer_id("encoder.patch_embed.proj.weight", 12)
        0
        >>> vit_layer_id("hand_decoder.blocks.0.norm1.weight", 12)
        13
    """
    if not name.startswith(encoder_prefix):
        return num_layers + 1
    local = name[len(encoder_prefix):]
    if local.startswith(("patch_embed", "pos_embed", "cls_token", "mask_token")):
        return 0
    match = _BLOCK.search("." + local)
    if match is not None:
        return int(match.group(1)) + 1
    return num_layers + 1


def param_groups(
    model: nn.Module,
    *,
    weight_decay: float,
    layer_decay: float | None = None,
    num_layers: int | None = None,
    layer_id_fn: Callable[[str, int], int] | None = None,
    no_decay_names: Iterable[str] = NO_DECAY_NAMES,
) -> list[dict]:
    """Split a model's trainable parameters into optimiser groups.

    Parameters with ``ndim <= 1`` (norm weights, biases, scalars such as a
    learnable α) and names containing one of ``no_decay_names`` get zero weight
    decay. With ``layer_decay`` every group also carries ``lr_scale``; frozen
    parameters (``requires_grad=False``) are left out.

    Args:
        model: the module.
        weight_decay: decay for the regular weights (>= 0).
        layer_decay: layer-wise lr decay factor in (0, 1], or ``None`` for none.
        num_layers: number of encoder blocks; required with ``layer_decay``.
        layer_id_fn: ``(name, num_layers) -> layer id``; default :func:`vit_layer_id`.
        no_decay_names: name fragments excluded from decay.

    Returns:
        A list of dicts with ``params``, ``weight_decay``, ``lr_scale`` and
        ``names`` (for inspection; :func:`build_optimizer` drops it).

    Shape:
        Not applicable.
    """
    check_positive(weight_decay, name="weight_decay", strict=False, fn="param_groups")
    if layer_decay is not None:
        check_in_range(layer_decay, name="layer_decay", low=0.0, high=1.0, low_inclusive=False, fn="param_groups")
        if num_layers is None or isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise ValueRangeError(
                f"param_groups(): argument 'num_layers' expected an int >= 1 when layer_decay is set, got {num_layers!r}"
            )
    layer_id_fn = layer_id_fn or vit_layer_id
    fragments = tuple(no_decay_names)
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = param.ndim <= 1 or name.endswith(".bias") or any(f in name for f in fragments)
        layer = layer_id_fn(name, num_layers) if layer_decay is not None else 0
        scale = layer_decay ** (num_layers + 1 - layer) if layer_decay is not None else 1.0
        key = (layer, no_decay)
        if key not in groups:
            groups[key] = {
                "params": [],
                "names": [],
                "weight_decay": 0.0 if no_decay else float(weight_decay),
                "lr_scale": float(scale),
            }
        groups[key]["params"].append(param)
        groups[key]["names"].append(name)
    return [groups[k] for k in sorted(groups)]


def build_optimizer(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float = 0.05,
    betas: tuple[float, float] = (0.9, 0.95),
    layer_decay: float | None = None,
    num_layers: int | None = None,
    eps: float = 1e-8,
    layer_id_fn: Callable[[str, int], int] | None = None,
) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`; each group's ``lr`` is ``lr * lr_scale``.

    Args:
        model: the module to optimise.
        lr: peak learning rate (> 0); the schedule scales it.
        weight_decay: decoupled weight decay of the regular weights.
        betas: AdamW betas (MAE uses (0.9, 0.95)).
        layer_decay: layer-wise learning-rate decay (``None`` = off), see :func:`param_groups`.
        num_layers: encoder blocks the decay counts over, see :func:`param_groups`.
        eps: AdamW epsilon.
        layer_id_fn: ``(name, num_layers) -> layer id`` (default :func:`vit_layer_id`, which counts
            parameters under ``encoder.``; a model whose ViT sits elsewhere passes
            ``functools.partial(vit_layer_id, encoder_prefix=...)``).

    Returns:
        ``torch.optim.AdamW``.

    Shape:
        Not applicable.

    Example:
        >>> opt = build_optimizer(nn.Linear(4, 2), lr=1e-3)
        >>> [g["weight_decay"] for g in opt.param_groups]
        [0.05, 0.0]
    """
    check_positive(lr, name="lr", fn="build_optimizer")
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise DTypeError(f"build_optimizer(): argument 'betas' expected a pair of floats, got {betas!r}")
    groups = param_groups(model, weight_decay=weight_decay, layer_decay=layer_decay, num_layers=num_layers,
                          layer_id_fn=layer_id_fn)
    if not groups:
        raise ValueRangeError("build_optimizer(): argument 'model' has no trainable parameters")
    for g in groups:
        g.pop("names")
        g["lr"] = lr * g["lr_scale"]
    # On a CPU torch's default is a Python loop over the tensors; the fused kernel does the same update in one
    # pass (CUDA already defaults to the multi-tensor path).
    on_cpu = all(p.device.type == "cpu" and p.is_floating_point() for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                             fused=True if on_cpu else None)
