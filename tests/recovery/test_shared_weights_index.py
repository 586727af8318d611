"""The sparse-merge base screen through the exact-equality index (equal_values.py)
gives, for every model, the same dict in the same order with the same floats as
comparing the model's samples with every model's (the previous release's screen, kept
here as the reference), on constructed components: fine-tunes, TIES/DARE-like sparse
merges, duplicates, frozen matrices (equal hashes), zeros, NaN, missing samples, and
values from a small set (long runs of equal values: the dense path)."""

from __future__ import annotations

import numpy as np
import pytest

from lineage.recovery import equal_values
from lineage.recovery.features import GroupFeatures
from lineage.recovery.sparse_merges import (
    BASES,
    MIN_MATCHES,
    PROBES,
    _Probe,
    detect_sparse_merges,
    shared_weights,
)


def _reference_shared_weights(probe: _Probe, m: int) -> dict[int, float]:
    """The screen as released before the index: every model compared with m, one
    vectorised comparison per matrix."""
    f = probe.f
    equal = np.zeros(f.n)
    seen = np.zeros(f.n)
    used = 0
    for q in probe.names:
        if used == PROBES:
            break
        if not f.sample_ok[m, q]:
            continue
        used += 1
        values = f.samples[q]
        mine = values[m]
        differs = (f.hashes[:, q] != f.hashes[m, q]) & f.sample_ok[:, q]
        same = ((values == mine) & (mine != 0)).sum(axis=1)
        equal += np.where(differs, same, 0)
        seen += np.where(differs, mine.size, 0)
    share = np.divide(equal, seen, out=np.zeros(f.n), where=seen > 0)
    share[equal < MIN_MATCHES] = 0.0
    share[m] = 0.0
    top = [int(k) for k in np.argsort(-share, kind="stable")[:BASES] if share[k] > 0]
    return {k: float(share[k]) for k in top}


def _component(seed: int) -> GroupFeatures:
    """A random component of one family: a base, fine-tunes (every weight moved),
    sparse merges (each coordinate the base's, one parent's or a new value), exact
    duplicates (same hash), re-uploads under another hash, frozen matrices (the
    base's content and hash), zeros, NaN, missing samples and, in some matrices,
    values drawn from a small set, so that many models tie at a coordinate."""
    rng = np.random.default_rng(seed)
    n, mats = int(rng.integers(6, 70)), int(rng.integers(1, 13))
    sizes = [int(rng.integers(8, 200)) for _ in range(mats)]
    coarse = rng.random(mats) < 0.3  # a few distinct values: long runs
    samples = [np.zeros((n, s), dtype=np.float32) for s in sizes]
    hashes = np.empty((n, mats), dtype=object)
    ok = rng.random((n, mats)) > 0.1

    def fresh(q: int) -> np.ndarray:
        if coarse[q]:
            return rng.choice(np.float32([0.5, -0.25, 1.0, 2.0]), sizes[q])
        return rng.standard_normal(sizes[q]).astype(np.float32)

    for q in range(mats):
        samples[q][0], hashes[0, q] = fresh(q), "base"
    for i in range(1, n):
        kind = rng.choice(["finetune", "merge", "duplicate", "reupload"], p=[.4, .35, .15, .1])
        for q in range(mats):
            row, tag = fresh(q), f"m{i}"
            if kind == "merge" or (kind == "finetune" and coarse[q]):
                j = int(rng.integers(0, i))  # a parent (the base when 0)
                pick = rng.random(sizes[q])
                row = np.where(pick < 0.4, samples[q][0], row)
                row = np.where((pick >= 0.4) & (pick < 0.7), samples[q][j], row)
            elif kind in ("duplicate", "reupload"):
                j = int(rng.integers(0, i))
                row = samples[q][j].copy()
                tag = hashes[j, q] if kind == "duplicate" else f"m{i}"
            if rng.random() < 0.15:  # frozen: the base's matrix, bit for bit
                row, tag = samples[q][0].copy(), "base"
            row[rng.random(sizes[q]) < 0.05] = 0.0
            if rng.random() < 0.05:
                row[rng.random(sizes[q]) < 0.02] = np.nan
            samples[q][i], hashes[i, q] = row, tag
    for q in range(mats):  # a missing sample holds nothing anyone reads
        samples[q][~ok[:, q]] = rng.standard_normal(
            (int((~ok[:, q]).sum()), sizes[q])).astype(np.float32)
    perm = rng.permutation(n)  # the base anywhere, not first
    return GroupFeatures(
        ids=[f"m{i}" for i in range(n)], names=[f"w{q}" for q in range(mats)],
        shapes=[(s, 1) for s in sizes], sketches=[np.zeros((n, 1))] * mats,
        kurtosis=np.zeros((n, mats)), sq_norms=np.ones((n, mats)),
        hashes=hashes[perm], samples=[x[perm] for x in samples], sample_ok=ok[perm])


@pytest.mark.parametrize("dense_share", [0.0, equal_values.DENSE_SHARE, np.inf],
                         ids=["compare-rows", "default", "runs-only"])
def test_the_index_gives_the_reference_screen_for_every_model(monkeypatch, dense_share):
    monkeypatch.setattr(equal_values, "DENSE_SHARE", dense_share)
    nonempty = ties = 0
    for seed in range(40):
        features = _component(seed)
        probe, reference = _Probe(features), _Probe(features)
        for m in range(features.n):
            if not features.sample_ok[m].any():
                continue
            got, want = shared_weights(probe, m), _reference_shared_weights(reference, m)
            assert list(got.items()) == list(want.items()), (seed, m)
            assert all(type(k) is int and type(v) is float for k, v in got.items())
            nonempty += bool(want)
            ties += len(set(want.values())) < len(want)
    assert nonempty > 500 and ties > 50  # the cases compared are not all empty or tie-free


def test_float64_and_float16_samples_give_the_reference_too():
    # Wider values cannot share a 64-bit sort key with their model (equal_values.
    # _sorted_columns sorts them by argsort); narrower ones can.
    from dataclasses import replace

    for seed, dtype in [(1, np.float64), (2, np.float64), (3, np.float16), (4, np.float16)]:
        base = _component(seed)
        features = replace(base, samples=[x.astype(dtype) for x in base.samples])
        probe = _Probe(features)
        for m in np.flatnonzero(features.sample_ok.any(axis=1)):
            assert (list(shared_weights(probe, int(m)).items())
                    == list(_reference_shared_weights(probe, int(m)).items())), (seed, m)


def test_a_frozen_matrix_is_one_content_and_its_runs_stay_short():
    # 200 models that keep the base's matrix bit for bit and one that changed it:
    # the frozen ones are one content, so no coordinate's run holds more than two.
    rng = np.random.default_rng(0)
    base = rng.standard_normal(64).astype(np.float32)
    values = np.tile(base, (201, 1))
    values[200] = np.where(rng.random(64) < 0.5, base, rng.standard_normal(64))
    hashes = np.array(["base"] * 200 + ["merge"], dtype=object)
    index = equal_values.MatrixIndex(values, hashes, np.ones(201, dtype=bool))
    assert index.values.shape[0] == 2
    assert np.diff(index.run_start).max() == 2
    models, counts = index.shared(200)
    shared = int(((values[0] == values[200]) & (values[200] != 0)).sum())
    assert models.tolist() == list(range(200)) and set(counts.tolist()) == {shared}
    assert index.shared(0)[0].tolist() == [200]  # its own hash never counts
    assert index.shared(7)[0].tolist() == [200] and list(index._cache) == [index.content[7]]


def test_sparse_merges_found_through_the_index_are_those_of_the_reference():
    # detect_sparse_merges walks shared_weights' order: one constructed component
    # with a TIES-like merge whose base and parents are among 40 fine-tunes.
    rng = np.random.default_rng(5)
    n, size, mats = 40, 512, 3
    base = [rng.standard_normal(size).astype(np.float32) for _ in range(mats)]
    rows = [[(b + 0.05 * rng.standard_normal(size)).astype(np.float32) for b in base]
            for _ in range(n - 1)]
    merged = []
    for q in range(mats):
        t1, t2 = rows[3][q] - base[q], rows[7][q] - base[q]
        keep1, keep2 = rng.random(size) < 0.5, rng.random(size) < 0.5
        both = keep1 & keep2 & (np.sign(t1) == np.sign(t2))
        delta = np.where(keep1 & ~keep2, t1, 0) + np.where(keep2 & ~keep1, t2, 0)
        merged.append((base[q] + np.where(both, (t1 + t2) / 2, delta)).astype(np.float32))
    models = [base, *rows[:-1], merged]
    features = GroupFeatures(
        ids=[f"m{i}" for i in range(n)], names=[f"w{q}" for q in range(mats)],
        shapes=[(size, 1)] * mats, sketches=[np.zeros((n, 1))] * mats,
        kurtosis=np.zeros((n, mats)), sq_norms=np.ones((n, mats)),
        hashes=np.array([[f"m{i}/{q}" for q in range(mats)] for i in range(n)], dtype=object),
        roundoff=np.full((n, mats), 2.0**-24),
        samples=[np.stack([x[q] for x in models]) for q in range(mats)],
        sample_ok=np.ones((n, mats), dtype=bool))
    probe = _Probe(features)
    assert list(shared_weights(probe, n - 1)) == list(_reference_shared_weights(probe, n - 1))
    fits = detect_sparse_merges(features, set())
    assert [(f.child, f.base, sorted(f.parents)) for f in fits] == [(n - 1, 0, [4, 8])]
