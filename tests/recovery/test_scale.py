"""Recovery at Hub scale: the sparse group stage (candidate pairs from a nearest-
neighbour index) reads the same as the dense one, finds casts and re-uploads through
candidates, and a component above the dense limit never holds an n x n array."""

from __future__ import annotations

import tracemalloc
from dataclasses import replace
from functools import partial

import numpy as np
import pytest
from scipy import sparse

from lineage.recovery import ModelInput, RecoveryOptions, TensorStat, recover_graph
from lineage.recovery.candidates import (
    CountSketch,
    candidate_pairs,
    pair_centred_cosines,
    pair_placement_distance,
    pair_relative_distance,
)
from lineage.recovery.distance import (
    centred_cosines,
    matrix_sq_dists,
    placement_distance,
    relative_distance,
)
from lineage.recovery.features import group_features
from lineage.recovery.large_component import prepare_large_component
from lineage.recovery.layer_merges import (
    _likely_parents,
    fit_layerwise,
    layerwise_merges,
    matrix_grams,
    no_layerwise_fit,
)
from lineage.recovery.merges import Rounding, candidate_merges, gram, no_exact_fit
from lineage.recovery.pool import keep_freed_memory, map_tasks
from lineage.recovery.recover import recover_parts
from lineage.recovery.rooting import _log_j_midpoint, log_j
from lineage.recovery.sparse_group import as_float64, split_sparse
from lineage.recovery.synthetic import synthetic_edges, synthetic_group, synthetic_zoo
from tests.recovery.test_failure_classes import _family
from tests.recovery.test_layer_merges import _slerp, _with


def _triples(result) -> list[tuple[str, str, str]]:
    return sorted((e.parent, e.child, e.relation) for e in result.edges)


def _cast(model: ModelInput, new_id: str, dtype: str, np_dtype: type) -> ModelInput:
    """The model stored in a less precise dtype: every value rounded, moments
    recomputed from the rounded values, new content hashes."""
    tensors = {}
    for name, t in model.tensors.items():
        values = t.sketch.astype(np_dtype).astype(np.float64)
        mean, std = float(values.mean()), float(values.std())
        kurt = float(((values - mean) ** 4).mean() / std**4 - 3.0)
        tensors[name] = TensorStat(t.shape, dtype, f"{new_id}/{name}", mean, std, kurt,
                                   values.astype(np.float32))
    return replace(model, model_id=new_id, dtype=dtype, tensors=tensors)


@pytest.fixture(scope="module")
def group_with_copies() -> tuple[list[ModelInput], list[tuple[str, str]]]:
    """Three hundred models in 15 trees, plus an F16 cast and a byte-identical
    re-upload of one of them."""
    zoo = synthetic_zoo(15, 20, seed=7)
    source = zoo.models[25]
    cast = _cast(source, "casts/m25-f16", "F16", np.float16)
    copy = replace(zoo.models[40], model_id="reuploads/m40")
    return [*zoo.models, cast, copy], zoo.edges


def test_sparse_group_stage_gives_the_dense_graph(group_with_copies) -> None:
    models, truth = group_with_copies
    dense = recover_graph(models)
    forced = recover_graph(models, options=RecoveryOptions(dense_limit=50))
    info = forced.direction["groups"]["arch-0"]
    assert "stage" in info and "stage" not in dense.direction["groups"]["arch-0"]
    assert info["stage"]["candidate_pairs"] < len(models) * 10  # O(n k), not n^2 / 2
    assert _triples(forced) == _triples(dense)
    assert forced.trees == dense.trees
    by_pair = {(e.parent, e.child): e for e in dense.edges}
    for e in forced.edges:
        twin = by_pair[(e.parent, e.child)]
        assert e.confidence == pytest.approx(twin.confidence, abs=1e-9)
    found = {(e.parent, e.child) for e in forced.edges}
    assert sum(e in found for e in truth) / len(truth) >= 0.9


def test_cast_and_reupload_found_through_candidates(group_with_copies) -> None:
    models, _ = group_with_copies
    forced = recover_graph(models, options=RecoveryOptions(dense_limit=50))
    relation = {(e.parent, e.child): e.relation for e in forced.edges}
    assert relation[("arch-0-t1/m5", "casts/m25-f16")] == "quantized"
    assert relation[("arch-0-t2/m0", "reuploads/m40")] == "reupload"
    # the cast is a leaf of its source only: no tree edge reaches it
    assert sum(e.child == "casts/m25-f16" for e in forced.edges) == 1


def test_pair_numbers_equal_the_dense_matrices(group_with_copies) -> None:
    models, _ = group_with_copies
    features = group_features(models)
    pairs = candidate_pairs(features, 8)
    assert pairs.size > 0 and (pairs.i < pairs.j).all()
    cos = centred_cosines(features)
    rel = relative_distance(features)
    placement = placement_distance(features)
    assert np.allclose(pair_centred_cosines(features, pairs), cos[pairs.i, pairs.j],
                       atol=1e-9)
    assert np.allclose(pair_relative_distance(features, pairs), rel[pairs.i, pairs.j],
                       rtol=1e-7, atol=1e-6)  # the dense Gram trick cancels at casts
    assert np.allclose(pair_placement_distance(features, pairs), placement[pairs.i, pairs.j],
                       rtol=1e-7, atol=1e-6)


def test_large_component_stays_sparse_and_places_the_tree() -> None:
    """One tree of 4000 models, above a component limit of 200: a sparse spanning tree
    over candidate pairs, O(n k) memory (one n x n float64 array is 128 MB; the sketches
    and pairs themselves take about a third of that)."""
    n = 4000
    models = synthetic_group(n, n, side=8, step=0.3, seed=11)
    truth = synthetic_edges(n, n)
    options = RecoveryOptions(dense_limit=100, component_limit=200, neighbours=8)
    tracemalloc.start()
    result = recover_graph(models, options=options)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < n * n * 8 / 2, f"peak {peak / 1e6:.1f} MB"
    assert any("larger than the dense limit" in note for note in result.notes)
    assert len(result.trees) == 1
    undirected = {frozenset((e.parent, e.child)) for e in result.edges}
    assert len(result.edges) == n - 1
    assert sum(frozenset(e) in undirected for e in truth) / len(truth) >= 0.95


def test_large_component_arrays_are_candidate_pairs_only() -> None:
    models = synthetic_group(600, 600, side=8, seed=5)
    features = group_features(models, sketch_dtype=np.float32)
    split = split_sparse(models, features, {}, {}, neighbours=8)
    assert len(split.components) == 1
    rows, pairs = split.components[0], split.pairs[0]
    comp, note = prepare_large_component(as_float64(features.take(rows)), pairs)
    for matrix in (comp.dist, comp.raw_dist, comp.factors, *comp.votes.values()):
        assert sparse.issparse(matrix) and matrix.nnz == 2 * pairs.size <= 2 * 8 * 600
    dense = placement_distance(as_float64(features.take(rows)))
    assert np.allclose(comp.raw_dist[pairs.i, pairs.j].A1, dense[pairs.i, pairs.j])
    assert "merges not searched" in note


def test_workers_and_parts_give_the_same_graph() -> None:
    a = synthetic_group(200, 20, arch="arch-a", seed=1)
    b = synthetic_group(200, 20, arch="arch-b", seed=2)
    serial = recover_graph(a + b)
    pooled = recover_graph(a + b, options=RecoveryOptions(workers=2))
    assert _triples(pooled) == _triples(serial)
    parts = [partial(synthetic_group, 200, 20, arch="arch-a", seed=1),
             partial(synthetic_group, 200, 20, arch="arch-b", seed=2)]
    lazy, done = recover_parts(parts, options=RecoveryOptions(workers=2))
    assert _triples(lazy) == _triples(serial)
    assert lazy.trees == serial.trees
    assert [len(p.ids) for p in done] == [200, 200]


def test_merge_screen_agrees_with_the_fits() -> None:
    """No exact fit among independent fine-tunes; a real average is not screened out."""
    zoo = synthetic_zoo(1, 12, seed=3)
    features = group_features(zoo.models)
    rounding = Rounding.of(features, ["F32"] * features.n)
    assert no_exact_fit(gram(features), rounding)
    mats = {n: (zoo.models[4].tensors[n].sketch + zoo.models[7].tensors[n].sketch) / 2
            for n in zoo.models[0].tensors}
    avg = replace(zoo.models[0], model_id="merged", tensors={
        n: replace(t, content_hash=f"merged/{n}", sketch=mats[n].astype(np.float32),
                   mean=float(mats[n].mean()), std=float(mats[n].std()))
        for n, t in zoo.models[0].tensors.items()})
    features = group_features([*zoo.models, avg])
    rounding = Rounding.of(features, ["F32"] * features.n)
    assert not no_exact_fit(gram(features), rounding)
    assert candidate_merges(features, ["F32"] * features.n)


@pytest.mark.parametrize("width", [1024, 1000, 100])
def test_count_sketch_is_the_linear_map_it_says(width) -> None:
    """apply() equals multiplying by the explicit sparse matrix (one +-1 per row, bucket =
    position mod D), buckets are filled evenly, and squared norms of unit vectors are
    kept to the JL spread."""
    rng = np.random.default_rng(5)
    sketch = CountSketch(width, 256, rng)
    explicit = np.zeros((width, 256), dtype=np.float32)
    for position, coordinate in enumerate(sketch.order):
        explicit[coordinate, position % 256] = sketch.sign[position]
    rows = rng.standard_normal((64, width)).astype(np.float32)
    assert np.allclose(sketch.apply(rows), rows @ explicit, atol=1e-5)
    per_bucket = np.abs(explicit).sum(axis=0)
    assert per_bucket.max() - per_bucket.min() <= 1
    unit = rows.astype(np.float64) / np.linalg.norm(rows, axis=1, keepdims=True)
    kept = (sketch.apply(unit.astype(np.float32)) ** 2).sum(axis=1)
    assert np.abs(kept - 1.0).max() < 4 * np.sqrt(2 / 256) if width > 256 else \
        np.allclose(kept, 1.0, atol=1e-5)


def test_pool_workers_keep_freed_memory() -> None:
    """The worker initializer's mallopt calls are accepted (glibc returns 0 on a rejected
    value), in the spawned workers themselves."""
    assert map_tasks(keep_freed_memory, [(), ()], workers=2) == [True, True]


def _every_layerwise_fit(features, rounding) -> list:
    """What layerwise_merges tries, without its screen: every child on every base."""
    grams = matrix_grams(features)
    whole = np.sum(grams, axis=0)
    dist = placement_distance(features, matrix_sq_dists(features))
    fits = []
    for m in range(features.n):
        near = [int(k) for k in np.argsort(dist[m], kind="stable") if k != m]
        for base in [None, *near[:3]]:
            fits.append(fit_layerwise(grams, features, rounding, m, base,
                                      _likely_parents(whole, m, base, near)))
    return [f for f in fits if f is not None]


def test_layerwise_screen_agrees_with_the_fits() -> None:
    """Independent fine-tunes: the screen says no per-matrix fit can be exact, and none
    is; a SLERP merge (per-matrix coefficients) is not screened out and is found."""
    zoo = synthetic_zoo(1, 12, seed=3)
    features = group_features(zoo.models)
    rounding = Rounding.of(features, ["F32"] * features.n)
    assert no_layerwise_fit(matrix_grams(features), features, rounding)
    assert _every_layerwise_fit(features, rounding) == []
    rng = np.random.default_rng(3)
    grand, base, uncles, kids = _family(rng)
    merge = [_slerp(a, b, 0.4) for a, b in zip(kids[0], kids[1], strict=True)]
    features = group_features(_with(merge, grand, base, uncles, kids))
    rounding = Rounding.of(features, ["F32"] * features.n)
    assert not no_layerwise_fit(matrix_grams(features), features, rounding)
    dist = placement_distance(features, matrix_sq_dists(features))
    found = layerwise_merges(features, rounding, dist, set())
    assert {features.ids[f.child] for f in found} >= {"org/merge"}


def test_log_j_closed_form_matches_the_integral() -> None:
    k = np.array([0.0, 0.5, 3.0, 7.25, 10.0, 19.5, 20.0])
    assert np.allclose(log_j(k, 20.0), _log_j_midpoint(k, 20.0), atol=1e-4)
    big = log_j(np.array([0.0, 1e5]), 1e5)  # tails beyond 1e-300 and a sharp peak
    assert np.isfinite(big).all()
    assert big[1] == pytest.approx(np.log(2.0 / (1e5 + 1)), rel=1e-6)


def test_groups_as_ray_tasks_give_the_same_graph(ray_cluster) -> None:
    from jobs.recover import ray_map_groups

    models = synthetic_group(100, 20, arch="arch-a", seed=1) + synthetic_group(
        100, 20, arch="arch-b", seed=2)
    serial = recover_graph(models)
    on_ray = recover_graph(models, map_groups=ray_map_groups)
    assert _triples(on_ray) == _triples(serial)
    assert on_ray.direction["groups"] == serial.direction["groups"]
