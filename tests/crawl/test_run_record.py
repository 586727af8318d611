"""A crawl's run row: its last batch records the run as succeeded in the same transaction
as that batch's states (jobs.crawl.driver), so the run ends after every row it made; a
crawl whose listing fails is recorded as failed, whatever it committed before."""

from __future__ import annotations

import pytest

from catalog import Catalog
from catalog.crawl_state import states
from catalog.query import run_query
from jobs.crawl import crawl
from jobs.loopback_hub import FaultPlan
from jobs.loopback_hub.pytest_plugin import write_repo
from lineage.errors import HubError
from tests.crawl.conftest import pico
from tests.crawl.helpers import options

pytestmark = pytest.mark.usefixtures("ray_local")
NAMES = [f"acme/m{i}" for i in range(3)]


def write_zoo(root):
    for i, name in enumerate(NAMES):
        write_repo(root, name, tensors=pico(i), config={"model_type": "pico"})
    return root


def runs(catalog: Catalog) -> list[tuple]:
    sql = "SELECT run_id, status, finished_at IS NOT NULL FROM runs ORDER BY started_at"
    return run_query(catalog, sql).rows


def test_a_crawl_ends_its_run_with_its_last_batch(hub_server, tmp_path):
    hub = hub_server(write_zoo(tmp_path / "zoo"))
    catalog = Catalog(tmp_path / "catalog")
    opts = options(hub, ["everything"], tmp_path, gpus_per_worker=0, workers=1, batch_size=2)
    report = crawl(catalog, opts)
    assert sorted(report.fingerprinted) == NAMES
    assert runs(catalog) == [(report.run_id, "succeeded", True)]
    assert {s["status"] for s in states(catalog).values()} == {"done"}
    ended = run_query(
        catalog,
        "SELECT bool_and(m.indexed_at <= r.finished_at) FROM models m, runs r "
        "WHERE r.run_id = m.run_id",
    ).rows
    assert ended == [(True,)]


def test_a_crawl_whose_listing_fails_is_recorded_as_failed(hub_server, tmp_path):
    faults = FaultPlan()
    faults.server_error(r"^/api/models", times=None)
    hub = hub_server(write_zoo(tmp_path / "zoo"), faults=faults)
    catalog = Catalog(tmp_path / "catalog")
    opts = options(hub, ["everything"], tmp_path, gpus_per_worker=0, workers=1)
    with pytest.raises(HubError):
        crawl(catalog, opts)
    [(_, status, ended)] = runs(catalog)
    assert (status, ended) == ("failed", True)
