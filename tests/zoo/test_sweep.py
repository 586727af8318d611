"""The zoo sweep: seeded draws over wide ranges, the budget fit, and its metrics."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from lineage.zoo import parse_spec, plan_zoo
from lineage.zoo.sweep import HOLDOUT_SEED, SweepShape, draw, draw_seed, estimate_seconds
from lineage.zoo.sweep_score import format_table, relation_accuracy, score_draw, summarize


def test_draws_are_seeded_by_sweep_seed_and_index():
    assert draw(0, 3).spec == draw(0, 3).spec
    seeds = {draw_seed(s, i) for s in range(3) for i in range(20)}
    assert len(seeds) == 60  # no two draws share a seed
    assert draw(0, 3).spec != draw(0, 4).spec != draw(1, 3).spec
    assert draw(HOLDOUT_SEED, 0).held_out and not draw(HOLDOUT_SEED - 1, 0).held_out


def test_draws_fit_the_budget_and_the_model_cap():
    shape = SweepShape()
    for i in range(12):
        d = draw(0, i, shape)
        nodes = plan_zoo(parse_spec(d.spec))
        assert 2 <= len(nodes) <= shape.max_models
        assert d.estimate_seconds == pytest.approx(estimate_seconds(nodes, d.spec), abs=0.05)
        assert d.estimate_seconds <= shape.budget_seconds
        for tree in d.spec["trees"]:
            assert 1 <= len(tree["branching"]) <= 4
            assert all(1 <= b <= 8 for b in tree["branching"])
            assert all(1 <= r <= 64 for r in tree["lora_ranks"])


def test_a_tight_budget_lowers_step_ranges_then_trims_models():
    shape = SweepShape()
    wide = draw(0, 1, shape)
    assert wide.adjustments == {} and wide.estimate_seconds > 100
    lower = draw(0, 1, replace(shape, budget_seconds=100.0))
    assert lower.estimate_seconds <= 100.0
    assert set(lower.adjustments) == {"child_steps_max"}  # steps alone made it fit
    assert 500 <= lower.adjustments["child_steps_max"]["vit"] < 2000
    # The same quantiles: every child's steps shrink, none grows, none falls below 20.
    before = {n.id: n for n in plan_zoo(parse_spec(wide.spec))}
    after = plan_zoo(parse_spec(lower.spec))
    assert {n.id for n in after} == set(before)
    children = [n for n in after if n.relation in ("finetune", "lora")]
    assert all(20 <= n.steps <= before[n.id].steps for n in children)
    assert any(n.steps < before[n.id].steps for n in children)
    tight = draw(0, 1, replace(shape, budget_seconds=30.0))
    assert tight.estimate_seconds <= 30.0
    assert tight.adjustments["models_trimmed"] >= 1
    assert len(plan_zoo(parse_spec(tight.spec))) < len(after)


def test_every_node_draws_its_own_hyperparameters():
    children = [
        n for i in range(8) for n in plan_zoo(parse_spec(draw(0, i).spec))
        if n.relation in ("finetune", "lora")
    ]
    assert len(children) > 50
    assert all(1e-5 <= n.lr <= 1e-3 for n in children)
    assert all(20 <= n.steps <= 2000 for n in children)
    assert all(0 <= n.weight_decay <= 0.1 for n in children)
    assert {n.optimizer for n in children} == {"adamw", "sgd"}
    # Log-uniform: both decades of the range are well represented.
    low = sum(n.lr < 1e-4 for n in children) / len(children)
    assert 0.3 < low < 0.7
    assert len({round(math.log10(n.lr), 3) for n in children}) > 0.9 * len(children)


# A hand-built truth: root -> a -> b, root -> c (lora), a + c -> m (merge), a -> a-fp16.
TRUTH = {
    "nodes": [{"id": i, "tree": 0} for i in ("r", "a", "b", "c", "m", "a16")],
    "edges": [
        {"parent": "r", "child": "a", "relation": "finetune"},
        {"parent": "a", "child": "b", "relation": "finetune"},
        {"parent": "r", "child": "c", "relation": "lora"},
        {"parent": "a", "child": "m", "relation": "merge"},
        {"parent": "c", "child": "m", "relation": "merge"},
        {"parent": "a", "child": "a16", "relation": "quantized"},
    ],
}


def test_scores_of_a_hand_checked_graph():
    found = [
        ("r", "a", "finetune"),   # right, right label
        ("b", "a", "finetune"),   # reversed: undirected only
        ("r", "c", "finetune"),   # right edge, wrong label (lora)
        ("a", "m", "merge"),      # right merge edge
        ("b", "m", "merge"),      # a wrong merge edge
        ("a", "a16", "reupload"),  # right edge, wrong label
    ]
    scores = score_draw(TRUTH, found)
    assert scores["edges"] == 6 and scores["merge_edges"] == 2
    assert scores["directed"] == pytest.approx(4 / 6)  # r-a, r-c, a-m, a-a16
    assert scores["undirected"] == pytest.approx(5 / 6)  # and b-a
    assert scores["relation"] == pytest.approx(2 / 6)  # r-a finetune, a-m merge
    assert relation_accuracy(TRUTH, found) == pytest.approx(2 / 6)
    assert scores["merge_precision"] == pytest.approx(1 / 2)
    assert scores["merge_recall"] == pytest.approx(1 / 2)


def test_summary_means_over_draws_that_have_the_metric_and_names_the_worst():
    rows = [
        {"draw": "0/0", "models": 6, "trees": 1, "scores": score_draw(TRUTH, [])},
        {"draw": "0/1", "models": 6, "trees": 1,
         "scores": score_draw(TRUTH, [(e["parent"], e["child"], e["relation"])
                                      for e in TRUTH["edges"]])},
    ]
    overall = summarize(rows)
    assert overall["mean"]["directed"] == pytest.approx(0.5)
    assert overall["mean"]["relation"] == pytest.approx(0.5)
    assert overall["mean"]["merge_precision"] == pytest.approx(1.0)  # 0/0 found no merge
    assert overall["mean"]["merge_recall"] == pytest.approx(0.5)
    assert overall["worst"] == {"draw": "0/0", "directed": 0.0}
    table = format_table(rows, overall)
    assert table.splitlines()[1].split()[:4] == ["0/0", "6", "1", "6"]
    assert "worst draw: 0/0 (directed 0.000)" in table
    json.dumps(overall)  # JSON-ready
