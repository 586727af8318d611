"""Which models hold a value bit for bit at one matrix's sampled coordinates: an exact-
equality index over a component's coordinate samples (lineage.fingerprint.sample).

Built once per matrix and component, it answers "which models share how many of m's
sampled non-zero values" at the cost of the equal-value groups m belongs to, where
comparing m with every model costs n sample rows per model, n^2 per component.

Two reductions keep those groups small:
  contents  models with the same content hash and the same sample row are one
            content: a frozen matrix, kept by most of a family, is one row here, not a
            group of hundreds at every coordinate. The caller never counts models whose
            hash equals m's (same tensor), so m's own hash is left out by hash id.
  runs      per coordinate, the contents sorted by the value's bit pattern; a run is a
            maximal set of equal patterns. Fine-tunes change every weight, so most runs
            hold one content and are dropped; zero and NaN runs are dropped too (a zero
            of m never counts, NaN equals nothing).

A model that shares values with a large part of the component (a bf16 family whose small
updates round away, partly frozen rows) makes its runs long; where gathering them would
touch more than DENSE_SHARE of the content matrix, comparing m's row with every content
row is cheaper and gives the same counts (still over contents, not models). Models of
one content ask one question: its answer is kept (within O(n) memory per matrix).
"""

from __future__ import annotations

import numpy as np

DENSE_SHARE = 1 / 16  # a gathered member costs ~10-20x one element of a vectorised
# row comparison (repeat, gather, sort); above this share of the content matrix the
# comparison is the cheaper way to the same counts. A cost constant, not a decision.
CACHED_PER_MODEL = 8  # answers kept per matrix: memory O(n), never n^2


class MatrixIndex:
    """One matrix of a component: `values` [n, s] (the samples, float), `hashes` [n]
    (content hashes, compared with ==), `ok` bool [n] (the model has this sample)."""

    def __init__(self, values: np.ndarray, hashes: np.ndarray, ok: np.ndarray) -> None:
        self.hash_id = _hash_ids(hashes)  # int64 [n]: equal ids <=> equal hashes
        rows = np.flatnonzero(ok)
        content_of_row, first = _contents(values[rows], self.hash_id[rows])
        self.content = np.full(len(hashes), -1, dtype=np.int64)  # model -> content
        self.content[rows] = content_of_row
        self.values = np.ascontiguousarray(values[rows[first]])  # [C, s]
        self.content_hash = self.hash_id[rows[first]]  # [C]
        by_content = np.argsort(content_of_row, kind="stable")
        self.members = rows[by_content]  # models, grouped by content, ascending
        self.member_start = np.searchsorted(content_of_row[by_content],
                                            np.arange(len(first) + 1))
        self._build_runs()
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._cached = 0  # models held in _cache

    def _build_runs(self) -> None:
        """Per coordinate, the contents grouped by equal bit patterns; only runs of two
        or more valid (non-zero, non-NaN) values are kept."""
        count, size = self.values.shape
        ordered, order = _sorted_columns(np.ascontiguousarray(_bits(self.values).T))
        new = np.ones((size, count), dtype=bool)
        new[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
        run = np.cumsum(new.ravel()) - 1
        length = np.bincount(run) if run.size else np.zeros(0, dtype=np.int64)
        value = ordered.view(self.values.dtype).ravel()
        keep = (length[run] >= 2) & (value != 0) & ~np.isnan(value)
        self.entry_content = order.ravel()[keep]  # contents, run after run
        kept = run[keep]  # ascending: renumbered 0, 1, ... in order
        entry_run = np.cumsum(np.concatenate([kept[:1] >= 0, kept[1:] != kept[:-1]])) - 1
        self.run_start = np.searchsorted(entry_run, np.arange(entry_run.max(initial=-1) + 2))
        by_content = np.argsort(self.entry_content, kind="stable")
        self.content_runs = entry_run[by_content]  # runs, content after content
        self.content_run_start = np.searchsorted(self.entry_content[by_content],
                                                 np.arange(count + 1))

    def shared(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        """(models, counts): every model whose hash differs from m's and whose sample
        holds `count` of m's non-zero values bit for bit (count > 0), ascending.
        m must have this sample. The answer is its content's: kept for contents of
        several models (a frozen matrix: hundreds ask the same question), up to
        CACHED_PER_MODEL entries per model in all."""
        c = int(self.content[m])
        if c in self._cache:
            return self._cache[c]
        found = self._shared(c)
        if (self.member_start[c + 1] - self.member_start[c] > 1
                and self._cached + found[0].size <= CACHED_PER_MODEL * self.content.size):
            self._cache[c] = found
            self._cached += found[0].size
        return found

    def _shared(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        runs = self.content_runs[self.content_run_start[c]:self.content_run_start[c + 1]]
        if runs.size == 0:  # a fine-tune's usual answer: no value shared
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        lengths = self.run_start[runs + 1] - self.run_start[runs]
        if lengths.sum() > DENSE_SHARE * self.values.size:
            contents, counts = self._compare(c)
        else:
            found = self.entry_content[_ranges(self.run_start[runs], lengths)]
            found = found[self.content_hash[found] != self.content_hash[c]]
            contents, counts = np.unique(found, return_counts=True)
        sizes = self.member_start[contents + 1] - self.member_start[contents]
        models = self.members[_ranges(self.member_start[contents], sizes)]
        return models, np.repeat(counts, sizes)

    def _compare(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        """(contents, counts) by comparing content c's row with every content row."""
        mine = self.values[c]
        same = ((self.values == mine) & (mine != 0)).sum(axis=1)
        same[self.content_hash == self.content_hash[c]] = 0
        contents = np.flatnonzero(same)
        return contents, same[contents]


def _hash_ids(hashes: np.ndarray) -> np.ndarray:
    ids: dict = {}
    return np.array([ids.setdefault(h, len(ids)) for h in hashes], dtype=np.int64)


def _bits(values: np.ndarray) -> np.ndarray:
    """The values' bit patterns as unsigned integers of the same width."""
    return values.view(np.dtype(f"u{values.dtype.itemsize}"))


def _sorted_columns(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each row of `bits` [s, C] sorted, the column each sorted entry came from). The
    column is packed into the low bits of a 64-bit key where it fits: a plain sort of
    those is ~3x faster than a stable argsort."""
    width = max(bits.shape[1] - 1, 1).bit_length()
    if bits.dtype.itemsize * 8 + width > 64:
        order = np.argsort(bits, axis=1, kind="stable")
        return np.take_along_axis(bits, order, axis=1), order
    packed = bits.astype(np.uint64) << np.uint64(width)
    packed |= np.arange(bits.shape[1], dtype=np.uint64)
    packed.sort(axis=1)
    order = (packed & np.uint64((1 << width) - 1)).astype(np.int64)
    return (packed >> np.uint64(width)).astype(bits.dtype), order


def _contents(values: np.ndarray, hash_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(content id per row, first row of each content): rows equal in hash id and in
    every bit of the sample are one content."""
    if values.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    raw = np.concatenate([hash_id[:, None].astype("<i8").view(np.uint8),
                          np.ascontiguousarray(_bits(values)).view(np.uint8)], axis=1)
    key = np.ascontiguousarray(raw).view(np.dtype((np.void, raw.shape[1]))).ravel()
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64), first


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenation of range(start, start + length) for each pair."""
    total = int(lengths.sum())
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(total)
