"""Zero-copy access to the tensors of one validated safetensors file.

The file is memory-mapped once; a tensor is a view of its bytes, so reading a tensor
costs what the page cache or the disk costs, and no more. The header was validated by
`read_header` first, so every offset used here lies inside the file. `raw` needs no
torch (the CPU fingerprint reads it with numpy); `tensor` imports torch when called.
"""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import TYPE_CHECKING

from lineage.errors import ResourceLimitError
from lineage.weights.dtypes import torch_dtype
from lineage.weights.header import (
    SafetensorsHeader,
    TensorInfo,
    header_from_bytes,
    read_header,
)

if TYPE_CHECKING:
    import torch


class SafetensorsFile:
    """One safetensors file; use as a context manager or call `close()`."""

    def __init__(self, path: str | Path) -> None:
        self.header: SafetensorsHeader = read_header(path)
        self.path = str(path)
        self._file = open(self.path, "rb")
        # A private copy-on-write map: tensors are writable views (torch wants that), and
        # a write would only ever touch private pages, never the file. It covers the
        # header and the tensors only: trailing bytes (a sparse tail) cost no address space.
        end = max((t.offset + t.nbytes for t in self.header.tensors.values()), default=0)
        self._map: mmap.mmap | None = None
        if end > 0:
            try:
                self._map = mmap.mmap(self._file.fileno(), end, access=mmap.ACCESS_COPY)
            except OSError as err:  # ENOMEM: a private map larger than RAM + swap
                self._file.close()
                raise ResourceLimitError(
                    f"safetensors file {self.path}",
                    f"needs a {end}-byte memory map, which this machine refuses ({err.strerror})",
                    "Index it on a machine with more memory (or swap)",
                ) from None

    @property
    def tensors(self) -> dict[str, TensorInfo]:
        return self.header.tensors

    def raw(self, name: str) -> memoryview:
        """The tensor's bytes exactly as stored (little-endian), without a copy."""
        info = self.header.tensors[name]
        if info.nbytes == 0:
            return memoryview(b"")
        return memoryview(self._map)[info.offset : info.offset + info.nbytes]

    def prefetch(self, name: str) -> None:
        """Ask the kernel to start reading a tensor's pages now (readahead), so the
        disk works while the CPU is busy with the previous tensor."""
        info = self.header.tensors[name]
        if info.nbytes == 0 or not hasattr(mmap, "MADV_WILLNEED"):
            return
        start = info.offset - info.offset % mmap.PAGESIZE
        self._map.madvise(mmap.MADV_WILLNEED, start, info.offset + info.nbytes - start)

    def prefetch_range(self, name: str, start: int, end: int) -> None:
        """Readahead of the tensor's bytes start..end (a hint; never blocks)."""
        info = self.header.tensors[name]
        end = min(end, info.nbytes)
        if end <= start or not hasattr(mmap, "MADV_WILLNEED"):
            return
        first = info.offset + start
        first -= first % mmap.PAGESIZE
        self._map.madvise(mmap.MADV_WILLNEED, first, info.offset + end - first)

    def release(self, name: str, start: int = 0, end: int | None = None) -> None:
        """Drop this process's pages of a tensor (they stay in the page cache; a later
        read maps them again). Mapped pages a reader touched count in its resident
        memory until the map closes, so a pass over a whole model would hold the whole
        file.

        With `end` None, the whole tensor (a streaming merge done with it: views still
        alive read the bytes again from the file on their next access). With `end`, the
        whole pages of bytes start..end only (a fingerprint chunk): the page holding
        byte `end` stays, the next chunk shares it."""
        info = self.header.tensors[name]
        if info.nbytes == 0 or self._map is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        first = info.offset + start
        first -= first % mmap.PAGESIZE
        if end is None:
            last = info.offset + info.nbytes
        else:
            last = info.offset + min(end, info.nbytes)
            last -= last % mmap.PAGESIZE
        if last > first:
            self._map.madvise(mmap.MADV_DONTNEED, first, last - first)

    def tensor(self, name: str) -> torch.Tensor:
        """The tensor in its stored dtype, a view of the file's mapped pages (no copy).

        Writes land in private copy-on-write pages, never in the file, but are seen by
        later views of the same tensor: `.clone()` first if you modify it.
        """
        return _tensor_view(self.header.tensors[name], self.raw(name))

    def close(self) -> None:
        # Views handed out may still be alive; the map then closes when they are gone.
        try:
            if self._map is not None:
                self._map.close()
        except BufferError:
            pass
        self._file.close()

    def __enter__(self) -> SafetensorsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SafetensorsBytes:
    """A whole safetensors file held in memory (a small file a range read held whole),
    read as SafetensorsFile reads one on disk: the header validated by the same checks
    (header_from_bytes), tensors as views of a private copy of the bytes (writable, as
    the map's copy-on-write pages are). Nothing is read ahead or unmapped: the bytes
    are all in memory already."""

    def __init__(self, data: bytes, path: str) -> None:
        self.header: SafetensorsHeader = header_from_bytes(data, path)
        self.path = path
        self._data = bytearray(data)

    @property
    def tensors(self) -> dict[str, TensorInfo]:
        return self.header.tensors

    def raw(self, name: str) -> memoryview:
        info = self.header.tensors[name]
        return memoryview(self._data)[info.offset : info.offset + info.nbytes]

    def prefetch(self, name: str) -> None:
        pass

    def prefetch_range(self, name: str, start: int, end: int) -> None:
        pass

    def release(self, name: str, start: int = 0, end: int | None = None) -> None:
        pass

    def tensor(self, name: str) -> torch.Tensor:
        return _tensor_view(self.header.tensors[name], self.raw(name))

    def close(self) -> None:
        pass  # views handed out keep the bytes alive; nothing else is held

    def __enter__(self) -> SafetensorsBytes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tensor_view(info: TensorInfo, raw: memoryview) -> torch.Tensor:
    import torch

    dtype = torch_dtype(info.dtype)
    if info.numel == 0:
        return torch.empty(info.shape, dtype=dtype)
    if dtype == torch.bool:
        # Untrusted bytes other than 0/1 are not valid bools; normalise them.
        return torch.frombuffer(raw, dtype=torch.uint8).ne(0).reshape(info.shape)
    return torch.frombuffer(raw, dtype=dtype).reshape(info.shape)
