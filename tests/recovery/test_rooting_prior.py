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
