"""The sparse-merge base screen (sparse_merges.shared_weights) on one large component:
through the exact-equality index (equal_values.py) against the previous release's
comparison of every model with every model, in the same run.

    python bench/shared_weights_bench.py [--models N[,N...]] [--reference R] [--samples S]

A component of N models as the fingerprint stores them (8 matrices, S sampled float32
values each, default 1,500): fine-tunes of one base (every weight moved, 1 in 4 with its
first matrix frozen: the base's content and hash), and 1 in 50 a TIES/DARE-like merge
(each weight the base's, a parent's or new). Prints the index's build time, its time per
model over all N models, the reference's time per model over R models (default 200; it
costs n per model), their ratio and the whole component's screen both ways (the
reference extrapolated from R models), after checking that both give the same dict for
those R models. Timings on a shared machine are noisy; the ratio is the steadier number.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lineage.recovery.features import GroupFeatures  # noqa: E402
from lineage.recovery.sparse_merges import _Probe, shared_weights  # noqa: E402
from tests.recovery.test_shared_weights_index import _reference_shared_weights  # noqa: E402

MATRICES = 8


def component(n: int, size: int, seed: int = 0) -> GroupFeatures:
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((MATRICES, size)).astype(np.float32)
    samples = [np.empty((n, size), dtype=np.float32) for _ in range(MATRICES)]
    hashes = np.empty((n, MATRICES), dtype=object)
    for q in range(MATRICES):
        samples[q][0], hashes[0, q] = base[q], "base"
    for i in range(1, n):
        merge = i % 50 == 0
        for q in range(MATRICES):
            frozen = q == 0 and i % 4 == 0 and not merge
            row = (base[q] + 0.05 * rng.standard_normal(size)).astype(np.float32)
            if merge:
                parent = samples[q][int(rng.integers(1, i))]
                pick = rng.random(size)
                row = np.where(pick < 0.4, base[q], np.where(pick < 0.7, parent, row))
            elif frozen:
                row = base[q]
            samples[q][i] = row
            hashes[i, q] = "base" if frozen else f"m{i}/{q}"
    return GroupFeatures(
        ids=[f"m{i}" for i in range(n)], names=[f"w{q}" for q in range(MATRICES)],
        shapes=[(size, 1)] * MATRICES, sketches=[np.zeros((n, 1))] * MATRICES,
        kurtosis=np.zeros((n, MATRICES)), sq_norms=np.ones((n, MATRICES)),
        hashes=hashes, samples=samples, sample_ok=np.ones((n, MATRICES), dtype=bool))


def measure(n: int, reference: int, size: int) -> None:
    features = component(n, size)
    probe = _Probe(features)
    started = time.perf_counter()
    for q in range(MATRICES):
        probe.index(q)
    build = time.perf_counter() - started
    started = time.perf_counter()
    found = [shared_weights(probe, m) for m in range(n)]
    query = (time.perf_counter() - started) / n
    picked = np.linspace(0, n - 1, min(reference, n)).astype(int)
    started = time.perf_counter()
    expected = [_reference_shared_weights(probe, int(m)) for m in picked]
    old = (time.perf_counter() - started) / picked.size
    same = all(list(found[m].items()) == list(e.items()) for m, e in zip(picked, expected,
                                                                        strict=True))
    new_total = build + query * n
    print(f"{n:>8} models: index built in {build:.2f}s, {1e3 * query:.3f} ms per model "
          f"(all {n}); reference {1e3 * old:.2f} ms per model ({picked.size} models); "
          f"per model x{old / query:.0f}; component {new_total:.1f}s against "
          f"{old * n:.1f}s (x{old * n / new_total:.0f}); "
          f"{sum(bool(f) for f in found)} models share weights; same results: {same}",
          flush=True)
    if not same:
        raise SystemExit("the index and the reference disagree")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="1000,10000")
    parser.add_argument("--reference", type=int, default=200)
    parser.add_argument("--samples", type=int, default=1500)
    args = parser.parse_args()
    for n in (int(x) for x in args.models.split(",")):
        measure(n, args.reference, args.samples)


if __name__ == "__main__":
    main()
