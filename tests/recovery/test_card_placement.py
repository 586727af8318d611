"""Cards decide between parents the weights cannot tell apart (card_placement.py), on
constructed families: a near-copy child and siblings whose training drifted alike."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from lineage.recovery import recover_graph
from lineage.recovery.calibration import (
    CARD_CAP,
    CONFIRMED_FLOOR,
    UNCONFIRMED_WITH_CARDS,
    placed_edge_probability,
    placement_probability,
)
from lineage.recovery.inputs import CardEdge
from tests.recovery.test_failure_classes import model, root_weights, walk


def _drift(rng, parent, direction, share, step):
    """A fine-tune whose increment leans on a shared direction (one task family)."""
    out = []
    for m, u in zip(parent, direction, strict=True):
        own = rng.standard_normal(m.shape)
        out.append(m + step * m.std() * (share * u + (1 - share) * own))
    return out


def _family(rng):
    """grand -> x -> {near (barely moved), s0..s3 (drifting alike)}, grand -> uncles."""
    grand = root_weights(rng)
    x = walk(rng, grand, 0.3)
    uncles = [walk(rng, grand, 0.3) for _ in range(3)]
    direction = [rng.standard_normal(m.shape) for m in x]
    near = _drift(rng, x, direction, 1.0, 0.01)
    sibs = [_drift(rng, x, direction, 0.2, 0.3) for _ in range(4)]
    models = [model("org/grand", grand), model("org/x", x), model("org/near", near),
              *[model(f"org/uncle-{k}", w) for k, w in enumerate(uncles)],
              *[model(f"org/s{k}", w) for k, w in enumerate(sibs)]]
    truth = {("org/grand", "org/x"), ("org/x", "org/near"),
             *{("org/grand", f"org/uncle-{k}") for k in range(3)},
             *{("org/x", f"org/s{k}") for k in range(4)}}
    return models, truth


def _cards(truth, lies=()):
    cards = [CardEdge(p, c, "finetune") for p, c in truth]
    return [c for c in cards if c.child not in dict(lies)] + [
        CardEdge(p, c, "finetune") for c, p in lies]


def _parents(result):
    return {(e.parent, e.child) for e in result.edges}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_honest_cards_give_the_siblings_back_to_their_parent(seed):
    models, truth = _family(np.random.default_rng(seed))
    # the weights alone hang every drifting sibling from the near-copy
    weights = _parents(recover_graph(models))
    assert {("org/near", f"org/s{k}") for k in range(4)} <= weights
    result = recover_graph(models, _cards(truth))
    assert _parents(result) == truth
    by_card = [e for e in result.edges if e.evidence.get("placed_by") == "card"]
    assert {e.child for e in by_card} == {f"org/s{k}" for k in range(4)}
    # each moved edge carries the card's posterior, above 1/2, and reports it up to
    # CARD_CAP (fitted on spent held-out draws; below what an unrivalled weights
    # placement gets, and below the confident level)
    assert all(e.evidence["card_posterior"] > 0.5 for e in by_card)
    assert all(e.evidence["placement_probability"] == pytest.approx(
        min(e.evidence["card_posterior"], CARD_CAP), abs=1e-4) for e in by_card)
    assert CARD_CAP < min(0.9, placement_probability(1.0))
    assert all(e.confidence <= e.evidence["placement_probability"] + 1e-4 for e in by_card)


def _family_of_two_near_copies(rng):
    """grand -> x -> {near-a, near-b (barely moved, one further along the shared
    direction), s0..s3 (drifting alike)}, grand -> uncles: the weights read
    x - near-a - near-b - s, so each sibling's card names a model three steps away."""
    grand = root_weights(rng)
    x = walk(rng, grand, 0.3)
    uncles = [walk(rng, grand, 0.3) for _ in range(3)]
    direction = [rng.standard_normal(m.shape) for m in x]
    # (not exactly on one line, which would make near-a the average of x and near-b)
    near = [_drift(rng, x, direction, share, step) for share, step in ((1.0, 0.01),
                                                                       (0.9, 0.02))]
    sibs = [_drift(rng, x, direction, 0.2, 0.3) for _ in range(4)]
    models = [model("org/grand", grand), model("org/x", x),
              model("org/near-a", near[0]), model("org/near-b", near[1]),
              *[model(f"org/uncle-{k}", w) for k, w in enumerate(uncles)],
              *[model(f"org/s{k}", w) for k, w in enumerate(sibs)]]
    truth = {("org/grand", "org/x"), ("org/x", "org/near-a"), ("org/x", "org/near-b"),
             *{("org/grand", f"org/uncle-{k}") for k in range(3)},
             *{("org/x", f"org/s{k}") for k in range(4)}}
    return models, truth


@pytest.mark.parametrize("seed", [0, 1])
def test_a_card_naming_a_model_three_steps_away_moves_its_model(seed):
    models, truth = _family_of_two_near_copies(np.random.default_rng(seed))
    weights = recover_graph(models)
    tree = {frozenset((e.parent, e.child)) for e in weights.edges}
    # the weights chain the near-copies and hang the siblings from the far one
    assert frozenset(("org/near-a", "org/near-b")) in tree
    assert all(frozenset(("org/x", f"org/s{k}")) not in tree for k in range(4))
    # near-b's card is silent: it stays where the weights put it, between near-a and s
    cards = [c for c in _cards(truth) if c.child != "org/near-b"]
    result = recover_graph(models, cards)
    assert {(p, c) for p, c in _parents(result) if c.startswith("org/s")} == \
        {("org/x", f"org/s{k}") for k in range(4)}


def test_cards_that_are_mostly_wrong_move_nothing():
    models, truth = _family(np.random.default_rng(0))
    weights_only = _parents(recover_graph(models))
    # every card names the wrong model: rho <= 1/2, the weights' tree stays
    lies = [(c, "org/uncle-0" if p != "org/uncle-0" else "org/uncle-1") for p, c in truth]
    result = recover_graph(models, _cards(truth, lies))
    assert _parents(result) == weights_only
    assert not [e for e in result.edges if e.evidence.get("placed_by") == "card"]


@pytest.mark.parametrize("seed", [1, 2])
def test_a_card_never_moves_an_edge_the_weights_place_clearly(seed):
    # No near-copy: every edge is clear, so a card naming the grandparent (the
    # commonest lie) changes nothing.
    rng = np.random.default_rng(seed)
    grand = root_weights(rng)
    x = walk(rng, grand, 0.3)
    kids = [walk(rng, x, 0.3) for _ in range(3)]
    models = [model("org/grand", grand), model("org/x", x),
              *[model(f"org/k{k}", w) for k, w in enumerate(kids)]]
    truth = {("org/grand", "org/x"), *{("org/x", f"org/k{k}") for k in range(3)}}
    result = recover_graph(models, _cards(truth, [("org/k0", "org/grand")]))
    assert _parents(result) == truth


def test_the_order_of_a_parent_and_its_near_copy_is_not_claimed_with_confidence():
    # grand -> p -> near, near barely moved from p: either order of p and near fits the
    # distances, so the edge between them (whichever way it is read) is not a
    # confident claim, however far every other candidate parent is; a chain of
    # ordinary steps (grand -> u0 -> u0-child) is.
    rng = np.random.default_rng(3)
    grand = root_weights(rng)
    uncles = [walk(rng, grand, 0.3) for _ in range(3)]
    p = walk(rng, grand, 0.3)
    near = walk(rng, p, 0.003)
    cousin = walk(rng, uncles[0], 0.3)
    truth_parent = {"org/p": "org/grand", "org/near": "org/p", "org/u0-child": "org/u0",
                    **{f"org/u{k}": "org/grand" for k in range(3)}}
    models = [model("org/grand", grand), model("org/p", p), model("org/near", near),
              model("org/u0-child", cousin),
              *[model(f"org/u{k}", w) for k, w in enumerate(uncles)]]
    edges = {frozenset((e.parent, e.child)): e for e in recover_graph(models).edges}
    # no card confirms either edge: the unconfirmed curve for full fine-tunes
    # (calibration.UNCONFIRMED_FULL), near 1/2 for the order that barely moved, and more
    # for the ordinary step, yet never "confident" without a card (weights-only full
    # placements are right about half the time on the development draws)
    near_edge = edges[frozenset(("org/p", "org/near"))].evidence
    step_edge = edges[frozenset(("org/u0", "org/u0-child"))].evidence
    assert not near_edge["card_confirmed"] and not near_edge["low_rank"]
    for ev in (near_edge, step_edge):
        assert ev["placement_probability"] == pytest.approx(
            placed_edge_probability(ev["placement_margin"]), abs=1e-3)
    assert near_edge["placement_probability"] < step_edge["placement_probability"] < 0.75
    # cards naming every parent: a weights-placed edge whose child's card names its
    # parent is confirmed and reports at least the confirmed floor; the ordinary step
    # is one
    with_cards = [replace(m, card_base_models=(truth_parent[m.model_id],))
                  if m.model_id in truth_parent else m for m in models]
    claims = [CardEdge(p, c) for c, p in truth_parent.items()]
    result = recover_graph(with_cards, claims)
    agreeing = [e for e in result.edges if e.evidence.get("placed_by") == "weights"
                and truth_parent.get(e.child) == e.parent]
    assert ("org/u0", "org/u0-child") in {(e.parent, e.child) for e in agreeing}
    for e in agreeing:
        assert e.evidence["card_confirmed"]
        assert e.evidence["placement_probability"] >= CONFIRMED_FLOOR - 1e-4
    # a full edge in that tree no card confirms is weaker than one read without cards:
    # the cards' silence or contradiction counts against it (UNCONFIRMED_WITH_CARDS)
    unconfirmed = [e.evidence for e in result.edges
                   if e.evidence.get("placed_by") == "weights"
                   and not e.evidence["card_confirmed"] and not e.evidence["low_rank"]]
    assert unconfirmed  # the near-copy pair, read against its cards
    for ev in unconfirmed:
        assert ev["placement_probability"] == pytest.approx(UNCONFIRMED_WITH_CARDS, abs=1e-4)


def test_card_checks_count_only_the_claims_the_weights_can_check():
    from lineage.recovery.card_placement import card_checks
    from lineage.recovery.rooting import Tree

    chain = Tree(5, [(0, 1), (1, 2), (2, 3), (3, 4)])  # 0 - 1 - 2 - 3 - 4
    steps = np.abs(np.subtract.outer(np.arange(5), np.arange(5))).astype(float)
    full = np.zeros((5, 5), dtype=bool)
    adjacent = [(0, 1), (1, 2), (2, 3)]  # each names its tree neighbour: honest
    across = [(0, 2), (1, 3)]  # across one neighbour
    far = [(0, 4)]  # three steps away
    # distances that grow along the chain: every non-adjacent claim is ruled out
    # (4's neighbour 3 holds it at margin 1 - 1/4 over 0: P_w 0.95)
    assert card_checks([adjacent + across + far], [chain], [steps], [full]).reliability == \
        pytest.approx(4 / 8)
    # a scrambled family: all five within 2 % of one another (one place, children that
    # barely moved): only the tree neighbours are checkable, whatever the steps
    flat = 1.0 + 0.02 * steps / 4
    np.fill_diagonal(flat, 0.0)
    assert card_checks([adjacent + across * 5 + far], [chain], [flat], [full]).reliability == \
        pytest.approx(4 / 5)
    # a low-rank neighbour places the child exactly: a claim past it is a lie
    lowrank = full.copy()
    lowrank[3, 4] = lowrank[4, 3] = True
    assert card_checks([far], [chain], [flat], [lowrank]).reliability == pytest.approx(1 / 3)
    assert card_checks([[]], [chain], [steps], [full]).reliability == pytest.approx(0.5)



def _steps_in_few_directions(rng, like, dims):
    """A family whose training moves the weights within `dims` shared directions per
    matrix (trained models do: their steps are far from isotropic), so that independent
    steps meet at cosines spread by about 1/sqrt(dims) rather than ~0: the triangle test
    (card_placement.triangle_probability) is then unsure, as on trained zoos."""
    basis = [rng.standard_normal((dims, *m.shape)) / np.sqrt(dims) for m in like]

    def direction():
        return [np.tensordot(rng.standard_normal(dims), b, 1) for b in basis]

    def walk_(parent, step, lean=None, share=0.0):
        own = direction()
        return [m + step * m.std() * (share * (0.0 if lean is None else lean[k])
                                      + (1 - share) * own[k])
                for k, m in enumerate(parent)]

    return walk_, direction


def _unsure_family_of_two_near_copies(rng, dims=20):
    """_family_of_two_near_copies with every step inside a few shared directions."""
    grand = root_weights(rng)
    walk_, shared = _steps_in_few_directions(rng, grand, dims)
    x = walk_(grand, 0.3)
    uncles = [walk_(grand, 0.3) for _ in range(3)]
    direction = shared()
    near = [walk_(x, step, direction, share) for share, step in ((1.0, 0.01), (0.9, 0.02))]
    sibs = [walk_(x, 0.3, direction, 0.2) for _ in range(4)]
    models = [model("org/grand", grand), model("org/x", x),
              model("org/near-a", near[0]), model("org/near-b", near[1]),
              *[model(f"org/uncle-{k}", w) for k, w in enumerate(uncles)],
              *[model(f"org/s{k}", w) for k, w in enumerate(sibs)]]
    truth = {("org/grand", "org/x"), ("org/x", "org/near-a"), ("org/x", "org/near-b"),
             *{("org/grand", f"org/uncle-{k}") for k in range(3)},
             *{("org/x", f"org/s{k}") for k in range(4)}}
    return models, truth


def _two_groups(seed=0):
    """Group arch-b: a scrambled family whose steps the triangle test is unsure of, its
    only cards the siblings' (each names x, three steps away). Group arch: a clear
    family of another architecture whose four cards its weights confirm."""
    from dataclasses import replace

    b_models, b_truth = _unsure_family_of_two_near_copies(np.random.default_rng(seed))
    b_models = [replace(m, arch_signature="arch-b") for m in b_models]
    b_cards = [c for c in _cards(b_truth) if c.child.startswith("org/s")]
    rng = np.random.default_rng(5)
    grand = root_weights(rng)
    kids = [walk(rng, grand, 0.3) for _ in range(4)]
    a_models = [model("a/grand", grand), *[model(f"a/k{k}", w) for k, w in enumerate(kids)]]
    a_cards = [CardEdge("a/grand", f"a/k{k}", "finetune") for k in range(4)]
    return a_models, a_cards, b_models, b_cards


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_card_reliability_is_pooled_over_the_catalogs_groups(seed):
    # Alone, group b's rho stays 1/2: a card moves a sibling only where the triangle
    # itself leans to the card's reading (P_w < 1/2), at the posterior 1 - P_w.
    # Pooled, group a's confirmed cards say how far this catalog's cards can be
    # trusted: all four move, each at a higher posterior than alone.
    a_models, a_cards, b_models, b_cards = _two_groups(seed)
    moved = {("org/x", f"org/s{k}") for k in range(4)}
    assert not moved & _parents(recover_graph(b_models))  # the weights scramble them

    alone = recover_graph(b_models, b_cards)
    assert alone.direction["groups"]["arch-b"]["cards"]["reliability"] == 0.5
    both = recover_graph(a_models + b_models, a_cards + b_cards)
    assert moved <= _parents(both)
    alone_moves, pooled_moves = ({(e.parent, e.child): e.evidence["card_posterior"]
                                  for e in r.edges if e.evidence.get("placed_by") == "card"}
                                 for r in (alone, both))
    assert set(alone_moves) <= set(pooled_moves)
    assert all(pooled_moves[k] > p for k, p in alone_moves.items())
    cards_b = both.direction["groups"]["arch-b"]["cards"]
    assert (cards_b["checked_honest"], cards_b["checked_lies"]) == (0, 0)
    assert (cards_b["other_groups_honest"], cards_b["other_groups_lies"]) == (4, 0)
    assert cards_b["reliability"] == pytest.approx(5 / 6, abs=1e-4)
    cards_a = both.direction["groups"]["arch"]["cards"]
    assert cards_a["reliability"] == pytest.approx(5 / 6, abs=1e-4)


def test_a_group_above_the_dense_limit_keeps_its_own_card_reliability():
    from lineage.recovery.recover import RecoveryOptions

    a_models, a_cards, b_models, b_cards = _two_groups()
    # group b (11 models) goes through candidate pairs, group a (5) stays dense
    both = recover_graph(a_models + b_models, a_cards + b_cards,
                         options=RecoveryOptions(dense_limit=8))
    cards_b = both.direction["groups"]["arch-b"]["cards"]
    assert (cards_b["other_groups_honest"], cards_b["reliability"]) == (0, 0.5)
    cards_a = both.direction["groups"]["arch"]["cards"]
    assert cards_a["other_groups_honest"] == 0  # b's sparse tree checks none of its claims


def _chords(points):
    """Placement distances of explicit weight vectors: chords between unit vectors."""
    p = np.asarray(points, dtype=float)
    p = p / np.linalg.norm(p, axis=1, keepdims=True)
    return np.sqrt(((p[:, None, :] - p[None, :, :]) ** 2).sum(-1))


def test_the_triangle_weighs_a_chain_against_siblings():
    import math

    from lineage.recovery.card_placement import StepCosines, triangle_probability

    e1, e2, e3 = np.eye(3)

    def probability(q, h, c, steps):
        d = _chords([q, h, c])
        return triangle_probability(d[0, 1], d[0, 2], d[1, 2], steps)

    sharp = StepCosines(0.01)  # orthogonal steps, siblings sharing anything in [0, 1]
    # q -> h -> c, two orthogonal steps of 30 %: the chain reading fits exactly, on the
    # sphere the distances measure chords on (flat triangles would read it bent)
    assert probability(e1, e1 + 0.3 * e2, e1 + 0.3 * e2 + 0.3 * e3, sharp) > 0.97
    # h and c siblings under q, their steps at cosine 1/2: read as a chain, c's step
    # would turn back on h's, far outside a sharp spread
    sib = 0.5 * e2 + math.sqrt(0.75) * e3
    assert probability(e1, e1 + 0.3 * e2, e1 + 0.3 * sib, sharp) < 1e-6
    # both readings fit (h's step 0.46 of c's, the siblings at cosine 0.46, so the
    # chain's cosine is 0): with no sibling fit the odds are the chain's peak density
    # against 1; with one, against the siblings' density at 0.46
    sib = 0.46 * e2 + math.sqrt(1 - 0.46**2) * e3
    q, h, c = e1, e1 + 0.01 * 0.46 * e2, e1 + 0.01 * sib
    for sd in (0.1, 0.15, 0.3):
        p = probability(q, h, c, StepCosines(sd))
        assert p == pytest.approx(1.0 / (1.0 + sd * math.sqrt(2.0 * math.pi)), rel=1e-3)
    # siblings known to share 0.46 +- 0.05: the sibling reading wins; known to share
    # 0.05 +- 0.05 (nearly independent tasks), the chain does
    assert probability(q, h, c, StepCosines(0.15, 0.46, 0.05)) < 0.3
    assert probability(q, h, c, StepCosines(0.15, 0.05, 0.05)) > 0.99
    assert triangle_probability(0.0, 1.0, 1.0, sharp) is None


def test_step_cosines_are_read_from_the_placed_tree():
    from lineage.recovery.card_placement import step_cosines
    from lineage.recovery.rooting import Tree

    # grand -> x -> 12 siblings (steps at cosine ~0.5 with each other) -> one child
    # each; every consecutive pair of steps at a cosine drawn from N(0, 0.1); short
    # steps, so the sphere is flat at their scale
    rng = np.random.default_rng(0)
    dim, t, k = 4000, 1e-3, 12

    def unit(v):
        return v / np.linalg.norm(v)

    def lean(on, cos):  # a unit step at cosine `cos` with the unit vector `on`
        free = unit(rng.standard_normal(dim) - on * (on @ rng.standard_normal(dim)))
        free = unit(free - on * (on @ free))
        return cos * on + np.sqrt(1 - cos * cos) * free

    base = np.zeros(dim)
    base[0] = 1.0
    a = lean(base, 0.0)
    shared = unit(lean(a, 0.0) - base * (base @ lean(a, 0.0)))
    x = base + t * a
    points, edges = [base, x], [(0, 1)]
    for _ in range(k):
        own = unit(rng.standard_normal(dim))
        u = unit(rng.normal(0, 0.1) * a + np.sqrt(0.5) * shared + np.sqrt(0.5) * own)
        child = x + t * u
        points.append(child)
        edges.append((1, len(points) - 1))
        points.append(child + t * lean(u, rng.normal(0, 0.1)))
        edges.append((len(points) - 2, len(points) - 1))
    steps = step_cosines([Tree(len(points), edges)], [_chords(points)])
    assert steps.chain_sd == pytest.approx(0.1, abs=0.04)
    assert steps.sibling_mean == pytest.approx(0.5, abs=0.08)
    assert steps.sibling_sd < 0.2  # moments less the chain half: a noisy estimate
    # a chain of three steps gives two cosines, not enough to read a spread from
    assert step_cosines([Tree(3, [(0, 1), (1, 2)])], [_chords(points[:2] + points[2:3])]) \
        is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_lying_card_naming_the_childs_sibling_moves_nothing(seed):
    # root -> {c, s0, s1, s2}, steps inside a few shared directions, every card honest
    # but c's, which names its sibling s0: the weights' tree stands. Read only as
    # "s0 above root", the path c - root - s0 bent like a broken chain and the lie won
    # (seeds 0 and 1, a known lost class until the triangle weighed both orientations
    # of the path by the weights' root posterior: card_placement.orientation_above).
    rng = np.random.default_rng(seed)
    root = root_weights(rng)
    walk_, _ = _steps_in_few_directions(rng, root, 20)
    kids = {name: walk_(root, 0.3) for name in ("c", "s0", "s1", "s2")}
    models = [model("org/root", root), *[model(f"org/{k}", w) for k, w in kids.items()]]
    truth = {("org/root", f"org/{k}") for k in kids}
    assert _parents(recover_graph(models)) == truth
    result = recover_graph(models, _cards(truth, [("org/c", "org/s0")]))
    assert _parents(result) == truth


def test_the_triangle_reads_siblings_under_h_when_h_lies_above_the_card_parent():
    """A card naming c's sibling q, where the weights hang c from their common parent h:
    the path c - h - q bends at h like two siblings' steps, not like a chain through h.
    Read with q above h (the only reading before), the bend looked like a broken chain
    and the card's sibling reading won; with h above q the weights read siblings at h
    and the card a chain h -> q -> c, whose step out of q turns back on the one in."""
    import math

    from lineage.recovery.card_placement import StepCosines, triangle_probability

    e1, e2, e3 = np.eye(3)
    shared = 0.3  # the siblings' steps from h at cosine 0.3 (one task family)
    h = e1
    q = e1 + 0.3 * e2
    c = e1 + 0.3 * (shared * e2 + math.sqrt(1 - shared**2) * e3)
    d = _chords([q, h, c])
    flat, known = StepCosines(0.1), StepCosines(0.1, 0.3, 0.1)
    for steps, card_wins in ((flat, 0.1), (known, 0.5)):
        below = triangle_probability(d[0, 1], d[0, 2], d[1, 2], steps, above=0.0)
        above = triangle_probability(d[0, 1], d[0, 2], d[1, 2], steps, above=1.0)
        # q above h: a chain bent back at h; the card's siblings at q fit better (with
        # the siblings' cosines known, their angle at q, 0.59, is 3 sd out: less so)
        assert below < card_wins
        assert above > 0.999  # h above q: the siblings' bend, the weights win
        half = triangle_probability(d[0, 1], d[0, 2], d[1, 2], steps, above=0.5)
        assert below < half < above


def test_the_orientation_of_a_claim_is_read_from_the_root_posterior():
    from lineage.recovery.card_placement import orientation_above
    from lineage.recovery.rooting import Tree

    # 0 - 1 - 2 - 3, 1 - 4: the claim "3 is 0's parent" reads c = 0, h = 1, q = 3
    tree = Tree(5, [(0, 1), (1, 2), (2, 3), (1, 4)])
    post = np.array([0.1, 0.2, 0.3, 0.1, 0.3])  # roots: c's side 0.1, q's side 0.4
    # h above q: the root at h (0.2) or in h's other branch (node 4, 0.3); a root on
    # c's side allows neither reading and is left out
    assert orientation_above(tree, post, 3, 1, 0) == pytest.approx(0.5 / 0.9)
    assert orientation_above(tree, None, 3, 1, 0) == 0.0
    assert orientation_above(tree, np.array([1.0, 0, 0, 0, 0]), 3, 1, 0) == 0.0
