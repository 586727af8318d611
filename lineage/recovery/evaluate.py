"""Score a recovered graph against a zoo's ground truth (ground_truth.json).

As MoTHer scores it: directed accuracy is the fraction of true parent -> child edges
recovered with that placement and direction; undirected accepts either direction.
Clustering: adjusted Rand index of recovered trees against true trees, and the
fraction of true trees recovered exactly as one component. Merges: precision and
recall of edges labelled 'merge'. Every figure overall and per true tree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from sklearn.metrics import adjusted_rand_score


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _edge_scores(true: set, found: set) -> dict:
    undirected = {frozenset(e) for e in found}
    hit = sum(e in found for e in true)
    und = sum(frozenset(e) in undirected for e in true)
    return {"edges": len(true), "directed": _ratio(hit, len(true)),
            "undirected": _ratio(und, len(true))}


def _merge_scores(true: set, found: set) -> dict:
    tp = len(true & found)
    return {"merge_edges": len(true), "merge_precision": _ratio(tp, len(found)),
            "merge_recall": _ratio(tp, len(true))}


def _tree_labels(trees: Iterable[Sequence[str]]) -> dict[str, int]:
    return {m: k for k, tree in enumerate(trees) for m in tree}


def evaluate_graph(truth: dict, edges: Iterable[tuple[str, str, str]],
                   trees: Iterable[Sequence[str]] | None = None) -> dict:
    """Scores of `edges` ((parent, child, relation) triples) and recovered `trees`
    (components; derived from the edges when not given) against `truth`."""
    edges = list(edges)
    nodes = {n["id"]: n["tree"] for n in truth["nodes"]}
    if trees is None:
        trees = _components(nodes, edges)
    found = {(p, c) for p, c, _ in edges}
    found_merge = {(p, c) for p, c, r in edges if r == "merge"}
    true = {(e["parent"], e["child"]) for e in truth["edges"]}
    true_merge = {(e["parent"], e["child"]) for e in truth["edges"] if e["relation"] == "merge"}
    label = _tree_labels(trees)
    ids = sorted(nodes)
    recovered = [label.get(m, -1 - i) for i, m in enumerate(ids)]
    overall = {
        **_edge_scores(true, found),
        **_merge_scores(true_merge, found_merge),
        "relation_accuracy": relation_accuracy(truth, edges),
        "ari": adjusted_rand_score([nodes[m] for m in ids], recovered),
        "trees_exact": _exact_trees(nodes, label),
    }
    return {"overall": overall, "per_tree": _per_tree(nodes, true, true_merge, found,
                                                      found_merge, label)}


def _per_tree(nodes, true, true_merge, found, found_merge, label) -> dict:
    by_tree: dict[int, list[str]] = defaultdict(list)
    for m, t in nodes.items():
        by_tree[t].append(m)
    out = {}
    for t, members in sorted(by_tree.items()):
        inside = set(members)
        mine = {e for e in true if e[1] in inside}
        merges_found = {e for e in found_merge if e[1] in inside}
        out[t] = {
            **_edge_scores(mine, found),
            **_merge_scores({e for e in true_merge if e[1] in inside}, merges_found),
            "exact": len({label.get(m) for m in members}) == 1
            and sum(v == label.get(members[0]) for v in label.values()) == len(members),
        }
    return out


def _exact_trees(nodes: dict[str, int], label: dict[str, int]) -> float:
    by_tree: dict[int, set[str]] = defaultdict(set)
    for m, t in nodes.items():
        by_tree[t].add(m)
    comps: dict[int, set[str]] = defaultdict(set)
    for m, k in label.items():
        comps[k].add(m)
    recovered = [frozenset(c) for c in comps.values()]
    return sum(frozenset(ms) in recovered for ms in by_tree.values()) / max(len(by_tree), 1)


def _components(nodes: dict[str, int], edges: list) -> list[list[str]]:
    parent = {m: m for m in nodes}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p, c, _ in edges:
        parent[find(p)] = find(c)
    groups: dict[str, list[str]] = defaultdict(list)
    for m in list(parent):
        groups[find(m)].append(m)
    return list(groups.values())


def relation_accuracy(truth: dict, edges: Iterable[tuple[str, str, str]]) -> float | None:
    """Fraction of true edges recovered with their placement, direction AND relation."""
    found = {(p, c): r for p, c, r in edges}
    true = [(e["parent"], e["child"], e["relation"]) for e in truth["edges"]]
    return _ratio(sum(found.get((p, c)) == r for p, c, r in true), len(true))


def reliability(truth: dict, edges: Iterable[tuple[str, str, float]], bins: int = 10
                ) -> dict:
    """How well confidences are calibrated: recovered (parent, child, confidence) edges
    binned by confidence, each bin's mean confidence against the fraction of its edges
    that are true (placement and direction). ECE: the bin-size-weighted mean gap."""
    return reliability_of(confidence_rows(truth, edges), bins)


def confidence_rows(truth: dict, edges: Iterable[tuple[str, str, float]]
                    ) -> list[tuple[float, bool]]:
    """(confidence, is the edge true) per recovered (parent, child, confidence) edge."""
    true = {(e["parent"], e["child"]) for e in truth["edges"]}
    return [(float(conf), (p, c) in true) for p, c, conf in edges]


def reliability_of(rows: list[tuple[float, bool]], bins: int = 10) -> dict:
    """The reliability table of (confidence, right) rows, from one zoo or many."""
    table = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [(c, ok) for c, ok in rows if lo <= c < hi or (b == bins - 1 and c == 1.0)]
        if inside:
            table.append({"low": lo, "high": hi, "edges": len(inside),
                          "confidence": sum(c for c, _ in inside) / len(inside),
                          "right": sum(ok for _, ok in inside) / len(inside)})
    n = max(len(rows), 1)
    ece = sum(r["edges"] / n * abs(r["confidence"] - r["right"]) for r in table)
    sure = [ok for c, ok in rows if c >= 0.9]
    return {"bins": table, "edges": len(rows), "ece": ece,
            "right_at_0.9": _ratio(sum(sure), len(sure)), "edges_at_0.9": len(sure)}


def render_reliability(rel: dict) -> str:
    lines = ["confidence      edges  mean conf  fraction right"]
    for r in rel["bins"]:
        lines.append(f"[{r['low']:.1f}, {r['high']:.1f})  {r['edges']:9d}  "
                     f"{r['confidence']:9.3f}  {r['right']:14.3f}")
    at = rel["right_at_0.9"]
    lines.append(f"expected calibration error {rel['ece']:.3f} over {rel['edges']} edges; "
                 f"confidence >= 0.9: {rel['edges_at_0.9']} edges, "
                 f"{'-' if at is None else f'{at:.3f}'} right")
    return "\n".join(lines)
