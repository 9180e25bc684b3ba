"""benchmarks/bench_compile.py runs end to end (with the tracing-only ``eager`` backend; timing is not tested)."""

from __future__ import annotations

import pytest
from bench_scripts import load_script


def _script():
    return load_script("bench_compile")


def test_prints_a_row_per_selected_case_with_graphs_and_breaks(capsys):
    _script().main(["--batch", "2", "--steps", "1", "--warmup", "0", "--backend", "eager", "--only", "vit"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "ms" not in line]
    assert [r.split(" | ")[0] for r in rows] == ["| ViT encoder (tiny)"]
    vit = rows[0].split(" | ")
    assert vit[-2:] == ["1", "0 |"]  # one graph, no break
    assert all(float(cell) > 0 for cell in vit[1:4])


def test_rejects_a_zero_step_count():
    with pytest.raises(SystemExit):
        _script().main(["--steps", "0"])
