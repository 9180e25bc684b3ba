"""The training loop: one object that owns model, optimiser, schedule, scaler, RNGs, data position and logs.

Resuming continues the same run: a checkpoint holds the model, optimiser,
scheduler, gradient scaler, non-finite counters, the step, and every RNG state
of every rank (gathered to rank 0). The data order is a function of
``(seed, step)`` (:func:`~hoimask.engine.data.iterate_batches`), so after
``resume()`` the loop sees the same batches, draws the same masks and produces
the same losses as an uninterrupted run (bit-identical on CPU).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from hoimask._checks import DTypeError, FileFormatError
from hoimask._io import remove_stale_temp_files
from hoimask.engine.checkpoint import CheckpointManager, load_checkpoint
from hoimask.engine.config import TrainConfig
from hoimask.engine.data import iterate_batches
from hoimask.engine.distributed import (
    DistributedContext,
    all_gather_objects,
    all_reduce_mean,
    barrier,
    unwrap_model,
    wrap_model,
)
from hoimask.engine.logging import RunLogger, progress_bar
from hoimask.engine.optim import build_optimizer
from hoimask.engine.precision import NonFiniteGuard, autocast, clip_gradients, make_grad_scaler
from hoimask.engine.schedule import WarmupCosineSchedule
from hoimask.engine.seed import capture_rng_state, restore_rng_state

__all__ = ["Trainer", "to_device", "default_loss_fn"]

LossFn = Callable[[nn.Module, Any, torch.Generator], Mapping[str, Any]]
Callback = Callable[["Trainer", int, Any, Mapping[str, Any]], None]


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a nested dict/list/tuple to ``device`` (other leaves unchanged)."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def default_loss_fn(model: nn.Module, batch: Any, generator: torch.Generator) -> Mapping[str, Any]:
    """``model(batch, generator=generator)``; the model returns ``{"loss", "terms", ...}``."""
    return model(batch, generator=generator)


class Trainer:
    """Train a model whose forward returns ``{"loss": scalar, "terms": {name: scalar}, ...}``.

    Args:
        model: the module (moved to ``ctx.device`` and wrapped in DDP when distributed).
        config: the :class:`TrainConfig`.
        dataset: map-style dataset of samples.
        output_dir: run directory (``checkpoints/``, ``log.jsonl``, ``train.log``, ``tensorboard/``).
        collate_fn: batch collation.
        loss_fn: ``(model, batch, generator) -> dict`` with ``"loss"``; default :func:`default_loss_fn`.
        ctx: distributed context (default: single CPU process).
        num_layers: encoder depth, for ``config.layer_decay``.
        layer_id_fn: which encoder layer a parameter belongs to, for
            ``config.layer_decay`` (see :func:`~hoimask.engine.build_optimizer`).
        progress: show a tqdm bar on rank 0.
        tensorboard: see :class:`RunLogger`.
        callbacks: called as ``cb(trainer, step, batch, output)`` after every step on every rank.

    Shape:
        Not applicable.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        *,
        dataset: Dataset,
        output_dir: str | os.PathLike,
        collate_fn: Callable | None = None,
        loss_fn: LossFn | None = None,
        ctx: DistributedContext | None = None,
        num_layers: int | None = None,
        layer_id_fn: Callable[[str, int], int] | None = None,
        progress: bool = True,
        tensorboard: bool | None = None,
        callbacks: Iterable[Callback] = (),
    ) -> None:
        if not isinstance(config, TrainConfig):
            raise DTypeError(f"Trainer(): argument 'config' expected a TrainConfig, got {type(config).__name__}")
        self.config = config
        self.ctx = ctx or DistributedContext()
        self.device = self.ctx.device
        self.dataset = dataset
        self.collate_fn = collate_fn
        self.loss_fn = loss_fn or default_loss_fn
        self.output_dir = Path(output_dir)
        self.progress = progress
        self.callbacks = list(callbacks)
        self.model = wrap_model(model, self.ctx)
        self.optimizer = build_optimizer(
            unwrap_model(self.model), lr=config.lr, weight_decay=config.weight_decay, betas=config.betas,
            layer_decay=config.layer_decay, num_layers=num_layers, layer_id_fn=layer_id_fn,
        )
        self.scheduler = WarmupCosineSchedule(
            self.optimizer, total_steps=config.steps, warmup_steps=config.warmup_steps,
            decay_start=config.decay_start, min_lr_ratio=config.min_lr_ratio,
        )
        self.scaler = make_grad_scaler(config.precision, self.device)
        self.guard = NonFiniteGuard(config.max_nonfinite)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed * 1_000_003 + self.ctx.rank)
        self.checkpoints = CheckpointManager(self.output_dir / "checkpoints", keep=config.keep_checkpoints)
        self.logger = RunLogger(self.output_dir, enabled=self.ctx.is_main, tensorboard=tensorboard)
        self.step = 0
        #: One record per step run in this process: ``{"step", "loss", "lr", "skipped"}`` (loss averaged over ranks).
        self.history: list[dict] = []
        #: What :meth:`resume` repaired in the run directory, one line each (also in ``train.log``; rank 0 only).
        self.resume_notes: list[str] = []

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Everything needed to continue the run (collective: call on every rank)."""
        rng = all_gather_objects(capture_rng_state({"masking": self.generator}), self.ctx)
        return {
            "step": self.step,
            "model": unwrap_model(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "guard": self.guard.state_dict(),
            "rng": rng,
            "world_size": self.ctx.world_size,
            "config": self.config.to_dict(),
        }

    def save_checkpoint(self) -> Path | None:
        """Write a checkpoint of the current step (rank 0 writes; all ranks must call). Returns its path on rank 0."""
        state = self.state_dict()
        path = self.checkpoints.save(self.step, state) if self.ctx.is_main else None
        barrier(self.ctx)
        if path is not None:
            self.logger.text(f"checkpoint step {self.step}: {path}")
        return path

    def resume(self, path: str | os.PathLike | None = None) -> int:
        """Load a checkpoint (default: the newest in ``output_dir/checkpoints``) and continue from it.

        On the main rank it also repairs what a killed run leaves behind, and says so in
        :attr:`resume_notes` and ``train.log``: temporary files of interrupted atomic writes in
        ``output_dir`` and ``output_dir/checkpoints`` are deleted, and ``log.jsonl`` loses the records
        written after the checkpoint and a torn last line.

        Raises:
            FileFormatError: no checkpoint exists, or it is truncated/corrupt/incompatible.

        Returns:
            The step the run continues from.
        """
        self.resume_notes = []
        if self.ctx.is_main:
            stale = [p for d in (self.output_dir, self.checkpoints.directory) for p in remove_stale_temp_files(d)]
            if stale:
                self.resume_notes.append(
                    f"removed {len(stale)} temporary file(s) left by an interrupted write: "
                    + ", ".join(str(p) for p in stale))
        if path is None:
            path = self.checkpoints.latest()
            if path is None:
                raise FileFormatError(
                    f"Trainer.resume(): no checkpoint in {str(self.checkpoints.directory)!r} to resume from"
                )
        state = load_checkpoint(path, map_location=self.device)
        for key in ("step", "model", "optimizer", "scheduler", "scaler", "guard", "rng"):
            if key not in state:
                raise FileFormatError(f"Trainer.resume(): checkpoint {str(path)!r} lacks the '{key}' entry")
        try:
            unwrap_model(self.model).load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise FileFormatError(
                f"Trainer.resume(): checkpoint {str(path)!r} does not fit this model/optimiser: {err}"
            ) from err
        self.scheduler.load_state_dict(state["scheduler"])
        # The current config decides the schedule's length (e.g. resuming with more --steps).
        self.scheduler.total_steps = self.config.steps
        self.scheduler.warmup_steps = self.config.warmup_steps
        self.scheduler.decay_start = self.config.decay_start
        self.scheduler.min_lr_ratio = self.config.min_lr_ratio
        self.scaler.load_state_dict(state["scaler"])
        self.guard.load_state_dict(state["guard"])
        self.step = int(state["step"])
        rng = state["rng"]
        if len(rng) == self.ctx.world_size:
            restore_rng_state(rng[self.ctx.rank], {"masking": self.generator})
        else:
            warnings.warn(
                f"Trainer.resume(): checkpoint was written by {len(rng)} processes, this run has "
                f"{self.ctx.world_size}; random streams restart from the seed (the run is not bit-identical)",
                stacklevel=2,
            )
        torn = self.logger.has_torn_line()
        dropped = self.logger.truncate_after(self.step) - int(torn)
        if torn:
            self.resume_notes.append(f"dropped the torn last line of {self.logger.jsonl_path} (a write cut short when "
                                     "the run was stopped)")
        for note in self.resume_notes:
            self.logger.text(note)
        self.logger.text(f"resumed from {path} at step {self.step} (dropped {dropped} log records written after it)")
        return self.step

    # ------------------------------------------------------------------ loop
    def train_step(self, batch: Any) -> dict:
        """One optimisation step on ``batch`` (already on the device). Returns the model output dict."""
        model = self.model
        model.train()
        inner = unwrap_model(model)
        if hasattr(inner, "set_progress"):
            inner.set_progress(self.step / self.config.steps)
        with autocast(self.config.precision, self.device):
            output = self.loss_fn(model, batch, self.generator)
        if not isinstance(output, Mapping) or "loss" not in output:
            raise DTypeError("Trainer.train_step(): loss_fn must return a mapping with a 'loss' entry")
        loss = output["loss"]
        finite = all_reduce_mean(torch.isfinite(loss.detach()).all().float(), self.ctx)
        lr = self.optimizer.param_groups[0]["lr"] / self.optimizer.param_groups[0].get("lr_scale", 1.0)
        skipped = True
        if float(finite) == 1.0:
            self.scaler.scale(loss.float()).backward()
            self.scaler.unscale_(self.optimizer)
            grad_norm = clip_gradients(model.parameters(), self.config.clip_grad_norm)
            if self.scaler.is_enabled():  # fp16: the scaler skips steps with inf/NaN gradients itself
                scale = self.scaler.get_scale()
                self.scaler.step(self.optimizer)
                self.scaler.update()
                skipped = self.scaler.get_scale() < scale  # the scale drops exactly when the step was skipped
            elif self.guard.update(self.step, loss, grad_norm):
                self.optimizer.step()
                skipped = False
            if not skipped:
                self.guard.consecutive = 0
        else:
            self.guard.update(self.step, torch.tensor(float("nan")))
        self.optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():  # a skipped step is deliberate; the schedule still advances with the step
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
            self.scheduler.step()
        self.step += 1
        mean_loss = float(all_reduce_mean(loss.detach().float(), self.ctx))
        self.history.append({"step": self.step, "loss": mean_loss, "lr": lr, "skipped": skipped})
        return dict(output)

    def _log(self, output: Mapping[str, Any]) -> None:
        record = self.history[-1]
        scalars = {"loss": record["loss"], "lr": record["lr"], "skipped_total": self.guard.skipped_total}
        terms = output.get("terms") or {}
        if terms:
            names = sorted(terms)
            values = torch.stack([torch.as_tensor(terms[n]).detach().float().reshape(()).cpu() for n in names])
            values = all_reduce_mean(values.to(self.device), self.ctx).cpu()
            scalars.update({f"terms/{n}": float(v) for n, v in zip(names, values)})
        self.logger.log_scalars(self.step, scalars)

    def fit(self, *, stop_at: int | None = None) -> list[dict]:
        """Train from the current step to ``config.steps`` (or ``stop_at``), checkpointing on the way.

        Args:
            stop_at: stop after this global step (for tests and staged runs); a
                checkpoint is written there.

        Returns:
            :attr:`history`.
        """
        end = self.config.steps if stop_at is None else min(stop_at, self.config.steps)
        if self.step >= end:
            return self.history
        bar = progress_bar(self.config.steps, initial=self.step, enabled=self.progress and self.ctx.is_main)
        batches = iterate_batches(
            self.dataset, batch_size=self.config.batch_size, start_step=self.step, seed=self.config.seed,
            rank=self.ctx.rank, world_size=self.ctx.world_size, collate_fn=self.collate_fn,
            num_workers=self.config.num_workers, pin_memory=self.device.type == "cuda",
        )
        try:
            for _, batch in batches:
                batch = to_device(batch, self.device)
                output = self.train_step(batch)
                bar.update(1)
                bar.set_postfix(loss=f"{self.history[-1]['loss']:.4f}", lr=f"{self.history[-1]['lr']:.2e}")
                if self.step % self.config.log_every == 0 or self.step == end:
                    self._log(output)
                if self.step % self.config.checkpoint_every == 0 or self.step == end:
                    self.save_checkpoint()
                for cb in self.callbacks:
                    cb(self, self.step, batch, output)
                if self.step >= end:
                    break
        finally:
            bar.close()
            del batches
        return self.history
