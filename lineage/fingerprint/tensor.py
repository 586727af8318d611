"""The fingerprint of one tensor: exact moments, content hash and linear sketch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lineage.fingerprint.moments import tensor_moments
from lineage.fingerprint.sketch import DEFAULT_WIDTH, sketch_tensor


@dataclass(frozen=True)
class TensorFingerprint:
    name: str
    dtype: str
    shape: tuple[int, ...]
    numel: int
    content_hash: str
    mean: float
    std: float
    kurtosis: float
    min: float
    max: float
    sketch: np.ndarray  # float32, length min(width, numel)


def fingerprint_values(
    name: str, dtype: str, tensor: torch.Tensor, content_hash: str, width: int = DEFAULT_WIDTH
) -> TensorFingerprint:
    """Fingerprint `tensor` (already on the compute device) whose bytes hash to
    `content_hash`; the hash is passed in so it can be computed concurrently."""
    moments = tensor_moments(tensor)
    sketch = sketch_tensor(name, tensor, width)
    return TensorFingerprint(
        name=name,
        dtype=dtype,
        shape=tuple(tensor.shape),
        numel=tensor.numel(),
        content_hash=content_hash,
        mean=moments.mean,
        std=moments.std,
        kurtosis=moments.kurtosis,
        min=moments.min,
        max=moments.max,
        sketch=sketch.cpu().numpy(),
    )
