"""The driver's lane (jobs.crawl.lane): while no actor is up, the driver fingerprints the
models the probe read whole, exactly as `lineage index` fingerprints the same folder; a
model with something left to download waits for the actors; a bad model fails alone;
once an actor has answered, the lane takes nothing more; a GPU pool never lends it."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from catalog import Catalog
from jobs.crawl import crawl
from jobs.crawl.driver import META_READ_AHEAD
from jobs.crawl.lane import DriverLane
from jobs.crawl.limiter import start_limiter
from jobs.crawl.workers import WorkerPool, actor_options
from jobs.loopback_hub.pytest_plugin import write_repo
from lineage.fingerprint import fingerprint_model
from lineage.hub import HubClient, default_rates, probe_model
from lineage.hub.client import FIRST_HEADER_READ
from lineage.hub.fetch import read_whole
from lineage.hub.probe import read_meta_files
from lineage.hub.remote import RemoteModel
from lineage.weights import open_model
from tests.crawl.conftest import pico
from tests.crawl.helpers import FAST, models, options, tensors

pytestmark = pytest.mark.usefixtures("ray_local")
CONFIG = {"model_type": "pico", "architectures": ["PicoForCausalLM"]}
WIDTH = 256
SMALL = [f"acme/m{i}" for i in range(5)]


def write_zoo(root):
    for i, name in enumerate(SMALL):
        write_repo(root, name, tensors=pico(i), config=CONFIG, card={"license": "mit"})
    gen = torch.Generator().manual_seed(9)
    large = {"layers.0.mlp.weight": torch.randn(256, 256, generator=gen)}  # 256 kB
    write_repo(root, "acme/large", tensors=large, config=CONFIG, card={"license": "mit"})
    assert (root / "acme/large/model.safetensors").stat().st_size > FIRST_HEADER_READ
    return root


def probes_as_the_driver_reads_them(hub, names):
    """Probes with what the driver's probe holds: a small model's files read whole."""
    client = HubClient(hub.endpoint, policy=FAST)
    probes = []
    for name in names:
        remote = client.model_info(name)
        whole = {}

        def header(file, size, r=remote, whole=whole):
            parsed, body = client.read_header_and_file(r.model_id, r.sha, file, size)
            if body is not None:
                whole[file] = body
            return parsed

        def small(file, r=remote):
            return client.read_small_file(r.model_id, r.sha, file, r.files.get(file))

        probe = probe_model(remote, small, header)
        meta = read_meta_files(remote, probe.meta_files, small, META_READ_AHEAD)
        probes.append(replace(probe, prefetched=(*whole.items(), *meta)))
    return probes


def drain(pool: WorkerPool, want: int, seconds: float = 120) -> list:
    results, deadline = [], time.monotonic() + seconds
    while len(results) < want:
        assert time.monotonic() < deadline, f"{len(results)} of {want} results"
        pool.lend()  # as the driver does when no probe is running
        results += pool.poll(timeout=0.2)
    return results


def worker_args(hub, tmp_path):
    limiter = start_limiter(default_rates(0, 0))
    return (hub.endpoint, limiter, FAST, str(tmp_path / "cache"), WIDTH, False)


def test_until_an_actor_is_up_the_driver_fingerprints_what_was_read_whole(hub_server, tmp_path):
    zoo = write_zoo(tmp_path / "zoo")
    hub = hub_server(zoo)
    probes = probes_as_the_driver_reads_them(hub, ["acme/large", *SMALL])
    assert [read_whole(p) for p in probes] == [False] + [True] * 5
    bad = probes[5]  # same length, not safetensors: refused in the lane, alone
    garbage = tuple(
        (name, b"\xff" * len(data) if name == "model.safetensors" else data)
        for name, data in bad.prefetched
    )
    probes[5] = replace(bad, prefetched=garbage)
    lane = DriverLane(HubClient(hub.endpoint, policy=FAST), tmp_path / "lane", WIDTH)
    # An actor that is never placed (no node has the resource): it is never up.
    never = {"num_cpus": 0.5, "resources": {"lineage-test-absent": 1.0}}
    pool = WorkerPool(1, never, worker_args(hub, tmp_path), depth=1, lane=lane)
    try:
        assert pool.actors == []  # asked for only when needed
        for probe in probes:
            pool.submit(probe)
        assert len(pool.actors) == 1  # acme/large has something to download
        results = {r.model_id: r for r in drain(pool, want=5)}
        assert [p.model_id for _, ps in pool.in_flight.values() for p in ps] == ["acme/large"]
        assert not pool.queue and not pool.actor_up and not lane.busy
    finally:
        pool.shutdown()
    assert sorted(results) == SMALL
    assert {r.worker for r in results.values()} == {"driver"}
    refused = results["acme/m4"]
    assert refused.fingerprint is None and "cannot be read safely" in refused.error
    for name in SMALL[:4]:  # the same numbers as the folder indexed locally
        fp = results[name].fingerprint
        with open_model(zoo / name) as model:
            local = fingerprint_model(model, width=WIDTH)
        np.testing.assert_array_equal(fp.sketch, local.sketch)
        assert [(t.name, t.content_hash, t.mean, t.std, t.kurtosis) for t in fp.tensors] == [
            (t.name, t.content_hash, t.mean, t.std, t.kurtosis) for t in local.tensors
        ]
        assert fp.metadata.card.license == "mit"
        assert results[name].bytes == (zoo / name / "model.safetensors").stat().st_size
    assert not any((tmp_path / "lane").iterdir())  # its scratch folder removed


def test_the_actors_are_asked_for_once_the_lane_has_taken_its_share(hub_server, tmp_path):
    hub = hub_server(write_zoo(tmp_path / "zoo"))
    probes = probes_as_the_driver_reads_them(hub, SMALL)
    lane = DriverLane(HubClient(hub.endpoint, policy=FAST), tmp_path / "lane", WIDTH)
    never = {"num_cpus": 0.5, "resources": {"lineage-test-absent": 1.0}}
    pool = WorkerPool(1, never, worker_args(hub, tmp_path), depth=1, lane=lane, lane_alone=3)
    try:
        pool.submit(probes[0])  # the lane is free: it takes this one at once
        assert lane.taken == 1 and pool.actors == []
        for probe in probes[1:3]:
            pool.submit(probe)  # every model fits the lane: still no actor
        assert pool.actors == [] and len(pool.queue) == 2
        first = drain(pool, want=1)
        assert lane.taken == 3 and pool.actors == []  # its share is reached now...
        pool.submit(probes[3])
        assert len(pool.actors) == 1  # ...so the next model asks for the actors
        rest = drain(pool, want=2)
    finally:
        pool.shutdown()
    assert sorted(r.model_id for r in first + rest) == SMALL[:3]
    assert [p.model_id for _, ps in pool.in_flight.values() for p in ps] == ["acme/m3"]


def test_a_file_list_that_shows_a_download_asks_for_the_actors_at_once(hub_server, tmp_path):
    hub = hub_server(write_zoo(tmp_path / "zoo"))
    lane = DriverLane(HubClient(hub.endpoint, policy=FAST), tmp_path / "lane", WIDTH)
    never = {"num_cpus": 0.5, "resources": {"lineage-test-absent": 1.0}}
    pool = WorkerPool(1, never, worker_args(hub, tmp_path), depth=1, lane=lane)
    sha = "0" * 40
    try:
        for files in (
            {"model.safetensors": None, "README.md": 10**9},  # a listing: no sizes
            {"model.safetensors": FIRST_HEADER_READ},  # read whole by the probe
        ):
            pool.expect(RemoteModel("acme/m", sha, files))
            assert pool.actors == []
        pool.expect(RemoteModel("acme/sharded", sha, {"model.safetensors.index.json": None}))
        assert len(pool.actors) == 1
    finally:
        pool.shutdown()
    pool = WorkerPool(1, never, worker_args(hub, tmp_path), depth=1, lane=lane)
    try:
        pool.expect(RemoteModel("acme/big", sha, {"model.safetensors": FIRST_HEADER_READ + 1}))
        assert len(pool.actors) == 1
    finally:
        pool.shutdown()


def test_once_an_actor_has_answered_the_lane_takes_nothing(hub_server, tmp_path):
    hub = hub_server(write_zoo(tmp_path / "zoo"))
    probes = probes_as_the_driver_reads_them(hub, SMALL)
    lane = DriverLane(HubClient(hub.endpoint, policy=FAST), tmp_path / "lane", WIDTH)
    args = worker_args(hub, tmp_path)
    pool = WorkerPool(1, actor_options(0.0, 0.5), args, depth=1, lane=lane, lane_alone=0)
    try:
        pool.submit(probes[0])
        first = []
        deadline = time.monotonic() + 120
        while not first:
            assert time.monotonic() < deadline
            first = pool.poll(timeout=0.5)  # no lend: the actor alone
        assert first[0].worker == "actor" and pool.actor_up
        for probe in probes[1:]:
            pool.submit(probe)  # one goes to the actor, three wait
        assert len(pool.queue) == 3
        pool.lend()
        assert not lane.busy
        rest = drain(pool, want=4)
    finally:
        pool.shutdown()
    assert sorted(r.model_id for r in first + rest) == SMALL
    assert {r.worker for r in rest} == {"actor"}


def test_a_crawl_with_the_lane_writes_what_one_without_it_writes(hub_server, tmp_path):
    hub = hub_server(write_zoo(tmp_path / "zoo"))
    seeds = [*SMALL, "acme/large"]
    runs = {}
    for lane in (True, False):
        catalog = Catalog(tmp_path / f"catalog-{lane}")
        opts = options(hub, seeds, tmp_path, gpus_per_worker=0, workers=1, driver_lane=lane)
        report = crawl(catalog, opts)
        assert sorted(report.fingerprinted) == sorted(seeds) and not report.failed
        assert report.actors == 1  # acme/large has something to download
        if not lane:
            assert report.in_driver == 0
        runs[lane] = (models(catalog), tensors(catalog))
    assert runs[True] == runs[False]


def test_a_crawl_the_lane_can_take_whole_starts_no_actor(hub_server, tmp_path):
    hub = hub_server(write_zoo(tmp_path / "zoo"))
    catalog = Catalog(tmp_path / "catalog")
    report = crawl(catalog, options(hub, SMALL, tmp_path, gpus_per_worker=0, workers=1))
    assert sorted(report.fingerprinted) == SMALL and not report.failed
    assert report.in_driver == len(SMALL) and report.actors == 0
    assert sorted(m[0] for m in models(catalog)) == SMALL


def test_a_gpu_pool_never_lends_the_driver(hub_server, tmp_path):
    hub = hub_server(write_zoo(tmp_path / "zoo"))
    catalog = Catalog(tmp_path / "catalog")
    report = crawl(catalog, options(hub, SMALL, tmp_path, gpus_per_worker=0.5, workers=1))
    assert sorted(report.fingerprinted) == SMALL
    assert report.in_driver == 0 and report.actors == 1
