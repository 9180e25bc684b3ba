"""benchmarks/bench_mesh_sdf_cpu.py and bench_sdf_targets.py run end to end (timing is not tested)."""

from __future__ import annotations

import pytest
from bench_scripts import load_script

from hoimask.ops.mesh_sdf.bvh import numba_available

pytestmark = pytest.mark.skipif(not numba_available(), reason="needs numba (the 'fast' extra)")


def _rows(out: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("| ")][1:]


def test_cpu_table_has_hoimask_rows_that_are_exact(capsys):
    load_script("bench_mesh_sdf_cpu").main(["--meshes", "box", "--queries", "300", "--repeats", "1"])
    rows = {r[3]: r for r in _rows(capsys.readouterr().out)}
    for label in ("hoimask MeshBVH", "hoimask MeshBVH sign=winding", "hoimask mesh_sdf (tree per call)",
                  "hoimask mesh_sdf, pure torch", "hoimask MeshBVH, 2 threads"):  # fmt: skip
        row = rows[label]
        assert float(row[4]) > 0 and float(row[8]) < 1e-6 and row[9].startswith("0.00%")


def test_sdf_targets_table_has_three_methods_per_size(capsys):
    load_script("bench_sdf_targets").main(["--points", "64", "--frames", "2"])
    rows = _rows(capsys.readouterr().out)
    assert [r[1] for r in rows] == ["pure torch", "tree per call", "cached object tree"]
    assert all(float(r[2]) > 0 for r in rows)
