"""A model's weights as a stream of named tensors, whatever the layout on disk."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from lineage.errors import MalformedWeightsError
from lineage.weights.header import TensorInfo
from lineage.weights.layout import Layout, resolve_layout
from lineage.weights.metadata import ModelMetadata, read_metadata
from lineage.weights.pickle_file import PickleFile
from lineage.weights.safetensors_file import SafetensorsBytes, SafetensorsFile

if TYPE_CHECKING:  # tensors are torch's, but reading raw bytes never imports it
    import torch


class ModelWeights:
    """Read-only access to one model; tensors are loaded one at a time, on demand."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.path = (
            layout.root
            if layout.kind not in ("safetensors-file", "pickle-file")
            else (layout.sources[0].file)
        )
        self._files: list[SafetensorsFile | SafetensorsBytes | PickleFile] = []
        self._where: dict[str, tuple[SafetensorsFile | SafetensorsBytes | PickleFile, str]] = {}
        self._infos: dict[str, TensorInfo] = {}
        try:
            for source in layout.sources:
                self._add_source(source.prefix, source.file, source.pickle)
        except BaseException:
            self.close()
            raise

    def _add_source(self, prefix: str, file: Path, pickle: bool) -> None:
        handle = PickleFile(file) if pickle else self._safetensors(file)
        self._files.append(handle)
        for name, info in handle.tensors.items():
            full = prefix + name
            if full in self._where:
                raise MalformedWeightsError(
                    f"model {self.path}",
                    f"tensor {full!r} appears in both {self._where[full][0].path} and {file}",
                    "Remove the stale shard",
                )
            self._where[full] = (handle, name)
            self._infos[full] = TensorInfo(
                full, info.dtype, info.shape, info.file, info.offset, info.nbytes
            )

    def _safetensors(self, file: Path) -> SafetensorsFile | SafetensorsBytes:
        held = self.layout.held
        if held is None:
            return SafetensorsFile(file)
        name = file.relative_to(self.layout.root).as_posix()
        if name not in held:
            raise MalformedWeightsError(
                f"model {self.path}", f"has no file {name!r} in memory", "Read it again"
            )
        return SafetensorsBytes(held[name], str(file))

    @property
    def kind(self) -> str:
        return self.layout.kind

    def names(self) -> list[str]:
        """Tensor names in storage order (shard by shard, offset by offset)."""
        return list(self._infos)

    def infos(self) -> dict[str, TensorInfo]:
        return dict(self._infos)

    def tensor(self, name: str) -> torch.Tensor:
        """The tensor in its stored dtype; a read-only view for safetensors sources."""
        handle, local = self._where[name]
        return handle.tensor(local)

    def prefetch(self, name: str) -> None:
        """Start reading `name` from disk in the background (a hint; never blocks)."""
        handle, local = self._where[name]
        handle.prefetch(local)

    def prefetch_range(self, name: str, start: int, end: int) -> None:
        """Start reading bytes start..end of `name` (a hint; never blocks)."""
        handle, local = self._where[name]
        handle.prefetch_range(local, start, end)

    def release(self, name: str, start: int = 0, end: int | None = None) -> None:
        """Done with `name` (or with its bytes start..end): drop those mapped pages from
        this process's memory (they stay in the page cache; reading them again costs a
        page-cache read), so memory is bounded by a chunk or a tensor."""
        handle, local = self._where[name]
        handle.release(local, start, end)

    def raw(self, name: str) -> memoryview:
        """The tensor's stored bytes (little-endian), for hashing."""
        handle, local = self._where[name]
        return handle.raw(local)

    def iter_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        for name in self._infos:
            yield name, self.tensor(name)

    @cached_property
    def metadata(self) -> ModelMetadata:
        infos = list(self._infos.values())
        return read_metadata(self.kind, self.layout.root, infos, held=self.layout.held)

    def close(self) -> None:
        for handle in self._files:
            handle.close()
        self._files = []

    def __enter__(self) -> ModelWeights:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ModelWeights({str(self.path)!r}, kind={self.kind!r}, tensors={len(self._infos)})"


def open_model(path: str | Path, *, allow_pickle: bool = False) -> ModelWeights:
    """Open the model at `path`: a .safetensors file or a transformers, PEFT adapter or
    diffusers folder. Pickle formats are refused unless `allow_pickle` is set."""
    return ModelWeights(resolve_layout(path, allow_pickle=allow_pickle))
