"""The fingerprint of one tensor, fed its stored bytes chunk by chunk.

Every stage (exact moments, count-sketch, rank-sketch fold, coordinate sample) takes
each chunk as it comes, in flat element order, and carries its state to the next, so
a tensor of any size is fingerprinted in one read and in memory bounded by a chunk
(plus the rank fold: min(m, n, k)-wide, see rank_sketch.py). The values are those of
tensor.py's torch path (kernels.py says to which precision). numpy and numba only: the
CPU fingerprint never imports torch (~220 MB of RSS for its import alone).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from lineage.fingerprint import kernels
from lineage.fingerprint.moments import CHUNK as MOMENT_CHUNK
from lineage.fingerprint.moments import Moments
from lineage.fingerprint.rank_sketch import fold_signs, gaussian, is_rank_matrix
from lineage.fingerprint.sample import sample_positions_array
from lineage.fingerprint.sketch import ROWS_PER_STEP, sketch_plan_arrays
from lineage.fingerprint.tensor import EvidenceOptions, TensorFingerprint
from lineage.weights.dtypes import is_float, itemsize

# Dtypes numpy reads as they are stored (little-endian, as safetensors writes them).
NUMPY_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.int8,
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.uint8,
}


L2_ELEMENTS = 4 * MOMENT_CHUNK  # 1 MiB of float32: stays in a 2 MiB L2 across the stages


def chunk_elements(dtype: str, chunk_bytes: int) -> int:
    """Elements per chunk: a multiple of the moments' sub-chunk, so that the float64
    partial sums cover the same elements whatever the chunk size."""
    per = max(1, chunk_bytes // itemsize(dtype) // MOMENT_CHUNK)
    return per * MOMENT_CHUNK


# Stored bits of the dtypes numpy cannot compute with; widened piece by piece.
STORED_BITS = {"BF16": np.dtype("<u2"), "F16": np.dtype("<f2"), "BOOL": np.uint8,
               "F8_E4M3": np.uint8, "F8_E5M2": np.uint8}


def stored(raw: memoryview, dtype: str) -> np.ndarray:
    """The chunk's stored values, without a copy (16- and 8-bit floats as their bits)."""
    return np.frombuffer(raw, NUMPY_DTYPES.get(dtype) or STORED_BITS[dtype])


# 8-bit floats: (exponent bits, mantissa bits); E4M3 is the "fn" variant (no
# infinities; only exponent and mantissa all ones is NaN), E5M2 is IEEE-like.
F8_FORMATS = {"F8_E4M3": (4, 3), "F8_E5M2": (5, 2)}


@lru_cache(maxsize=4)
def _f8_table(dtype: str) -> np.ndarray:
    """float32 value of each of the 256 codes of an 8-bit float (exact), bit for bit
    what torch's conversion gives, NaN payloads included (the mantissa moved to the
    top of float32's; E5M2's NaNs quieted, as torch converts them through float16)."""
    exp_bits, man_bits = F8_FORMATS[dtype]
    bias, top = (1 << (exp_bits - 1)) - 1, (1 << exp_bits) - 1
    codes = np.arange(256, dtype=np.uint32)
    sign, e = codes >> 7, (codes >> man_bits) & top
    mantissa = codes & ((1 << man_bits) - 1)
    fraction = mantissa / (1 << man_bits)
    magnitude = np.where(e == 0, fraction * 2.0 ** (1 - bias),
                         (1.0 + fraction) * np.exp2(e.astype(np.int64) - bias))
    table = np.where(sign == 1, -magnitude, magnitude).astype(np.float32)
    if dtype == "F8_E5M2":  # exponent all ones: infinity (mantissa 0), else NaN
        special, quiet = e == top, np.where(mantissa != 0, 0x400000, 0)
    else:  # only exponent and mantissa all ones is NaN
        special, quiet = (e == top) & (mantissa == (1 << man_bits) - 1), 0
    bits = (sign << 31) | 0x7F800000 | quiet | (mantissa << (23 - man_bits))
    table.view(np.uint32)[special] = np.broadcast_to(bits, codes.shape)[special]
    return table


def widen(x: np.ndarray, dtype: str) -> np.ndarray:
    """Values the kernels take: stored types as they are, 16- and 8-bit floats as
    float32 (exact), bools as 0/1. Called per L2-sized piece, so the widened copy
    stays in cache, and in the calling thread (numpy, no thread pool)."""
    if dtype in NUMPY_DTYPES:
        return x
    if dtype == "BF16":
        out = np.empty(x.size, np.uint32)
        kernels.bf16_to_f32(x, out)
        return out.view(np.float32)
    if dtype == "F16":
        return x.astype(np.float32)
    if dtype == "BOOL":
        return (x != 0).view(np.uint8)
    return _f8_table(dtype)[x]


@lru_cache(maxsize=16)
def _column_signs(n: int, k: int) -> np.ndarray:
    """The column fold's signs as float32 (+-1: exact): half the bytes of float64, so
    a row's signs stay in L1 beside the row (32 KB of float64 at n = 4096 filled it)."""
    return fold_signs(n, k).astype(np.float32)


class TensorStream:
    """Feed `update(values, start)` the tensor's values in flat order, then `finish`."""

    def __init__(self, name: str, dtype: str, shape: tuple[int, ...], width: int,
                 evidence: EvidenceOptions) -> None:
        self.name, self.dtype, self.shape = name, dtype, tuple(shape)
        self.numel = math.prod(self.shape)
        self.moments = kernels.new_moments()
        self.plan = sketch_plan_arrays(name, self.shape, width)
        self.w = self.plan[0].size
        self.step = np.zeros(2 * self.w, np.float32)
        self.out = np.zeros(2 * self.w, np.float64)
        self.rank: tuple | None = None
        self.rank_product: np.ndarray | None = None
        self.sealed = False
        self.evidence = evidence
        if evidence.enabled and is_rank_matrix(self.shape, is_float(dtype)):
            self._start_evidence(evidence)

    def _start_evidence(self, evidence: EvidenceOptions) -> None:
        (m, n), k = self.shape, evidence.rank_width
        if m > max(n, k):  # rows folded: rank_sketch._fold_rows
            groups = fold_signs(m, k)[::k]
            self.rank = ("rows", groups, np.zeros((k, n)))
        else:  # columns folded (when n > k): rank_sketch._fold_columns
            signs = _column_signs(n, k) if n > k else np.zeros(1, np.float32)
            self.rank = ("columns", signs, np.zeros((m, min(n, k))))
        self.positions = sample_positions_array(self.name, self.shape, evidence.sample_size)
        self.sample = np.zeros(self.positions.size, np.float32)

    @property
    def has_evidence(self) -> bool:
        return self.rank is not None

    def update(self, x: np.ndarray, start: int) -> None:
        """Stored values x (see `stored`) of flat positions start .. start + x.size
        (start a multiple of the moments' sub-chunk, as chunk_elements makes it). Every
        stage runs over one L2-sized piece before the next piece is touched: the piece
        is read from memory (and a 16- or 8-bit float widened) once, not once per stage.
        The sampled coordinates are then picked from the whole chunk (per piece, the
        calls cost more than the cache misses they save)."""
        for p0 in range(0, x.size, L2_ELEMENTS):
            piece = widen(x[p0 : p0 + L2_ELEMENTS], self.dtype)
            self._core(piece, start + p0)
            if self.rank is not None:
                self._fold(piece, start + p0)
        if self.rank is not None:
            self._sample(x, start)

    def _core(self, x: np.ndarray, start: int) -> None:
        if x.size == 0:
            return
        kernels.moments_update(x, MOMENT_CHUNK, self.moments)
        col, row, off = self.plan
        kernels.sketch_update(x, start, self.w, ROWS_PER_STEP, col, row, off, self.step,
                              self.out)

    def _fold(self, x: np.ndarray, start: int) -> None:
        kind, signs, folded = self.rank
        n, k = self.shape[1], self.evidence.rank_width
        if kind == "rows":
            kernels.fold_rows_update(x, start, n, k, signs, folded)
        else:
            kernels.fold_columns_update(x, start, n, k, signs, folded)

    def _sample(self, x: np.ndarray, start: int) -> None:
        """The sampled coordinates that fall in this chunk of stored values x."""
        lo, hi = np.searchsorted(self.positions, [start, start + x.size])
        if hi > lo:
            self.sample[lo:hi] = widen(x[self.positions[lo:hi] - start], self.dtype)

    def seal(self) -> None:
        """Every value is in: finish the count-sketch's last step and the rank sketch's
        Gaussian product. A step of its own so that it runs while the hash of the last
        chunks is still under way in the other thread."""
        if self.sealed:
            return
        kernels.sketch_flush(self.step, self.out)
        if self.rank is not None:
            self.rank_product = self._rank_sketch()
        self.sealed = True

    def finish(self, content_hash: str) -> TensorFingerprint:
        self.seal()
        sketch = (self.out[: self.w] + self.out[self.w :]).astype(np.float32)
        n, mean, m2, m3, m4, low, high = (float(v) for v in self.moments)
        moments = Moments(int(n), mean, m2, m3, m4, low, high)
        extra = {}
        if self.rank is not None:
            extra = {"rank_sketch": self.rank_product, "rank_width": self.evidence.rank_width,
                     "sample": self.sample, "sample_size": self.evidence.sample_size}
        return TensorFingerprint(
            name=self.name, dtype=self.dtype, shape=self.shape, numel=self.numel,
            content_hash=content_hash, mean=moments.mean, std=moments.std,
            kurtosis=moments.kurtosis, min=moments.min, max=moments.max, sketch=sketch,
            **extra,
        )

    def _rank_sketch(self) -> np.ndarray:
        """Y = L W R from the fold: the Gaussian side applied once, to the folded
        matrix (min(m, k) x min(n, k) floats, float32, row-major)."""
        kind, _, folded = self.rank
        (m, n), k = self.shape, self.evidence.rank_width
        if kind == "rows":
            y = folded if n <= k else kernels.right_product(folded, gaussian(n, k))
        else:
            y = folded if m <= k else kernels.left_product(gaussian(m, k), folded)
        return np.ascontiguousarray(y, dtype=np.float32).reshape(-1)
