"""A real `tiny` zoo, built once per test session (about 40 s on 2 cores)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lineage.zoo import build_zoo


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zoo-cache")


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory: pytest.TempPathFactory, zoo_cache: Path):
    # A private cache dir: the session really trains, never reuses a zoo from ~/.cache.
    return build_zoo("tiny", tmp_path_factory.mktemp("tiny") / "zoo", cache_dir=zoo_cache)


@pytest.fixture(scope="session")
def truth(tiny_zoo) -> dict:
    return json.loads((tiny_zoo.root / "ground_truth.json").read_text())


@pytest.fixture(scope="session")
def nodes(truth) -> dict[str, dict]:
    return {n["id"]: n for n in truth["nodes"]}


def of_relation(nodes: dict[str, dict], relation: str) -> list[dict]:
    found = [n for n in nodes.values() if n["relation"] == relation]
    assert found, f"the tiny zoo has no {relation} model"
    return found
