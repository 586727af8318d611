"""Cards decide between readings of one linear dependency that the weights leave open
(merge_cards.py): task arithmetic's base read as the merge of the merge and the
fine-tunes has every weight in (0, 1] when 1 / (k - 1) <= lambda <= 1, and the spanning
cost leans toward that mirror whenever k lambda < 2."""

from __future__ import annotations

import numpy as np
import pytest

from lineage.recovery import recover_graph
from lineage.recovery.inputs import CardEdge
from lineage.recovery.merge_cards import CardVotes
from lineage.recovery.merges import MergeFit
from tests.recovery.test_failure_classes import model, root_weights, walk

IDS = ["org/base", "org/f1", "org/f2", "org/merge"]
TRUE = MergeFit(child=3, base=0, parents=[1, 2], coefficients=[0.6, 0.6], residual=0.0,
                single_residual=1.0)
MIRROR = MergeFit(child=0, base=3, parents=[1, 2], coefficients=[0.75, 0.75],
                  residual=0.0, single_residual=1.0)


def test_support_counts_claims_that_agree_with_a_readings_order_minus_contradictions():
    honest = CardVotes(frozenset({("org/base", "org/f1"), ("org/base", "org/f2"),
                                  ("org/f1", "org/merge")}), rho=0.8)
    assert honest.support(TRUE, IDS) == 3
    assert honest.support(MIRROR, IDS) == -3  # the mirror puts the merge before f1
    unrelated = CardVotes(frozenset({("org/f1", "org/f2"), ("org/x", "org/base")}), 0.8)
    assert unrelated.support(TRUE, IDS) == unrelated.support(MIRROR, IDS) == 0


def test_cards_override_a_coin_flip_but_not_without_reliability():
    honest = CardVotes(frozenset({("org/base", "org/f1"), ("org/base", "org/f2")}), 0.8)
    chosen, posterior = honest.choose([MIRROR, TRUE], 0.5, IDS)
    assert chosen == 1 and posterior == pytest.approx(0.98)  # 4^4 : 1, capped
    weak = CardVotes(honest.claims, rho=0.5)  # cards no better than chance say nothing
    assert weak.choose([MIRROR, TRUE], 0.5, IDS) is None
    silent = CardVotes(frozenset(), rho=0.9)
    assert silent.choose([MIRROR, TRUE], 0.5, IDS) is None


def _task_arithmetic_family(seed: int, cards: str):
    """A base with three fine-tunes, each with a fine-tune of its own, and their task
    arithmetic merge at lambda = 0.55 (k lambda < 2: the weights prefer the mirror)."""
    rng = np.random.default_rng(seed)
    base = root_weights(rng)
    tunes = [walk(rng, base, 0.3) for _ in range(3)]
    merged = [b + 0.55 * sum(t[q] - b for t in tunes) for q, b in enumerate(base)]
    grand = [walk(rng, t, 0.3) for t in tunes]
    names = [f"org/f{k}" for k in range(3)]
    models = [model("org/base", base), model("org/merge", merged),
              *[model(n, w) for n, w in zip(names, tunes, strict=True)],
              *[model(f"org/g{k}", w) for k, w in enumerate(grand)]]
    claims = [CardEdge(n, f"org/g{k}") for k, n in enumerate(names)]  # honest, adjacent
    if cards == "honest":
        claims += [CardEdge("org/base", n) for n in names]
        claims += [CardEdge(n, "org/merge") for n in names]
    return models, claims


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_honest_cards_choose_the_task_arithmetic_reading_the_weights_mirror(seed):
    models, claims = _task_arithmetic_family(seed, "honest")
    merges = [e for e in recover_graph(models, claims).edges if e.relation == "merge"]
    assert {(e.parent, e.child) for e in merges} == {(f"org/f{k}", "org/merge")
                                                     for k in range(3)}
    assert {e.evidence["base"] for e in merges} == {"org/base"}
    assert all(e.evidence["chosen_by"] == "cards" for e in merges)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_without_cards_on_the_merge_the_weights_reading_stays(seed):
    models, claims = _task_arithmetic_family(seed, "none")
    merges = [e for e in recover_graph(models, claims).edges if e.relation == "merge"]
    assert merges and all("chosen_by" not in e.evidence for e in merges)
