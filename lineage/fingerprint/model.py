"""Fingerprint a whole model, tensor by tensor, reading each byte once.

Per tensor: exact moments, content hash, linear sketch, and for 2-D float matrices a
rank sketch and a coordinate sample (see tensor.py). Per model: the
metadata and a fixed-width model-level sketch for nearest-neighbour search. Hashing
runs in a worker thread while the main thread does the arithmetic on the previous
tensor, so the two overlap on a 2-core machine.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from lineage.fingerprint.content_hash import content_hash
from lineage.fingerprint.sketch import DEFAULT_WIDTH, fold_into_model_sketch
from lineage.fingerprint.tensor import EvidenceOptions, TensorFingerprint, fingerprint_values
from lineage.weights.dtypes import is_float
from lineage.weights.metadata import ModelMetadata
from lineage.weights.model import ModelWeights

ProgressFn = Callable[[int], None]  # called with the bytes just fingerprinted


@dataclass(frozen=True)
class ModelFingerprint:
    metadata: ModelMetadata
    tensors: list[TensorFingerprint]
    sketch: np.ndarray  # float32 [width]: linear sketch of all float weights
    sketch_width: int


def fingerprint_model(
    model: ModelWeights,
    *,
    width: int = DEFAULT_WIDTH,
    device: str | torch.device = "cpu",
    progress: ProgressFn | None = None,
    evidence: EvidenceOptions | None = None,
) -> ModelFingerprint:
    """Fingerprint every tensor of `model`; arithmetic runs on `device` (CPU or GPU).
    `evidence`: the recovery evidence of 2-D matrices (rank sketch, coordinate sample);
    on by default."""
    infos = model.infos()
    model_sketch = torch.zeros(width, dtype=torch.float64)
    results: list[TensorFingerprint] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lineage-hash") as pool:
        names = list(infos)
        for position, (name, info) in enumerate(infos.items()):
            if position + 1 < len(names):
                model.prefetch(names[position + 1])
            raw = model.raw(name)
            pending: Future[str] = pool.submit(content_hash, info.dtype, info.shape, raw)
            tensor = model.tensor(name).to(device, non_blocking=True)
            fp = fingerprint_values(name, info.dtype, tensor, "", width, evidence)
            fp = _with_hash(fp, pending.result())
            if is_float(info.dtype):
                fold_into_model_sketch(model_sketch, name, torch.from_numpy(fp.sketch))
            results.append(fp)
            if progress:
                progress(info.nbytes)
    return ModelFingerprint(
        metadata=model.metadata,
        tensors=results,
        sketch=model_sketch.to(torch.float32).numpy(),
        sketch_width=width,
    )


def _with_hash(fp: TensorFingerprint, digest: str) -> TensorFingerprint:
    from dataclasses import replace

    return replace(fp, content_hash=digest)
