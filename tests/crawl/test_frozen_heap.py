"""During a crawl, full garbage collections skip the objects the process held before it
(jobs/crawl/heap.py), and the heap is given back as it was when the crawl ends, however
it ends."""

from __future__ import annotations

import gc

import pytest

from catalog import Catalog
from jobs.crawl import crawl
from jobs.crawl.heap import frozen_heap
from jobs.loopback_hub.pytest_plugin import write_repo
from tests.crawl.conftest import pico
from tests.crawl.helpers import options


class Kept:
    """A tracked object whose generation a test can find."""


def in_oldest(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects(generation=2))


def test_objects_alive_before_are_frozen_within_and_released_after():
    gc.unfreeze()
    before = Kept()
    with frozen_heap():
        assert gc.get_freeze_count() > 0  # the objects alive as the block started
        during = Kept()
        gc.collect()  # a full collection now: `before` is out of its reach, `during` not
        assert in_oldest(during)
        assert not in_oldest(before)
    assert gc.get_freeze_count() == 0
    assert in_oldest(before)


def test_the_heap_is_released_when_the_block_raises():
    gc.unfreeze()
    with pytest.raises(RuntimeError), frozen_heap():
        assert gc.get_freeze_count() > 0
        raise RuntimeError("a crawl that fails")
    assert gc.get_freeze_count() == 0


@pytest.mark.usefixtures("ray_local")
def test_a_crawl_runs_frozen_and_gives_the_heap_back(hub_server, tmp_path, monkeypatch):
    import jobs.crawl.driver as driver

    write_repo(tmp_path / "zoo", "acme/m", tensors=pico(0), config={"model_type": "pico"})
    hub = hub_server(tmp_path / "zoo")
    seen: list[int] = []
    inner = driver._crawl

    def watched(catalog, opts):
        seen.append(gc.get_freeze_count())
        return inner(catalog, opts)

    monkeypatch.setattr(driver, "_crawl", watched)
    gc.unfreeze()
    report = crawl(Catalog(tmp_path / "catalog"), options(hub, ["acme/m"], tmp_path))
    assert report.fingerprinted == ["acme/m"]
    assert len(seen) == 1 and seen[0] > 0  # the crawl ran with the heap frozen
    assert gc.get_freeze_count() == 0
