"""Training configuration and the ``tiny`` / ``paper`` presets.

The ``paper`` preset is MaskHOI §IV-B: AdamW, lr 5e-5, weight decay 0.05,
batch 22, ~1k linear warm-up steps, cosine decay starting at 72 % of training,
50k steps (224 px, ViT-B/16 live in the model preset of the same name). The
``tiny`` preset is a CPU demo that finishes in minutes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hoimask._checks import (
    DTypeError,
    ValueRangeError,
    check_choice,
    check_in_range,
    check_positive,
)
from hoimask.engine.precision import PRECISIONS

__all__ = ["TrainConfig", "TRAIN_PRESETS", "train_preset"]


@dataclass
class TrainConfig:
    """Everything the :class:`~hoimask.engine.Trainer` needs besides the model and data.

    Attributes:
        steps: total optimisation steps.
        batch_size: per-process batch size (the global batch is ``batch_size * world_size``).
        lr: peak learning rate.
        weight_decay: AdamW decoupled weight decay (not applied to norms/biases/embeddings).
        betas: AdamW betas.
        warmup_steps: linear warm-up steps.
        decay_start: fraction of ``steps`` where cosine decay begins (paper: 0.72).
        min_lr_ratio: final learning rate as a fraction of ``lr``.
        layer_decay: layer-wise lr decay (fine-tuning), ``None`` for none.
        clip_grad_norm: global gradient-norm clip, ``None`` for none.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        max_nonfinite: non-finite steps in a row before training stops.
        log_every: steps between log records.
        checkpoint_every: steps between checkpoints (one is always written at the end).
        keep_checkpoints: how many numbered checkpoints to keep.
        seed: seeds the data order, the masking generator and the model initialisation.
        num_workers: ``DataLoader`` workers per process.
    """

    steps: int = 300
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 20
    decay_start: float = 0.0
    min_lr_ratio: float = 0.01
    layer_decay: float | None = None
    clip_grad_norm: float | None = 1.0
    precision: str = "fp32"
    max_nonfinite: int = 5
    log_every: int = 10
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    seed: int = 0
    num_workers: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise a typed error naming the first invalid field."""
        fn = "TrainConfig"
        for name in ("steps", "batch_size", "log_every", "checkpoint_every", "keep_checkpoints", "max_nonfinite"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueRangeError(f"{fn}(): field '{name}' expected an int >= 1, got {value!r}")
        for name in ("warmup_steps", "seed", "num_workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueRangeError(f"{fn}(): field '{name}' expected an int >= 0, got {value!r}")
        if self.warmup_steps > self.steps:
            raise ValueRangeError(
                f"{fn}(): field 'warmup_steps' expected <= steps ({self.steps}), got {self.warmup_steps}"
            )
        check_positive(self.lr, name="lr", fn=fn)
        check_positive(self.weight_decay, name="weight_decay", strict=False, fn=fn)
        check_in_range(self.decay_start, name="decay_start", low=0.0, high=1.0, fn=fn)
        check_in_range(self.min_lr_ratio, name="min_lr_ratio", low=0.0, high=1.0, fn=fn)
        if not (isinstance(self.betas, (tuple, list)) and len(self.betas) == 2):
            raise DTypeError(f"{fn}(): field 'betas' expected a pair of floats, got {self.betas!r}")
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        if self.layer_decay is not None:
            check_in_range(self.layer_decay, name="layer_decay", low=0.0, high=1.0, low_inclusive=False, fn=fn)
        if self.clip_grad_norm is not None:
            check_positive(self.clip_grad_norm, name="clip_grad_norm", fn=fn)
        check_choice(self.precision, PRECISIONS, name="precision", fn=fn)

    def replace(self, **changes) -> TrainConfig:
        """A validated copy with some fields changed (``None`` values are ignored)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueRangeError(f"TrainConfig.replace(): unknown fields {sorted(unknown)}")
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        """Plain dict (for checkpoints and logs)."""
        return dataclasses.asdict(self)


#: Named training presets.
TRAIN_PRESETS: dict[str, TrainConfig] = {
    "tiny": TrainConfig(steps=300, batch_size=8, lr=1e-3, weight_decay=0.05, warmup_steps=20, decay_start=0.0,
                        min_lr_ratio=0.01, log_every=10, checkpoint_every=50),
    "paper": TrainConfig(steps=50_000, batch_size=22, lr=5e-5, weight_decay=0.05, warmup_steps=1_000,
                         decay_start=0.72, min_lr_ratio=0.0, precision="bf16", log_every=50,
                         checkpoint_every=1_000, keep_checkpoints=3, num_workers=8),
}


def train_preset(name: str, **overrides) -> TrainConfig:
    """A copy of the named preset with ``overrides`` applied (``None`` values ignored).

    Example:
        >>> train_preset("paper").decay_start
        0.72
    """
    check_choice(name, tuple(TRAIN_PRESETS), name="name", fn="train_preset")
    return TRAIN_PRESETS[name].replace(**overrides)
