"""A card that names no base in the catalog is evidence for the root (root_cards.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lineage.recovery import recover_graph
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
