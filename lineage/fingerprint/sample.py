"""The raw values at a fixed pseudo-random sample of a tensor's coordinates.

Sparse merges (TIES, DARE) are exact statements about single weights: the child equals
its base bit for bit wherever every parent's entry was dropped, and elsewhere a fixed
multiple of one parent's task vector (or of a sum of a few). No linear sketch keeps
that (a sketch mixes thousands of weights into each number); a coordinate sample does,
because every model of an architecture is sampled at the SAME coordinates: positions
come from PCG64's raw stream seeded by (name, shape, size), like the count-sketch.

Values are stored as float32, which holds F32, F16, BF16 and F8 weights exactly, so
bit-identity and exact ratios survive (F64 weights are rounded to float32: their
checks then run at float32's precision).

How many. The checks are proportions over the sampled support of d = child - base:
the share of d one parent explains alone (>= 5 % to count; at TIES density 0.2 with two
parents it is ~44 %), the share all parents explain (>= 95 %), the share of weights
left bit-identical (>= 10 %). Over the changed matrices of a model (>= 1 of 4096 values
each) with support share p >= 0.1, a proportion of N >= 400 support values has a
standard error <= sqrt(0.25 / 400) = 2.5 %: the 44 % vs 5 % and ~100 % vs 95 %
decisions sit many errors apart, and a chance ratio match (~1e-4 per weight) stays far
below 5 %. A model usually has tens of changed matrices, so N is in the thousands.

Positions are numpy arrays (`sample_positions_array`: the CPU stream needs no torch);
`sample_positions` and `sample_values` are the torch path, torch imported when called.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from lineage.fingerprint.kernels import first_distinct

if TYPE_CHECKING:
    import torch

SAMPLE_SIZE = 4096
SAMPLE_VERSION = "lineage-sample-v1"


@lru_cache(maxsize=512)
def sample_positions_array(name: str, shape: tuple[int, ...],
                           size: int = SAMPLE_SIZE) -> np.ndarray:
    """Sorted flat coordinates (int64): every coordinate when numel <= size, else `size`
    distinct ones, uniformly without replacement (shared by the cache: do not modify)."""
    numel = int(np.prod(shape)) if shape else 1
    if numel <= size:
        return np.arange(numel, dtype=np.int64)
    key = f"{SAMPLE_VERSION}|{name}|{list(shape)}|{size}".encode()
    stream = np.random.PCG64(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))
    if numel <= 4 * size:  # a random order of every coordinate, cut at `size`
        picks = np.argsort(stream.random_raw(numel), kind="stable")[:size]
    else:  # draws with replacement, first occurrences kept, until `size` are distinct
        # Drawn with a margin for the expected repeats (size^2 / 2 numel), so that one
        # pass usually does: the stream is the same however it is cut into calls, and
        # draws past the size-th distinct one never change the picks.
        margin = 2 * size * size // numel + 32
        draws = stream.random_raw(size + margin) % np.uint64(numel)
        while (picks := first_distinct(draws, size)).size < size:
            draws = np.concatenate([draws, stream.random_raw(size) % np.uint64(numel)])
    return np.sort(picks.astype(np.int64))


def sample_positions(name: str, shape: tuple[int, ...], size: int = SAMPLE_SIZE) -> torch.Tensor:
    """`sample_positions_array` as a torch tensor (sharing its memory)."""
    import torch

    return torch.from_numpy(sample_positions_array(name, tuple(shape), size))


def sample_values(name: str, tensor: torch.Tensor, size: int = SAMPLE_SIZE) -> np.ndarray:
    """float32 values of `tensor` (flattened row-major) at its sample positions."""
    import torch

    positions = sample_positions(name, tuple(tensor.shape), size).to(tensor.device)
    return tensor.reshape(-1)[positions].to(torch.float32).cpu().numpy()
