"""The fingerprint of one tensor: exact moments, content hash, linear sketch and, for
2-D float matrices, the recovery evidence (rank sketch and coordinate sample).

`fingerprint_values` is the torch path (GPUs, and the reference of the CPU stream);
the module itself imports no torch, so the CPU path can use its types without it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lineage.fingerprint.moments import tensor_moments
from lineage.fingerprint.rank_sketch import RANK_WIDTH, is_rank_matrix, rank_sketch
from lineage.fingerprint.sample import SAMPLE_SIZE, sample_values
from lineage.fingerprint.sketch import DEFAULT_WIDTH, sketch_tensor

if TYPE_CHECKING:
    import torch


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
    # Recovery evidence, 2-D float matrices only (None elsewhere or when not asked for):
    rank_sketch: np.ndarray | None = None  # float32 [k1 * k2]: L W R (rank_sketch.py)
    rank_width: int | None = None  # the k it was computed with
    sample: np.ndarray | None = None  # float32: values at fixed coordinates (sample.py)
    sample_size: int | None = None  # the sample size it was drawn with


@dataclass(frozen=True)
class EvidenceOptions:
    """What recovery evidence to compute besides moments, hash and sketch. `enabled`
    False reproduces the fingerprint of before (benchmarks compare the two)."""

    enabled: bool = True
    rank_width: int = RANK_WIDTH
    sample_size: int = SAMPLE_SIZE


def fingerprint_values(
    name: str,
    dtype: str,
    tensor: torch.Tensor,
    content_hash: str,
    width: int = DEFAULT_WIDTH,
    evidence: EvidenceOptions | None = None,
) -> TensorFingerprint:
    """Fingerprint `tensor` (already on the compute device) whose bytes hash to
    `content_hash`; the hash is passed in so it can be computed concurrently."""
    evidence = evidence or EvidenceOptions()
    moments = tensor_moments(tensor)
    sketch = sketch_tensor(name, tensor, width)
    extra = {}
    if evidence.enabled and is_rank_matrix(tuple(tensor.shape), tensor.is_floating_point()):
        extra = {
            "rank_sketch": rank_sketch(tensor, evidence.rank_width),
            "rank_width": evidence.rank_width,
            "sample": sample_values(name, tensor, evidence.sample_size),
            "sample_size": evidence.sample_size,
        }
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
        **extra,
    )
