"""Writing a merged model folder atomically: sharded safetensors, index, config, card.

Everything is written into a hidden temporary folder next to ``out_dir`` and renamed into
place at the end, so a crash or a killed job never leaves half a model where a reader
(or the catalog's indexer) could find it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from lineage.errors import SpecError
from lineage.weights.dtypes import torch_to_safetensors

DEFAULT_MAX_SHARD_BYTES = 5 * 1024**3
INDEX_NAME = "model.safetensors.index.json"
SIDE_FILES = ("generation_config.json", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json", "tokenizer.model", "vocab.json", "vocab.txt",
              "merges.txt", "spiece.model", "added_tokens.json", "chat_template.jinja")


def plan_shards(sizes: Sequence[tuple[str, int]], max_bytes: int) -> list[list[str]]:
    """Split tensors (name, nbytes), in order, into shards of at most ``max_bytes``
    (a tensor larger than that gets a shard of its own)."""
    shards: list[list[str]] = [[]]
    used = 0
    for name, nbytes in sizes:
        if shards[-1] and used + nbytes > max_bytes:
            shards.append([])
            used = 0
        shards[-1].append(name)
        used += nbytes
    return shards


def shard_names(n: int) -> list[str]:
    """HF Hub file names: ``model.safetensors`` alone, else ``model-0000i-of-0000n``."""
    if n == 1:
        return ["model.safetensors"]
    return [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]


class AtomicFolder:
    """A temporary sibling of ``final`` that becomes ``final`` on :meth:`commit`."""

    def __init__(self, final: str | Path, *, overwrite: bool = False) -> None:
        self.final = Path(final)
        if self.final.exists() and not overwrite:
            raise SpecError(f"output folder {self.final}", "already exists",
                            "Choose a new folder or pass overwrite=True")
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.final.with_name(f".{self.final.name}.tmp-{uuid.uuid4().hex[:12]}")
        self.tmp.mkdir()

    def commit(self) -> Path:
        old = None
        if self.final.exists():
            old = self.final.with_name(f".{self.final.name}.old-{uuid.uuid4().hex[:12]}")
            os.replace(self.final, old)
        os.replace(self.tmp, self.final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.final

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> AtomicFolder:
        return self

    def __exit__(self, exc_type, *_: object) -> None:
        if exc_type is not None:
            self.abort()


@dataclass(frozen=True)
class TensorSpec:
    """What the writer is promised for one tensor before it arrives."""

    dtype: torch.dtype
    shape: tuple[int, ...]

    @property
    def itemsize(self) -> int:
        return torch.empty((), dtype=self.dtype).element_size()

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.itemsize


def safetensors_header(names: Sequence[str], specs: Mapping[str, TensorSpec],
                       metadata: Mapping[str, str]) -> tuple[bytes, dict[str, int]]:
    """The header bytes (length prefix included) of a safetensors file holding ``names``,
    and each tensor's absolute byte offset in that file.

    Tensors are laid out by element size, largest first (stable otherwise), as
    safetensors' own writer does, so every tensor stays aligned to its element size; the
    JSON is padded with spaces to a multiple of 8 bytes for the same reason.
    """
    order = sorted(names, key=lambda n: -specs[n].itemsize)
    entries: dict[str, object] = {"__metadata__": dict(metadata)}
    begin, offsets = 0, {}
    for name in order:
        spec = specs[name]
        end = begin + spec.nbytes
        entries[name] = {"dtype": torch_to_safetensors()[spec.dtype], "shape": list(spec.shape),
                         "data_offsets": [begin, end]}
        offsets[name] = begin
        begin = end
    text = json.dumps(entries, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    head = struct.pack("<Q", len(text)) + text
    return head, {n: len(head) + o for n, o in offsets.items()}


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        n = os.pwrite(fd, data, offset)
        data, offset = data[n:], offset + n


class ShardWriter:
    """Writes each tensor straight into its place in its shard file as it arrives.

    Every shard's header is written first, from the dtypes and shapes promised in
    ``specs``; a tensor's bytes then go to their offset at once, so the writer holds no
    tensor, whatever the shard size (it used to buffer a whole shard, up to 5 GB, which
    for most models meant the whole merged model in memory). Use as a context manager,
    or call :meth:`close`.
    """

    def __init__(self, folder: Path, shards: list[list[str]],
                 specs: Mapping[str, TensorSpec]) -> None:
        self.folder = folder
        self.files = shard_names(len(shards))
        self.specs = dict(specs)
        self.file_of = {n: f for names, f in zip(shards, self.files, strict=True) for n in names}
        self.remaining = {n for names in shards for n in names}
        self.total_bytes = 0
        self._fds: list[int] = []
        self._where: dict[str, tuple[int, int]] = {}
        try:
            for names, file in zip(shards, self.files, strict=True):
                head, offsets = safetensors_header(names, self.specs, {"format": "pt"})
                fd = os.open(folder / file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                self._fds.append(fd)
                _pwrite_all(fd, memoryview(head), 0)
                self._where.update({n: (fd, o) for n, o in offsets.items()})
        except BaseException:
            self.close()
            raise

    def add(self, name: str, tensor: torch.Tensor) -> None:
        """Write ``name``'s bytes; its dtype and shape must be the promised ones."""
        spec = self.specs[name]
        if name not in self.remaining:
            raise RuntimeError(f"tensor {name!r} written twice or never planned")
        if tensor.dtype != spec.dtype or tuple(tensor.shape) != spec.shape:
            raise RuntimeError(f"tensor {name!r} is {tensor.dtype} {list(tensor.shape)}, "
                               f"the shard header promised {spec.dtype} {list(spec.shape)}")
        fd, offset = self._where[name]
        if tensor.numel():
            flat = tensor.contiguous().reshape(-1).view(torch.uint8)
            _pwrite_all(fd, memoryview(flat.numpy()), offset)
        self.total_bytes += spec.nbytes
        self.remaining.discard(name)

    def finish(self) -> list[str]:
        """Check every tensor arrived; write the index when sharded. Returns file names."""
        missing = sorted(self.remaining)
        if missing:
            raise RuntimeError(f"merge wrote no tensor for {missing[:5]}")
        self.close()
        if len(self.files) > 1:
            index = {"metadata": {"total_size": self.total_bytes}, "weight_map": self.file_of}
            (self.folder / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
        return list(self.files)

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.pop())

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_config(folder: Path, config: dict, dtype: torch.dtype | None) -> None:
    """config.json of the source model, with the output dtype under both ``dtype``
    (transformers >= 4.56 reads this one first) and ``torch_dtype`` (older readers).

    Setting only ``torch_dtype`` left a source's ``"dtype": "float32"`` beside
    ``"torch_dtype": "bfloat16"``, and ``AutoConfig`` reported float32.
    """
    if not config:
        return
    config = dict(config)
    if dtype is not None:
        name = str(dtype).removeprefix("torch.")
        config["dtype"] = name
        config["torch_dtype"] = name
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def copy_side_files(src: Path, folder: Path) -> list[str]:
    """Copy tokenizer and generation files from a source model folder, when present."""
    copied = []
    if src.is_dir():
        for name in SIDE_FILES:
            if (src / name).is_file():
                shutil.copy2(src / name, folder / name)
                copied.append(name)
    return copied


def card_text(model_ids: Sequence[str], recipe_yaml: str, title: str, about: str) -> str:
    """README.md with Hub front matter declaring a merge of ``model_ids``."""
    front = {"base_model": list(model_ids), "base_model_relation": "merge",
             "tags": ["merge", "lineage"]}
    return (
        f"---\n{yaml.safe_dump(front, sort_keys=False)}---\n\n# {title}\n\n{about}\n\n"
        "## Models merged\n\n" + "".join(f"- `{m}`\n" for m in model_ids)
        + f"\n## Recipe\n\n```yaml\n{recipe_yaml}```\n"
    )
