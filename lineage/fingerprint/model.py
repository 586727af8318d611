"""Fingerprint a whole model, tensor by tensor, reading each byte once.

Per tensor: exact moments, content hash, linear sketch, and for 2-D float matrices a
rank sketch and a coordinate sample (see tensor.py). Per model: the metadata and a
fixed-width model-level sketch for nearest-neighbour search.

On the CPU a tensor streams through in chunks of CHUNK_BYTES (stream.py): each chunk
is hashed and folded into every other stage by compiled kernels (with two or more
threads given, the hash runs in a second thread beside the other stages: sha256 and
the kernels release the GIL), the next chunks are read ahead by the kernel, and a
chunk's pages are unmapped once it is done. Memory is therefore bounded by a few
chunks, not by the largest tensor or file; the arithmetic starts no threads of its
own, and the CPU path never imports torch (numpy and numba only). On a GPU the torch
path of tensor.py runs, a whole tensor at a time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from lineage.fingerprint.content_hash import HASH_HEX_CHARS, content_hash, content_hasher
from lineage.fingerprint.sketch import DEFAULT_WIDTH, fold_into_model_sketch
from lineage.fingerprint.stream import TensorStream, chunk_elements, stored
from lineage.fingerprint.tensor import EvidenceOptions, TensorFingerprint, fingerprint_values
from lineage.threads import configured_threads
from lineage.weights.dtypes import is_float, itemsize
from lineage.weights.header import TensorInfo
from lineage.weights.metadata import ModelMetadata
from lineage.weights.model import ModelWeights

if TYPE_CHECKING:
    import torch

ProgressFn = Callable[[int], None]  # called with the bytes just fingerprinted

CHUNK_BYTES = 8 << 20  # per chunk read; the memory bound is a few of these
READ_AHEAD = 2  # chunks the kernel is asked to read ahead of the one in work
THREADED_HASH_BYTES = 1 << 20  # below this, handing the hash to a thread costs more
HASH_LAG = 3  # chunks the second thread may trail by (memory: 3 chunks more)


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
    threads: int | None = None,
) -> ModelFingerprint:
    """Fingerprint every tensor of `model`; arithmetic runs on `device` (CPU or GPU).
    `evidence`: the recovery evidence of 2-D matrices (rank sketch, coordinate sample);
    on by default. `threads`: CPU threads to use (default: what lineage.threads set for
    the process); with two or more the hash runs beside the arithmetic."""
    evidence = evidence or EvidenceOptions()
    model_sketch = np.zeros(width, np.float64)
    on_cpu = str(device).split(":")[0] == "cpu"  # a torch.device prints as its name
    threads = threads or configured_threads()
    results: list[TensorFingerprint] = []

    def done(info: TensorInfo, fp: TensorFingerprint) -> None:
        """A tensor's fingerprint is complete (called in storage order)."""
        if is_float(info.dtype):
            fold_into_model_sketch(model_sketch, info.name, fp.sketch)
        results.append(fp)
        if progress:
            progress(info.nbytes)

    infos = list(model.infos().values())
    with ExitStack() as stack:
        pool = _LazyPool(stack) if threads >= 2 else None
        trail = _Trail(model)
        if on_cpu and infos:
            model.prefetch_range(infos[0].name, 0, READ_AHEAD * CHUNK_BYTES)
        for i, info in enumerate(infos):
            if not on_cpu:
                done(info, _tensor_on_device(model, info, width, evidence, device))
                continue
            after = infos[i + 1] if i + 1 < len(infos) else None
            _stream_tensor(model, info, after, width, evidence, pool, trail, done)
        trail.drain()
    return ModelFingerprint(
        metadata=model.metadata,
        tensors=results,
        sketch=model_sketch.astype(np.float32),
        sketch_width=width,
    )


class _LazyPool:
    """The hash thread, started at the first tensor big enough to need it (a model of
    small tensors never pays for a thread)."""

    def __init__(self, stack: ExitStack) -> None:
        self.stack, self.pool = stack, None

    def get(self) -> ThreadPoolExecutor:
        if self.pool is None:
            self.pool = self.stack.enter_context(
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="lineage-hash"))
        return self.pool


class _Trail:
    """What the second thread does behind the first, in order and across tensors: a
    chunk's hash (its pages released once hashed), then a tensor's end (its fingerprint
    completed once every chunk before it is hashed). Crossing tensors keeps the second
    thread hashing while the first finishes one tensor and starts the next, instead of
    both waiting at every boundary; at most HASH_LAG chunks trail."""

    def __init__(self, model: ModelWeights) -> None:
        self.model = model
        self.items: deque[tuple[Future, str, int, int] | Callable[[], None]] = deque()
        self.chunks = 0

    def chunk(self, hashed: Future, name: str, start: int, end: int) -> None:
        self.items.append((hashed, name, start, end))
        self.chunks += 1

    def tensor_end(self, complete: Callable[[], None]) -> None:
        self.items.append(complete)
        self.settle()

    def settle(self, lag: int = HASH_LAG) -> None:
        """Retire the items done from the front; while more than `lag` chunks trail,
        wait for the oldest."""
        while self.items:
            head = self.items[0]
            if callable(head):
                self.items.popleft()
                head()
                continue
            hashed, name, start, end = head
            if self.chunks <= lag and not hashed.done():
                return
            self.items.popleft()
            self.chunks -= 1
            hashed.result()
            self.model.release(name, start, end)

    def drain(self) -> None:
        self.settle(lag=-1)


def _stream_tensor(model: ModelWeights, info: TensorInfo, after: TensorInfo | None,
                   width: int, evidence: EvidenceOptions, pool: _LazyPool | None,
                   trail: _Trail, done: Callable[[TensorInfo, TensorFingerprint], None]
                   ) -> None:
    """One tensor through every stage, chunk by chunk, its bytes read once; `done` gets
    its fingerprint once its last chunk is hashed.

    Read-ahead: the kernel is asked for each byte once, READ_AHEAD chunks ahead of the
    chunk in work; the tensor's first chunks were asked for before it (by the tensor
    before it), and near its end it asks for the first chunks of the tensor `after`.

    With a second thread, the work of a chunk is split in two (measured per GB on one
    core: sha256 ~0.6 s there; moments ~0.15 s, count-sketch ~0.06 s and the recovery
    evidence ~0.15 s here: the hash alone is the larger half); the second may trail by
    HASH_LAG chunks, so neither waits for the other at every chunk, and the rank
    product runs while the second thread hashes the last chunks. A chunk's pages are
    released once both have read it."""
    name, raw = info.name, model.raw(info.name)
    stream = TensorStream(name, info.dtype, info.shape, width, evidence)
    hasher = content_hasher(info.dtype, info.shape)
    size = itemsize(info.dtype)
    step = chunk_elements(info.dtype, CHUNK_BYTES) * size
    threaded = pool is not None and len(raw) >= THREADED_HASH_BYTES
    ahead = READ_AHEAD * step
    if after is not None and ahead >= len(raw):
        model.prefetch_range(after.name, 0, ahead)
    for start in range(0, len(raw), step):
        end = min(len(raw), start + step)
        model.prefetch_range(name, start + ahead, start + ahead + step)
        if after is not None and start + ahead < len(raw) <= start + ahead + step:
            model.prefetch_range(after.name, 0, ahead)
        chunk = raw[start:end]
        values = stored(chunk, info.dtype)
        if threaded:
            trail.chunk(pool.get().submit(hasher.update, chunk), name, start, end)
            stream.update(values, start // size)
        else:
            hasher.update(chunk)
            stream.update(values, start // size)
            model.release(name, start, end)
        trail.settle()
    stream.seal()  # beside the hashes still trailing
    trail.tensor_end(lambda: done(info, stream.finish(hasher.hexdigest()[:HASH_HEX_CHARS])))


def _tensor_on_device(model: ModelWeights, info: TensorInfo, width: int,
                      evidence: EvidenceOptions, device: str | torch.device
                      ) -> TensorFingerprint:
    """The torch path (a GPU): the whole tensor moved to `device`, hashed on the CPU."""
    digest = content_hash(info.dtype, info.shape, model.raw(info.name))
    tensor = model.tensor(info.name).to(device, non_blocking=True)
    fp = fingerprint_values(info.name, info.dtype, tensor, "", width, evidence)
    return replace(fp, content_hash=digest)
