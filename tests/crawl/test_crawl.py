"""Real crawls on a local Ray against the loopback Hub serving the real `tiny` zoo."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from catalog import Catalog
from catalog.crawl_state import states
from jobs.crawl import crawl
from jobs.crawl.limiter import start_limiter
from jobs.crawl.workers import WorkerPool, actor_options
from jobs.local_index import index_local
from jobs.loopback_hub import FaultPlan, LoopbackHub
from lineage.hub import HubClient, default_rates, probe_model
from tests.crawl.conftest import SEED, write_odd_zoo
from tests.crawl.helpers import (
    FAST,
    documented_family,
    duplicates,
    edges,
    full_downloads,
    models,
    options,
    tensors,
    weight_reads,
)

pytestmark = pytest.mark.usefixtures("ray_local")


def test_one_seed_finds_every_family_member_and_documented_edge(clean, tiny_zoo_cached):
    family, declared = documented_family(tiny_zoo_cached, SEED)
    assert len(family) >= 6  # the walk had to go up to the root and down other branches
    assert {m[0] for m in models(clean)} == family
    assert {(p, c) for p, c, _ in edges(clean)} == declared
    relations = {r for _, _, r in edges(clean)}
    assert {"finetune", "merge", "adapter", "quantized"} <= relations  # tiny has them all
    assert all(s["status"] == "done" for s in states(clean).values())
    assert duplicates(clean) == {"models": 0, "tensors": 0, "edges": 0}


def test_crawled_fingerprints_equal_local_indexing(clean, tiny_zoo_cached, tmp_path):
    family, _ = documented_family(tiny_zoo_cached, SEED)
    local = Catalog(tmp_path / "local")
    index_local(local, [tiny_zoo_cached / m for m in sorted(family)[:3]], progress=False)
    by_id = {Path(r[0]).name: r for r in models(local)}  # a folder indexes as its name
    crawled = {r[0]: r for r in models(clean)}
    for name, row in by_id.items():
        match = [c for mid, c in crawled.items() if mid.endswith("/" + name)]
        assert len(match) == 1
        assert match[0][2:] == row[2:]  # kind, signature, sizes, card, sketch: identical
    hub_hashes = {(Path(r[0]).name, r[2], r[5]) for r in tensors(clean)}
    assert {(Path(r[0]).name, r[2], r[5]) for r in tensors(local)} <= hub_hashes


def test_faults_do_not_change_the_catalog(clean, tiny_zoo_cached, tmp_path):
    faults = FaultPlan(seed=3)
    rate = faults.rate_limit(r"^/api/models$", times=3)
    errors = faults.server_error(r"^/api/models/zoo-vit-0/", times=3, status=502)
    dropped = faults.drop(
        r"/resolve/[0-9a-f]+/model\.safetensors$", after_bytes=1000, times=3, methods=["GET"]
    )
    flaky = faults.server_error(r"/resolve/", probability=0.1, times=None)
    with LoopbackHub(tiny_zoo_cached, faults=faults) as hub:
        catalog = Catalog(tmp_path / "catalog")
        report = crawl(catalog, options(hub, [SEED], tmp_path))
    assert (rate.fired, errors.fired, dropped.fired) == (3, 3, 3) and flaky.fired > 0
    assert report.retries > 0 and report.failed == {}
    assert models(catalog) == models(clean)
    assert tensors(catalog) == tensors(clean)
    assert edges(catalog) == edges(clean)


def test_changed_sha_is_reindexed_and_nothing_else_refetched(zoo_copy, tmp_path):
    catalog = Catalog(tmp_path / "catalog")
    with LoopbackHub(zoo_copy) as hub:
        first = crawl(catalog, options(hub, [SEED], tmp_path))
        hub.reset_counts()
        readme = zoo_copy / "zoo-vit-0/model-2/README.md"
        readme.write_text(readme.read_text() + "\nA new paragraph.\n")  # a new commit
        second = crawl(catalog, options(hub, [SEED], tmp_path))
        fetched = weight_reads(hub)
    assert second.fingerprinted == ["zoo-vit-0/model-2"]
    assert sorted(second.unchanged) == sorted(set(first.fingerprinted) - {"zoo-vit-0/model-2"})
    # one read of the changed model's weights (the probe's, holding the whole small file)
    assert fetched == [p for p in fetched if "/zoo-vit-0/model-2/" in p] and len(fetched) == 1
    revisions = [r[1] for r in models(catalog) if r[0] == "zoo-vit-0/model-2"]
    assert len(revisions) == 2  # both revisions kept; current_models shows the newest
    assert duplicates(catalog) == {"models": 0, "tensors": 0, "edges": 0}


def test_bad_files_are_recorded_and_the_rest_indexed(hub_server, tmp_path):
    hub = hub_server(write_odd_zoo(tmp_path / "zoo"))
    catalog = Catalog(tmp_path / "catalog")
    report = crawl(catalog, options(hub, ["acme/chat"], tmp_path))
    assert sorted(report.fingerprinted) == ["acme/base", "acme/big", "acme/chat", "bob/chat-lora"]
    recorded = {m: s for (m, _), s in states(catalog).items()}
    assert recorded["bob/broken"]["status"] == "failed"
    assert "header is not valid UTF-8 JSON" in recorded["bob/broken"]["error"]
    assert recorded["carol/pickled"]["status"] == "skipped"
    assert "only pickle weights (pytorch_model.bin)" in recorded["carol/pickled"]["error"]
    assert ("acme/base", "carol/pickled", "finetune") in edges(catalog)  # documented anyway
    big = [t for t in tensors(catalog) if t[0] == "acme/big"]
    assert [t[2] for t in big] == ["layers.0.attn.q.weight", "layers.0.mlp.weight"]
    assert not any((tmp_path / "cache").rglob("*.safetensors"))  # shards deleted after use
    assert full_downloads(hub, r"(broken|pickled)") == []


def test_a_worker_killed_mid_task_is_restarted_and_the_task_retried(hub_server, tmp_path):
    faults = FaultPlan()
    slow = faults.slow(r"acme/base/resolve/.*model\.safetensors$", delay_s=3.0, methods=["GET"])
    hub = hub_server(write_odd_zoo(tmp_path / "zoo"), faults=faults)
    client = HubClient(hub.endpoint, policy=FAST)
    remote = client.model_info("acme/base")
    probe = probe_model(
        remote,
        lambda n: client.read_small_file("acme/base", remote.sha, n, remote.files.get(n)),
        lambda n, s: client.read_header("acme/base", remote.sha, n, s),
    )
    slow.times = 0  # the probe's range read was slowed; arm it again for the download
    limiter = start_limiter(default_rates(0, 0))
    pool = WorkerPool(
        1,
        actor_options(None, 0.5),
        (hub.endpoint, limiter, FAST, str(tmp_path / "cache"), 256, False),
    )
    try:
        pid = pool.describe()[0]["pid"]
        slow.times = 1
        pool.submit(probe)
        deadline = time.monotonic() + 60
        while slow.fired < 2 and time.monotonic() < deadline:  # the download is under way
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        results = []
        while not results and time.monotonic() < deadline:
            results = pool.poll(timeout=1.0)
        assert results and results[0].error is None
        assert len(results[0].fingerprint.tensors) == 2
        assert pool.describe()[0]["pid"] != pid  # a new process finished the task
    finally:
        pool.shutdown()
