"""Plain-text tables of :meth:`Evaluator.compute` results, in the papers' layouts.

* Table I (MaskHOI, DexYCB): MJE, PAMJE, OCE, MCE, ADD-S.
* Table II (MaskHOI, HO3D): MJE, STMJE, PAMJE, OME, ADD-S.
* Table III (MaskHOI, DexYCB mesh): MME, VAUC, F@5, F@15 and their PA versions.
* Occlusion levels (UniHOPE Table 6): root-relative J-PE and V-PE, PA versions.
* Scene types (UniHOPE Tables 2): hand-only / hand-object.

Lengths are in mm, AUC and F-scores in percent; ``-`` marks a metric that was
not measured (e.g. no vertices or no object were fed). The header says how many
samples, joints, vertices and object poses were excluded because their ground
truth was not finite (docs/conventions.md, "Non-finite values").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["format_tables", "format_table"]


def _cell(results: Mapping[str, float], key: str) -> str:
    v = results.get(key)
    return "-" if v is None else f"{v:.2f}"


def format_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown-style pipe table with a title line.

    Args:
        title: the line printed above the table.
        header: column names.
        rows: cells, one sequence per row, ``len(header)`` cells each.

    Returns:
        The table as text (no trailing newline).
    """
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    return "\n".join([title, line(header), sep, *(line(r) for r in rows)])


def format_tables(
    results: Mapping[str, float], group_names: Sequence[str], f_thresholds_mm: Sequence[float] = (5.0, 15.0)
) -> str:
    """Render :meth:`Evaluator.compute` results as the MaskHOI / UniHOPE tables.

    Args:
        results: the dictionary returned by :meth:`Evaluator.compute`.
        group_names: the evaluator's group names (scene types, occlusion bins).
        f_thresholds_mm: the F-score thresholds used (column names ``F@<t>``).

    Returns:
        The tables, separated by blank lines.
    """
    n = int(results.get("num_samples", 0))
    fk = [f"{t:g}" for t in f_thresholds_mm]
    parts = [f"Evaluated samples: {n} (lengths in mm, AUC and F-scores in %)"]
    excluded = [(k, int(results[f"excluded_{k}"])) for k in ("samples", "joints", "vertices", "objects")
                if f"excluded_{k}" in results]
    if excluded:
        singular = {"samples": "sample", "joints": "joint", "vertices": "vertex", "objects": "object pose"}
        what = ", ".join(f"{c} {singular[k] if c == 1 else k.replace('objects', 'object poses')}" for k, c in excluded)
        parts[0] += f"\nExcluded, ground truth not finite: {what}"
    parts.append(
        format_table(
            "Table I (DexYCB layout): hand and object",
            ["MJE", "RR-MJE", "PAMJE", "OCE", "MCE", "ADD-S"],
            [[_cell(results, k) for k in ("mje", "rr_mje", "pa_mje", "oce", "mce", "add_s")]],
        )
    )
    parts.append(
        format_table(
            "Table II (HO3D layout): hand and object",
            ["MJE", "STMJE", "PAMJE", "OME", "ADD-S"],
            [[_cell(results, k) for k in ("mje", "st_mje", "pa_mje", "ome", "add_s")]],
        )
    )
    mesh_keys = ["mme", "vauc", *(f"f{t}" for t in fk)]
    parts.append(
        format_table(
            "Table III: hand mesh",
            ["MME", "VAUC", *(f"F@{t}" for t in fk), "PAMME", "PAVAUC", *(f"PAF@{t}" for t in fk)],
            [[_cell(results, k) for k in mesh_keys] + [_cell(results, "pa_" + k) for k in mesh_keys]],
        )
    )
    if "add_0.5d" in results or "jauc" in results:
        parts.append(
            format_table(
                "Joint AUC and object accuracy",
                ["J-AUC", "RR-J-AUC", "PA-J-AUC", "ADD-0.5D"],
                [[_cell(results, k) for k in ("jauc", "rr_jauc", "pa_jauc", "add_0.5d")]],
            )
        )
    occ = [g for g in group_names if g.startswith("occlusion_")]
    occ_rows = [
        [g.removeprefix("occlusion_") + "%", str(int(results[f"{g}/num_samples"]))]
        + [_cell(results, f"{g}/{k}") for k in ("rr_mje", "pa_mje", "rr_mme", "pa_mme")]
        for g in occ
        if f"{g}/num_samples" in results
    ]
    if occ_rows:
        parts.append(
            format_table(
                "By occlusion level (UniHOPE Table 6 layout, root-relative)",
                ["occlusion", "N", "J-PE", "PA-J-PE", "V-PE", "PA-V-PE"],
                occ_rows,
            )
        )
    scene_rows = []
    for g, label in (("", "all"), ("hand_only/", "hand-only"), ("hand_object/", "hand-object")):
        count = results.get(f"{g}num_samples")
        if count is None:
            continue
        keys = ("mje", "rr_mje", "pa_mje", "rr_mme", "pa_mme", f"f{fk[0]}", "add_s", "add_0.5d")
        scene_rows.append([label, str(int(count))] + [_cell(results, g + k) for k in keys])
    if len(scene_rows) > 1:
        parts.append(
            format_table(
                "By scene type",
                ["scene", "N", "MJE", "J-PE", "PA-J-PE", "V-PE", "PA-V-PE", f"F@{fk[0]}", "ADD-S", "ADD-0.5D"],
                scene_rows,
            )
        )
    return "\n\n".join(parts)
