"""Training engine: schedule, optimiser groups, precision, checkpoints, resumable data order, DDP, logging.

Everything here is independent of the MaskHOI model; the loop (:class:`Trainer`)
trains any module whose forward returns ``{"loss": ..., "terms": {...}}``.
"""

from hoimask.engine.checkpoint import (
    CheckpointManager,
    atomic_write,
    load_checkpoint,
    save_checkpoint,
)
from hoimask.engine.config import TRAIN_PRESETS, TrainConfig, train_preset
from hoimask.engine.data import (
    AugmentedViews,
    MemoryCache,
    ResumableSampler,
    iterate_batches,
    steps_per_epoch,
)
from hoimask.engine.distributed import (
    DistributedContext,
    all_gather_objects,
    all_reduce_mean,
    barrier,
    broadcast_object,
    cleanup_distributed,
    init_distributed,
    unwrap_model,
    wrap_model,
)
from hoimask.engine.logging import RunLogger, progress_bar, save_png, tensorboard_available
from hoimask.engine.optim import NO_DECAY_NAMES, build_optimizer, param_groups, vit_layer_id
from hoimask.engine.precision import (
    PRECISIONS,
    NonFiniteGuard,
    NonFiniteLossError,
    autocast,
    clip_gradients,
    make_grad_scaler,
    native_bf16,
    resolve_precision,
)
from hoimask.engine.run_dir import RUN_MARKER, OutputDirError, prepare_output_dir
from hoimask.engine.schedule import WarmupCosineSchedule, warmup_cosine_factor
from hoimask.engine.seed import capture_rng_state, restore_rng_state, seed_everything
from hoimask.engine.trainer import Trainer, default_loss_fn, to_device

__all__ = [
    "CheckpointManager", "atomic_write", "load_checkpoint", "save_checkpoint",
    "TRAIN_PRESETS", "TrainConfig", "train_preset",
    "AugmentedViews", "MemoryCache", "ResumableSampler", "iterate_batches", "steps_per_epoch",
    "RUN_MARKER", "OutputDirError", "prepare_output_dir",
    "DistributedContext", "all_gather_objects", "all_reduce_mean", "barrier", "broadcast_object",
    "cleanup_distributed", "init_distributed", "unwrap_model", "wrap_model",
    "RunLogger", "progress_bar", "save_png", "tensorboard_available",
    "NO_DECAY_NAMES", "build_optimizer", "param_groups", "vit_layer_id",
    "PRECISIONS", "NonFiniteGuard", "NonFiniteLossError", "autocast", "clip_gradients", "make_grad_scaler",
    "native_bf16", "resolve_precision",
    "WarmupCosineSchedule", "warmup_cosine_factor",
    "capture_rng_state", "restore_rng_state", "seed_everything",
    "Trainer", "default_loss_fn", "to_device",
]
