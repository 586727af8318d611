"""The Bar of issue 12: crawl the tiny zoo from the loopback Hub WITHOUT keeping weights
(every shard deleted once fingerprinted, as a Hub-wide crawl must), then `lineage
recover` with no flags recovers the graph from the catalog alone."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from catalog import Catalog
from jobs.crawl import crawl
from lineage.recovery.evaluate import evaluate_graph
from tests.crawl.helpers import options

pytestmark = pytest.mark.usefixtures("ray_local")


def test_recover_from_a_crawl_without_weights(session_hub, tiny_zoo_cached, tmp_path):
    catalog = Catalog(tmp_path / "catalog")
    report = crawl(catalog, options(session_hub, ["everything"], tmp_path))
    assert not report.failed and len(report.fingerprinted) == 15
    kept = [p for p in (tmp_path / "cache").rglob("*") if p.suffix == ".safetensors"]
    assert kept == []  # nothing to read weights from
    run = subprocess.run(
        [sys.executable, "-m", "lineage", "recover", "--catalog", str(catalog.root), "--json"],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert not any("indexed before" in n for n in result["notes"])
    truth = json.loads((tiny_zoo_cached / "ground_truth.json").read_text())
    edges = [(e["parent"], e["child"], e["relation"]) for e in result["edges"]]
    scores = evaluate_graph(truth, edges, result["trees"])["overall"]
    assert scores["directed"] >= 0.95
    assert scores["merge_recall"] == 1.0
    lora = {(n["parents"][0], n["id"]) for n in truth["nodes"] if n["relation"] == "lora"}
    assert len(lora) == 2
    assert {(p, c) for p, c, r in edges if r == "lora"} == lora
