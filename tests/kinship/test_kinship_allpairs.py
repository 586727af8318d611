"""Blocked all-pairs / top-k against a brute-force numpy float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lineage.errors import UnknownNameError
from lineage.kinship import all_pairs, delta_sketches, topk_pairs, topk_within_blocks


def _scores(x: np.ndarray, metric: str) -> np.ndarray:
    """Full n x n matrix of values in float64, self-pairs excluded (NaN)."""
    x = x.astype(np.float64)
    if metric == "cosine":
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        s = u @ u.T
    elif metric == "dot":
        s = x @ x.T
    else:
        s = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=2)
    np.fill_diagonal(s, np.nan)
    return s


def _data(n: int = 37, d: int = 24, seed: int = 0) -> np.ndarray:
    """Clustered rows around a large common offset, like fine-tunes of one base."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(4, d))
    return (100 + centers[rng.integers(0, 4, n)] + 0.3 * rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
@pytest.mark.parametrize("block", [8, 37, 4096])
def test_topk_matches_brute_force(metric, block):
    x, k = _data(), 5
    found = topk_pairs(x, k, metric=metric, block=block)
    s = _scores(x, metric)
    assert found.size == 37 * k
    assert np.array_equal(found.i, np.repeat(np.arange(37), k))
    for row in range(37):
        order = np.argsort(s[row] if metric == "l2" else -s[row])[:k]  # NaN sorts last
        mine = found.j[found.i == row]
        values = found.value[found.i == row]
        # Same neighbour values (ties could swap indices), then the exact values.
        assert np.allclose(np.sort(s[row, mine]), np.sort(s[row, order]), rtol=1e-4, atol=1e-4)
        assert np.allclose(values, s[row, mine], rtol=1e-4, atol=1e-3)
        assert row not in mine


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_all_pairs_with_and_without_threshold(metric):
    x = _data(n=21)
    s = _scores(x, metric)
    every = all_pairs(x, metric=metric, block=6)
    assert every.size == 21 * 20 // 2 and np.all(every.i < every.j)
    assert np.allclose(every.value, s[every.i, every.j], rtol=1e-4, atol=1e-3)
    cut = float(np.nanmedian(s))
    close = all_pairs(x, metric=metric, block=6, threshold=cut)
    iu = np.triu_indices(21, k=1)
    expected = (s[iu] <= cut) if metric == "l2" else (s[iu] >= cut)
    # Values within float32 rounding of the cut may land on either side.
    assert abs(close.size - int(expected.sum())) <= 2


def test_topk_within_blocks_never_crosses_keys():
    x = _data(n=30)
    keys = ["llama"] * 12 + ["gpt2"] * 17 + ["alone"]
    found = topk_within_blocks(keys, x, 3, block=5)
    key_of = np.array(keys)
    assert found.size == 12 * 3 + 17 * 3
    assert np.all(key_of[found.i] == key_of[found.j])
    gpt2 = np.arange(12, 29)
    ref = topk_pairs(x[gpt2], 3, block=5)
    mine = found.i >= 12
    assert np.array_equal(found.j[mine], gpt2[ref.j]) and np.allclose(found.value[mine], ref.value)
    i, j, value = found  # unpacks as three arrays
    assert found.tolist()[0] == (int(i[0]), int(j[0]), float(value[0]))


def test_small_and_degenerate_inputs():
    x = _data(n=3)
    assert topk_pairs(x, 10).size == 3 * 2  # k is capped at n - 1
    assert topk_pairs(x[:1], 4).size == 0
    zero = np.vstack([x, np.zeros((1, x.shape[1]), np.float32)])
    assert np.all(np.isfinite(topk_pairs(zero, 2).value))  # a zero row has cosine 0
    with pytest.raises(UnknownNameError, match="Valid pair metrics: cosine, dot, l2"):
        topk_pairs(x, 1, metric="jaccard")


def test_delta_sketches_and_l2_precision_near_a_common_base():
    rng = np.random.default_rng(1)
    base = rng.normal(size=512) * 1e3  # big weights, tiny fine-tuning deltas
    deltas = rng.normal(size=(6, 512)) * 1e-3
    models = (base + deltas).astype(np.float32)
    found = topk_pairs(models, 1, metric="l2")
    exact = np.linalg.norm(models[:, None].astype(np.float64) - models[None], axis=2)
    np.fill_diagonal(exact, np.inf)
    # Centring on the group mean keeps float32 from cancelling |u|^2 + |v|^2 - 2<u,v>.
    assert np.allclose(found.value, exact.min(axis=1), rtol=1e-3)
    d = delta_sketches(models, base)
    assert np.allclose(d, models.astype(np.float64) - base, atol=1e-4)


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda",
            marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
        ),
    ],
)
def test_device_gives_the_same_neighbours(device):
    x = _data(n=50, d=64, seed=3)
    here = topk_pairs(x, 4, metric="l2", block=16)
    there = topk_pairs(x, 4, metric="l2", block=16, device=device)
    assert np.allclose(here.value, there.value, rtol=1e-4)
    assert np.mean(here.j == there.j) > 0.95  # near-ties may swap under another BLAS
