"""A tiny stochastic model and dataset for engine tests (also run by the torchrun/kill subprocess scripts)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset


class ToyData(Dataset):
    """Noisy linear regression samples, a pure function of the index."""

    def __init__(self, n: int = 64, dim: int = 6) -> None:
        g = torch.Generator().manual_seed(123)
        self.w = torch.randn(dim, 2, generator=g)
        self.x = torch.randn(n, dim, generator=g)
        self.y = self.x @ self.w + 0.01 * torch.randn(n, 2, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"x": self.x[i], "y": self.y[i]}


class ToyModel(nn.Module):
    """MLP with dropout (global RNG) and a random input mask drawn from the trainer's generator."""

    def __init__(self, dim: int = 6, hidden: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(0.1),
                                 nn.Linear(hidden, 2))
        self.progress = 0.0
        self.nan_steps: set[int] = set()
        self.calls = 0

    def set_progress(self, p: float) -> None:
        self.progress = p

    def forward(self, batch: dict, *, generator: torch.Generator | None = None) -> dict:
        x = batch["x"]
        keep = torch.rand(x.shape, generator=generator, device=x.device) > 0.2
        pred = self.net(x * keep)
        mse = ((pred - batch["y"]) ** 2).mean()
        l1 = (pred - batch["y"]).abs().mean()
        loss = mse + 0.1 * l1
        if self.calls in self.nan_steps:
            loss = loss * float("nan")
        self.calls += 1
        return {"loss": loss, "terms": {"mse": mse, "l1": l1}, "predictions": {"y": pred}}
