"""Stack one architecture group's fingerprints into arrays recovery can do algebra on.

Only 2-D float tensors ("matrices") take part: they carry what training changed, and
MoTHer reads the square ones. A model's row in every array is its index in `ids`.

Recovery evidence (rank sketches, coordinate samples) is stacked per matrix with a mask
of the models that have it: a fingerprint from before the evidence existed, or one
drawn with another sample size (other coordinates), is left out of the checks that
need it rather than compared with numbers that do not correspond.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lineage.recovery.inputs import FLOAT_DTYPES, ModelInput, TensorStat
from lineage.recovery.rounding import unit_roundoff

EXACT_DTYPES = ("F32", "F64")  # where any trained step changes the stored bits


@dataclass(frozen=True)
class GroupFeatures:
    ids: list[str]
    names: list[str]  # M matrix names, sorted
    shapes: list[tuple[int, int]]
    sketches: list[np.ndarray]  # M arrays of float64 [n, w_m]: S(W_m) per model
    kurtosis: np.ndarray  # float64 [n, M]: exact excess kurtosis of each matrix
    sq_norms: np.ndarray  # float64 [n, M]: exact ||W_m||^2 from the moments
    hashes: np.ndarray  # object [n, M]: content hash of each matrix
    means: np.ndarray | None = None  # float64 [n, M]: exact mean of each matrix
    roundoff: np.ndarray | None = None  # float64 [n, M]: unit roundoff of the dtype
    rank_sketches: list[np.ndarray] = field(default_factory=list)  # M x f32 [n, k1, k2]
    rank_ok: np.ndarray | None = None  # bool [n, M]: the model has that rank sketch
    samples: list[np.ndarray] = field(default_factory=list)  # M x float32 [n, s_m]
    sample_ok: np.ndarray | None = None  # bool [n, M]: the model has that sample
    # object [n, V]: content hash of each float32/float64 vector (norms, biases: the
    # tensors that are not matrices), None where a model lacks it (frozen.py)
    vector_hashes: np.ndarray | None = None

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
            hashes=self.hashes[idx],
            means=None if self.means is None else self.means[idx],
            roundoff=None if self.roundoff is None else self.roundoff[idx],
            rank_sketches=[r[idx] for r in self.rank_sketches],
            rank_ok=None if self.rank_ok is None else self.rank_ok[idx],
            samples=[x[idx] for x in self.samples],
            sample_ok=None if self.sample_ok is None else self.sample_ok[idx],
            vector_hashes=None if self.vector_hashes is None else self.vector_hashes[idx],
        )


def as_matrix(shape: Sequence[int]) -> tuple[int, int]:
    """A weight tensor as the matrix a layer applies: (outputs, inputs); a convolution
    kernel (out, in, kh, kw) is (out, in * kh * kw). Diffusers UNets are mostly convs."""
    rows = int(shape[0]) if shape else 1
    cols = math.prod(int(d) for d in shape[1:]) if len(shape) > 1 else 1
    return rows, cols


def matrix_names(model: ModelInput) -> list[str]:
    """Float weight tensors of two or more dimensions that are not vectors in disguise."""
    return sorted(
        name
        for name, t in model.tensors.items()
        if len(t.shape) >= 2 and t.dtype in FLOAT_DTYPES and min(as_matrix(t.shape)) > 1
    )


def group_features(models: Sequence[ModelInput], sketch_dtype: type = np.float64
                   ) -> GroupFeatures:
    """Arrays for models of one architecture signature (same tensor names and shapes).
    `sketch_dtype` float32 halves a large group's memory (the sparse group stage)."""
    names = matrix_names(models[0]) if models else []
    n, m = len(models), len(names)
    kurt = np.zeros((n, m))
    norms = np.zeros((n, m))
    means = np.zeros((n, m))
    roundoff = np.zeros((n, m))
    hashes = np.empty((n, m), dtype=object)
    sketches, ranks, samples = [], [], []
    rank_ok = np.zeros((n, m), dtype=bool)
    sample_ok = np.zeros((n, m), dtype=bool)
    for j, name in enumerate(names):
        rows = [model.tensors[name] for model in models]
        sketches.append(_rows([t.sketch for t in rows], sketch_dtype))
        kurt[:, j] = [t.kurtosis for t in rows]
        norms[:, j] = [t.sq_norm for t in rows]
        means[:, j] = [t.mean for t in rows]
        roundoff[:, j] = [unit_roundoff(t.dtype) for t in rows]
        hashes[:, j] = [t.content_hash for t in rows]
        ranks.append(_stack(rows, lambda t: t.rank_sketch, _rank_key, rank_ok[:, j]))
        samples.append(_stack(rows, lambda t: t.sample, _sample_key, sample_ok[:, j]))
    shapes = [as_matrix(models[0].tensors[name].shape) for name in names]
    return GroupFeatures(list(m.model_id for m in models), names, shapes, sketches,
                         np.nan_to_num(kurt), norms, hashes, means=np.nan_to_num(means),
                         roundoff=roundoff, rank_sketches=ranks, rank_ok=rank_ok,
                         samples=samples, sample_ok=sample_ok,
                         vector_hashes=exact_vector_hashes(models, set(names)))


def _rows(vectors: Sequence[np.ndarray], dtype: type) -> np.ndarray:
    """[n, w]: the vectors as rows. Filled row by row: np.stack over a 100k-model group's
    separate arrays costs five times as much."""
    out = np.empty((len(vectors), *np.shape(vectors[0])), dtype=dtype)
    for i, v in enumerate(vectors):
        if np.shape(v) != out.shape[1:]:
            raise ValueError(f"all input arrays must have the same shape: row {i} is "
                             f"{np.shape(v)}, row 0 {out.shape[1:]}")
        out[i] = v
    return out


def _rank_key(t: TensorStat) -> tuple | None:
    return None if t.rank_sketch is None else t.rank_sketch.shape


def _sample_key(t: TensorStat) -> tuple | None:
    """Same size <=> same coordinates: positions are drawn from (name, shape, size)."""
    return None if t.sample is None or t.sample_size is None else (t.sample.size, t.sample_size)


def _stack(rows: Sequence[TensorStat], get, key, ok: np.ndarray) -> np.ndarray:  # noqa: ANN001
    """float32 [n, ...]: the evidence `get` of every row whose `key` is the modal one
    (zeros for the others); sets `ok` [n] where a row has it."""
    keys = [key(t) for t in rows]
    common = Counter(k for k in keys if k is not None).most_common(1)
    if not common:
        return np.zeros((len(rows), 0), np.float32)
    first = next(i for i, k in enumerate(keys) if k == common[0][0])
    out = np.zeros((len(rows), *np.shape(get(rows[first]))), np.float32)
    for i, t in enumerate(rows):
        if keys[i] == common[0][0]:
            out[i], ok[i] = get(t), True
    return out


def exact_vector_hashes(models: Sequence[ModelInput], matrices: set[str]) -> np.ndarray:
    """object [n, V]: the content hash of every float32/float64 tensor that is not a
    matrix (the first model's names), None where a model lacks it or holds it in
    another dtype. Only single and double precision: a step of a fine-tune's learning
    rate on a norm gain near 1 is below half a bfloat16 or float16 ulp, so a trained
    vector stored at half precision can come out bit-identical (frozen.py)."""
    names = sorted(n for n, t in (models[0].tensors.items() if models else ())
                   if n not in matrices and t.dtype in EXACT_DTYPES)
    out = np.full((len(models), len(names)), None, dtype=object)
    for i, model in enumerate(models):
        for j, name in enumerate(names):
            t = model.tensors.get(name)
            if t is not None and t.dtype in EXACT_DTYPES:
                out[i, j] = t.content_hash
    return out
