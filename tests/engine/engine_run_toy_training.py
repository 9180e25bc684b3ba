"""Subprocess driver for the kill/resume and torchrun tests (not collected: no test_ prefix)."""

import argparse
import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from engine_toy_training import ToyData, ToyModel  # noqa: E402

from hoimask.engine import (  # noqa: E402
    TrainConfig,
    Trainer,
    cleanup_distributed,
    init_distributed,
    seed_everything,
)

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("--kill-at", type=int)
parser.add_argument("--kill-while-saving", type=int, help="SIGKILL rank 0 halfway through writing this step's checkpoint")
parser.add_argument("--resume", action="store_true")
parser.add_argument("--steps", type=int, default=12)
args = parser.parse_args()

torch.set_num_threads(1)
ctx = init_distributed(device="cpu")
seed_everything(0)
config = TrainConfig(steps=args.steps, batch_size=4, lr=1e-2, warmup_steps=2, log_every=2, checkpoint_every=3,
                     keep_checkpoints=5)


def kill(trainer, step, batch, output):
    if args.kill_at is not None and step == args.kill_at and ctx.rank == 0:  # torchrun then stops the others
        os.kill(os.getpid(), signal.SIGKILL)


if args.kill_while_saving is not None and ctx.rank == 0:
    import hoimask.engine.checkpoint as checkpoint

    def killed_seal(tmp):  # torch.save has written the temporary file; the kill comes before seal and rename
        if Path(tmp).name.startswith(f".step_{args.kill_while_saving:08d}.pt."):
            os.kill(os.getpid(), signal.SIGKILL)
        real_seal(tmp)

    real_seal, checkpoint._seal = checkpoint._seal, killed_seal


def train():
    """Train, check the replicas agree, write the history. The trainer (and its DDP model, which holds the
    gloo group) is a local, so it is freed before cleanup_distributed destroys the group."""
    trainer = Trainer(ToyModel(), config, dataset=ToyData(n=40), output_dir=args.out, ctx=ctx, progress=False,
                      tensorboard=False, callbacks=[kill])
    if args.resume:
        trainer.resume()
        for note in trainer.resume_notes:
            print("note:", note, file=sys.stderr)
    trainer.fit()
    params = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    if ctx.initialized:
        gathered = [torch.zeros_like(params) for _ in range(ctx.world_size)]
        torch.distributed.all_gather(gathered, params)
        assert all(torch.equal(gathered[0], g) for g in gathered), "DDP replicas diverged"
    history = json.dumps([[h["step"], h["loss"]] for h in trainer.history])
    Path(args.out, f"history_rank{ctx.rank}.json").write_text(history)  # ranks' stdout may interleave under torchrun
    print(history)


train()
cleanup_distributed(ctx)
