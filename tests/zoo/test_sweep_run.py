"""A small sweep end to end (the CI run): two tiny draws built, indexed into fresh
catalogs, recovered and scored; every printed figure is recomputed here by hand from the
draw's ground_truth.json and the edges the sweep recovered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.cli import main
from jobs.commands.zoo import HOLDOUT
from lineage.zoo.sweep import HOLDOUT_SEED


def by_hand(truth: dict, found: list[list[str]]) -> dict:
    true = [(e["parent"], e["child"], e["relation"]) for e in truth["edges"]]
    pairs = {(p, c) for p, c, _ in found}
    triples = {tuple(e) for e in found}
    merges_found = {(p, c) for p, c, r in found if r == "merge"}
    merges_true = {(p, c) for p, c, r in true if r == "merge"}
    hits = merges_found & merges_true
    return {
        "directed": sum((p, c) in pairs for p, c, _ in true) / len(true),
        "undirected": sum((p, c) in pairs or (c, p) in pairs for p, c, _ in true) / len(true),
        "relation": sum(t in triples for t in true) / len(true),
        "merge_precision": len(hits) / len(merges_found) if merges_found else None,
        "merge_recall": len(hits) / len(merges_true) if merges_true else None,
    }


def test_small_sweep_prints_metrics_computed_right(tmp_path, capsys):
    cache = tmp_path / "cache"  # a private cache: the zoos are really built
    args = ["zoo", "sweep", "--draws", "2", "--seed", "0", "--small", "--cache", str(cache)]
    assert main([*args, "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert "draw 0/0:" in captured.err and "draw 0/1:" in captured.err
    rows = result["rows"]
    assert [r["draw"] for r in rows] == ["0/0", "0/1"]
    for row in rows:
        truth = json.loads((Path(row["zoo"]) / "ground_truth.json").read_text())
        assert row["models"] == len(truth["nodes"]) and row["scores"]["edges"] == len(
            truth["edges"])
        assert not row["cached"] and row["build_seconds"] > 0
        for metric, value in by_hand(truth, row["recovered_edges"]).items():
            assert row["scores"][metric] == pytest.approx(value), (row["draw"], metric)
        # Every recovered edge names models of this zoo: one catalog per draw.
        ids = {n["id"] for n in truth["nodes"]}
        assert all(p in ids and c in ids for p, c, _ in row["recovered_edges"])
        # one (confidence, right) per recovered edge; as many right as the edges found
        true = {(e["parent"], e["child"]) for e in truth["edges"]}
        assert len(row["confidences"]) == len(row["recovered_edges"])
        assert sum(ok for _, ok in row["confidences"]) == sum(
            (p, c) in true for p, c, _ in row["recovered_edges"])
        assert all(0.0 <= c <= 1.0 for c, _ in row["confidences"])
    assert result["calibration"]["edges"] == sum(len(r["confidences"]) for r in rows)
    mean = result["overall"]["mean"]
    for metric in ("directed", "undirected", "relation"):
        assert mean[metric] == pytest.approx(sum(r["scores"][metric] for r in rows) / 2)
    worst = min(rows, key=lambda r: r["scores"]["directed"])
    assert result["overall"]["worst"]["draw"] == worst["draw"]

    # The table prints the same figures; the second run takes the zoos from the cache.
    assert main(args) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    for row in rows:
        cells = lines[row["draw"]]
        assert cells[7:10] == [f"{row['scores'][m]:.3f}" for m in
                               ("directed", "undirected", "relation")]
    assert f"worst draw: {worst['draw']} (directed {worst['scores']['directed']:.3f})" in out
    assert out.count("(built in") == 2  # both cached now, with their original build times
    assert f"expected calibration error {result['calibration']['ece']:.3f}" in out

    # Weights only (held-out zoos are scored so): the same zoos, cards ignored, the
    # figures still what the edges give.
    assert main([*args, "--json", "--weights-only"]) == 0
    captured = capsys.readouterr()
    blind = json.loads(captured.out)
    assert "weights only" in captured.err and blind["weights_only"] and not result["weights_only"]
    for row in blind["rows"]:
        assert row["weights_only"]
        truth = json.loads((Path(row["zoo"]) / "ground_truth.json").read_text())
        for metric, value in by_hand(truth, row["recovered_edges"]).items():
            assert row["scores"][metric] == pytest.approx(value), (row["draw"], metric)


def test_holdout_seeds_are_marked(capsys):
    assert HOLDOUT == HOLDOUT_SEED
    assert main(["zoo", "sweep", "--draws", "0", "--seed", "2", "--holdout"]) == 0
    out = capsys.readouterr().out
    assert f"sweep seed {HOLDOUT_SEED + 2}: HELD-OUT draws" in out
    assert main(["zoo", "sweep", "--draws", "0", "--seed", "2"]) == 0
    assert "HELD-OUT" not in capsys.readouterr().out
