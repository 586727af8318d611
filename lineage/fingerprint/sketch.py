"""A linear, deterministic count-sketch of a tensor, shared by every model of an arch.

S maps a tensor x of n elements to w = min(width, n) numbers. Lay x out row-major as
R = ceil(n / w) rows of w (zero-padded). Element (r, c) is multiplied by a column sign
s_c and a row sign t_r and added into bucket (c + o_r) mod w, with o_r a row offset:

    S(x)[j] = sum_r t_r * sum_c s_c * x[r, c] * [(c + o_r) mod w == j]

Properties (tests check each):
- linear: S(a) - S(b) = S(a - b), so sketches of deltas against any base come free;
- unbiased inner products: E[<S(a), S(b)>] = <a, b> over the random signs/offsets; two
  elements of different rows collide with probability 1/w and carry independent signs;
- exact when n <= width: a single row is a signed rotation, which preserves norms and
  inner products exactly (small tensors: biases, norms, tiny matrices);
- deterministic everywhere: signs and offsets come from PCG64's raw 64-bit stream
  (stable across numpy versions and machines) seeded by sha256(name, shape, width).
An inner product's standard error is about sqrt((|a|^2 |b|^2 + <a,b>^2) / w); a
normalised cosine's is about (1 - cos^2) / sqrt(w) per tensor (measured in tests/README).

Plans are numpy arrays (the CPU stream needs no torch); `sketch_plan` and `sketch_tensor`
are the torch path (GPUs, and the reference), which imports torch when called.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

DEFAULT_WIDTH = 4096
SKETCH_VERSION = "lineage-sketch-v1"
ROWS_PER_STEP = 256  # bounds the index buffer at ROWS_PER_STEP * width int64


def sketch_width(numel: int, width: int = DEFAULT_WIDTH) -> int:
    return max(1, min(width, numel))


def _seed(name: str, shape: tuple[int, ...], width: int) -> int:
    key = f"{SKETCH_VERSION}|{name}|{list(shape)}|{width}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little")


@lru_cache(maxsize=4096)
def sketch_plan_arrays(
    name: str, shape: tuple[int, ...], width: int = DEFAULT_WIDTH
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(column signs [w] float32, row signs [R] float32, row offsets [R] int64) for this
    tensor name/shape (shared by the cache: do not modify)."""
    n = math.prod(shape)
    w = sketch_width(n, width)
    rows = max(1, math.ceil(n / w))
    raw = np.random.PCG64(_seed(name, shape, width)).random_raw(w + rows)
    signs = (raw & 1).astype(np.float32) * np.float32(2.0) - np.float32(1.0)
    offsets = ((raw[w:] >> np.uint64(1)) % np.uint64(w)).astype(np.int64)
    return signs[:w], signs[w:], offsets


def sketch_plan(
    name: str, shape: tuple[int, ...], width: int = DEFAULT_WIDTH
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`sketch_plan_arrays` as torch tensors (sharing their memory)."""
    import torch

    return tuple(torch.from_numpy(a) for a in sketch_plan_arrays(name, shape, width))


def sketch_tensor(name: str, tensor: torch.Tensor, width: int = DEFAULT_WIDTH) -> torch.Tensor:
    """The float32 sketch (length min(width, numel)) of `tensor` stored under `name`."""
    import torch

    shape = tuple(tensor.shape)
    device = tensor.device
    col_signs, row_signs, offsets = (t.to(device) for t in sketch_plan(name, shape, width))
    w = col_signs.numel()
    flat = tensor.reshape(-1).to(torch.float32)
    pad = row_signs.numel() * w - flat.numel()
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    grid = flat.view(-1, w)
    # Buckets c + o_r fall in [0, 2w): accumulate into 2w slots and fold the top half
    # back, which avoids an integer modulo over every element (3x faster).
    out = torch.zeros(2 * w, dtype=torch.float64, device=device)
    step = torch.empty(2 * w, dtype=torch.float32, device=device)
    columns = torch.arange(w, device=device)
    for r0 in range(0, grid.shape[0], ROWS_PER_STEP):
        r1 = r0 + ROWS_PER_STEP
        signed = grid[r0:r1] * col_signs
        signed *= row_signs[r0:r1, None]
        buckets = columns + offsets[r0:r1, None]
        step.zero_()
        step.index_add_(0, buckets.reshape(-1), signed.reshape(-1))
        out += step
    out = out[:w] + out[w:]
    return out.to(torch.float32).cpu()


@lru_cache(maxsize=4096)
def _fold_plan(name: str, w: int, model_width: int) -> tuple[np.ndarray, np.ndarray]:
    """(signs [w] float32, model-sketch bucket of each tensor-sketch entry [w])."""
    raw = np.random.PCG64(_seed("fold|" + name, (w,), model_width)).random_raw(w + 1)
    signs = (raw[:w] & 1).astype(np.float32) * np.float32(2.0) - np.float32(1.0)
    offset = int(raw[w] % np.uint64(model_width))
    return signs, (np.arange(w) + offset) % model_width


def fold_into_model_sketch(
    model_sketch: np.ndarray, name: str, tensor_sketch: np.ndarray
) -> None:
    """Add a tensor's float32 sketch into the float64 model-level sketch, in place,
    with fresh signs and offset.

    The model sketch is itself a linear, unbiased sketch of all of a model's (float)
    weights concatenated: cross-tensor terms carry independent random signs.
    """
    signs, idx = _fold_plan(name, tensor_sketch.size, model_sketch.size)
    values = (tensor_sketch * signs).astype(model_sketch.dtype)
    if tensor_sketch.size <= model_sketch.size:  # distinct buckets: one add each
        model_sketch[idx] += values
    else:  # a sketch wider than the model's wraps around: buckets repeat
        np.add.at(model_sketch, idx, values)
