"""Stack one architecture group's fingerprints into arrays recovery can do algebra on.

Only 2-D float tensors ("matrices") take part: they carry what training changed, and
MoTHer reads the square ones. A model's row in every array is its index in `ids`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lineage.recovery.inputs import FLOAT_DTYPES, ModelInput


@dataclass(frozen=True)
class GroupFeatures:
    ids: list[str]
    names: list[str]  # M matrix names, sorted
    shapes: list[tuple[int, int]]
    sketches: list[np.ndarray]  # M arrays of float64 [n, w_m]: S(W_m) per model
    kurtosis: np.ndarray  # float64 [n, M]: exact excess kurtosis of each matrix
    sq_norms: np.ndarray  # float64 [n, M]: exact ||W_m||^2 from the moments
    means: np.ndarray  # float64 [n, M]: exact mean of each matrix
    hashes: np.ndarray  # object [n, M]: content hash of each matrix

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def numel(self) -> np.ndarray:
        return np.array([a * b for a, b in self.shapes], dtype=np.float64)

    @property
    def square(self) -> np.ndarray:
        """bool [M]: MoTHer's matrices (attention projections are square); all 2-D
        matrices when an architecture has no square one."""
        sq = np.array([a == b for a, b in self.shapes], dtype=bool)
        return sq if sq.any() else np.ones_like(sq)

    def take(self, rows: Sequence[int]) -> GroupFeatures:
        idx = np.asarray(rows, dtype=np.int64)
        return GroupFeatures(
            ids=[self.ids[i] for i in idx],
            names=self.names,
            shapes=self.shapes,
            sketches=[s[idx] for s in self.sketches],
            kurtosis=self.kurtosis[idx],
            sq_norms=self.sq_norms[idx],
            means=self.means[idx],
            hashes=self.hashes[idx],
        )


def matrix_names(model: ModelInput) -> list[str]:
    return sorted(
        name
        for name, t in model.tensors.items()
        if len(t.shape) == 2 and t.dtype in FLOAT_DTYPES and min(t.shape) > 1
    )


def group_features(models: Sequence[ModelInput]) -> GroupFeatures:
    """Arrays for models of one architecture signature (same tensor names and shapes)."""
    names = matrix_names(models[0]) if models else []
    n, m = len(models), len(names)
    kurt = np.zeros((n, m))
    norms = np.zeros((n, m))
    means = np.zeros((n, m))
    hashes = np.empty((n, m), dtype=object)
    sketches = []
    for j, name in enumerate(names):
        rows = [model.tensors[name] for model in models]
        sketches.append(np.stack([np.asarray(t.sketch, dtype=np.float64) for t in rows]))
        kurt[:, j] = [t.kurtosis for t in rows]
        norms[:, j] = [t.sq_norm for t in rows]
        means[:, j] = [t.mean for t in rows]
        hashes[:, j] = [t.content_hash for t in rows]
    shapes = [tuple(models[0].tensors[name].shape) for name in names]
    return GroupFeatures(list(m.model_id for m in models), names, shapes, sketches,
                         np.nan_to_num(kurt), norms, np.nan_to_num(means), hashes)
