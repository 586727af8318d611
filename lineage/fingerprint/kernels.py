"""Compiled single-pass kernels of the CPU fingerprint: moments, count-sketch and
rank-sketch fold, each over one chunk of a tensor's elements, state carried between
chunks so a tensor of any size streams through in bounded memory.

Why compiled: the torch versions (moments.py, sketch.py, rank_sketch.py; still used
on GPUs and as the reference in tests) make 8-12 passes over every chunk (casts,
temporaries, one reduction each) and pay torch's per-op dispatch, ~10 ns per element
together; here each stage is one loop, ~1 ns per element. numba releases the GIL
(nogil), so the content hash runs beside them in another thread, and no kernel starts
threads of its own: the fingerprint uses exactly the threads it is given.

Exactness: the count-sketch adds the same float32 products in the same order as
sketch_tensor (float32 within a step of ROWS_PER_STEP rows, float64 across steps), so
its values are bit-identical. Moments and the rank fold accumulate in float64 like
their torch versions, in a different order: they agree to float64 rounding (~1e-16
relative; torch's own results already vary that much with its thread count), and the
rank sketch, stored as float32, agrees to the last float32 bit but for rare ties.
Each kernel's own order of adds is fixed, since catalogs store its results: the vector
loops of lanes.py keep it exactly (tests/foundation/test_kernel_order.py).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# numba's cache sees edits of this file only: after editing lanes.py, touch this one.
from lineage.fingerprint.lanes import (
    TILE_WIDTH,
    fold_row_runs,
    lane_central_sums,
    lane_sums,
    tile_rows_product,
)

# moments state: [n, mean, m2, m3, m4, min, max] (Pebay's central sums, as Moments)
N, MEAN, M2, M3, M4, MIN, MAX = range(7)


def new_moments() -> np.ndarray:
    return np.array([0.0, 0.0, 0.0, 0.0, 0.0, np.inf, -np.inf])


@njit(nogil=True, cache=True)
def _merge(state, n_b, mean_b, m2_b, m3_b, m4_b):  # pragma: no cover - compiled
    """Pebay 2008 eqs. 2.1-2.3, as Moments.merge."""
    n_a = state[0]
    if n_a == 0.0:
        state[0], state[1], state[2], state[3], state[4] = n_b, mean_b, m2_b, m3_b, m4_b
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
    state[0], state[1], state[2], state[3], state[4] = n, state[1] + d_n * n_b, m2, m3, m4


@njit(nogil=True, cache=True)
def moments_update(x, sub, state):  # pragma: no cover - compiled
    """Fold the elements of `x` (contiguous) into `state`, `sub` elements at a time
    (each sub-chunk's central sums in float64, two passes over it while it sits in L2,
    then merged). Four accumulators per sum, accumulator l taking elements s0 + 4j + l,
    keep the adds pipelined, deterministically; lanes.py runs the four as one vector,
    the tail of fewer than 4 elements goes to the first."""
    total = x.size
    for s0 in range(0, total, sub):
        s1 = min(total, s0 + sub)
        nb = s1 - s0
        groups = nb // 4
        r = lane_sums(x, s0, groups)
        a0 = r[0]
        lo = min(min(r[4], r[5]), min(r[6], r[7]))
        hi = max(max(r[8], r[9]), max(r[10], r[11]))
        for i in range(s0 + 4 * groups, s1):
            v = float(x[i])
            a0 += v
            lo = min(lo, v)
            hi = max(hi, v)
        mean = ((a0 + r[1]) + (r[2] + r[3])) / nb
        q = lane_central_sums(x, s0, groups, mean)
        q20, q30, q40 = q[0], q[4], q[8]
        for i in range(s0 + 4 * groups, s1):
            d0 = float(x[i]) - mean
            e0 = d0 * d0
            q20 += e0
            q30 += e0 * d0
            q40 += e0 * e0
        _merge(state, float(nb), mean, (q20 + q[1]) + (q[2] + q[3]),
               (q30 + q[5]) + (q[6] + q[7]), (q40 + q[9]) + (q[10] + q[11]))
        if mean != mean and _has_nan(x, s0, s1):  # NaN never wins min/max comparisons
            state[5], state[6] = np.nan, np.nan  # torch's aminmax says NaN; so do we
        elif state[5] == state[5]:  # once NaN, always NaN
            if lo == 0.0 or hi == 0.0:  # which zero (+0, -0) wins depends on the order
                lo, hi = _ordered_min_max(x, s0, s1)
            state[5] = min(state[5], lo)
            state[6] = max(state[6], hi)


@njit(nogil=True, cache=True)
def _ordered_min_max(x, s0, s1):  # pragma: no cover - compiled
    """min and max in the order the moments have always taken them (in groups of 4,
    then the tail), down to the sign of a zero."""
    lo, hi = np.inf, -np.inf
    i = s0
    while i + 4 <= s1:
        v0, v1, v2, v3 = float(x[i]), float(x[i + 1]), float(x[i + 2]), float(x[i + 3])
        lo = min(lo, min(min(v0, v1), min(v2, v3)))
        hi = max(hi, max(max(v0, v1), max(v2, v3)))
        i += 4
    while i < s1:
        v = float(x[i])
        lo = min(lo, v)
        hi = max(hi, v)
        i += 1
    return lo, hi


@njit(nogil=True, cache=True)
def _has_nan(x, s0, s1):  # pragma: no cover - compiled
    for i in range(s0, s1):
        v = float(x[i])
        if v != v:
            return True
    return False


@njit(nogil=True, cache=True)
def sketch_update(x, start, width, rows_per_step, col_signs, row_signs, offsets, step,
                  out):  # pragma: no cover - compiled
    """Add the elements x (flat positions start..start+len) into the count-sketch.

    Element (r, c) of the row-major [rows, width] layout goes to bucket c + o_r of the
    float32 `step` (2 * width long, as sketch_tensor), signed by s_c * t_r; when row r
    opens a new step of `rows_per_step` rows, the finished step is added into the
    float64 `out` and cleared. `sketch_flush` adds the last one."""
    i, end = 0, x.size
    while i < end:
        pos = start + i
        r = pos // width
        c0 = pos - r * width
        c1 = min(width, c0 + (end - i))
        if c0 == 0 and r > 0 and r % rows_per_step == 0:
            sketch_flush(step, out)
        t = row_signs[r]
        o = offsets[r]
        # 1-D slices first: numba then vectorizes the loop (indexing the whole arrays
        # with computed offsets measured 3x slower, scalar code)
        xs, cs, acc = x[i : i + c1 - c0], col_signs[c0:c1], step[o + c0 : o + c1]
        for q in range(c1 - c0):
            acc[q] += (np.float32(xs[q]) * cs[q]) * t
        i += c1 - c0


@njit(nogil=True, cache=True)
def sketch_flush(step, out):  # pragma: no cover - compiled
    for j in range(step.size):
        out[j] += step[j]
        step[j] = 0.0


@njit(nogil=True, cache=True)
def fold_columns_update(x, start, n, k, signs, folded):  # pragma: no cover - compiled
    """folded[r, c mod k] += s_c * W[r, c] (n > k; else folded[r, c] = W[r, c]) for the
    elements x at flat positions start.. of the row-major [m, n] matrix W. With k = 64
    a row's whole runs of 64 go through lanes.fold_row_runs (the row's accumulators in
    vector registers); the adds are the same, in the same order."""
    i, end = 0, x.size
    while i < end:
        pos = start + i
        r = pos // n
        c0 = pos - r * n
        c1 = min(n, c0 + (end - i))
        if n > k:  # walk the row in runs of consecutive buckets (no modulo per element)
            c = c0
            while c < c1:
                j = c % k
                if j == 0 and k == TILE_WIDTH and c1 - c >= k:  # whole runs: lanes.py
                    runs = (c1 - c) // k
                    fold_row_runs(x, i + c - c0, signs, c, folded, r, runs)
                    c += runs * k
                    continue
                run = min(c1 - c, k - j)
                base = i + c - c0
                xs, ss, acc = x[base : base + run], signs[c : c + run], folded[r, j : j + run]
                for q in range(run):  # slices: vectorized (see sketch_update)
                    acc[q] += float(xs[q]) * ss[q]
                c += run
        else:
            xs, acc = x[i : i + c1 - c0], folded[r, c0:c1]
            for q in range(c1 - c0):
                acc[q] += float(xs[q])
        i += c1 - c0


ROWS_PER_PASS = 4  # rows of one bucket added per pass over the bucket's accumulators


@njit(nogil=True, cache=True)
def fold_rows_update(x, start, n, k, group_signs, folded):  # pragma: no cover - compiled
    """folded[r mod k, c] += t_(r // k) * W[r, c] for the elements x at flat positions
    start.. of the row-major [m, n] matrix W (the sign drawn per group of k rows).

    The whole rows of x that fall in one bucket (rows j, j + k, j + 2k, ...) are added
    up to ROWS_PER_PASS at a time: the bucket's float64 row is read and written once
    per pass instead of once per row, and every element still gets its adds one after
    the other in row order, so the sums are those of adding row by row."""
    end = x.size
    i = 0
    if start % n:  # the rest of a row begun in the previous piece
        i = min(end, n - start % n)
        _fold_partial_row(x, 0, i, start, n, k, group_signs, folded)
    rows = (end - i) // n
    r0 = (start + i) // n
    for j in range(min(k, rows)):
        acc = folded[(r0 + j) % k]
        rr = j
        while rr + (ROWS_PER_PASS - 1) * k < rows:
            g = (r0 + rr) // k
            t0, t1, t2, t3 = group_signs[g], group_signs[g + 1], group_signs[g + 2], \
                group_signs[g + 3]
            b0, step = i + rr * n, k * n
            x0, x1 = x[b0 : b0 + n], x[b0 + step : b0 + step + n]
            x2, x3 = x[b0 + 2 * step : b0 + 2 * step + n], x[b0 + 3 * step : b0 + 3 * step + n]
            for q in range(n):  # slices: vectorized (see sketch_update)
                acc[q] = (((acc[q] + t0 * float(x0[q])) + t1 * float(x1[q]))
                          + t2 * float(x2[q])) + t3 * float(x3[q])
            rr += ROWS_PER_PASS * k
        while rr < rows:
            t0, x0 = group_signs[(r0 + rr) // k], x[i + rr * n : i + rr * n + n]
            for q in range(n):
                acc[q] += t0 * float(x0[q])
            rr += k
    i += rows * n
    if i < end:  # a row that the next piece ends
        _fold_partial_row(x, i, end, start, n, k, group_signs, folded)


@njit(nogil=True, cache=True)
def _fold_partial_row(x, i, i_end, start, n, k, group_signs, folded):  # pragma: no cover
    """fold_rows_update for x[i:i_end], which lies within one row of W."""
    r = (start + i) // n
    c0 = start + i - r * n
    t = group_signs[r // k]
    xs, acc = x[i:i_end], folded[r % k, c0 : c0 + i_end - i]
    for q in range(i_end - i):
        acc[q] += t * float(xs[q])


@njit(nogil=True, cache=True)
def bf16_to_f32(raw, out):  # pragma: no cover - compiled
    """bfloat16 bits (uint16) -> float32 bits (uint32): the top half; exact."""
    for i in range(raw.size):
        out[i] = np.uint32(raw[i]) << np.uint32(16)


@njit(nogil=True, cache=True)
def left_product(g, folded):  # pragma: no cover - compiled
    """g.T @ folded ([m, k]' [m, kk] -> [k, kk]) in float64, in this thread: BLAS
    would wake its own thread pool, whose idle threads spin on the cores the
    fingerprint's two threads need (measured: 3x the CPU time of the whole tensor).
    Each out[a, b] sums g[r, a] * folded[r, b] in r order; with kk = 64 two rows of
    out at a time stay in vector registers (lanes.tile_rows_product: 2-3x faster,
    the same sums)."""
    m, k = g.shape
    out = np.zeros((k, folded.shape[1]))
    a0 = 0
    if folded.shape[1] == TILE_WIDTH:
        while a0 + 1 < k:
            tile_rows_product(g, folded, out, a0, k, 1, m, a0)
            a0 += 2
    for r in range(m):
        row = folded[r]
        for a in range(a0, k):
            coef, acc = g[r, a], out[a]
            for b in range(row.size):  # slices: vectorized (see sketch_update)
                acc[b] += coef * row[b]
    return out


@njit(nogil=True, cache=True)
def right_product(folded, g):  # pragma: no cover - compiled
    """folded @ g ([k, n] [n, kk] -> [k, kk]) in float64, in this thread (as
    left_product; each out[a, b] sums folded[a, c] * g[c, b] in c order)."""
    k, n = folded.shape
    out = np.zeros((k, g.shape[1]))
    a0 = 0
    if g.shape[1] == TILE_WIDTH:
        while a0 + 1 < k:
            tile_rows_product(folded, g, out, a0 * n, 1, n, n, a0)
            a0 += 2
    for a in range(a0, k):
        acc = out[a]
        for c in range(n):
            coef, row = folded[a, c], g[c]
            for b in range(row.size):  # slices: vectorized (see sketch_update)
                acc[b] += coef * row[b]
    return out


@njit(nogil=True, cache=True)
def first_distinct(values, count):  # pragma: no cover - compiled
    """The first `count` distinct values (uint64, below 2**64 - 1) in order of first
    appearance (fewer when there are not as many): an open-addressing hash set, one
    pass (np.unique's stable sort took 10x as long)."""
    slots = 1
    while slots < 2 * values.size:
        slots *= 2
    table = np.zeros(slots, np.uint64)  # value + 1; 0 = empty
    out = np.empty(min(count, values.size), np.uint64)
    found = 0
    for v in values:
        key = v + np.uint64(1)
        h = (v * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)
        j = h & np.uint64(slots - 1)
        while table[j] != 0 and table[j] != key:
            j = (j + np.uint64(1)) & np.uint64(slots - 1)
        if table[j] == 0:
            table[j] = key
            out[found] = v
            found += 1
            if found == count:
                break
    return out[:found]
