"""Assertions shared by the learnability tests of the models (tests/models/test_*.py)."""

from __future__ import annotations

import torch


def assert_varies_like_targets(pred: torch.Tensor, target: torch.Tensor, name: str) -> None:
    """Across the samples, the predictions spread as the targets do (not the batch mean)."""
    spread_p = pred.flatten(1).std(0).mean()
    spread_t = target.flatten(1).std(0).mean()
    assert spread_p > 0.5 * spread_t, f"{name}: prediction spread {spread_p:.4f} vs target spread {spread_t:.4f}"
    err = (pred - target).flatten(1).abs().mean()
    assert err < 0.25 * spread_t, f"{name}: error {err:.4f} vs target spread {spread_t:.4f}"
