"""`lineage schedule`: one submission id per slot, run at most once; incremental runs
list only what changed since the last successful crawl."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from catalog import Catalog
from catalog.query import run_query
from jobs.cli import main
from jobs.crawl.options import DEFAULT_WIDTH
from jobs.crawl.schedule import parse_every, slot_start, submission_id
from lineage.fingerprint import DEFAULT_WIDTH as LINEAGE_WIDTH
from tests.crawl.conftest import write_odd_zoo


def test_slots_give_deterministic_ids(capsys):
    when = datetime(2025, 1, 2, 7, 30, tzinfo=UTC)
    assert submission_id(when, parse_every("6h")) == "lineage-index-20250102T0600Z"
    assert submission_id(when + timedelta(hours=5), parse_every("6h")).endswith("T1200Z")
    assert slot_start(when, parse_every("1d")) == datetime(2025, 1, 2, tzinfo=UTC)
    with pytest.raises(ValueError, match="is not like 30m, 6h or 1d"):
        parse_every("0h")
    assert (
        main(
            [
                "schedule",
                "--print-id",
                "--slot",
                "2025-01-02T07:30:00Z",
                "--every",
                "6h",
                "--seeds",
                "everything",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip() == "lineage-index-20250102T0600Z"
    assert DEFAULT_WIDTH == LINEAGE_WIDTH


@pytest.mark.usefixtures("ray_local")
def test_a_slot_runs_once_and_the_next_only_sees_changes(hub_server, tmp_path, capsys):
    root = write_odd_zoo(tmp_path / "zoo")
    old = time.time() - 3600
    for path in root.rglob("*"):
        os.utime(path, (old, old))
    hub = hub_server(root, page_size=2)
    catalog = tmp_path / "catalog"

    def schedule(slot: str) -> int:
        return main(
            [
                "schedule",
                "--slot",
                slot,
                "--every",
                "1d",
                "--seeds",
                "everything",
                "--endpoint",
                hub.endpoint,
                "--catalog",
                str(catalog),
                "--quiet",
                "--retry-base",
                "0.02",
                "--api-per-5min",
                "0",
                "--resolve-per-5min",
                "0",
                "--gpus-per-worker",
                "0",
                "--workers",
                "1",
            ]
        )

    assert schedule("2025-01-02T01:00:00") == 0
    first = run_query(Catalog(catalog), "SELECT count(*) FROM models").rows[0][0]
    assert first == 4  # base, chat, big, lora (broken failed, pickled skipped)
    hub.reset_counts()
    assert schedule("2025-01-02T23:59:00") == 0  # same slot: a retried CronJob
    assert "already succeeded; nothing to do" in capsys.readouterr().out
    assert hub.requests == []
    (root / "acme/chat/README.md").write_text("---\nbase_model: acme/base\n---\nv2\n")
    assert schedule("2025-01-03T01:00:00") == 0
    fetched = {r.path.split("/resolve/")[0] for r in hub.requests if "/resolve/" in r.path}
    assert fetched == {"/acme/chat"}  # nothing else was even probed
    runs = run_query(Catalog(catalog), "SELECT run_id, status FROM runs ORDER BY run_id").rows
    assert runs == [
        ("lineage-index-20250102T0000Z", "succeeded"),
        ("lineage-index-20250103T0000Z", "succeeded"),
    ]
    revisions = run_query(
        Catalog(catalog), "SELECT count(*) FROM models WHERE model_id = 'acme/chat'"
    ).rows
    assert revisions == [(2,)]
