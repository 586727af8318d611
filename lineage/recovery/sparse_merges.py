"""Sparse merges (TIES, DARE): found on the fingerprints' coordinate samples, where
they are exact.

TIES trims each parent's task vector t_k = p_k - b to its largest entries, elects a sign
per weight and averages the agreeing kept entries; DARE drops entries at random and
rescales. Either way the child's delta d = c - b is exactly zero wherever every parent's
entry was dropped (most weights at the usual densities), and elsewhere a fixed multiple
of one parent's task vector (where only that one survived) or of a sum of a few. A
linear fit on sketches explains such a child only partly (~0.65); on weights it is
exact, and the fingerprint keeps raw weights at a fixed pseudo-random sample of
coordinates per matrix, the same for every model of an architecture
(lineage.fingerprint.sample; why its size is enough is argued there). The checks read
those samples, never the weights:

  base    the near model c shares the most bit-identical weights with (a fine-tune
          changes nearly every weight; a sparse merge leaves most at its base);
  parents models k for which d / t_k takes one value on a good share of d's support;
  accept  d's support is explained, to storage rounding, by fixed multiples of sums of
          >= 2 parents' task vectors.

Unrelated weights hit one ratio to ~1e-4 only by chance, so a root never reads as a
merge of its children. The samples of the first PROBES changed matrices are
read (a few thousand coordinates on d's support; more adds time, not decisions).
Tolerances follow the child's storage dtype: 8 unit roundoffs of |c| (2^-21 for F32).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from lineage.recovery.features import GroupFeatures
from lineage.recovery.merges import MergeFit

PROBES = 8  # changed matrices whose samples are read per pair
BASES = 8  # nearest models tried as the base
MIN_UNCHANGED = 0.1  # share of bit-identical weights that makes a pair a candidate
MIN_PARENT_SHARE = 0.05  # share of d's support one parent must explain alone
MAX_PARENTS = 4
MIN_COVERAGE = 0.95  # share of d's support the parents must explain
ROUNDING_MARGIN = 8.0  # tolerance in unit roundoffs of c's dtype (2^-21 for float32)
INFORMATIVE = 2.0**10  # |d| must exceed this many tolerances to count
BIN = 2.0**-12  # log2 bin width for the modal ratio


class _Probe:
    """The coordinate samples of one component's matrices, as sparse-merge
    checks read them: per model, the concatenation over the chosen matrices."""

    def __init__(self, features: GroupFeatures) -> None:
        self.f = features
        self.names = list(range(len(features.names)))  # every matrix, square or not

    def has(self, i: int, qs: list[int]) -> bool:
        return bool(self.f.sample_ok[i, qs].all())

    def changed(self, i: int, j: int) -> list[int]:
        h, ok = self.f.hashes, self.f.sample_ok
        return [q for q in self.names
                if h[i, q] != h[j, q] and ok[i, q] and ok[j, q]][:PROBES]

    def flat(self, i: int, qs: list[int]) -> np.ndarray:
        return np.concatenate([self.f.samples[q][i].astype(np.float64) for q in qs])

    def tolerance(self, i: int, qs: list[int], c: np.ndarray) -> np.ndarray:
        """|c| times ROUNDING_MARGIN unit roundoffs of each matrix's storage dtype."""
        u = np.concatenate([np.full(self.f.samples[q].shape[1], self.f.roundoff[i, q])
                            for q in qs])
        return ROUNDING_MARGIN * u * np.abs(c)


def _mode_ratio(d: np.ndarray, u: np.ndarray) -> float | None:
    """The most common value of d / u (u != 0), to ~1e-4 relative; None if none."""
    ok = u != 0
    if not ok.any():
        return None
    r = d[ok] / u[ok]
    key = np.round(np.log2(np.abs(r)) / BIN).astype(np.int64) * 2 + (r < 0)
    values, counts = np.unique(key, return_counts=True)
    top = values[np.argmax(counts)]
    near = np.abs(key - top) <= 2  # the mode may straddle two bins of one sign
    return float(np.median(r[near]))


def _matches(d: np.ndarray, u: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """bool: d is a fixed multiple of u to storage rounding (the modal multiple)."""
    scale = _mode_ratio(d, u)
    if scale is None:
        return np.zeros_like(d, dtype=bool)
    return (u != 0) & (np.abs(d - scale * u) <= tol)


def _coverage(d: np.ndarray, taus: list[np.ndarray], tol: np.ndarray) -> float:
    """Share of d explained by fixed multiples of sums of subsets of `taus`, greedily
    from single parents up (TIES: a lone survivor, then the agreeing means)."""
    left = np.ones_like(d, dtype=bool)
    for size in range(1, len(taus) + 1):
        for subset in combinations(range(len(taus)), size):
            u = np.sum([taus[k] for k in subset], axis=0)
            hit = np.zeros_like(left)
            hit[left] = _matches(d[left], u[left], tol[left])
            if hit.sum() >= MIN_PARENT_SHARE * d.size / 4:
                left &= ~hit
    return 1.0 - left.mean()


def fit_sparse_merge(probe: _Probe, child: int, base: int) -> MergeFit | None:
    """The sparse merge explaining `child` over `base`, or None."""
    qs = probe.changed(child, base)
    if not qs:
        return None
    c, b = probe.flat(child, qs), probe.flat(base, qs)
    d = c - b
    tol = probe.tolerance(child, qs, c)
    support = np.abs(d) > INFORMATIVE * tol
    if support.sum() < 64:
        return None
    shares = {}
    for k in range(probe.f.n):
        if k not in (child, base) and probe.has(k, qs):
            t = probe.flat(k, qs) - b
            shares[k] = _matches(d[support], t[support], tol[support]).mean()
    parents = sorted((k for k, s in shares.items() if s >= MIN_PARENT_SHARE),
                     key=lambda k: -shares[k])[:MAX_PARENTS]
    if len(parents) < 2:
        return None
    taus = {k: (probe.flat(k, qs) - b)[support] for k in parents}
    parents, cover = _fewest(d[support], taus, tol[support])
    if len(parents) < 2 or cover < MIN_COVERAGE:
        return None
    return MergeFit(child, base, parents, [round(float(shares[k]), 4) for k in parents],
                    residual=float(1.0 - cover),
                    single_residual=float(1.0 - max(shares.values())),
                    rule="sparse (TIES/DARE) on coordinate samples; coefficients: share "
                         "explained alone")


def _fewest(d: np.ndarray, taus: dict[int, np.ndarray], tol: np.ndarray
            ) -> tuple[list[int], float]:
    """Drop parents the others already explain (a linear merge of the same parents
    equals the TIES merge wherever both survived and agree), weakest first."""
    keep = list(taus)
    cover = _coverage(d, [taus[k] for k in keep], tol)
    for k in reversed(list(taus)):
        rest = [j for j in keep if j != k]
        if len(rest) >= 2:
            without = _coverage(d, [taus[j] for j in rest], tol)
            if without >= MIN_COVERAGE:
                keep, cover = rest, without
    return keep, cover


def unchanged_fraction(probe: _Probe, i: int, j: int) -> float:
    qs = probe.changed(i, j)
    return float((probe.flat(i, qs) == probe.flat(j, qs)).mean()) if qs else 0.0


def has_sample_evidence(features: GroupFeatures) -> bool:
    return features.sample_ok is not None and bool(features.sample_ok.any())


def detect_sparse_merges(
    features: GroupFeatures, dist: np.ndarray, skip: set[int]
) -> list[MergeFit]:
    """Accepted sparse merges of one component; `dist` [n, n] picks the bases tried,
    `skip` holds children already explained (linear merges)."""
    if features.n < 4 or not has_sample_evidence(features):
        return []
    probe = _Probe(features)
    found = []
    for m in range(features.n):
        if m in skip:
            continue
        near = [int(b) for b in np.argsort(dist[m]) if b != m][:BASES]
        same = {b: unchanged_fraction(probe, m, b) for b in near}
        base = max(same, key=same.get)
        if same[base] >= MIN_UNCHANGED:
            fit = fit_sparse_merge(probe, m, base)
            if fit is not None:
                found.append(fit)
    return found
