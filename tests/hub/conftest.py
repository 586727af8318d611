"""Fixtures for the loopback Hub tests; the reusable ones live in the plugin module."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from jobs.loopback_hub.pytest_plugin import hub_env, hub_server, make_repo, write_repo

__all__ = ["hub_env", "hub_server", "make_repo"]

PICO_CONFIG = {"model_type": "pico", "architectures": ["PicoForCausalLM"]}


def pico_tensors(seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "layers.0.attn.q.weight": torch.randn(4, 4, generator=gen),
        "layers.0.attn.q.bias": torch.randn(4, generator=gen).to(torch.float16),
    }


def write_sharded(folder: Path, seed: int) -> None:
    """Two shards and an index, as transformers writes them."""
    tensors = pico_tensors(seed)
    names = sorted(tensors)
    shards = {
        "model-00001-of-00002.safetensors": names[:1],
        "model-00002-of-00002.safetensors": names[1:],
    }
    weight_map = {}
    for shard, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, str(folder / shard))
        weight_map.update({k: shard for k in keys})
    index = {"metadata": {"total_size": 72}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


@pytest.fixture
def pico_zoo(tmp_path: Path) -> Path:
    """Eight tiny repos covering every card relation, plus non-repo clutter."""
    root = tmp_path / "zoo"
    base = {"license": "mit", "tags": ["pico"], "pipeline_tag": "text-generation"}
    write_repo(root, "acme/base", tensors=pico_tensors(0), card=base, config=PICO_CONFIG)
    write_repo(
        root,
        "acme/chat",
        tensors=pico_tensors(1),
        config=PICO_CONFIG,
        card={"base_model": "acme/base", "license": "mit"},
    )
    write_repo(
        root,
        "acme/chat-lora",
        card={"base_model": ["acme/base"]},
        files={"adapter_config.json": json.dumps({"r": 2})},
        tensors=None,
    )
    save_file(pico_tensors(2), str(root / "acme/chat-lora/adapter_model.safetensors"))
    write_repo(
        root,
        "bob/merged",
        tensors=pico_tensors(3),
        config=PICO_CONFIG,
        card={"base_model": ["acme/base", "acme/chat"]},
    )
    write_repo(
        root,
        "bob/chat-q",
        tensors=pico_tensors(4),
        config=PICO_CONFIG,
        card={"base_model": "acme/chat", "base_model_relation": "quantized"},
    )
    write_repo(root, "bob/big", config=PICO_CONFIG, card={"base_model": "acme/base"})
    write_sharded(root / "bob/big", seed=5)
    write_repo(root, "carol/undocumented", tensors=pico_tensors(6), config=PICO_CONFIG)
    write_repo(
        root,
        "carol/pickled",
        files={"pytorch_model.bin": b"\x80\x04not really"},
        card="no front matter here\n",
    )
    (root / "ground_truth.json").write_text("{}")
    (root / ".cache").mkdir()
    (root / "acme" / "notes.txt").write_text("not a repo")
    return root
