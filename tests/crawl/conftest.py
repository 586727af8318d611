"""Crawl fixtures: a real tiny zoo served by the loopback Hub, a real local Ray, real
catalogs. Ray is always shut down at teardown (no process outlives a test module)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from jobs.loopback_hub import LoopbackHub
from jobs.loopback_hub.pytest_plugin import hub_env, hub_server, write_repo

__all__ = ["hub_env", "hub_server"]

SEED = "zoo-vit-0/model-1"  # a leaf: the walk must go up, then down again


@pytest.fixture(scope="session")
def tiny_zoo_cached() -> Path:
    """The `tiny` zoo, from the shared zoo cache (built once, ~1-6 min, then reused)."""
    from lineage.zoo import build_zoo

    return build_zoo("tiny", progress=False).root


@pytest.fixture
def zoo_copy(tiny_zoo_cached: Path, tmp_path: Path) -> Path:
    """A private copy a test may change (the loopback Hub re-reads it per request)."""
    dest = tmp_path / "zoo"
    shutil.copytree(tiny_zoo_cached, dest, ignore=shutil.ignore_patterns(".zoo"))
    return dest


@pytest.fixture(scope="session")
def ray_local(ray_cluster) -> None:
    """The session's Ray (tests/conftest.py), with 2 fake GPUs; CPU-path crawls ask for
    0 GPUs explicitly."""


@pytest.fixture(scope="session")
def session_hub(tiny_zoo_cached: Path) -> Iterator[LoopbackHub]:
    """One loopback Hub over the cached zoo (read-only), shared by the session."""
    with LoopbackHub(tiny_zoo_cached) as hub:
        yield hub


@pytest.fixture(scope="session")
def clean(ray_local, session_hub, tmp_path_factory):
    """The reference catalog: one clean crawl of the seed's family."""
    from catalog import Catalog
    from jobs.crawl import crawl
    from tests.crawl.helpers import options

    root = tmp_path_factory.mktemp("clean")
    catalog = Catalog(root / "catalog")
    crawl(catalog, options(session_hub, [SEED], root))
    return catalog


def pico(seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "layers.0.attn.q.weight": torch.randn(4, 4, generator=gen),
        "layers.0.mlp.weight": torch.randn(8, 4, generator=gen),
    }


def write_odd_zoo(root: Path) -> Path:
    """A family with a sharded model, an adapter, a malformed file and a pickle-only repo."""
    config = {"model_type": "pico", "architectures": ["PicoForCausalLM"]}
    write_repo(root, "acme/base", tensors=pico(0), config=config, card={"license": "mit"})
    write_repo(root, "acme/chat", tensors=pico(1), config=config, card={"base_model": "acme/base"})
    big = write_repo(root, "acme/big", config=config, card={"base_model": "acme/base"})
    tensors = pico(2)
    weight_map = {}
    for i, name in enumerate(sorted(tensors)):
        shard = f"model-0000{i + 1}-of-00002.safetensors"
        save_file({name: tensors[name]}, str(big / shard))
        weight_map[name] = shard
    (big / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    lora = write_repo(
        root,
        "bob/chat-lora",
        card={"base_model": "acme/chat"},
        files={"adapter_config.json": json.dumps({"r": 2, "peft_type": "LORA"})},
    )
    save_file(pico(3), str(lora / "adapter_model.safetensors"))
    write_repo(
        root,
        "bob/broken",
        config=config,
        card={"base_model": "acme/base"},
        files={"model.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all"},
    )
    write_repo(
        root,
        "carol/pickled",
        card={"base_model": "acme/base"},
        files={"pytorch_model.bin": b"\x80\x04not really a pickle"},
    )
    return root
