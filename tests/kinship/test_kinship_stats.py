"""PairStats: chunked merging equals one pass; stable far from zero; raw sums round-trip."""

from __future__ import annotations

import numpy as np
import pytest

from lineage.kinship import PairStats


def test_merged_chunks_equal_numpy_even_far_from_zero():
    rng = np.random.default_rng(0)
    x = 1e6 + rng.normal(size=10_001)  # |mean| >> std: raw power sums would cancel
    y = 1e6 + 0.5 * (x - 1e6) + rng.normal(size=x.size)
    stats = PairStats()
    for s in range(0, x.size, 977):
        stats = stats.merge(PairStats.of_chunk(x[s : s + 977], y[s : s + 977]))
    assert stats.n == x.size
    assert stats.pearson() == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-10)
    assert stats.cosine() == pytest.approx(x @ y / np.sqrt((x @ x) * (y @ y)), rel=1e-12)
    assert stats.euclidean() == pytest.approx(np.linalg.norm(x - y), rel=1e-12)
    assert stats.rms_diff() == pytest.approx(np.sqrt(np.mean((x - y) ** 2)), rel=1e-12)


def test_raw_sums_round_trip_and_degenerate_cases():
    x, y = np.array([1.0, 2.0, 4.0]), np.array([0.5, -1.0, 3.0])
    one = PairStats.of_chunk(x, y)
    raw = PairStats.from_raw(3, x.sum(), y.sum(), x @ x, y @ y, x @ y, (x - y) @ (x - y))
    for name in ("cosine", "pearson", "euclidean", "rms_diff"):
        assert getattr(raw, name)() == pytest.approx(getattr(one, name)(), rel=1e-12)
    assert (one.sxx, one.syy, one.sxy) == pytest.approx((x @ x, y @ y, x @ y), rel=1e-12)
    zero = PairStats.of_chunk(np.zeros(4), np.ones(4))
    assert np.isnan(zero.cosine()) and np.isnan(zero.pearson()) and zero.euclidean() == 2.0
    assert np.isnan(PairStats().rms_diff())
