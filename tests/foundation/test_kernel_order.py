"""The compiled kernels add in a fixed order, which catalogs store, however they are
sped up. The moments kernel runs its four accumulators as the lanes of one vector
(lanes.py): bit for bit the scalar loop it replaced, written out in Python here (Python
floats are the same IEEE doubles, and Python's min/max keep the first of equal
arguments, as numba's do). The rank fold adds several rows of a bucket per pass, or a
row's whole runs of 64 columns in vector registers: bit for bit adding element after
element. The rank sketch's products keep two rows of the result
in vector registers: bit for bit the row-by-row sums. The coordinate sample's positions
come from a hash set now: the same positions as np.unique's first occurrences gave."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lineage.fingerprint import kernels
from lineage.fingerprint.rank_sketch import fold_signs
from lineage.fingerprint.sample import sample_positions_array


def _merge(state, n_b, mean_b, m2_b, m3_b, m4_b):
    """kernels._merge, line for line."""
    n_a = state[0]
    if n_a == 0.0:
        state[0:5] = [n_b, mean_b, m2_b, m3_b, m4_b]
        return
    n = n_a + n_b
    delta = mean_b - state[1]
    d_n = delta / n
    m2_a, m3_a = state[2], state[3]
    m2 = m2_a + m2_b + delta * d_n * n_a * n_b
    m3 = (m3_a + m3_b + d_n * d_n * delta * n_a * n_b * (n_a - n_b)
          + 3.0 * d_n * (n_a * m2_b - n_b * m2_a))
    m4 = (state[4] + m4_b + d_n ** 3 * delta * n_a * n_b * (n_a * n_a - n_a * n_b + n_b * n_b)
          + 6.0 * d_n * d_n * (n_a * n_a * m2_b + n_b * n_b * m2_a)
          + 4.0 * d_n * (n_a * m3_b - n_b * m3_a))
    state[0:5] = [n, state[1] + d_n * n_b, m2, m3, m4]


def _scalar_moments(values: list[float], sub: int) -> list[float]:
    """The scalar kernel: per sub-chunk, accumulators a0..a3 over elements 4j + l, the
    tail into a0, min/max in groups of 4 then the tail."""
    state = [0.0, 0.0, 0.0, 0.0, 0.0, math.inf, -math.inf]
    for s0 in range(0, len(values), sub):
        x = values[s0 : s0 + sub]
        full = len(x) - len(x) % 4
        a = [0.0] * 4
        lo, hi = math.inf, -math.inf
        for i in range(0, full, 4):
            v = x[i : i + 4]
            for lane in range(4):
                a[lane] += v[lane]
            lo = min(lo, min(min(v[0], v[1]), min(v[2], v[3])))
            hi = max(hi, max(max(v[0], v[1]), max(v[2], v[3])))
        for v in x[full:]:
            a[0] += v
            lo, hi = min(lo, v), max(hi, v)
        mean = ((a[0] + a[1]) + (a[2] + a[3])) / len(x)
        q2, q3, q4 = [0.0] * 4, [0.0] * 4, [0.0] * 4
        for i, v in enumerate(x):
            lane = i % 4 if i < full else 0
            d = v - mean
            e = d * d
            q2[lane] += e
            q3[lane] += e * d
            q4[lane] += e * e
        _merge(state, float(len(x)), mean, (q2[0] + q2[1]) + (q2[2] + q2[3]),
               (q3[0] + q3[1]) + (q3[2] + q3[3]), (q4[0] + q4[1]) + (q4[2] + q4[3]))
        state[5], state[6] = min(state[5], lo), max(state[6], hi)
    return state


def _cases():
    rng = np.random.default_rng(7)
    yield (rng.standard_normal(4099) * 0.02 + 1.0).astype(np.float32)  # |mean| >> std
    yield rng.standard_normal(1031).astype(np.float64) * 1e3
    yield rng.integers(-100, 100, 777).astype(np.int32)
    yield rng.integers(0, 256, 513).astype(np.uint8)
    yield np.arange(3, dtype=np.int64)  # shorter than one group
    zeros = np.zeros(203, np.float32)
    zeros[::3] = -0.0  # the sign of a zero minimum follows the order
    yield zeros
    mixed = np.abs(rng.standard_normal(301)).astype(np.float32)
    mixed[[6, 9, 300]] = [0.0, -0.0, 0.0]
    yield mixed
    yield -mixed
    spikes = rng.standard_normal(400).astype(np.float32)
    spikes[[10, 333]] = [np.inf, -np.inf]
    yield spikes


@pytest.mark.parametrize("sub", [64, 1000])
def test_vector_lanes_equal_the_scalar_loop_bit_for_bit(sub):
    for x in _cases():
        state = kernels.new_moments()
        kernels.moments_update(x, sub, state)
        want = np.array(_scalar_moments([float(v) for v in x], sub))
        assert state.tobytes() == want.tobytes(), (x.dtype, x.size, state, want)


@pytest.mark.parametrize(("m", "n", "k"), [(4096, 64, 64), (1000, 70, 64), (2000, 513, 8),
                                           (300, 2, 64)])
@pytest.mark.parametrize("piece", [1 << 18, 77777, 1000, 7])
def test_rows_fold_adds_row_after_row(m, n, k, piece):
    rng = np.random.default_rng(m + n)
    w = (rng.standard_normal((m, n)) * 10).astype(np.float32)
    signs = fold_signs(m, k)[::k]
    want = np.zeros((k, n))
    for r in range(m):  # one float64 add per element and row, rows in order
        want[r % k] += signs[r // k] * w[r].astype(np.float64)
    folded, flat = np.zeros((k, n)), w.reshape(-1)
    for p in range(0, flat.size, piece):
        kernels.fold_rows_update(flat[p : p + piece], p, n, k, signs, folded)
    assert folded.tobytes() == want.tobytes()


def _positions_by_unique(name: str, shape: tuple[int, ...], size: int) -> np.ndarray:
    """sample_positions as first written: size draws at a time, np.unique's first
    occurrences, until `size` are distinct (the branch for numel > 4 size)."""
    import hashlib

    numel = math.prod(shape)
    key = f"lineage-sample-v1|{name}|{list(shape)}|{size}".encode()
    stream = np.random.PCG64(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))
    draws = np.zeros(0, np.uint64)
    while True:
        draws = np.concatenate([draws, stream.random_raw(size) % np.uint64(numel)])
        _, first = np.unique(draws, return_index=True)
        if first.size >= size:
            return np.sort(draws[np.sort(first)[:size]].astype(np.int64))


@pytest.mark.parametrize(("shape", "size"), [((1024, 4096), 4096), ((4097, 5), 4096),
                                             ((300, 700), 4096), ((90, 90), 2000),
                                             ((50, 50), 600)])
def test_sample_positions_are_the_first_distinct_draws(shape, size):
    for name in ("layers.0.q.weight", "lm_head.weight"):
        got = sample_positions_array(name, shape, size)
        assert got.tobytes() == _positions_by_unique(name, shape, size).tobytes()


def test_first_distinct_keeps_the_order_of_first_appearance():
    values = np.array([5, 3, 5, 9, 3, 0, 7, 9, 1], np.uint64)
    assert kernels.first_distinct(values, 4).tolist() == [5, 3, 9, 0]
    assert kernels.first_distinct(values, 99).tolist() == [5, 3, 9, 0, 7, 1]


@pytest.mark.parametrize(("m", "k", "kk"), [(1024, 64, 64), (777, 64, 64), (100, 63, 64),
                                            (300, 64, 40), (70, 8, 8)])
def test_products_sum_row_after_row(m, k, kk):
    rng = np.random.default_rng(m * k + kk)
    g, folded = rng.standard_normal((m, k)), rng.standard_normal((m, kk))
    want = np.zeros((k, kk))
    for r in range(m):  # g.T @ folded: one product rounded, then added, r in order
        want += np.outer(g[r], folded[r])
    assert kernels.left_product(g, folded).tobytes() == want.tobytes()
    rows, side = rng.standard_normal((k, m)), rng.standard_normal((m, kk))
    want = np.zeros((k, kk))
    for c in range(m):  # rows @ side, c in order
        want += np.outer(rows[:, c], side[c])
    assert kernels.right_product(rows, side).tobytes() == want.tobytes()


@pytest.mark.parametrize(("m", "n", "k"), [(64, 8192, 64), (300, 700, 64), (65, 4097, 64),
                                           (100, 130, 8)])
@pytest.mark.parametrize("piece", [1 << 18, 77777, 63])
def test_columns_fold_adds_column_after_column(m, n, k, piece):
    rng = np.random.default_rng(m + n + k)
    w = (rng.standard_normal((m, n)) * 10).astype(np.float32)
    signs = fold_signs(n, k).astype(np.float32)
    want = np.zeros((m, k))
    for c in range(n):  # one float64 add per element, columns in order
        want[:, c % k] += w[:, c].astype(np.float64) * np.float64(signs[c])
    folded, flat = np.zeros((m, k)), w.reshape(-1)
    for p in range(0, flat.size, piece):
        kernels.fold_columns_update(flat[p : p + piece], p, n, k, signs, folded)
    assert folded.tobytes() == want.tobytes()
