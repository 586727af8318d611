"""GPU placement without a GPU: the session's Ray declares 2 fake GPUs. Fingerprinting
actors ask for them (whole or fractional), Ray assigns them, and the device falls back
to the CPU because torch sees no CUDA; a crawl on that path gives the same catalog."""

from __future__ import annotations

import pytest
import torch

from catalog import Catalog
from jobs.crawl import crawl
from jobs.crawl.limiter import start_limiter
from jobs.crawl.workers import WorkerPool, actor_options
from lineage.hub import default_rates
from tests.crawl.conftest import SEED
from tests.crawl.helpers import FAST, models, options, tensors

pytestmark = pytest.mark.usefixtures("ray_local")


def test_actors_are_placed_on_gpus_and_fall_back_to_cpu(tmp_path):
    assert actor_options(None, 0.5)["num_gpus"] == 1.0  # the cluster has GPUs: use them
    assert "num_gpus" not in actor_options(0, 0.5)
    limiter = start_limiter(default_rates(0, 0))
    args = ("http://127.0.0.1:9", limiter, FAST, str(tmp_path), 64, False)
    pool = WorkerPool(2, actor_options(0.5, 0.25), args)
    try:
        described = pool.describe()
    finally:
        pool.shutdown()
    assert [d["resources"].get("GPU") for d in described] == [0.5, 0.5]
    assert all(d["gpu_ids"] for d in described)  # CUDA_VISIBLE_DEVICES was set for them
    assert not torch.cuda.is_available()
    assert {d["device"] for d in described} == {"cpu"}


def test_a_crawl_on_gpu_actors_equals_the_cpu_crawl(clean, session_hub, tmp_path):
    catalog = Catalog(tmp_path / "catalog")
    report = crawl(catalog, options(session_hub, [SEED], tmp_path, gpus_per_worker=None))
    assert report.failed == {}
    assert models(catalog) == models(clean) and tensors(catalog) == tensors(clean)
