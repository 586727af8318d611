"""`lineage index` commits a batch when it holds --batch-size models or --commit-seconds
have passed since its first model: one Parquet part per batch, the crawl_state rows with
it, and a failed model's state recorded with the batch it fell in."""

from __future__ import annotations

from catalog import Catalog
from catalog.crawl_state import states
from catalog.store import SCHEMA_BATCH
from jobs.local_index import index_local
from tests.hardening.corpus import good_model


def _parts(catalog: Catalog) -> int:
    return sum(1 for p in catalog.parts.iterdir() if p.name != SCHEMA_BATCH)


def test_batches_close_by_count_or_by_time(tmp_path):
    models = [good_model(tmp_path / "models" / f"m{i}", i) for i in range(7)]
    (tmp_path / "models" / "broken").mkdir()
    (tmp_path / "models" / "broken" / "model.safetensors").write_bytes(b"\x00" * 16)
    by_count = Catalog(tmp_path / "by-count")
    report = index_local(by_count, [tmp_path / "models"], batch_size=3,
                         commit_seconds=1e9, progress=False)
    assert len(report.indexed) == 7 and list(report.failed) == ["broken"]
    assert _parts(by_count) == 3  # 3 + 3 + 1 models
    recorded = states(by_count)
    assert sorted(s["status"] for s in recorded.values()) == ["done"] * 7 + ["failed"]
    by_time = Catalog(tmp_path / "by-time")
    index_local(by_time, models, batch_size=1000, commit_seconds=0.0, progress=False)
    assert _parts(by_time) == 7  # every model waited "long enough": one part each
    again = index_local(by_time, models, batch_size=1000, progress=False)
    assert len(again.unchanged) == 7 and _parts(by_time) == 7
