"""A card that names no base in the catalog is evidence for the root (root_cards.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lineage.recovery import RecoveryOptions, recover_graph
from lineage.recovery.component import Component
from lineage.recovery.inputs import CardEdge
from lineage.recovery.root_cards import root_card_evidence
from tests.recovery.test_failure_classes import model, root_weights, walk


def _comp(ids: list[str]) -> Component:
    comp = Component.__new__(Component)  # only the ids are read
    comp.all_ids = ids
    comp.features = type("F", (), {"ids": ids})()
    return comp


def test_the_likelihood_ratios_follow_from_the_share_of_cards_naming_a_base():
    comps = [_comp(["a/root", "a/x", "a/y"]), _comp(["b/root", "b/z"])]
    cards = [CardEdge("a/root", "a/x"), CardEdge("a/root", "a/y"), CardEdge("b/root", "b/z"),
             CardEdge("elsewhere/base", "b/root")]  # a base outside the group: silent
    rho = 0.8
    evidence = root_card_evidence(comps, cards, rho)
    pi = (3 + 0.5) / ((5 - 2) + 2 * (1 - rho) + 1.0)
    silent = math.log((1 - (1 - rho) * pi) / (1 - pi))
    named = math.log(1 - rho)
    assert evidence[0] == pytest.approx([silent, named, named])
    assert evidence[1] == pytest.approx([silent, named])
    assert root_card_evidence(comps, cards, 0.5) == [None, None]  # chance-level cards


def test_a_silent_card_roots_a_pair_the_weights_cannot_orient():
    rng = np.random.default_rng(5)
    # tree A: a root and a model that barely moved from it (no branching, weak drift)
    a_root = root_weights(rng)
    a_near = walk(rng, a_root, 0.01)
    # tree B: a family whose honest cards name their tree neighbours (rho > 1/2)
    b_root = root_weights(rng)
    b_kids = [walk(rng, b_root, 0.3) for _ in range(3)]
    b_grand = [walk(rng, k, 0.3) for k in b_kids]
    models = [model("a/root", a_root), model("a/near", a_near), model("b/root", b_root),
              *[model(f"b/k{i}", w) for i, w in enumerate(b_kids)],
              *[model(f"b/g{i}", w) for i, w in enumerate(b_grand)]]
    cards = [CardEdge("a/root", "a/near"), *[CardEdge("b/root", f"b/k{i}") for i in range(3)],
             *[CardEdge(f"b/k{i}", f"b/g{i}") for i in range(3)]]
    [edge] = [e for e in recover_graph(models, cards).edges if "a/" in e.child]
    assert (edge.parent, edge.child) == ("a/root", "a/near")
    assert edge.evidence["direction_probability"] > 0.9


def test_weights_only_recovery_ignores_every_card_claim_and_still_reports_them():
    rng = np.random.default_rng(5)
    a_root = root_weights(rng)
    a_near = walk(rng, a_root, 0.01)
    b_root = root_weights(rng)
    b_kids = [walk(rng, b_root, 0.3) for _ in range(3)]
    b_grand = [walk(rng, k, 0.3) for k in b_kids]
    parents = {"a/near": "a/root", **{f"b/k{i}": "b/root" for i in range(3)},
               **{f"b/g{i}": f"b/k{i}" for i in range(3)}}
    weights = {"a/root": a_root, "a/near": a_near, "b/root": b_root,
               **{f"b/k{i}": w for i, w in enumerate(b_kids)},
               **{f"b/g{i}": w for i, w in enumerate(b_grand)}}
    models = [model(m, w, card_base_models=(parents[m],) if m in parents else (),
                    card_relation="finetune" if m in parents else None, created_at=float(k))
              for k, (m, w) in enumerate(weights.items())]
    cards = [CardEdge(p, c) for c, p in parents.items()]
    blind = [model(m, w) for m, w in weights.items()]  # no card fields at all

    with_cards = recover_graph(models, cards)
    alone = recover_graph(models, cards, options=RecoveryOptions(use_cards=False))
    reference = recover_graph(blind, [])

    def pair(result):
        [edge] = [e for e in result.edges if "a/" in e.child]
        return edge

    assert pair(with_cards).evidence["direction_probability"] > 0.9  # the silent card roots it
    # without cards the weights alone cannot orient the barely-moved pair: a coin flip
    assert pair(alone).evidence["direction_probability"] == pytest.approx(0.5, abs=0.1)
    assert [(e.parent, e.child, e.relation, e.confidence) for e in alone.edges] == \
        [(e.parent, e.child, e.relation, e.confidence) for e in reference.edges]
    # the cards are still compared with what the weights gave: every claim the weights'
    # edges do not hold is a disagreement, every edge no card declares is undocumented
    held = {(e.parent, e.child) for e in alone.edges}
    claims = {(p, c) for c, p in parents.items()}
    assert {(d["card_parent"], d["child"]) for d in alone.card_disagreements} == claims - held
    assert {(e.parent, e.child) for e in alone.undocumented} == held - claims
    assert not with_cards.card_disagreements
