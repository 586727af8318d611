"""Writing a merged model folder atomically: sharded safetensors, index, config, card.

Everything is written into a hidden temporary folder next to ``out_dir`` and renamed into
place at the end, so a crash or a killed job never leaves half a model where a reader
(or the catalog's indexer) could find it.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import torch
import yaml
from safetensors.torch import save_file

from lineage.errors import SpecError

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


class ShardWriter:
    """Buffers tensors of the current shard and saves each shard as soon as it is full.

    Memory is bounded by one shard (``max_bytes``), whatever the model's size.
    """

    def __init__(self, folder: Path, shards: list[list[str]]) -> None:
        self.folder = folder
        self.files = shard_names(len(shards))
        self.file_of = {n: f for names, f in zip(shards, self.files, strict=True) for n in names}
        self.remaining = [set(names) for names in shards]
        self.buffers: list[dict[str, torch.Tensor]] = [{} for _ in shards]
        self.shard_of = {n: i for i, names in enumerate(shards) for n in names}
        self.total_bytes = 0

    def add(self, name: str, tensor: torch.Tensor) -> None:
        i = self.shard_of[name]
        self.buffers[i][name] = tensor.contiguous()
        self.total_bytes += tensor.numel() * tensor.element_size()
        self.remaining[i].discard(name)
        if not self.remaining[i]:
            save_file(self.buffers[i], str(self.folder / self.files[i]),
                      metadata={"format": "pt"})
            self.buffers[i] = {}

    def finish(self) -> list[str]:
        """Check every tensor arrived; write the index when sharded. Returns file names."""
        missing = sorted(n for r in self.remaining for n in r)
        if missing:
            raise RuntimeError(f"merge wrote no tensor for {missing[:5]}")
        if len(self.files) > 1:
            index = {"metadata": {"total_size": self.total_bytes}, "weight_map": self.file_of}
            (self.folder / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
        return list(self.files)


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
