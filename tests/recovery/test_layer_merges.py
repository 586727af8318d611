"""Merges with per-matrix coefficients (model stock, SLERP), found exactly per matrix on
constructed families: the formulas below are written from the methods' papers."""

from __future__ import annotations

import numpy as np
import pytest

from lineage.recovery import recover_graph
from tests.recovery.test_failure_classes import _family, model


def _slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Shoemake's spherical interpolation of two flattened tensors (per tensor)."""
    ua, ub = a / np.linalg.norm(a), b / np.linalg.norm(b)
    theta = np.arccos(np.clip(ua.ravel() @ ub.ravel(), -1.0, 1.0))
    s = np.sin(theta)
    return (np.sin((1 - t) * theta) / s) * a + (np.sin(t * theta) / s) * b


def _model_stock(base: np.ndarray, kids: list[np.ndarray]) -> np.ndarray:
    """Model Stock (Jang et al. 2024): t = k cos / (1 + (k - 1) cos) from the angle
    between the task vectors, then t * mean(kids) + (1 - t) * base, per tensor."""
    d0, d1 = (k - base for k in kids)
    cos = float(d0.ravel() @ d1.ravel() / (np.linalg.norm(d0) * np.linalg.norm(d1)))
    t = 2 * cos / (1 + cos)
    return t * np.mean(kids, axis=0) + (1 - t) * base


def _tool_model_stock(base: list[np.ndarray], tunes: list[list[np.ndarray]]
                      ) -> list[np.ndarray]:
    """lineage.merge's model stock (the tool a user runs), per matrix, in float32."""
    import torch

    from lineage.merge.model_stock import model_stock

    def as_t(w):
        return torch.from_numpy(w.astype(np.float32))

    return [model_stock(as_t(b), [as_t(t[q]) for t in tunes]).numpy().astype(np.float64)
            for q, b in enumerate(base)]


def _merges(models) -> set[tuple[str, str]]:
    return {(e.parent, e.child) for e in recover_graph(models).edges if e.relation == "merge"}


def _with(merge, grand, base, uncles, kids, name="org/merge"):
    return [model("org/grand", grand), model("org/base", base), model(name, merge),
            *[model(f"org/uncle-{k}", w) for k, w in enumerate(uncles)],
            *[model(f"org/ft-{k}", w) for k, w in enumerate(kids)]]


def test_a_slerp_merge_is_found_per_matrix():
    rng = np.random.default_rng(3)
    grand, base, uncles, kids = _family(rng)
    merge = [_slerp(a, b, 0.4) for a, b in zip(kids[0], kids[1], strict=True)]
    assert _merges(_with(merge, grand, base, uncles, kids)) == {
        ("org/ft-0", "org/merge"), ("org/ft-1", "org/merge")}


def test_a_model_stock_merge_names_its_fine_tunes_and_its_base():
    rng = np.random.default_rng(4)
    grand, base, uncles, kids = _family(rng)
    # Correlated task vectors (a shared component), as fine-tunes of one base have.
    shared = [0.2 * b.std() * rng.standard_normal(b.shape) for b in base]
    kids = [[k + s for k, s in zip(kid, shared, strict=True)] for kid in kids]
    merge = [_model_stock(b, [k0, k1]) for b, k0, k1 in zip(base, kids[0], kids[1],
                                                              strict=True)]
    result = recover_graph(_with(merge, grand, base, uncles, kids))
    merges = [e for e in result.edges if e.relation == "merge"]
    assert {(e.parent, e.child) for e in merges} == {("org/ft-0", "org/merge"),
                                                     ("org/ft-1", "org/merge")}
    assert {e.evidence["base"] for e in merges} == {"org/base"}


def test_a_fine_tune_is_not_a_per_matrix_merge():
    rng = np.random.default_rng(5)
    grand, base, uncles, kids = _family(rng)
    models = _with(kids[0], grand, base, uncles, kids[1:], name="org/ft-x")
    assert _merges(models) == set()


def test_a_model_stock_base_is_the_odd_weight_even_when_the_tree_chains_its_kids():
    """Placement put ft-1 under ft-0 (one branch of the base), so the base does not
    separate them in the tree; the fine-tunes' equal weights still name it."""
    from lineage.recovery.merges import MergeFit
    from lineage.recovery.orient import average_base, spanning_tree
    from tests.recovery.test_failure_classes import _component

    ids = ["org/base", "org/ft-0", "org/ft-1", "org/stock"]
    comp = _component(ids[:3], [(0, 1), (1, 2)], +1)
    comp.all_ids = ids
    tree = spanning_tree(comp.dist)
    stock = MergeFit(child=3, base=None, parents=[0, 1, 2], coefficients=[0.44, 0.28, 0.28],
                     residual=0.0, single_residual=1.0,
                     rule="exact per-matrix combination (model stock, SLERP, layer-wise)")
    read = average_base(stock, comp, tree)
    assert (read.base, read.parents) == (0, [1, 2])
    # the tree alone would name ft-0, which lies between the other two
    chained = MergeFit(child=3, base=None, parents=[0, 1, 2],
                       coefficients=[0.44, 0.31, 0.25], residual=0.0, single_residual=1.0,
                       rule=stock.rule)
    assert average_base(chained, comp, tree).base == 1


@pytest.mark.parametrize("apart", [True, False])
def test_model_stock_is_found_by_its_recipe_whatever_the_sign_of_its_ratio(apart):
    # Task vectors pointing apart (cos < 0) give t < 0: the merge steps away from the
    # fine-tunes, its weights leave (0, 1], and the mirror (the base as an average of
    # the merge and the fine-tunes, every weight inside (0, 1]) would call the base a
    # merge of its own children. The angle formula holds for the true reading only.
    import torch

    from lineage.merge.model_stock import model_stock
    from tests.recovery.test_failure_classes import model, root_weights, walk

    rng = np.random.default_rng(11)
    grand = root_weights(rng)
    base = walk(rng, grand, 0.3)
    uncles = [walk(rng, grand, 0.3) for _ in range(3)]
    f1 = walk(rng, base, 0.3)
    sign = -0.15 if apart else 0.5
    f2 = [b + sign * (a - b) + 0.3 * b.std() * rng.standard_normal(b.shape)
          for a, b in zip(f1, base, strict=True)]
    merged = [model_stock(torch.from_numpy(b), [torch.from_numpy(x), torch.from_numpy(y)]).numpy()
              for b, x, y in zip(base, f1, f2, strict=True)]
    models = [model("org/grand", grand), model("org/base", base), model("org/merge", merged),
              model("org/f1", f1), model("org/f2", f2),
              *[model(f"org/uncle-{k}", w) for k, w in enumerate(uncles)]]
    result = recover_graph(models)
    merges = [e for e in result.edges if e.relation == "merge"]
    assert {(e.parent, e.child) for e in merges} == {("org/f1", "org/merge"),
                                                     ("org/f2", "org/merge")}
    assert {e.evidence["base"] for e in merges} == {"org/base"}
    assert all(e.evidence["rule"].startswith("model stock") for e in merges)
    coefficient = merges[0].evidence["coefficients"]["org/f1"]
    assert (coefficient < 0) == apart


def _stock_of_a_barely_moved_tune(seed: int, with_slerp: bool):
    """Model stock (lineage.merge's, as a user runs it) of three fine-tunes, one of which
    barely moved: in every tensor |F_tiny - B| |F_k - B| is below the recipe's 1e-6
    clamp, so the recipe's cosines involving it are shrunk toward 0. Optionally a SLERP
    of two of the fine-tunes too, which spans their plane per matrix and can stand in
    for one of them in a per-matrix fit (a merge of the same family, as on the Hub)."""
    from tests.recovery.test_failure_classes import model, root_weights, walk

    rng = np.random.default_rng(seed)
    grand = root_weights(rng)
    base = walk(rng, grand, 0.3)
    uncles = [walk(rng, grand, 0.3) for _ in range(2)]
    shared = walk(rng, base, 0.3)  # fine-tunes of one base share a direction (cos ~ 1/2)
    f1, f2 = walk(rng, shared, 0.3), walk(rng, shared, 0.3)
    tiny = walk(rng, base, 5e-6)
    stock = _tool_model_stock(base, [f1, f2, tiny])
    floor = min(np.linalg.norm(t - b) * np.linalg.norm(f - b)
                for t, f, b in zip(tiny, f1, base, strict=True))
    assert floor < 1e-6 < min(np.linalg.norm(f - b) ** 2 for f, b in zip(f1, base, strict=True))
    models = [model("org/grand", grand), model("org/base", base), model("org/stock", stock),
              model("org/f1", f1), model("org/f2", f2), model("org/tiny", tiny),
              *[model(f"org/uncle-{k}", w) for k, w in enumerate(uncles)]]
    if with_slerp:
        models.append(model("org/slerp", [_slerp(a, b, 0.7) for a, b in
                                          zip(f2, tiny, strict=True)]))
    return models


@pytest.mark.parametrize("with_slerp", [False, True])
def test_model_stock_with_a_barely_moved_fine_tune_follows_the_recipe_clamp(with_slerp):
    result = recover_graph(_stock_of_a_barely_moved_tune(21, with_slerp))
    merges = [e for e in result.edges if e.relation == "merge" and e.child == "org/stock"]
    assert {e.parent for e in merges} == {"org/f1", "org/f2", "org/tiny"}
    assert {e.evidence["base"] for e in merges} == {"org/base"}
    assert all(e.evidence["rule"].startswith("model stock") for e in merges)


def test_a_model_stock_whose_merge_was_merged_again_is_still_found():
    # merge-3 = B + l (merge-1 - B) + l (merge-2 - B) also reads merge-2 from merge-3,
    # merge-1 and B, with weights no tool uses (1 / l and -1). That reading of merge-3's
    # dependency loses to the plausible one, and must not spare merge-2 the per-matrix
    # search that finds it as model stock of its own parents.
    from tests.recovery.test_failure_classes import model, root_weights, walk

    rng = np.random.default_rng(31)
    root = root_weights(rng)
    shared = walk(rng, root, 0.3)
    tunes = [walk(rng, shared, 0.3) for _ in range(3)]
    linear = [np.mean(ws, axis=0) for ws in zip(*tunes, strict=True)]
    stock = _tool_model_stock(root, tunes[:2])
    again = [b + 0.8445 * (m1 - b) + 0.8445 * (m2 - b)
             for b, m1, m2 in zip(root, linear, stock, strict=True)]
    models = [model("org/root", root), *[model(f"org/ft-{k}", w) for k, w in enumerate(tunes)],
              model("org/merge-1", linear), model("org/merge-2", stock),
              model("org/merge-3", again),
              *[model(f"org/other-{k}", walk(rng, root, 0.3)) for k in range(2)]]
    merges = [e for e in recover_graph(models).edges if e.relation == "merge"]
    stock_edges = [e for e in merges if e.child == "org/merge-2"]
    assert {e.parent for e in stock_edges} == {"org/ft-0", "org/ft-1"}
    assert {e.evidence["base"] for e in stock_edges} == {"org/root"}
    assert all(e.evidence["rule"].startswith("model stock") for e in stock_edges)
    assert {e.parent for e in merges if e.child == "org/merge-3"} == {"org/merge-1",
                                                                      "org/merge-2"}
    assert "org/root" not in {e.child for e in merges}


@pytest.mark.parametrize("seed", [41, 42])
def test_model_stock_sitting_on_its_base_is_not_read_from_the_base(seed):
    # Fine-tunes whose task vectors are near-orthogonal give t ~ 0 (of either sign per
    # matrix): the merge sits on its base, its far fine-tunes are not among its likely
    # parents, and the search meets the dependency from the base, as the "merge" of the
    # merge and the fine-tunes. The recipe reading must still be found and kept.
    from tests.recovery.test_failure_classes import model, root_weights, walk

    rng = np.random.default_rng(seed)
    root = root_weights(rng)
    base = walk(rng, root, 0.3)
    far = [walk(rng, base, 0.6) for _ in range(2)]
    near = [walk(rng, base, 0.15) for _ in range(6)]  # nearer the merge than its inputs
    stock = _tool_model_stock(base, far)
    models = [model("org/root", root), model("org/base", base), model("org/stock", stock),
              *[model(f"org/far-{k}", w) for k, w in enumerate(far)],
              *[model(f"org/near-{k}", w) for k, w in enumerate(near)]]
    merges = [e for e in recover_graph(models).edges if e.relation == "merge"]
    assert {(e.parent, e.child) for e in merges} == {("org/far-0", "org/stock"),
                                                     ("org/far-1", "org/stock")}
    assert {e.evidence["base"] for e in merges} == {"org/base"}


@pytest.mark.parametrize("seed", [51, 52])
def test_matrices_a_lora_left_untouched_say_nothing_about_a_per_matrix_fit(seed):
    # Two LoRA children change one matrix each (rank 1), and their linear average is
    # merged. Read from the merge and one LoRA child, the other child is 2 M - A in
    # the matrices they changed; in the matrices all three left at the root any weights
    # summing to one fit, and averaging those in made the weights look like a merge's.
    from tests.recovery.test_failure_classes import model, root_weights, walk

    rng = np.random.default_rng(seed)
    root = root_weights(rng)

    def lora(q: int, size: float) -> list[np.ndarray]:
        out = [m.copy() for m in root]
        u, v = rng.standard_normal(root[q].shape[0]), rng.standard_normal(root[q].shape[1])
        out[q] = out[q] + size * root[q].std() * np.outer(u, v) / np.sqrt(u.size)
        return out

    a, b = lora(0, 0.3), lora(1, 0.3)
    merged = [(x + y) / 2 for x, y in zip(a, b, strict=True)]
    models = [model("org/root", root), model("org/lora-a", a), model("org/lora-b", b),
              model("org/merge", merged),
              *[model(f"org/ft-{k}", walk(rng, root, 0.3)) for k in range(3)]]
    merges = [e for e in recover_graph(models).edges if e.relation == "merge"]
    assert {(e.parent, e.child) for e in merges} == {("org/lora-a", "org/merge"),
                                                     ("org/lora-b", "org/merge")}


@pytest.mark.parametrize("seed", [61, 62])
def test_model_stock_of_lora_children_sitting_on_their_base(seed):
    # The fine-tunes are LoRA children (each changes two matrices): the merge equals
    # the base bit for bit in the matrix neither touched, which says nothing about the
    # weights and is left out of the per-matrix fits; the recipe still names them.
    from tests.recovery.test_failure_classes import model, root_weights, walk

    rng = np.random.default_rng(seed)
    root = root_weights(rng)
    base = walk(rng, root, 0.3)
    side = base[1].shape
    shared = (rng.standard_normal((side[0], 4)), rng.standard_normal((4, side[1])))

    def lora(matrices: tuple[int, ...]) -> list[np.ndarray]:
        """A rank-8 change of `matrices`; matrix 1's shares a rank-4 part (fine-tunes of
        one base lean the same way there: t well away from 0)."""
        out = [m.copy() for m in base]
        for q in matrices:
            u = rng.standard_normal((base[q].shape[0], 4))
            v = rng.standard_normal((4, base[q].shape[1]))
            step = u @ v + (shared[0] @ shared[1] if q == 1 else 0.0)
            out[q] = out[q] + 0.6 * base[q].std() * step / 4.0
        return out

    tunes = [lora((0, 1)), lora((1, 2))]
    stock = _tool_model_stock(base, tunes)
    models = [model("org/root", root), model("org/base", base), model("org/stock", stock),
              *[model(f"org/lora-{k}", w) for k, w in enumerate(tunes)],
              *[model(f"org/near-{k}", walk(rng, base, 0.15)) for k in range(6)]]
    merges = [e for e in recover_graph(models).edges if e.relation == "merge"]
    assert {(e.parent, e.child) for e in merges} == {("org/lora-0", "org/stock"),
                                                     ("org/lora-1", "org/stock")}
    assert {e.evidence["base"] for e in merges} == {"org/base"}


def test_the_recipe_reading_comes_from_an_exact_dependency_no_fit_kept():
    # Read from another member (here: nothing was kept at all), an exact per-matrix
    # dependency still yields the recipe's reading with the merge as the child.
    from lineage.recovery.features import group_features
    from lineage.recovery.layer_merges import _recipe_readings, matrix_grams
    from lineage.recovery.merges import Rounding
    from lineage.recovery.model_stock import MODEL_STOCK_RULE
    from tests.recovery.test_failure_classes import model, root_weights, walk

    rng = np.random.default_rng(7)
    base = root_weights(rng)
    shared = walk(rng, base, 0.3)
    tunes = [walk(rng, shared, 0.3) for _ in range(2)]
    models = [model("org/base", base), model("org/stock", _tool_model_stock(base, tunes)),
              *[model(f"org/ft-{k}", w) for k, w in enumerate(tunes)]]
    features = group_features(models)
    ids = features.ids
    rounding = Rounding.of(features, [m.dtype for m in models])
    members = frozenset(range(len(ids)))
    [reading] = _recipe_readings(matrix_grams(features), features, rounding, [], [members])
    assert reading.rule == MODEL_STOCK_RULE
    assert (ids[reading.child], ids[reading.base]) == ("org/stock", "org/base")
    assert sorted(ids[p] for p in reading.parents) == ["org/ft-0", "org/ft-1"]
    assert _recipe_readings(matrix_grams(features), features, rounding, [], []) == []


@pytest.mark.parametrize("seed", [51, 52, 53])
def test_model_stock_beside_task_arithmetic_of_the_same_tunes_is_not_read_from_the_base(seed):
    # M1 = model stock of F1, F2 over B sits, per matrix, on the line from B to the
    # tunes' mean; M2 = B + l (F1 - B) + l (F2 - B) lies on that line too. The
    # per-matrix search then explains M1 by B and M2 (no recipe checked), and the same
    # dependency read B as the "merge" of M1 and M2 at 0.98, which then displaced M2's
    # own exact reading (held-out 1018/6). Expanded into the tunes M2 averages, M1
    # follows model stock's recipe, and that reading is taken first.
    from tests.recovery.test_failure_classes import model, root_weights, walk

    rng = np.random.default_rng(seed)
    grand = root_weights(rng)
    root = walk(rng, grand, 0.3)
    tunes = [walk(rng, root, 0.3) for _ in range(2)]
    stock = _tool_model_stock(root, tunes)
    arithmetic = [b + 0.78 * (x - b) + 0.78 * (y - b)
                  for b, x, y in zip(root, *tunes, strict=True)]
    models = [model("org/grand", grand), model("org/root", root),
              *[model(f"org/ft-{k}", w) for k, w in enumerate(tunes)],
              model("org/stock", stock), model("org/arith", arithmetic),
              *[model(f"org/uncle-{k}", walk(rng, grand, 0.3)) for k in range(3)]]
    merges = [e for e in recover_graph(models).edges if e.relation == "merge"]
    assert {(e.parent, e.child) for e in merges} == {
        ("org/ft-0", "org/stock"), ("org/ft-1", "org/stock"),
        ("org/ft-0", "org/arith"), ("org/ft-1", "org/arith")}
    assert {e.evidence["base"] for e in merges} == {"org/root"}



def _tool_slerp(a: list[np.ndarray], b: list[np.ndarray], t: float) -> list[np.ndarray]:
    """lineage.merge's SLERP, per matrix, in float32 (linear where the two are equal)."""
    import torch

    from lineage.merge.slerp import slerp_pair

    def as_t(w):
        return torch.from_numpy(w.astype(np.float32))

    return [slerp_pair(t, as_t(x), as_t(y)).numpy().astype(np.float64)
            for x, y in zip(a, b, strict=True)]


@pytest.mark.parametrize("seed, size", [(2, 0.2), (25, 0.1), (32, 0.2)])
def test_model_stock_beside_a_slerp_of_the_same_tunes_is_not_read_from_the_base(seed, size):
    # M1 = model stock of two LoRA-like children F1, F2 over B (steps of unequal
    # length, t near 0: M1 sits on B); M2 = SLERP of F1 and F2, matrix by matrix a
    # combination of the two. B is then exact over M2 and F1 per matrix and was read
    # as their merge, with M1 a child (held-out 1025/7: a root read at 0.98 as the
    # merge of its own two merges). With the SLERP expanded into F1 and F2, M1 follows
    # model stock's recipe and B stays the base.
    from tests.recovery.test_failure_classes import model, root_weights, walk

    rng = np.random.default_rng(seed)
    grand = root_weights(rng)
    root = walk(rng, grand, 0.3)

    def low_rank_child(step: float) -> list[np.ndarray]:
        out = [m.copy() for m in root]
        for q in (0, 1):  # two of the four matrices, at rank 4
            delta = rng.standard_normal((root[q].shape[0], 4)) @ rng.standard_normal(
                (4, root[q].shape[1]))
            out[q] = out[q] + step * np.linalg.norm(root[q]) * delta / np.linalg.norm(delta)
        return out

    tunes = [low_rank_child(0.3), low_rank_child(size)]
    models = [model("org/grand", grand), model("org/root", root),
              *[model(f"org/ft-{k}", w) for k, w in enumerate(tunes)],
              model("org/stock", _tool_model_stock(root, tunes)),
              model("org/slerp", _tool_slerp(*tunes, 0.7)),
              *[model(f"org/uncle-{k}", walk(rng, grand, 0.3)) for k in range(3)]]
    merges = [e for e in recover_graph(models).edges if e.relation == "merge"]
    assert {(e.parent, e.child) for e in merges} == {
        ("org/ft-0", "org/stock"), ("org/ft-1", "org/stock"),
        ("org/ft-0", "org/slerp"), ("org/ft-1", "org/slerp")}
    assert {e.evidence["base"] for e in merges if e.child == "org/stock"} == {"org/root"}


@pytest.mark.parametrize("seed", [2, 4])
def test_a_hub_is_not_the_per_matrix_merge_of_its_childrens_merges(seed):
    # Under a hub H with two LoRA-like children: task arithmetic A and model stock S of
    # the two over H, and a SLERP of A and S. Per matrix H, A and S lie on one line (the
    # one from H to the children's mean), so H is exact over S and the SLERP with mean
    # weights in (0, 1] but single matrices outside [0, 1] (held-out 1025/1: the hub read
    # at 0.98 as the merge of the model stock and the SLERP). No tool weights a matrix
    # outside [0, 1] with a zero origin; the hub stays a tree node. (Merges of merges on
    # one line stay hard: only what these seeds read right is asserted.)
    from tests.recovery.test_failure_classes import model, root_weights, walk

    rng = np.random.default_rng(seed)
    grand = root_weights(rng)
    hub = walk(rng, grand, 0.3)

    def low_rank_child(step: float) -> list[np.ndarray]:
        out = [m.copy() for m in hub]
        for q in (0, 1):
            delta = rng.standard_normal((hub[q].shape[0], 4)) @ rng.standard_normal(
                (4, hub[q].shape[1]))
            out[q] = out[q] + step * np.linalg.norm(hub[q]) * delta / np.linalg.norm(delta)
        return out

    tunes = [low_rank_child(0.3), low_rank_child([0.1, 0.2, 0.3][seed % 3])]
    arith = [b + 0.83 * (x - b) + 0.83 * (y - b) for b, x, y in zip(hub, *tunes, strict=True)]
    stock = _tool_model_stock(hub, tunes)
    models = [model("org/grand", grand), model("org/hub", hub),
              *[model(f"org/ft-{k}", w) for k, w in enumerate(tunes)],
              model("org/arith", arith), model("org/stock", stock),
              model("org/slerp", _tool_slerp(arith, stock, 0.56)),
              *[model(f"org/uncle-{k}", walk(rng, grand, 0.3)) for k in range(3)]]
    merges = {(e.parent, e.child) for e in recover_graph(models).edges
              if e.relation == "merge"}
    assert "org/hub" not in {c for _, c in merges}
    assert {p for p, c in merges if c == "org/arith"} == {"org/ft-0", "org/ft-1"}


@pytest.mark.parametrize("seed, t", [(0, 0.6), (1, 0.7), (2, 0.8)])
def test_a_slerp_is_read_by_its_sine_rule_not_through_a_linear_merge_of_its_parents(seed, t):
    # S = SLERP(F0, F1) at t > 1/2 and L = (F0 + F1) / 2: S is also exactly
    # 2 s0 L + (s1 - s0) F1, every weight in [0, 1], and the search kept that reading
    # (held-out 1023/2, 1023/4). Only S's weights over F0 and F1 meet the sine rule
    # s0^2 + s1^2 + 2 s0 s1 cos = 1 in every matrix.
    from lineage.recovery.slerp_recipe import SLERP_RULE
    from tests.recovery.test_failure_classes import model, root_weights, walk

    rng = np.random.default_rng(seed)
    grand = root_weights(rng)
    root = walk(rng, grand, 0.3)
    tunes = [walk(rng, root, 0.3) for _ in range(2)]
    models = [model("org/grand", grand), model("org/root", root),
              *[model(f"org/ft-{k}", w) for k, w in enumerate(tunes)],
              model("org/slerp", _tool_slerp(*tunes, t)),
              model("org/linear", [(x + y) / 2 for x, y in zip(*tunes, strict=True)]),
              *[model(f"org/uncle-{k}", walk(rng, grand, 0.3)) for k in range(3)]]
    merges = [e for e in recover_graph(models).edges if e.relation == "merge"]
    assert {(e.parent, e.child) for e in merges} == {
        ("org/ft-0", "org/slerp"), ("org/ft-1", "org/slerp"),
        ("org/ft-0", "org/linear"), ("org/ft-1", "org/linear")}
    assert {e.evidence["rule"] for e in merges if e.child == "org/slerp"} == {SLERP_RULE}
