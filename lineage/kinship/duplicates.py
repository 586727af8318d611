"""Exact duplicates and shared frozen tensors, from content hashes alone.

Input rows (model_id, tensor name, content_hash[, std]) are what the catalog's tensors
table holds. Two models are exact duplicates when they hold the same set of (name,
hash): a re-upload, a renamed copy. A pair shares a tensor when both hold the same name
with the same hash: a frozen layer (e.g. the embeddings of a LoRA-merged fine-tune).

Constant tensors (std == 0: untouched LayerNorm ones, zero biases) hash equal across
unrelated models, so when rows carry std they do not count as shared evidence (they
still count for exact duplicates). A tensor held by more than `max_fanout` models (a
very popular frozen base layer) would add O(m^2) pair counts; it is reported in
`widely_shared` instead, with the number of models holding it.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import combinations

TensorRow = tuple[str, str, str] | tuple[str, str, str, float]


@dataclass(frozen=True)
class SharedTensors:
    a: str
    b: str
    n_shared: int  # tensors with the same name and content hash (non-constant)
    n_a: int  # tensors of a, so n_shared / min(n_a, n_b) is the shared fraction
    n_b: int


@dataclass(frozen=True)
class DuplicateReport:
    duplicate_groups: list[list[str]]  # models with identical tensors, sorted, size >= 2
    duplicate_pairs: list[tuple[str, str]]  # every a < b within each group
    shared: list[SharedTensors]  # pairs sharing >= 1 tensor, most shared first
    widely_shared: list[tuple[str, str, int]] = field(default_factory=list)  # name, hash, m


def find_duplicates(rows: Iterable[TensorRow], *, max_fanout: int = 1000) -> DuplicateReport:
    """Exact-duplicate models and per-pair shared-tensor counts. O(rows) plus the pairs."""
    tensors: dict[str, dict[str, str]] = defaultdict(dict)  # model -> name -> hash
    holders: dict[tuple[str, str], list[str]] = defaultdict(list)  # (name, hash) -> models
    for row in rows:
        model, name, digest = row[0], row[1], row[2]
        tensors[model][name] = digest
        if len(row) < 4 or row[3] != 0:
            holders[(name, digest)].append(model)
    groups = _duplicate_groups(tensors)
    counts, wide = _shared_counts(holders, max_fanout)
    shared = [
        SharedTensors(a, b, n, len(tensors[a]), len(tensors[b])) for (a, b), n in counts.items()
    ]
    shared.sort(key=lambda s: (-s.n_shared, s.a, s.b))
    return DuplicateReport(
        duplicate_groups=groups,
        duplicate_pairs=[p for g in groups for p in combinations(g, 2)],
        shared=shared,
        widely_shared=wide,
    )


def _duplicate_groups(tensors: dict[str, dict[str, str]]) -> list[list[str]]:
    by_content: dict[str, list[str]] = defaultdict(list)
    for model, names in tensors.items():
        by_content[_model_digest(names)].append(model)
    return sorted(sorted(g) for g in by_content.values() if len(g) > 1)


def _model_digest(names: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(names):
        digest.update(f"{name}\0{names[name]}\n".encode())
    return digest.hexdigest()


def _shared_counts(
    holders: dict[tuple[str, str], list[str]], max_fanout: int
) -> tuple[Counter, list[tuple[str, str, int]]]:
    counts: Counter = Counter()
    wide = []
    for (name, digest), models in holders.items():
        models = sorted(set(models))
        if len(models) > max_fanout:
            wide.append((name, digest, len(models)))
            continue
        counts.update(combinations(models, 2))
    wide.sort(key=lambda w: (-w[2], w[0]))
    return counts, wide
