"""Issue row 2/3, crawl side: hostile metadata in Hub repos fails those models alone;
the crawl commits the others, records the failures, and a second crawl works."""

from __future__ import annotations

import json

import pytest

from catalog import Catalog
from catalog.crawl_state import states
from jobs.crawl import crawl
from jobs.loopback_hub import LoopbackHub
from jobs.loopback_hub.pytest_plugin import write_repo
from tests.crawl.helpers import options
from tests.hardening.corpus import ALIAS_BOMB, LORA, deep_json, weights

CONFIG = {"model_type": "tiny", "architectures": ["Tiny"]}


@pytest.fixture
def hostile_hub(tmp_path):
    root = tmp_path / "hub"
    write_repo(root, "acme/base", tensors=weights(0), config=CONFIG, card={"license": "mit"})
    write_repo(
        root, "acme/chat", tensors=weights(1), config=CONFIG, card={"base_model": "acme/base"}
    )
    write_repo(
        root,
        "evil/typed-adapter",
        card={"base_model": "acme/base"},
        files={
            "adapter_config.json": json.dumps({**LORA, "base_model_name_or_path": {"x": 1}}),
            "adapter_model.safetensors": b"",
        },
    )
    from safetensors.torch import save_file

    save_file(weights(2), str(root / "evil/typed-adapter/adapter_model.safetensors"))
    write_repo(
        root,
        "evil/rank",
        card={"base_model": "acme/base"},
        files={"adapter_config.json": json.dumps({**LORA, "r": 2**70})},
    )
    save_file(weights(3), str(root / "evil/rank/adapter_model.safetensors"))
    write_repo(
        root,
        "evil/deep-config",
        tensors=weights(4),
        card={"base_model": "acme/base"},
        files={"config.json": deep_json()},
    )
    write_repo(
        root, "evil/bomb", tensors=weights(5), config=CONFIG, card=ALIAS_BOMB.format(field="tags")
    )
    with LoopbackHub(root) as hub:
        yield hub


def test_a_crawl_fails_hostile_models_alone_and_runs_again(ray_cluster, hostile_hub, tmp_path):
    catalog = Catalog(tmp_path / "cat")
    seeds = ["acme/base", "author:evil"]
    report = crawl(catalog, options(hostile_hub, seeds, tmp_path, gpus_per_worker=0))
    assert sorted(report.fingerprinted) == ["acme/base", "acme/chat", "evil/bomb"]
    assert (
        "field 'base_model_name_or_path': must be a string" in report.failed["evil/typed-adapter"]
    )
    assert "field 'r': is a 71-bit number" in report.failed["evil/rank"]
    assert "nests 100001 levels deep" in report.failed["evil/deep-config"]
    failed = {m for (m, _), s in states(catalog).items() if s["status"] == "failed"}
    assert failed == {"evil/typed-adapter", "evil/rank", "evil/deep-config"}
    with catalog.reader() as con:
        card_error = con.execute(
            "SELECT card_error FROM models WHERE model_id = 'evil/bomb'"
        ).fetchone()[0]
    assert "alias bomb" in card_error

    again = crawl(catalog, options(hostile_hub, seeds, tmp_path, gpus_per_worker=0))
    assert sorted(again.unchanged) == ["acme/base", "acme/chat", "evil/bomb"]
    assert sorted(again.failed) == ["evil/deep-config", "evil/rank", "evil/typed-adapter"]
    with catalog.reader() as con:
        assert con.execute("SELECT count(*) FROM models").fetchone()[0] == 3
