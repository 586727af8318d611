"""A fingerprinting actor's threads are the CPUs Ray gave it (num_cpus), set as it
starts; `--threads` may ask for fewer, never more."""

from __future__ import annotations

import pytest

from jobs.crawl.limiter import start_limiter
from jobs.crawl.options import check_threads
from jobs.crawl.workers import WorkerPool
from lineage.errors import SpecError
from lineage.hub import default_rates
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
