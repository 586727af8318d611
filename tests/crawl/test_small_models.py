"""Per-model overhead of a crawl: a small model's files are read once (by the probe) and
never fetched again, a big model's weights are still downloaded by the worker, waiting
small models share an actor task, and commits close by count or by time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from catalog import Catalog
from jobs.crawl import crawl
from jobs.crawl.limiter import start_limiter
from jobs.crawl.workers import WorkerPool, actor_options
from jobs.local_index import index_local
from jobs.loopback_hub.pytest_plugin import write_repo
from lineage.hub import HubClient, default_rates, probe_model
from lineage.hub.client import FIRST_HEADER_READ
from tests.crawl.conftest import pico
from tests.crawl.helpers import FAST, models, options, tensors

pytestmark = pytest.mark.usefixtures("ray_local")
CONFIG = {"model_type": "pico", "architectures": ["PicoForCausalLM"]}


def write_two_sizes(root: Path) -> Path:
    """acme/small (under FIRST_HEADER_READ bytes) and its child acme/large (over it)."""
    write_repo(root, "acme/small", tensors=pico(0), config=CONFIG, card={"license": "mit"})
    gen = torch.Generator().manual_seed(1)
    large = {"layers.0.mlp.weight": torch.randn(256, 256, generator=gen)}  # 256 kB
    write_repo(root, "acme/large", tensors=large, config=CONFIG, card={"base_model": "acme/small"})
    assert (root / "acme/large/model.safetensors").stat().st_size > FIRST_HEADER_READ
    return root


def gets(hub, repo: str, name: str) -> list[tuple[str, bool]]:
    return [
        (r.method, bool(r.range))
        for r in hub.requests
        if "/resolve/" in r.path and r.path.startswith(f"/{repo}/") and r.path.endswith(name)
    ]


def test_small_files_are_read_once_and_big_weights_downloaded(hub_server, tmp_path):
    zoo = write_two_sizes(tmp_path / "zoo")
    hub = hub_server(zoo)
    catalog = Catalog(tmp_path / "catalog")
    report = crawl(catalog, options(hub, ["acme/small"], tmp_path))
    assert sorted(report.fingerprinted) == ["acme/large", "acme/small"]
    # the small model: one ranged GET each for weights, config and card; no HEAD, no refetch
    for name in ("model.safetensors", "config.json", "README.md"):
        assert gets(hub, "acme/small", name) == [("GET", True)], name
    # the large one: its header by a range read, then its weights downloaded in full
    weights = gets(hub, "acme/large", "model.safetensors")
    assert ("GET", True) in weights and ("GET", False) in weights
    local = Catalog(tmp_path / "local")
    index_local(local, [zoo / "acme/small", zoo / "acme/large"], progress=False)
    by_name = {Path(r[0]).name: r[2:] for r in models(local)}
    assert {Path(r[0]).name: r[2:] for r in models(catalog)} == by_name  # same fingerprints
    local_hashes = sorted((Path(t[0]).name, t[2], t[5]) for t in tensors(local))
    assert sorted((Path(t[0]).name, t[2], t[5]) for t in tensors(catalog)) == local_hashes
    assert not any((tmp_path / "cache").rglob("*.safetensors"))  # nothing left on disk


def parts(catalog: Catalog) -> int:
    """Commits that wrote models (the catalog's own schema part aside)."""
    found = (catalog.root / "parts").glob("*/models.parquet")
    return len([p for p in found if not p.parent.name.endswith("-schema")])


def test_commits_close_by_count_or_by_time(hub_server, tmp_path):
    hub = hub_server(write_two_sizes(tmp_path / "zoo"))
    whole = Catalog(tmp_path / "whole")
    crawl(whole, options(hub, ["acme/small"], tmp_path, batch_size=1000, commit_seconds=1e9))
    assert parts(whole) == 1  # neither full nor old: one commit, at the end
    each = Catalog(tmp_path / "each")
    crawl(each, options(hub, ["acme/small"], tmp_path, batch_size=1, commit_seconds=1e9))
    assert parts(each) == 2  # full at every model
    timed = Catalog(tmp_path / "timed")
    crawl(timed, options(hub, ["acme/small"], tmp_path, batch_size=1000, commit_seconds=0))
    assert parts(timed) >= 1 and len(models(timed)) == 2
    assert models(whole) == models(each) == models(timed)


def small_probes(hub, names: list[str]):
    client = HubClient(hub.endpoint, policy=FAST)
    probes = []
    for name in names:
        remote = client.model_info(name)
        probes.append(
            probe_model(
                remote,
                lambda n, r=remote: client.read_small_file(r.model_id, r.sha, n, r.files.get(n)),
                lambda n, s, r=remote: client.read_header(r.model_id, r.sha, n, s),
            )
        )
    return probes


@pytest.mark.parametrize("batch_bytes, expected", [(1 << 26, [1, 4]), (1, [1, 1, 1, 1, 1])])
def test_waiting_small_models_share_one_task(hub_server, tmp_path, batch_bytes, expected):
    names = [f"acme/m{i}" for i in range(5)]
    root = tmp_path / "zoo"
    for i, name in enumerate(names):
        write_repo(root, name, tensors=pico(i), config=CONFIG, card={"license": "mit"})
    hub = hub_server(root)
    probes = small_probes(hub, names)
    limiter = start_limiter(default_rates(0, 0))
    args = (hub.endpoint, limiter, FAST, str(tmp_path / "cache"), 256, False)
    pool = WorkerPool(1, actor_options(0.0, 0.5), args, depth=1, batch_bytes=batch_bytes)
    tasks: dict = {}  # each task once: its ref -> how many models it carries
    results = []

    def note() -> None:
        for ref, (_, carried) in pool.in_flight.items():
            tasks.setdefault(ref, len(carried))

    try:
        for probe in probes:
            pool.submit(probe)
            note()
        deadline = time.monotonic() + 120
        while not pool.idle:
            assert time.monotonic() < deadline
            results += pool.poll(timeout=1.0)
            note()
    finally:
        pool.shutdown()
    assert list(tasks.values()) == expected  # the first alone, the waiting ones together
    assert sorted(r.model_id for r in results) == names
    assert all(r.fingerprint is not None and r.error is None for r in results)


def test_an_unlimited_kind_still_honours_a_pause_from_another_process_copy(ray_local):
    """No round trip per request when a kind has no rate, but a 429's pause, set through
    one copy of the limiter, holds every other copy within a poll interval."""
    import pickle

    setter = start_limiter(default_rates(0, 0))
    other = pickle.loads(pickle.dumps(setter))  # as a worker receives it
    other.acquire("resolve")  # first ask in flight
    setter.pause("resolve", 1.0)
    started = time.monotonic()
    while time.monotonic() - started < 0.5:  # within the poll interval, it learns and waits
        other.acquire("resolve")
    assert time.monotonic() - started >= 0.9  # slept the pause out
    other.acquire("api")
    assert other.stats()["granted"] == {"api": 0, "resolve": 0}  # nothing reserved
    assert other.stats()["pauses"]["resolve"] == 1


def test_a_card_over_the_read_ahead_bound_is_downloaded_by_the_worker(hub_server, tmp_path):
    from jobs.crawl.driver import META_READ_AHEAD

    root = tmp_path / "zoo"
    repo = write_repo(root, "acme/long-card", tensors=pico(0), config=CONFIG)
    body = "A long card.\n" * (META_READ_AHEAD // 12)
    (repo / "README.md").write_text(f"---\nlicense: apache-2.0\n---\n{body}")
    assert (repo / "README.md").stat().st_size > META_READ_AHEAD
    hub = hub_server(root)
    catalog = Catalog(tmp_path / "catalog")
    report = crawl(catalog, options(hub, ["acme/long-card"], tmp_path))
    assert report.fingerprinted == ["acme/long-card"]
    card = gets(hub, "acme/long-card", "README.md")
    assert ("GET", False) in card  # the worker's download, after the probe left it
    assert gets(hub, "acme/long-card", "model.safetensors") == [("GET", True)]
    local = Catalog(tmp_path / "local")
    index_local(local, [repo], progress=False)
    assert [r[2:] for r in models(catalog)] == [r[2:] for r in models(local)]  # licence too
