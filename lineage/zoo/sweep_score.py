"""Scores of one sweep draw and of the whole sweep, and the printed table.

Per draw: directed and undirected accuracy, ARI and trees-exact (from
lineage.recovery.evaluate, the same scorer as the recovery benchmark), relation
accuracy (true edges found in their direction with the true relation label), merge
precision and recall. Overall: the mean of each over the draws that have it (a draw
without merges has no merge recall), and the worst draw by directed accuracy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from lineage.recovery.evaluate import evaluate_graph

METRICS = ("directed", "undirected", "relation", "merge_precision", "merge_recall")
HEADERS = ("directed", "undirected", "relation", "merge_P", "merge_R")


def relation_accuracy(truth: dict, edges: Iterable[tuple[str, str, str]]) -> float | None:
    """Fraction of true edges recovered as (parent, child) with the true relation label."""
    found = {(p, c, r) for p, c, r in edges}
    true = [(e["parent"], e["child"], e["relation"]) for e in truth["edges"]]
    return sum(e in found for e in true) / len(true) if true else None


def score_draw(
    truth: dict,
    edges: Sequence[tuple[str, str, str]],
    trees: Sequence[Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Every sweep metric of recovered `edges` ((parent, child, relation)) on `truth`."""
    overall = evaluate_graph(truth, edges, trees)["overall"]
    return {
        "edges": overall["edges"],
        "merge_edges": overall["merge_edges"],
        "directed": overall["directed"],
        "undirected": overall["undirected"],
        "relation": relation_accuracy(truth, edges),
        "merge_precision": overall["merge_precision"],
        "merge_recall": overall["merge_recall"],
        "ari": overall["ari"],
        "trees_exact": overall["trees_exact"],
    }


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean of every metric over the draws that have it, and the worst draw.

    `rows`: one dict per draw with a "scores" dict (as score_draw returns) and a "draw"
    name. The worst draw is the lowest directed accuracy (ties: the first).
    """
    means = {}
    for metric in (*METRICS, "ari", "trees_exact"):
        values = [r["scores"][metric] for r in rows if r["scores"].get(metric) is not None]
        means[metric] = sum(values) / len(values) if values else None
    scored = [r for r in rows if r["scores"]["directed"] is not None]
    worst = min(scored, key=lambda r: r["scores"]["directed"]) if scored else None
    return {
        "draws": len(rows),
        "mean": means,
        "worst": None if worst is None else {
            "draw": worst["draw"], "directed": worst["scores"]["directed"]},
    }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "-" if value is None else str(value)


def format_table(rows: Sequence[dict[str, Any]], overall: dict[str, Any]) -> str:
    """The sweep as a plain-text table: one line per draw, then the mean and the worst."""
    head = ["draw", "models", "trees", "edges", "build_s", "cpu_s", "est_s", *HEADERS]
    lines = [_line(head)]
    for r in rows:
        cells = [r["draw"], r["models"], r["trees"], r["scores"]["edges"],
                 _seconds(r.get("build_seconds")), _seconds(r.get("build_cpu_seconds")),
                 _seconds(r.get("estimate_seconds")), *(r["scores"][m] for m in METRICS)]
        lines.append(_line(cells))
    n = overall["draws"]
    lines.append(_line([f"mean of {n}", "", "", "", "", "", "",
                        *(overall["mean"][m] for m in METRICS)]))
    worst = overall["worst"]
    if worst:
        lines.append(f"worst draw: {worst['draw']} (directed {_fmt(worst['directed'])})")
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _line(cells: Sequence[Any]) -> str:
    return " ".join(f"{_fmt(c):>10}" if i >= 1 else f"{_fmt(c):<10}" for i, c in enumerate(cells))
