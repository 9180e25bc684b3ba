"""benchmarks/bench_model.py: the HandMIM vs MAE table runs and compares whole training steps (timing is not tested)."""

from __future__ import annotations

import argparse
from contextlib import nullcontext

import torch
from bench_scripts import load_script


def _script():
    return load_script("bench_model")


def test_handmim_table_has_mae_as_the_baseline_and_the_teacher_update():
    bench = _script()
    args = argparse.Namespace(preset="tiny", batch=1, steps=1, warmup=0, peak_tflops=None)
    lines = bench.measure_handmim(args, torch.device("cpu"), nullcontext())
    header = next(line for line in lines if line.startswith("| model"))
    rows = [line for line in lines if line.startswith("| MAE") or line.startswith("| HandMIM")]
    assert len(rows) == 2 and "update_teacher ms" in header and "time / MAE" in header
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert all(len(c) == len(columns) for c in cells)
    mae, handmim = (dict(zip(columns, c)) for c in cells)
    assert mae["time / MAE"] == mae["FLOP / MAE"] == mae["mem / MAE"] == "1.00" and mae["update_teacher ms"] == "—"
    assert mae["encoder tokens per image"] == "16/64"  # MAE's 75 % masking of the 8 x 8 grid
    assert float(handmim["update_teacher ms"]) > 0
    assert float(handmim["FLOP / MAE"]) > 1  # two views, every token, a teacher: more work than MAE at keep 0.25
    assert any("make_views" in line for line in lines)


def test_handmim_step_moves_the_optimiser_and_the_teacher():
    bench = _script()
    model = bench.HandMIM.from_preset("tiny", img_size=32, depth=4, embed_dim=32, num_heads=2, head_hidden_dim=32,
                                      head_bottleneck_dim=16, head_out_dim=16, decoder_channels=(8, 8, 8, 8))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    batch = {"image": torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))}
    student = [p.detach().clone() for p in model.student.parameters()]
    teacher = [p.detach().clone() for p in model.teacher.parameters()]
    bench.train_step(model, optimizer, batch, nullcontext(), ema=True, generator=torch.Generator().manual_seed(1))()
    assert any(not a.equal(b) for a, b in zip(student, model.student.parameters()))
    assert any(not a.equal(b) for a, b in zip(teacher, model.teacher.parameters()))
    assert int(model.ema_steps) == 1
