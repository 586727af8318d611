"""Recovery end to end on the real `tiny` zoo: index, recover, compare with the truth.

The truth is read here, in the test, never by recovery."""

from __future__ import annotations

import json

import pytest

from catalog.query import run_query
from jobs.cli import main as cli
from lineage.recovery import RELATIONS
from lineage.recovery.evaluate import evaluate_graph
from tests.recovery.conftest import edges_by_child


def _nodes(truth: dict, relation: str) -> list[dict]:
    found = [n for n in truth["nodes"] if n["relation"] == relation]
    assert found, f"the tiny zoo has no {relation} model"
    return found


def test_fine_tune_edges_are_recovered_with_direction(recovered, tiny_truth):
    found = {(e.parent, e.child) for e in recovered.result.edges}
    tree = [e for e in tiny_truth["edges"] if e["relation"] in ("finetune", "lora")]
    hits = [e for e in tree if (e["parent"], e["child"]) in found]
    undirected = [e for e in tree if {(e["parent"], e["child"]), (e["child"], e["parent"])}
                  & found]
    # 7 tree edges; every one is placed and pointed the right way (the centrality vote
    # settles the LoRA edge that kurtosis and norm left open on a 2-model branch).
    assert len(undirected) == len(tree) == 7
    assert len(hits) == 7


def test_every_model_lands_in_its_own_tree(recovered, tiny_truth):
    scores = evaluate_graph(tiny_truth, [(e.parent, e.child, e.relation)
                                         for e in recovered.result.edges],
                            recovered.result.trees)["overall"]
    assert scores["ari"] == 1.0 and scores["trees_exact"] == 1.0
    assert len(recovered.result.trees) == tiny_truth["zoo"]["n_trees"] == 2


@pytest.mark.parametrize("relation", ["reupload", "quantized", "adapter"])
def test_copies_and_adapters_hang_off_their_source(recovered, tiny_truth, relation):
    by_child = edges_by_child(recovered)
    for node in _nodes(tiny_truth, relation):
        edges = by_child[node["id"]]
        assert [(e.parent, e.relation) for e in edges] == [(node["parents"][0], relation)]
        assert edges[0].confidence > 0.5


def test_merge_is_detected_with_its_parents(recovered, tiny_truth):
    by_child = edges_by_child(recovered)
    for node in _nodes(tiny_truth, "merge"):
        edges = by_child[node["id"]]
        assert sorted(e.parent for e in edges) == sorted(node["parents"])
        assert {e.relation for e in edges} == {"merge"}
        assert edges[0].evidence["residual"] < 0.05
    assert not [e for e in recovered.result.edges if e.relation == "merge"
                and e.child not in {n["id"] for n in _nodes(tiny_truth, "merge")}]


def test_lying_cards_are_listed(recovered, tiny_truth):
    wrong = {n["id"]: n["card"]["base_model"][0] for n in tiny_truth["nodes"]
             if n["card"]["lie"] == "wrong"}
    parent_rows = {(d["child"], d["card_parent"]) for d in recovered.result.card_disagreements
                   if d["kind"] == "parent"}
    assert wrong and set(wrong.items()) <= parent_rows
    # Nothing else is listed: every true card agrees with the recovered edges.
    assert parent_rows == set(wrong.items())
    # A re-upload's card calls it a fine-tune: a relation disagreement.
    relation_rows = {d["child"] for d in recovered.result.card_disagreements
                     if d["kind"] == "relation"}
    assert {n["id"] for n in _nodes(tiny_truth, "reupload")} <= relation_rows
    omitted = {n["id"] for n in tiny_truth["nodes"] if n["card"]["lie"] == "omitted"}
    assert omitted <= {e.child for e in recovered.result.undocumented}


def test_sql_macros_answer_root_and_disagreements(recovered, tiny_catalog, tiny_truth):
    # The macros read the newest recover run: no other test may have recovered on the
    # shared catalog since (those that recover use a copy).
    latest = run_query(tiny_catalog, "SELECT latest_recover_run()").rows
    assert latest == [(recovered.run_id,)]
    for tree in tiny_truth["trees"]:
        models = [n for n in tiny_truth["nodes"] if n["tree"] == tree["tree"]]
        for kind in ("finetune", "quantized", "reupload", "merge"):
            for node in (n for n in models if n["relation"] == kind and n["depth"] <= 2):
                rows = run_query(tiny_catalog, "SELECT model_id FROM root(?)", [node["id"]]).rows
                if tree["tree"] == 0:  # the ViT tree is recovered exactly
                    assert rows == [(tree["root"],)]
        rows = run_query(tiny_catalog, "SELECT model_id, depth FROM root(?)", [tree["root"]])
        if tree["tree"] == 0:
            assert rows.rows == [(tree["root"], 0)]
    sql = run_query(tiny_catalog, "SELECT child, card_parent, kind FROM card_disagreements()")
    python = [(d["child"], d["card_parent"], d["kind"])
              for d in recovered.result.card_disagreements]
    assert sorted(sql.rows) == sorted(python)
    und = run_query(tiny_catalog, "SELECT parent, child, relation FROM undocumented_edges()")
    assert sorted(und.rows) == sorted((e.parent, e.child, e.relation)
                                      for e in recovered.result.undocumented)
    sure = run_query(tiny_catalog, "SELECT parent, child FROM recovered_edges("
                     "min_confidence := ?)", [0.9]).rows
    assert sorted(sure) == sorted((e.parent, e.child) for e in recovered.result.edges
                                  if e.confidence >= 0.9)
    assert 0 < len(sure) < len(recovered.result.edges)


def test_edges_are_in_the_catalog_with_evidence(recovered, tiny_catalog):
    rows = run_query(
        tiny_catalog,
        "SELECT parent, child, relation, confidence, evidence FROM edges "
        "WHERE source = 'recovered' AND run_id = ?",
        [recovered.run_id],
    ).rows
    assert len(rows) == len(recovered.result.edges) == 14
    for _, _, relation, confidence, evidence in rows:
        assert relation in RELATIONS
        assert 0.0 <= confidence <= 1.0
        assert isinstance(json.loads(evidence), dict)


def test_eval_cli_prints_the_same_numbers(recovered, tiny_catalog, tiny_root, tiny_truth,
                                          capsys):
    assert cli(["eval", "--truth", str(tiny_root), "--catalog", str(tiny_catalog.root),
                "--run", recovered.run_id, "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = evaluate_graph(tiny_truth, [(e.parent, e.child, e.relation)
                                           for e in recovered.result.edges])
    assert printed["overall"] == pytest.approx(expected["overall"])
    assert cli(["eval", "--truth", str(tiny_root / "ground_truth.json"),
                "--catalog", str(tiny_catalog.root), "--run", recovered.run_id]) == 0
    assert "clustering: adjusted Rand 1.000" in capsys.readouterr().out
    assert cli(["eval", "--truth", str(tiny_root), "--catalog", str(tiny_catalog.root),
                "--run", recovered.run_id, "--calibration", "--format", "json"]) == 0
    table = json.loads(capsys.readouterr().out)["calibration"]
    assert table["edges"] == len(recovered.result.edges)
    assert sum(b["edges"] for b in table["bins"]) == table["edges"]
    right = sum(round(b["right"] * b["edges"]) for b in table["bins"])
    assert right == round(expected["overall"]["directed"] * expected["overall"]["edges"])


def test_graph_cli_draws_a_family(recovered, tiny_catalog, tiny_truth, capsys):
    merge = _nodes(tiny_truth, "merge")[0]
    family = [n["id"] for n in tiny_truth["nodes"] if n["tree"] == merge["tree"]]
    for fmt in ("mermaid", "dot"):
        assert cli(["graph", merge["id"], "--format", fmt, "--catalog",
                    str(tiny_catalog.root), "--run", recovered.run_id]) == 0
        text = capsys.readouterr().out
        assert all(f'"{m}"' in text for m in family)
        assert text.count("merge") >= 2


def test_graph_of_an_unknown_model_is_a_clear_error(recovered, tiny_catalog, capsys):
    assert cli(["graph", "nobody/nothing", "--catalog", str(tiny_catalog.root)]) == 1
    assert "model 'nobody/nothing': is not in the catalog" in capsys.readouterr().err
