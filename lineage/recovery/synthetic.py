"""Synthetic fingerprints with a known Model Graph: for unit tests and the scale bench.

Each tree is a random walk in weight space: a root of i.i.d. Gaussian matrices, each
child its parent plus an independent Gaussian increment (as fine-tuning without weight
decay adds near-orthogonal increments). Matrices have <= 4096 elements, so the stored
"sketch" is the matrix itself (the count-sketch is exact there). Every moment is
computed from the values, as the fingerprint would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lineage.recovery.inputs import ModelInput, TensorStat


@dataclass(frozen=True)
class SyntheticZoo:
    models: list[ModelInput]
    edges: list[tuple[str, str]]  # true (parent, child)
    trees: list[list[str]]


def _stat(values: np.ndarray, digest: str) -> TensorStat:
    flat = values.reshape(-1).astype(np.float64)
    mean, std = float(flat.mean()), float(flat.std())
    kurt = float(((flat - mean) ** 4).mean() / std**4 - 3.0)
    return TensorStat(values.shape, "F32", digest, mean, std, kurt,
                      values.reshape(-1).astype(np.float32))


def _model(model_id: str, arch: str, mats: list[np.ndarray], **kw) -> ModelInput:
    tensors = {f"layer.{k}.weight": _stat(m, f"{model_id}/{k}") for k, m in enumerate(mats)}
    return ModelInput(model_id, arch_signature=arch, dtype="F32", tensors=tensors, **kw)


def synthetic_zoo(
    n_trees: int, per_tree: int, *, arch: str = "arch-0", side: int = 32, n_mats: int = 4,
    step: float = 0.3, branching: int = 3, seed: int = 0,
) -> SyntheticZoo:
    """`n_trees` trees of `per_tree` models each; node k's parent is (k - 1) // branching."""
    rng = np.random.default_rng(seed)
    models, edges, trees = [], [], []
    for t in range(n_trees):
        ids = [f"{arch}-t{t}/m{k}" for k in range(per_tree)]
        mats: list[list[np.ndarray]] = []
        for k in range(per_tree):
            if k == 0:
                mats.append([rng.standard_normal((side, side)) for _ in range(n_mats)])
            else:
                parent = (k - 1) // branching
                mats.append([m + step * rng.standard_normal((side, side))
                             for m in mats[parent]])
                edges.append((ids[parent], ids[k]))
            models.append(_model(ids[k], arch, mats[k]))
        trees.append(ids)
    return SyntheticZoo(models, edges, trees)


TREE_BLOCK = 256  # trees generated at once by synthetic_group
MOMENT_ROWS = 512  # matrices whose moments are computed at once (a few MiB of float64)


def synthetic_group(
    n_models: int, per_tree: int = 20, *, arch: str = "arch-0", side: int = 32,
    n_mats: int = 4, step: float = 0.3, branching: int = 3, seed: int = 0,
) -> list[ModelInput]:
    """The models of `n_models // per_tree` trees of one architecture, vectorised (the
    scale bench makes 100k-model groups one at a time): the same random walk as
    synthetic_zoo, ids f"{arch}-t{tree}/m{k}", node k's parent (k - 1) // branching
    (synthetic_edges gives the truth without generating anything)."""
    rng = np.random.default_rng(seed)
    models = []
    n_trees = n_models // per_tree
    names = [f"layer.{q}.weight" for q in range(n_mats)]
    for first in range(0, n_trees, TREE_BLOCK):
        trees = min(TREE_BLOCK, n_trees - first)
        shape = (trees, n_mats, side * side)
        mats = np.empty((trees, per_tree, n_mats, side * side), dtype=np.float32)
        increment = np.empty(shape, dtype=np.float32)  # reused: no fresh pages per step
        rng.standard_normal(shape, dtype=np.float32, out=increment)
        mats[:, 0] = increment
        for k in range(1, per_tree):
            rng.standard_normal(shape, dtype=np.float32, out=increment)
            increment *= np.float32(step)
            np.add(mats[:, (k - 1) // branching], increment, out=mats[:, k])
        mean, std, kurt = (a.reshape(trees, per_tree, n_mats).tolist()
                           for a in moments(mats.reshape(-1, side * side)))
        for t in range(trees):
            for k in range(per_tree):
                model_id = f"{arch}-t{first + t}/m{k}"
                m, s, u, x = mean[t][k], std[t][k], kurt[t][k], mats[t, k]
                tensors = {name: TensorStat((side, side), "F32", f"{model_id}/{q}", m[q],
                                            s[q], u[q], x[q])
                           for q, name in enumerate(names)}
                models.append(ModelInput(model_id, arch_signature=arch, dtype="F32",
                                         tensors=tensors))
    return models


def moments(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, std, excess kurtosis) of every row, in float64 as the fingerprint computes
    them; in blocks of MOMENT_ROWS, so that the float64 temporaries stay in cache
    instead of being fresh pages (faulting in a 100k-model group's float64 copy cost
    more than the arithmetic)."""
    mean, std, kurt = (np.empty(rows.shape[0]) for _ in range(3))
    for start in range(0, rows.shape[0], MOMENT_ROWS):
        block = rows[start:start + MOMENT_ROWS].astype(np.float64)
        mu = block.mean(axis=1)
        block -= mu[:, None]
        np.square(block, out=block)
        var = block.mean(axis=1)
        fourth = np.einsum("ij,ij->i", block, block) / block.shape[1]
        sl = slice(start, start + block.shape[0])
        mean[sl], std[sl], kurt[sl] = mu, np.sqrt(var), fourth / var**2 - 3.0
    return mean, std, kurt


def synthetic_edges(n_models: int, per_tree: int = 20, *, arch: str = "arch-0",
                    branching: int = 3) -> list[tuple[str, str]]:
    """The true (parent, child) edges of synthetic_group with the same arguments."""
    return [(f"{arch}-t{t}/m{(k - 1) // branching}", f"{arch}-t{t}/m{k}")
            for t in range(n_models // per_tree) for k in range(1, per_tree)]
