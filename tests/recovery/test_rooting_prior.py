"""The growth prior over roots (rooting.log_histories): rumor centrality, checked
against a brute-force count of growth orders, and its weight against evidence."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from lineage.recovery.rooting import Slot, Tree, log_histories, root_tree


def _count_orders(tree: Tree, root: int) -> int:
    """Orders of adding nodes one at a time, each next to one already added."""
    count = 0
    for perm in itertools.permutations([v for v in range(tree.n) if v != root]):
        seen = {root}
        ok = True
        for v in perm:
            if not any(u in seen for u in tree.adj[v]):
                ok = False
                break
            seen.add(v)
        count += ok
    return count


@pytest.mark.parametrize("edges", [
    [(0, 1), (0, 2), (0, 3)],  # a star
    [(0, 1), (1, 2), (2, 3)],  # a chain
    [(0, 1), (0, 2), (1, 3), (1, 4), (2, 5)],  # a broom
])
def test_log_histories_counts_the_growth_orders(edges):
    tree = Tree(max(max(e) for e in edges) + 1, edges)
    counts = np.array([_count_orders(tree, r) for r in range(tree.n)], dtype=float)
    got = log_histories(tree)
    np.testing.assert_allclose(got - got.max(), np.log(counts) - np.log(counts.max()))


def test_without_evidence_a_star_is_rooted_at_its_centre_with_half_the_mass():
    star = Tree(4, [(0, 1), (0, 2), (0, 3)])
    rooting = root_tree(star, [])
    assert rooting.root == 0
    assert math.isclose(rooting.posterior[0], 0.5)


def test_clear_votes_overturn_the_prior_on_a_chain():
    chain = Tree(3, [(0, 1), (1, 2)])
    # a card-like fixed claim: both edges point away from node 0
    claims = Slot("cards", [0, 1], np.array([1.0, 1.0]), fixed=True)
    assert root_tree(chain, []).root == 1  # the middle, by the prior alone
    assert root_tree(chain, [claims]).root == 0


@pytest.mark.parametrize("decay", [0.0, 0.05])
def test_the_projection_vote_points_from_parent_to_child(decay):
    """A child is its parent shrunk by one factor (weight decay) plus a step orthogonal
    to it, the step's relative size differing by matrix: read forwards the projection
    coefficient is the same in every matrix, backwards it is not."""
    from lineage.recovery.direction import projection_votes
    from lineage.recovery.features import group_features
    from tests.recovery.test_failure_classes import model

    rng = np.random.default_rng(2)
    parent = [0.05 * rng.standard_normal((32, 32)) for _ in range(6)]
    sizes = [0.02, 0.05, 0.1, 0.2, 0.3, 0.4]  # relative step per matrix
    child = [(1.0 - decay) * w + s * w.std() * rng.standard_normal(w.shape)
             for w, s in zip(parent, sizes, strict=True)]
    votes = projection_votes(group_features([model("o/p", parent), model("o/c", child)]))
    assert votes[0, 1] == 1.0 and votes[1, 0] == -1.0


def test_a_tie_between_roots_is_broken_by_content_not_by_name():
    from lineage.recovery.rooting import content_order, map_root

    hashes = np.array([["h-b0", "h-b1"], ["h-a0", "h-a1"], ["h-c0", "h-c1"]], dtype=object)
    order = content_order(hashes)
    assert sorted(order.tolist()) == [0, 1, 2]
    # the same weights listed in another order (other ids) get the same ranks
    assert content_order(hashes[[2, 0, 1]]).tolist() == order[[2, 0, 1]].tolist()
    tied = np.array([0.5, 0.5, 0.0])
    assert map_root(tied, order) == (0 if order[0] < order[1] else 1)
    assert map_root(tied) == 0  # without an order: the lowest index, as before
    # a real difference is never overridden by the order
    clear = np.array([0.4, 0.6, 0.0])
    assert map_root(clear, np.array([0, 1, 2])) == 1


def test_a_two_model_tree_reads_the_same_way_whatever_the_models_are_called():
    from lineage.recovery import recover_graph
    from tests.recovery.test_failure_classes import model, root_weights, walk

    rng = np.random.default_rng(11)
    base = root_weights(rng)
    tuned = walk(rng, base, 0.3)

    def parent_weights(names: tuple[str, str]) -> np.ndarray:
        result = recover_graph([model(names[0], base), model(names[1], tuned)])
        (edge,) = result.edges
        # no signal orients one edge whose signs are unknown: an honest coin toss
        assert edge.evidence["direction_probability"] == pytest.approx(0.5, abs=1e-6)
        return base if edge.parent == names[0] else tuned

    picks = [parent_weights(names) for names in
             [("org/a", "org/b"), ("org/b", "org/a"), ("org/root", "org/model-1"),
              ("org/model-1", "org/root")]]
    # which weights are read as the parent depends on the weights only
    assert all(p is picks[0] for p in picks)


def test_each_tree_edge_names_the_parent_it_was_weighed_against():
    from lineage.recovery import recover_graph
    from lineage.recovery.placement import runner_up_parents
    from tests.recovery.test_failure_classes import model, root_weights, walk

    # root -> {a, b, c}, a -> a1: a1's runner-up is the root (the nearest model outside
    # its subtree but a), the root has none
    rng = np.random.default_rng(4)
    root = root_weights(rng)
    kids = {k: walk(rng, root, 0.3) for k in "abc"}
    a1 = walk(rng, kids["a"], 0.3)
    models = [model("org/root", root), *[model(f"org/{k}", w) for k, w in kids.items()],
              model("org/a1", a1)]
    edges = {e.child: e for e in recover_graph(models).edges}
    assert edges["org/a1"].parent == "org/a"
    assert edges["org/a1"].evidence["runner_up"] == "org/root"
    assert {edges[f"org/{k}"].evidence["runner_up"] for k in "abc"} <= {
        "org/a", "org/b", "org/c", "org/a1"}
    # by rank for a low-rank edge, by distance otherwise; nothing for the root
    dist = np.array([[0, 1, 2, 3], [1, 0, 1.5, 2.5], [2, 1.5, 0, 1], [3, 2.5, 1, 0]], float)
    parents = np.array([-1, 0, 1, 2])
    assert runner_up_parents(dist, parents) == [None, None, 0, 1]
    ranks = np.full((4, 4), np.inf)
    ranks[2, 3] = ranks[3, 2] = 4.0
    ranks[0, 3] = ranks[3, 0] = 8.0
    assert runner_up_parents(dist, parents, ranks)[3] == 0
