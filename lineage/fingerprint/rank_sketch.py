"""A two-sided linear sketch Y = L W R of a matrix: its rank survives, in k x k numbers.

W is m x n. The LONGER side is folded by a count-sketch: for columns (n >= m), column c
is multiplied by a random sign s_c and added into bucket c mod k, i.e. W R with R the
n x k matrix of signed, stacked k x k identities; for rows (m > n) the same on the
left, with one sign per group of k rows. Folding is a reshape and a sum (or one
matrix-vector product): one pass over W, O(mn) (a dense Gaussian on that side would
cost 2mnk flops; a hashed index_add along columns measured 10x slower than the fold).
The SHORTER side is multiplied by a Gaussian with unit-norm columns (k x m on the left,
or n x k on the right), O(k^2 * side) flops on the already folded matrix. A side of
length <= k is left alone (identity), so when min(m, n) <= k no direction on that side
is lost and the rank is exact; a matrix with both sides <= k is stored as itself.

Why the rank survives. Y is linear, so Y(Wi) - Y(Wj) = L (Wi - Wj) R. Take a rank-r
difference D = B A (A: r x n) and fold the columns: A R is r x k, the sum of the k-wide
blocks of A with signs. The set of A for which A R loses rank is a proper algebraic
subset (A = [I_r 0 ...] has full rank), so for A drawn from any continuous distribution
(trained weights are) rank(A R) = min(r, k) with probability 1; the random signs keep
structured inputs (e.g. the same change in every attention head, whose width is often
exactly k) from cancelling. L is Gaussian, so rank(L (D R)) = min(rank(D R), k) with
probability 1. A LoRA delta (r < k) keeps its rank exactly; a full fine-tune saturates
at k.

Seeds. The signs and the Gaussian depend on the shape and k only, not on the tensor's
name: every model of an architecture shares them (as the count-sketch shares its plan
by name and shape), and the few distinct shapes of a model (q/k/v/o, up/down,
embeddings) keep the plan cache small. The rank argument holds per matrix, so sharing a
plan across same-shape matrices costs nothing. Generated from PCG64's raw 64-bit stream
(stable across numpy versions), the Gaussians by Box-Muller in float64.

Precision. The fold and the product accumulate in float64 (W's values convert exactly);
the sketch is stored as float32, and recovery's rank tolerance counts that rounding
(lineage.recovery.rank) beside the rounding of W in its storage dtype.

The signs and Gaussians are numpy arrays (the CPU stream's compiled fold needs no
torch); `rank_sketch` is the torch path (GPUs, and the reference), torch imported when
it is called.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

RANK_WIDTH = 64  # k: ranks up to 63 are read exactly (LoRA ranks 4-64 are common)
RANK_VERSION = "lineage-rank-sketch-v1"
BLOCK = 1 << 16  # elements per float64 block: 512 KiB stays in L2 (as moments.CHUNK)


def _stream(kind: str, side: int, k: int, count: int) -> np.ndarray:
    key = f"{RANK_VERSION}|{kind}|{side}|{k}".encode()
    seed = int.from_bytes(hashlib.sha256(key).digest()[:8], "little")
    return np.random.PCG64(seed).random_raw(count)


@lru_cache(maxsize=16)
def fold_signs(length: int, k: int) -> np.ndarray:
    """float64 [length]: the random signs of the folded side (bucket = index mod k);
    shared by the cache: do not modify."""
    raw = _stream("signs", length, k, length)
    return (raw & np.uint64(1)).astype(np.float64) * 2.0 - 1.0


@lru_cache(maxsize=16)
def gaussian(length: int, k: int) -> np.ndarray:
    """float64 [length, k]: Gaussian, each of the `length` rows scaled to unit norm, so
    an element's rounding noise enters Y with exactly its own variance (rank.py).
    Shared by the cache: do not modify."""
    count = length * k
    raw = _stream("gauss", length, k, count + (count & 1))
    u = ((raw >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)  # (0, 1)
    u1, u2 = u[0::2], u[1::2]
    radius = np.sqrt(-2.0 * np.log(u1))
    g = np.concatenate([radius * np.cos(2 * np.pi * u2), radius * np.sin(2 * np.pi * u2)])
    g = g[:count].reshape(length, k)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    return g


def rank_sketch_shape(shape: tuple[int, int], k: int = RANK_WIDTH) -> tuple[int, int]:
    m, n = shape
    return min(m, k), min(n, k)


def rank_sketch(matrix: torch.Tensor, k: int = RANK_WIDTH) -> np.ndarray:
    """float32 [k1 * k2] (row-major; k1 = min(m, k), k2 = min(n, k)): Y = L W R."""
    import torch

    m, n = matrix.shape
    y = _fold_rows(matrix, k) if m > max(n, k) else _fold_columns(matrix, k)
    return y.to(torch.float32).cpu().numpy().reshape(-1)


def _fold_columns(matrix: torch.Tensor, k: int) -> torch.Tensor:
    """[min(m, k), min(n, k)] float64 for m <= max(n, k): columns folded (when n > k),
    Gaussian on the rows (when m > k), block by block of rows: Y = sum_b L_b (W_b R)."""
    import torch

    m, n = matrix.shape
    signs = torch.from_numpy(fold_signs(n, k)).to(matrix.device) if n > k else None
    left = torch.from_numpy(gaussian(m, k)).to(matrix.device) if m > k else None  # [m, k]
    out = torch.zeros(min(m, k), min(n, k), dtype=torch.float64, device=matrix.device)
    step = max(1, BLOCK // n)
    for r0 in range(0, m, step):
        # a copy even for float64 input: mul_ below must not write into the caller's
        # tensor (for a mapped file, a view of its pages that the hash reads too)
        block = matrix[r0 : r0 + step].to(torch.float64, copy=True)  # [b, n]
        if signs is not None:
            block = _fold_last(block.mul_(signs), k)  # [b, k]
        if left is None:  # m <= k: rows kept as they are
            out[r0 : r0 + step] += block
        else:
            out += left[r0 : r0 + step].T @ block
    return out


def _fold_rows(matrix: torch.Tensor, k: int) -> torch.Tensor:
    """[k, min(n, k)] float64 for m > max(n, k): rows folded into k buckets (row r into
    r mod k), then a Gaussian on the columns. The sign is drawn per group of k rows
    (rows r // k), so the fold of a block is one matrix-vector product over its groups
    (measured 2x faster than signing each row and summing); the rank argument does not
    depend on how the signs are drawn."""
    import torch

    m, n = matrix.shape
    signs = torch.from_numpy(fold_signs(m, k)[::k]).to(matrix.device)  # one per group
    folded = torch.zeros(k * n, dtype=torch.float64, device=matrix.device)
    step = max(1, BLOCK // (n * k)) * k  # a multiple of k: every block starts at bucket 0
    for r0 in range(0, m, step):
        block = matrix[r0 : r0 + step].to(torch.float64)  # [b, n]
        groups, rest = divmod(block.shape[0], k)
        g0 = r0 // k
        if groups:
            folded += signs[g0 : g0 + groups] @ block[: groups * k].reshape(groups, k * n)
        if rest:  # the last, partial group: its rows go to buckets 0..rest-1
            folded[: rest * n] += signs[g0 + groups] * block[groups * k :].reshape(-1)
    folded = folded.reshape(k, n)
    if n <= k:
        return folded
    return folded @ torch.from_numpy(gaussian(n, k)).to(matrix.device)  # [k, k]


def _fold_last(x: torch.Tensor, k: int) -> torch.Tensor:
    """[b, L] -> [b, k]: column c added into column c mod k (signs already applied)."""
    b, length = x.shape
    full = length - length % k
    out = x[:, :full].reshape(b, full // k, k).sum(dim=1)
    if full < length:
        out[:, : length - full] += x[:, full:]
    return out


def is_rank_matrix(shape: tuple[int, ...], dtype_is_float: bool) -> bool:
    """The tensors that carry rank and sample evidence: 2-D float, both sides > 1 (the
    'matrices' recovery reads; vectors and scalars have no rank to speak of)."""
    return dtype_is_float and len(shape) == 2 and min(shape) > 1 and math.prod(shape) > 0
