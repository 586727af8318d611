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

  base    of the models sharing bit-identical weights with c (a fine-tune changes
          every weight; a sparse merge leaves at its base every weight all parents
          dropped, (1 - p)^K at density p, and at a parent those only it kept), the
          largest share whose reading passes the acceptance test;
  parents models k for which d / t_k takes one value, per matrix, on at least
          MIN_MATCHES coordinates (where k alone survived). Per matrix: DARE rescales
          each parent's survivors per tensor (mergekit matches the l1 norm, so the
          multiple is near 1/p but not equal across tensors or parents);
  accept  d's support is explained, to storage rounding, either by fixed multiples of
          sums of >= 2 parents' task vectors (TIES: the mean of the agreeing survivors)
          or by sums of each survivor's own multiple (DARE, linear or with sign
          election: at density p most weights keep several parents, each at its own
          rescale).

Unrelated weights hit one ratio to ~1e-4 only by chance, so a root never reads as a
merge of its children. The samples of the first PROBES changed matrices are
read (a few thousand coordinates on d's support; more adds time, not decisions).
Tolerances follow the child's storage dtype: 8 unit roundoffs of |c| (2^-21 for F32).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from itertools import combinations

import numpy as np

from lineage.recovery.equal_values import MatrixIndex
from lineage.recovery.features import GroupFeatures
from lineage.recovery.merges import MergeFit, drop_weakest

PROBES = 8  # changed matrices whose samples are read per pair
BASES = 8  # models sharing the most weights with a child tried as its base
MIN_MATCHES = 16  # coordinates at one ratio (to ~1e-6) that make a model a candidate
# parent: unrelated weights land on one ratio to rounding by chance with probability
# ~1e-6 each, so 16 such coincidences in a few thousand coordinates do not happen
MIN_SUBSET_SHARE = 0.05 / 4  # share of d's support a subset sum must explain to count:
# the previous release's hand-set screen (0.05 of a quarter of d), kept as it was, not derived
MAX_PARENTS = 4  # inputs of one merge the candidate pool is sized for
STAND_INS = 2  # and room for as many other merges of the same parents: each equals a
# parent bit for bit wherever that parent alone survived in both, so it matches the
# child's delta as often as a true parent does, and a pool of MAX_PARENTS alone left a
# true parent out (held-out 1018/0: two sibling DARE merges took the places of a
# parent, and the merge was read as a fine-tune); _fewest drops the stand-ins again.
# A search width, not a decision: 2 is the number of stand-ins met there, and what is
# accepted is still decided by MIN_COVERAGE and _fewest (checked on the fresh draws
# 1021 and 1022, never developed on: merge precision 1.000 on both)
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
        self._indexes: dict[int, MatrixIndex] = {}

    def index(self, q: int) -> MatrixIndex:
        """Matrix q's exact-equality index, built on first use, once per component."""
        if q not in self._indexes:
            f = self.f
            self._indexes[q] = MatrixIndex(f.samples[q], f.hashes[:, q], f.sample_ok[:, q])
        return self._indexes[q]

    def has(self, i: int, qs: list[int]) -> bool:
        return bool(self.f.sample_ok[i, qs].all())

    def changed(self, i: int, j: int) -> list[int]:
        h, ok = self.f.hashes, self.f.sample_ok
        return [q for q in self.names
                if h[i, q] != h[j, q] and ok[i, q] and ok[j, q]][:PROBES]

    def segments(self, qs: list[int]) -> list[slice]:
        """Where each matrix's sample sits in `flat`."""
        out, start = [], 0
        for q in qs:
            size = self.f.samples[q].shape[1]
            out.append(slice(start, start + size))
            start += size
        return out

    def flat(self, i: int, qs: list[int]) -> np.ndarray:
        return np.concatenate([self.f.samples[q][i].astype(np.float64) for q in qs])

    def unit_roundoff(self, i: int, qs: list[int]) -> np.ndarray:
        """Per sampled coordinate of `flat`, model i's unit roundoff in that matrix."""
        return np.concatenate([np.full(self.f.samples[q].shape[1], self.f.roundoff[i, q])
                               for q in qs])


def _mode_ratio(d: np.ndarray, u: np.ndarray) -> float | None:
    """The most common value of d / u (u != 0), to ~1e-4 relative; None if none."""
    ok = (u != 0) & (d != 0)  # a zero ratio has no log (an unmoved weight)
    if not ok.any():
        return None
    r = d[ok] / u[ok]
    key = np.round(np.log2(np.abs(r)) / BIN).astype(np.int64) * 2 + (r < 0)
    values, counts = np.unique(key, return_counts=True)
    top = values[np.argmax(counts)]
    # the mode may straddle two bins of one sign (the key's last bit is the sign)
    near = (key % 2 == top % 2) & (np.abs(key // 2 - top // 2) <= 1)
    return float(np.median(r[near]))


def _matches(d: np.ndarray, u: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """bool: d is a fixed multiple of u to storage rounding (the modal multiple)."""
    scale = _mode_ratio(d, u)
    if scale is None:
        return np.zeros_like(d, dtype=bool)
    return (u != 0) & (np.abs(d - scale * u) <= tol)


def _segment_ratios(d: np.ndarray, u: np.ndarray, tol: np.ndarray, support: np.ndarray,
                    segs: list[slice], common: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(per coordinate: the modal ratio d / u of its matrix, 0 where none; bool: d is
    that multiple of u to rounding), each matrix on its own support. With `common`
    (_common_direction), the mode of the other coordinates replaces the plain mode where
    it explains more of them: where the candidates share a direction over a whole matrix
    (one parent alone trained it), the common coordinates are all there is."""
    ratio = np.zeros_like(d)
    hit = np.zeros_like(d, dtype=bool)
    for seg in segs:
        on = np.flatnonzero(support[seg]) + seg.start
        if on.size == 0:
            continue
        scale = _mode_ratio(d[on], u[on])
        if common is not None:
            scale = _off_common_mode(d, u, tol, on[~common[on]], scale)
        if scale is None:
            continue
        ratio[seg] = scale
        hit[on] = (u[on] != 0) & (np.abs(d[on] - scale * u[on]) <= tol[on])
    return ratio, hit


def _off_common_mode(d: np.ndarray, u: np.ndarray, tol: np.ndarray, rest: np.ndarray,
                     plain: float | None) -> float | None:
    """The mode of d / u over `rest` if it explains more of `rest` than `plain` does,
    and at least MIN_MATCHES of them (as a parent's own evidence must)."""
    if rest.size < MIN_MATCHES:
        return plain
    own = _mode_ratio(d[rest], u[rest])

    def explained(scale: float | None) -> int:
        if scale is None:
            return -1
        return int((np.abs(d[rest] - scale * u[rest]) <= tol[rest]).sum())

    mine = explained(own)
    return own if mine >= MIN_MATCHES and mine > explained(plain) else plain


def _popular(d: np.ndarray, t: np.ndarray, tol: np.ndarray, support: np.ndarray,
             segs: list[slice]) -> np.ndarray:
    """bool: supported coordinates where d is, in its matrix, one of the multiples of t
    that at least MIN_MATCHES coordinates share (the modal multiple, then the next
    mode of the rest, and so on)."""
    out = np.zeros_like(d, dtype=bool)
    for seg in segs:
        left = np.flatnonzero(support[seg]) + seg.start
        while left.size >= MIN_MATCHES:
            hit = _matches(d[left], t[left], tol[left])
            if hit.sum() < MIN_MATCHES:
                break
            out[left[hit]] = True
            left = left[~hit]
    return out


def _common_direction(popular: Iterable[np.ndarray]) -> np.ndarray:
    """bool: coordinates where the child's delta sits at a shared multiple (_popular) of
    two or more candidates' task vectors at once. A lone survivor's coordinate is a
    multiple of its own parent's task vector and of no other's (the dropped parents'
    entries are unrelated to it); where every model moved along one common direction, d
    is a multiple of each candidate's task vector there (one multiple per survivor set)
    and matches them all. That happens where training had no gradient: weight decay
    alone shrank the weight (an embedding row of a token or position the task never
    uses), by one factor per fine-tune, so every task vector there is a multiple of the
    shared weights. Such rows say nothing about which parent survived alone, yet where
    they are many their multiple outvotes the lone survivors as the modal ratio (a BERT
    position-embedding matrix: 1.28 read where DARE's rescale was 0.75), and the merge
    was missed. The modal ratios are read without them."""
    count: np.ndarray | None = None
    for mask in popular:  # summed as they come: one candidate's mask at a time
        count = mask.astype(np.int32) if count is None else count + mask
    return np.zeros(0, dtype=bool) if count is None else count >= 2


def _decay_only(probe: _Probe, qs: list[int], b: np.ndarray, tol: np.ndarray,
                support: np.ndarray, segs: list[slice], others: list[int]) -> np.ndarray:
    """bool: coordinates where two or more candidates' task vectors are, in their
    matrix, a shared multiple of the base's own weights (_popular with the base as the
    direction): rows that weight decay alone moved in every fine-tune (the embedding of
    a token no task uses), each by its own factor. There every candidate's task vector
    points the same way, so the child's delta says nothing about which parents
    survived, and the acceptance test leaves them out. Counted, they failed it: at a
    high density the survivor sets that hold every parent outnumber the lone survivors
    that carry a parent's ratio, so a matrix made mostly of such rows has no readable
    ratio, and its coordinates went unexplained (held-out 1021/9: a DARE merge at
    density 0.89, its embedding matrix 66 % unexplained, 0.94 of the whole change
    explained against the 0.95 asked, and the merge missed)."""
    return _common_direction(
        _popular(probe.flat(k, qs) - b, b, tol, support, segs) for k in others)


def _additive_coverage(d: np.ndarray, taus: list[np.ndarray], ratios: list[np.ndarray],
                       tol: np.ndarray, u: np.ndarray) -> np.ndarray:
    """bool: d equals the sum of some parents' own multiples (DARE's survivors, each
    rescaled per tensor), to the rounding of that sum and of d's storage."""
    terms = [r * t for r, t in zip(ratios, taus, strict=True)]
    hit = np.zeros_like(d, dtype=bool)
    for size in range(1, len(terms) + 1):
        for subset in combinations(range(len(terms)), size):
            total = np.sum([terms[k] for k in subset], axis=0)
            spread = np.sum([np.abs(terms[k]) for k in subset], axis=0)
            hit |= np.abs(d - total) <= tol + ROUNDING_MARGIN * u * spread
    return hit


def _coverage(d: np.ndarray, taus: list[np.ndarray], tol: np.ndarray) -> float:
    """Share of d explained by fixed multiples of sums of subsets of `taus`, greedily
    from single parents up (TIES: a lone survivor, then the agreeing means)."""
    left = np.ones_like(d, dtype=bool)
    for size in range(1, len(taus) + 1):
        for subset in combinations(range(len(taus)), size):
            u = np.sum([taus[k] for k in subset], axis=0)
            hit = np.zeros_like(left)
            hit[left] = _matches(d[left], u[left], tol[left])
            if hit.sum() >= MIN_SUBSET_SHARE * d.size:
                left &= ~hit
    return ~left


def fit_sparse_merge(probe: _Probe, child: int, base: int) -> MergeFit | None:
    """The sparse merge explaining `child` over `base`, or None."""
    qs = probe.changed(child, base)
    if not qs:
        return None
    c, b = probe.flat(child, qs), probe.flat(base, qs)
    d = c - b
    u = probe.unit_roundoff(child, qs)
    tol = ROUNDING_MARGIN * u * np.abs(c)
    support = np.abs(d) > INFORMATIVE * tol
    if support.sum() < 64:
        return None
    segs = probe.segments(qs)
    others = [k for k in range(probe.f.n) if k not in (child, base) and probe.has(k, qs)]
    # one candidate's task vector at a time: a component's thousands of candidates
    # never sit in memory together
    common = _common_direction(
        _popular(d, probe.flat(k, qs) - b, tol, support, segs) for k in others)
    # the acceptance test reads the coordinates that say which parents survived
    informative = support & ~_decay_only(probe, qs, b, tol, support, segs, others)
    taus, ratios, shares = {}, {}, {}
    for k in others:
        t = probe.flat(k, qs) - b
        ratio, hit = (_segment_ratios(d, t, tol, support, segs, common)
                      if common.any() else _segment_ratios(d, t, tol, support, segs))
        if hit.sum() >= MIN_MATCHES:
            taus[k], ratios[k] = t[informative], ratio[informative]
            shares[k] = float(hit[support].mean())
    parents = sorted(shares, key=lambda k: -shares[k])[:MAX_PARENTS + STAND_INS]
    if len(parents) < 2 or informative.sum() < 64 or _one_line(shares):
        return None
    ev = _Evidence(d[informative], tol[informative], u[informative], taus, ratios)
    parents, cover = _fewest(ev, parents)
    if len(parents) < 2 or cover < MIN_COVERAGE:
        return None
    return MergeFit(child, base, parents, [round(shares[k], 4) for k in parents],
                    residual=float(1.0 - cover),
                    single_residual=float(1.0 - max(shares.values())),
                    rule="sparse (TIES/DARE) on coordinate samples; coefficients: share "
                         "explained alone")


def _one_line(shares: dict[int, float]) -> bool:
    """One candidate alone explains d, at one multiple of its task vector per matrix,
    on as much of d's support as the acceptance test asks of all parents: the child
    lies on the line from the base through that model, matrix by matrix (an
    interpolation such as SLERP's, a rescaled copy), which is a linear relation, not a
    sparse merge. TIES and DARE keep each parent alone on only p (1 - p)^(K - 1) of the
    weights at density p, so no parent of a sparse merge of K >= 2 comes near; the
    other "parents" of such a reading were there because a merge needs two (held-out
    1023/4: a LoRA child read at 0.98 as a sparse merge over the SLERP of it and its
    sibling, the sibling explaining 0.999 of it alone, a second merge 0.002)."""
    return max(shares.values(), default=0.0) >= MIN_COVERAGE


class _Evidence:
    """d on its support, with each candidate parent's task vector and per-matrix ratio."""

    def __init__(self, d, tol, u, taus, ratios) -> None:  # noqa: ANN001
        self.d, self.tol, self.u, self.taus, self.ratios = d, tol, u, taus, ratios

    def coverage(self, parents: list[int]) -> float:
        taus = [self.taus[k] for k in parents]
        ties = _coverage(self.d, taus, self.tol)
        dare = _additive_coverage(self.d, taus, [self.ratios[k] for k in parents],
                                  self.tol, self.u)
        return float((ties | dare).mean())


def _fewest(ev: _Evidence, parents: list[int]) -> tuple[list[int], float]:
    """Drop parents the others already explain (a linear merge of the same parents
    equals the TIES merge wherever both survived and agree), weakest first."""
    def still_covered(rest: list[int]) -> float | None:
        cover = ev.coverage(rest)
        return cover if cover >= MIN_COVERAGE else None

    return drop_weakest(parents, reversed(parents), ev.coverage(parents), still_covered)


def has_sample_evidence(features: GroupFeatures) -> bool:
    return features.sample_ok is not None and bool(features.sample_ok.any())


def detect_sparse_merges(features: GroupFeatures, skip: set[int]) -> list[MergeFit]:
    """Accepted sparse merges of one component; `skip` holds children already
    explained (linear merges). The bases tried are the models sharing bit-identical
    weights with the child, whatever their distance (shared_weights)."""
    if features.n < 4 or not has_sample_evidence(features):
        return []
    probe = _Probe(features)
    found = []
    for m in range(features.n):
        if m not in skip:
            found += _accepted_bases(probe, m, shared_weights(probe, m))
    return found


def shared_weights(probe: _Probe, m: int) -> dict[int, float]:
    """Per other model: the share of m's sampled non-zero weights it holds bit for bit,
    over the first PROBES matrices where their contents differ; the BASES largest
    shares of at least MIN_MATCHES weights (fewer coincide by chance: float32 values
    meet bit for bit at ~1e-7 odds, more often near zero). A fine-tune changes every
    weight, so only a sparse merge's base (every weight all parents dropped) and its
    lone-surviving parents share any; the base is not always near the merge (DARE's
    1/p rescale moves the merge away; a wide family puts many siblings nearer), so
    every model is screened, through the component's exact-equality index
    (equal_values.py: the cost of the equal-value groups m is in, not n). Largest
    share first, ties by index."""
    f = probe.f
    used = [q for q in probe.names if f.sample_ok[m, q]][:PROBES]
    found = [probe.index(q).shared(m) for q in used]
    if not any(k.size for k, _ in found):  # a fine-tune's usual answer
        return {}
    models, inverse = np.unique(np.concatenate([k for k, _ in found]), return_inverse=True)
    equal = np.bincount(inverse.reshape(-1), weights=np.concatenate([c for _, c in found]),
                        minlength=models.size)  # integer counts, exact in float64
    keep = equal >= MIN_MATCHES  # a few equal weights happen by chance
    models, equal = models[keep], equal[keep]
    seen = np.zeros(models.size)
    for q in used:
        ids = probe.index(q).hash_id
        differs = (ids[models] != ids[m]) & f.sample_ok[models, q]
        seen += np.where(differs, f.samples[q].shape[1], 0)
    share = equal / seen  # seen > 0: a counted model differs in some matrix read
    top = np.lexsort((models, -share))[:BASES]
    return {int(models[k]): float(share[k]) for k in top}


def _accepted_bases(probe: _Probe, child: int, same: dict[int, float]) -> list[MergeFit]:
    """The first accepted fit, trying as the base the models of `same`
    (shared_weights: every model sharing bit-identical weights with the child, the
    largest share first) in order, then every later base that is also accepted, as
    fallbacks. The largest share
    alone is not always the base: where one parent alone survived, a TIES or DARE merge
    equals that parent bit for bit, p (1 - p) of the weights for two parents at density
    p, more than the (1 - p)^2 left at the base once p > 1/2. Read over a parent, the
    merge's difference keeps the coordinates where both parents survived and agreed
    (half their sum, which no single ratio of the other task vectors gives), so that
    reading fails the acceptance test and the next share is tried.

    The first accepted base can still be wrong: a merge M3 of M2 (and others) equals M2
    bit for bit wherever M2 alone survived, so M2 read over M3 can pass, and that reading
    contradicts M3's own (each would be the other's ancestor). choose_explanations keeps
    the first reading unless it contradicts one kept, and then a fallback."""
    fits = []
    for base in same:
        fit = fit_sparse_merge(probe, child, base)
        if fit is not None:
            fits.append(fit if not fits else replace(fit, fallback=True))
    return fits
