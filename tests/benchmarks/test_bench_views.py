"""benchmarks/bench_views.py runs end to end (timing is not tested)."""

from __future__ import annotations

import pytest
from bench_scripts import load_script


def test_prints_both_paths_and_the_ratio(capsys):
    assert load_script("bench_views").main(["--batch", "2", "--size", "32", "--pool", "2", "--repeats", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split(" | ")[0] for r in rows[1:]] == ["| one sample at a time", "| batched_views"]
    assert rows[1].endswith("1.00x |")


def test_rejects_a_zero_batch():
    with pytest.raises(SystemExit):
        load_script("bench_views").main(["--batch", "0"])
