"""Candidate pairs of a large architecture group: nearest neighbours, never n x n.

The dense group stage (recover._split_group) compares every pair: [M, n, n] distances,
which stops near a few thousand models, while one popular base has tens of thousands
of fine-tunes. Here each model gets its `k` nearest neighbours from an approximate-
nearest-neighbour index (faiss, inverted lists over k-means cells) over one vector per
model; every decision is then taken on EXACT numbers recomputed from the full sketches
for the candidate pairs only (distance.py's formulas, pair by pair), so the index only
decides which pairs are looked at, never what they read.

Model vector: per matrix, the sketch centred on its own mean and scaled to unit norm,
concatenated with weight 1/sqrt(M): the inner product of two vectors is then the mean
over matrices of the per-matrix cosines, i.e. distance.centred_cosines (which weighs
every matrix the same). When the concatenation is wider than PROJECTED_DIMS it is
projected to D = PROJECTED_DIMS by a count sketch (each coordinate added, with a random
sign, to one of D buckets, the buckets of a matrix filled evenly): a Johnson-
Lindenstrauss map whose squared-norm estimate has variance 2 (||x||^4 - ||x||_4^4) / D,
no more than a Gaussian projection's 2 ||x||^4 / D, at O(width) per model instead of
O(width D) (the Gaussian matmul cost more than the search). For unit vectors every
squared distance is then kept within a relative error ~ sqrt(8/D) (0.18 at D = 256, two
standard deviations), so a model's neighbours, whose distances to it are far below the
sqrt(2) of unrelated models, stay its neighbours; the order among near ties may change,
which is why k is several times the tree degree and why nothing is decided on the
projected numbers.

Search: inverted lists over sqrt(PROBES n) k-means cells, PROBES of them read per query,
which balances the centroids scanned against the list entries (about 2 sqrt(PROBES n)
vectors per query: O(n^1.5 D) for a group, 3 s at 100k models).

Memory is O(n k) pairs plus O(n D) for the index; no n x n array is ever made.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lineage.recovery.features import GroupFeatures

PROJECTED_DIMS = 256
EXACT_SEARCH = 4096  # below this many models a flat (exact) index is cheaper than cells
PROBES = 8  # cells searched per query
TRAIN_PER_CELL = 40  # k-means training points per cell (faiss' own minimum is 39)
KMEANS_ITERATIONS = 10  # cells only route the search (faiss' default 25 costs 2.5x)
PAIR_BLOCK = 2048  # candidate pairs whose sketch differences are held at once (MiBs)
ROW_BLOCK = 2048  # models projected at once (a few MiB: reused, cache-sized)


@dataclass(frozen=True)
class CandidatePairs:
    """Unique pairs i < j and, per pair, exact per-matrix squared distances."""

    i: np.ndarray  # int64 [E]
    j: np.ndarray  # int64 [E]
    sq: np.ndarray  # float64 [E, M]: ||S(W_i) - S(W_j)||^2 per matrix

    @property
    def size(self) -> int:
        return int(self.i.size)

    def take(self, mask: np.ndarray) -> CandidatePairs:
        return CandidatePairs(self.i[mask], self.j[mask], self.sq[mask])


def model_vectors(features: GroupFeatures, dims: int = PROJECTED_DIMS, seed: int = 0
                  ) -> np.ndarray:
    """float32 [n, D]: unit vectors whose inner products approximate the centred cosines."""
    n, m = features.n, len(features.sketches)
    width = sum(s.shape[1] for s in features.sketches)
    project = width > dims
    out = np.zeros((n, dims if project else width), dtype=np.float32)
    rng = np.random.default_rng(seed)
    offset = 0
    for s in features.sketches:
        w = s.shape[1]
        sketch = CountSketch(w, dims, rng) if project else None
        for start in range(0, n, ROW_BLOCK):
            block = np.asarray(s[start:start + ROW_BLOCK], dtype=np.float32)
            # centred before the norm: ||b||^2 - w mean^2 cancels where |mean| >> std
            block = block - block.mean(axis=1, dtype=np.float64).astype(np.float32)[:, None]
            norm = np.sqrt(np.einsum("ij,ij->i", block, block))
            scale = 1.0 / (np.maximum(norm, 1e-30) * np.float32(np.sqrt(m)))
            rows = slice(start, start + block.shape[0])
            if project:
                out[rows] += sketch.apply(block) * scale[:, None]
            else:
                out[rows, offset:offset + w] = block * scale[:, None]
        offset += w
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-30)
    return out


class CountSketch:
    """A random linear map R^w -> R^D: the coordinates in a random order, each with a
    random sign, position p added to bucket p mod D (every bucket gets w // D or
    w // D + 1 coordinates). A gather and a fold: one pass over the rows."""

    def __init__(self, width: int, dims: int, rng: np.random.Generator) -> None:
        self.dims = dims
        self.order = rng.permutation(width)
        self.sign = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), width)

    def apply(self, rows: np.ndarray) -> np.ndarray:
        """float32 [r, D] for float32 rows [r, width]."""
        r, width = rows.shape
        spread = np.take(rows, self.order, axis=1)
        spread *= self.sign
        full = width // self.dims * self.dims
        out = spread[:, :full].reshape(r, -1, self.dims).sum(axis=1) if full else \
            np.zeros((r, self.dims), dtype=np.float32)
        out[:, :width - full] += spread[:, full:]
        return out


def nearest_neighbours(vectors: np.ndarray, k: int, threads: int = 1) -> np.ndarray:
    """int64 [n, k]: each row's k most similar other rows (-1 where fewer exist).
    Exact search for small groups; an inverted-file index (sqrt(PROBES n) k-means cells,
    PROBES searched) above EXACT_SEARCH. Deterministic: faiss' k-means is seeded."""
    import faiss  # a compiled extension: imported only where a group needs it

    faiss.omp_set_num_threads(max(1, threads))
    n, d = vectors.shape
    k = min(k, n - 1)
    if k <= 0:
        return np.full((n, 0), -1, dtype=np.int64)
    if n <= EXACT_SEARCH:
        index = faiss.IndexFlatIP(d)
    else:
        cells = min(int(np.sqrt(PROBES * n)), n // TRAIN_PER_CELL)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, cells, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = KMEANS_ITERATIONS
        train = vectors[np.linspace(0, n - 1, min(n, cells * TRAIN_PER_CELL)).astype(int)]
        index.train(np.ascontiguousarray(train))
        index.nprobe = PROBES
    index.add(np.ascontiguousarray(vectors))
    _, found = index.search(np.ascontiguousarray(vectors), k + 1)
    found = found.astype(np.int64)
    own = found == np.arange(n)[:, None]
    # drop the model itself (or the last column where it was not returned)
    keep = np.where(own.any(axis=1, keepdims=True), ~own, np.arange(k + 1)[None, :] < k)
    return found[keep].reshape(n, k)


def candidate_pairs(features: GroupFeatures, k: int, threads: int = 1) -> CandidatePairs:
    """Unique nearest-neighbour pairs with their exact per-matrix squared distances."""
    n = features.n
    nbrs = nearest_neighbours(model_vectors(features), k, threads)
    rows = np.repeat(np.arange(n, dtype=np.int64), nbrs.shape[1])
    cols = nbrs.reshape(-1)
    ok = (cols >= 0) & (cols != rows)
    lo, hi = np.minimum(rows[ok], cols[ok]), np.maximum(rows[ok], cols[ok])
    keys = np.unique(lo * n + hi)
    i, j = keys // n, keys % n
    return CandidatePairs(i, j, exact_sq_dists(features, i, j))


def exact_sq_dists(features: GroupFeatures, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """float64 [E, M]: ||S(W_i) - S(W_j)||^2 per matrix, from the full sketches (the
    difference first: no cancellation for casts, which differ by ~1e-3 relative). In
    the sketches' own precision: float32 sketches give each distance to ~1e-7 relative,
    far inside every test made on it (casts' rounding bounds are >= 2^-11)."""
    out = np.zeros((i.size, len(features.sketches)))
    for q, s in enumerate(features.sketches):
        for start in range(0, i.size, PAIR_BLOCK):
            a, b = i[start:start + PAIR_BLOCK], j[start:start + PAIR_BLOCK]
            diff = s[a] - s[b]
            out[start:start + PAIR_BLOCK, q] = np.einsum("ij,ij->i", diff, diff)
    return out


def pair_relative_distance(features: GroupFeatures, pairs: CandidatePairs) -> np.ndarray:
    """[E]: distance.relative_distance for the candidate pairs only."""
    numel = features.numel
    diff = (pairs.sq / numel[None, :]).sum(axis=1)
    norms = (features.sq_norms / numel[None, :]).sum(axis=1)
    scale = np.sqrt(np.maximum((norms[pairs.i] + norms[pairs.j]) / 2.0, 1e-300))
    return np.sqrt(diff) / scale


def pair_centred_cosines(features: GroupFeatures, pairs: CandidatePairs) -> np.ndarray:
    """[E]: distance.centred_cosines for the candidate pairs only."""
    numel = features.numel  # [M]
    ni, nj = features.sq_norms[pairs.i], features.sq_norms[pairs.j]  # [E, M]
    means = features.means if features.means is not None else np.zeros_like(
        features.sq_norms)
    mi, mj = means[pairs.i], means[pairs.j]
    inner = (ni + nj - pairs.sq) / 2.0 - numel[None, :] * mi * mj
    vi = np.maximum(ni - numel[None, :] * mi**2, 1e-300)
    vj = np.maximum(nj - numel[None, :] * mj**2, 1e-300)
    cos = (inner / np.sqrt(vi * vj)).sum(axis=1) / max(numel.size, 1)
    return np.clip(cos, -1.0, 1.0)


def pair_placement_distance(features: GroupFeatures, pairs: CandidatePairs) -> np.ndarray:
    """[E]: distance.placement_distance (RMS over matrices of the chord between
    unit-normalised weights) for the candidate pairs only."""
    ni, nj = features.sq_norms[pairs.i], features.sq_norms[pairs.j]  # [E, M]
    inner = (ni + nj - pairs.sq) / 2.0
    chord_sq = np.maximum(2.0 - 2.0 * inner / np.sqrt(np.maximum(ni * nj, 1e-300)), 0.0)
    return np.sqrt(chord_sq.mean(axis=1))
