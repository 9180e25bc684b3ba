"""The tiny MaskHOI preset can fit 4 synthetic samples: 50 steps drive the total loss down >= 5x."""

from __future__ import annotations

import pytest
import torch
from maskhoi_batches import make_batch

from hoimask.models import MaskHOI


@pytest.mark.slow
def test_tiny_preset_overfits_four_samples():
    torch.manual_seed(0)
    batch = make_batch(4, 128, 128, seed=1)
    model = MaskHOI.from_preset("tiny")  # default: hybrid masking, GML and DPR on
    # The engine's recipe (AdamW with MAE's betas, gradient clipping), no weight decay, no schedule.
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.0)
    losses, initial = [], None
    for _ in range(50):
        out = model(batch, generator=torch.Generator().manual_seed(0))  # the same mask every step
        initial = initial or {k: v.item() for k, v in out["terms"].items()}
        opt.zero_grad()
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(out["loss"].item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[0] / losses[-1] >= 5.0, f"loss went from {losses[0]:.3f} to {losses[-1]:.3f}"
    # every group of eq. (1) at least halved, not just the easiest one
    final = out["terms"]
    for group in ("loss_2d", "loss_3d", "loss_hand", "loss_object"):
        assert final[group].item() < 0.5 * initial[group], group
