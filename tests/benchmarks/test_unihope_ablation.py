"""benchmarks/unihope_ablation.py: the Table 7 rows are the documented UniHOPE configurations, and --quick runs."""

from __future__ import annotations

import json

import pytest
from bench_scripts import load_script

from hoimask.engine.cli import exit_with_usage_errors


def _script():
    return load_script("unihope_ablation")


def test_rows_switch_on_one_design_at_a_time():
    bench = _script()
    configs = {row: bench.build_model(row, 64, seed=0).config for row in bench.ROWS}
    assert list(configs) == ["a", "b", "c", "d", "e", "f", "g"]
    assert configs["a"].fusion_confidence == "always" and configs["b"].fusion_confidence == "hard"
    assert [bench.ROWS[r][2] for r in configs] == [False, False, True, True, True, True, True]  # twins from (c) on
    assert not configs["b"].deoccluded_samples and all(configs[r].deoccluded_samples for r in "cdefg")
    levels = ("enhancement_init", "enhancement_roi", "enhancement_mano")
    switched_on = {r: [lvl for lvl in levels if configs[r].loss_weights[lvl] > 0] for r in configs}
    assert switched_on == {"a": [], "b": [], "c": [], "d": list(levels[:1]), "e": list(levels[:2]), "f": list(levels),
                           "g": list(levels)}
    assert [configs[r].case_filtering for r in "cdefg"] == [False, False, False, False, True]
    # every row starts from the same weights
    a, g = bench.build_model("a", 64, seed=3).state_dict(), bench.build_model("g", 64, seed=3).state_dict()
    assert all(a[k].equal(g[k]) for k in a)


def test_quick_run_prints_the_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "ablation.json"
    assert _script().main(["--quick", "--rows", "a", "c", "g", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    table = [line for line in printed.splitlines() if line.startswith("| (")]
    assert [line.split("|")[1].strip() for line in table] == ["(a)", "(c)", "(g)"]
    assert "switcher acc. %" in printed and "RR J-PE / (a)" in printed and "| 1.000 |" in table[0]
    constant = [line for line in printed.splitlines() if line.startswith("| — | mean-pose constant")]
    assert len(constant) == 1 and constant[0].endswith("| 1.00 |")  # the constant, scored on the same scenes
    saved = json.loads(out.read_text())
    assert saved["args"]["steps"] == 2 and set(saved["results"]) == {"a", "c", "g"}
    assert saved["mean_pose"]["rr_mje"] > 0 and saved["args"]["boxes"] == "ground-truth"
    for row in ("a", "c", "g"):
        values = saved["results"][row]
        assert len(values["rr_mje"]) == 1 and values["rr_mje"][0] > 0 and "switcher_accuracy" in values
        assert "grasping/num_samples" in values
    assert saved["training"]["a"][0]["enhancement_pairs"] == 0  # no twins before row (c)
    assert saved["training"]["c"][0]["enhancement_pairs"] > 0
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically


@pytest.mark.parametrize("argv, flag", [(["--image-size", "48"], "--image-size"), (["--steps", "0"], "--steps"),
                                        (["--rows", "h"], "--rows")])
def test_a_bad_flag_is_a_usage_error(capsys, argv, flag):
    def run():
        try:
            return _script().main(argv)
        except SystemExit as stop:
            return stop.code

    assert exit_with_usage_errors(run) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and flag in errors[0]
