"""Read a tensor's leading elements as float64 numpy chunks, in bounded memory.

Safetensors tensors are read with positioned reads into one reusable buffer rather than
through the memory map: pages touched through a map count in the process's resident
set until the map closes, so streaming three models through maps would still peak at
three models' worth of RSS. Reads go through the page cache, so a second pass is cheap.

Arithmetic is numpy, single-threaded on purpose: the work is memory-bound, and a pair
per core (a Ray worker per pair) scales; multi-threaded BLAS reductions on small vectors
spend more time waking threads than summing, badly so on a shared, busy machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import torch

from lineage.weights import ModelWeights, TensorInfo
from lineage.weights.dtypes import itemsize, torch_dtype

CHUNK_ELEMENTS = 1 << 18  # 2 MiB per float64 chunk; ~8 are alive at a time


class ChunkReader:
    """Positioned reads of one model's safetensors files; use as a context manager."""

    def __init__(self, model: ModelWeights) -> None:
        self.model = model
        self._infos = model.infos()
        self._files: dict[str, BinaryIO] = {}
        self._buffer = bytearray()

    def chunks(self, name: str, numel: int, chunk: int = CHUNK_ELEMENTS) -> Iterator[np.ndarray]:
        """The first `numel` elements of tensor `name`, flattened, as float64 chunks.

        Each yielded chunk is a fresh float64 array; the byte buffer behind it is reused.
        """
        info = self._infos[name]
        if info.offset < 0:  # a pickle source: already in memory, slice it
            flat = self.model.tensor(name).reshape(-1)
            for start in range(0, numel, chunk):
                yield flat[start : min(numel, start + chunk)].to(torch.float64).numpy()
            return
        for start in range(0, numel, chunk):
            yield self._read(info, start, min(numel, start + chunk) - start)

    def _read(self, info: TensorInfo, start: int, count: int) -> np.ndarray:
        size = itemsize(info.dtype)
        nbytes = count * size
        if len(self._buffer) < nbytes:
            self._buffer = bytearray(nbytes)
        view = memoryview(self._buffer)[:nbytes]
        handle = self._file(info.file)
        handle.seek(info.offset + start * size)
        if handle.readinto(view) != nbytes:
            raise OSError(f"{info.file}: short read of tensor {info.name!r}")
        return to_float64(view, info.dtype)

    def _file(self, path: str) -> BinaryIO:
        if path not in self._files:
            self._files[path] = open(path, "rb")  # closed in close()
        return self._files[path]

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files = {}

    def __enter__(self) -> ChunkReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


NUMPY_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4"}


def to_float64(raw: memoryview, dtype: str) -> np.ndarray:
    """Little-endian safetensors bytes of `dtype` as a new float64 array."""
    if dtype in NUMPY_DTYPES:
        return np.frombuffer(raw, dtype=NUMPY_DTYPES[dtype]).astype(np.float64)
    if dtype == "BF16":  # bfloat16 is the top half of a float32: shift the bits back
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).astype(np.float64)
    if dtype == "BOOL":
        return (np.frombuffer(raw, dtype=np.uint8) != 0).astype(np.float64)
    return torch.frombuffer(raw, dtype=torch_dtype(dtype)).to(torch.float64).numpy()
