"""A fingerprinting actor's threads are the CPUs Ray gave it (num_cpus), set as it
starts; `--threads` may ask for fewer, never more. A CPU actor fingerprints without
importing torch (numpy and numba only)."""

from __future__ import annotations

import time

import pytest

from jobs.crawl.limiter import start_limiter
from jobs.crawl.options import check_threads
from jobs.crawl.workers import WorkerPool
from lineage.errors import SpecError
from lineage.hub import HubClient, default_rates, probe_model
from tests.crawl.conftest import write_odd_zoo
from tests.crawl.helpers import FAST

pytestmark = pytest.mark.usefixtures("ray_local")


def _described(tmp_path, options: dict, threads: int | None = None) -> dict:
    limiter = start_limiter(default_rates(0, 0))
    args = ("http://127.0.0.1:9", limiter, FAST, str(tmp_path), 64, False, threads)
    pool = WorkerPool(1, options, args)
    try:
        return pool.describe()[0]
    finally:
        pool.shutdown()


@pytest.mark.parametrize(("num_cpus", "threads"), [(1, 1), (0.5, 1), (2, 2)])
def test_an_actor_uses_the_cpus_ray_gave_it(tmp_path, num_cpus, threads):
    described = _described(tmp_path, {"num_cpus": num_cpus, "num_gpus": 0})
    assert described["resources"].get("CPU") == num_cpus
    assert (described["threads"], described["torch_threads"]) == (threads, threads)


def test_threads_asked_for_are_capped_by_the_actor_cpus(tmp_path):
    described = _described(tmp_path, {"num_cpus": 1, "num_gpus": 0}, threads=2)
    assert (described["threads"], described["torch_threads"]) == (1, 1)
    with pytest.raises(SpecError, match="raise --cpus-per-worker"):
        check_threads(2, 0.5)  # what `python -m jobs.index` refuses before starting actors
    check_threads(2, 2.0)


def test_a_cpu_actor_fingerprints_without_importing_torch(hub_server, tmp_path):
    hub = hub_server(write_odd_zoo(tmp_path / "zoo"))
    client = HubClient(hub.endpoint, policy=FAST)
    remote = client.model_info("acme/big")  # two shards: two fingerprints in the actor
    probe = probe_model(
        remote,
        lambda n: client.read_small_file("acme/big", remote.sha, n, remote.files.get(n)),
        lambda n, s: client.read_header("acme/big", remote.sha, n, s),
    )
    # its own runtime environment: a fresh worker process, not one a task used before
    options = {"num_cpus": 1, "num_gpus": 0,
               "runtime_env": {"env_vars": {"LINEAGE_TEST_FRESH_WORKER": "1"}}}
    args = (hub.endpoint, start_limiter(default_rates(0, 0)), FAST, str(tmp_path / "cache"),
            256, False)
    pool = WorkerPool(1, options, args)
    try:
        pool.submit(probe)
        results, deadline = [], time.monotonic() + 120
        while not results and time.monotonic() < deadline:
            results = pool.poll(timeout=1.0)
        assert results and results[0].error is None and results[0].device == "cpu"
        assert len(results[0].fingerprint.tensors) == 2
        assert pool.describe()[0]["torch_loaded"] is False
    finally:
        pool.shutdown()
