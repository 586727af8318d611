"""The runs table: one row per job run, so every output row can name what made it."""

from __future__ import annotations

import json
import uuid

from catalog.store import Catalog


def start_run(catalog: Catalog, job: str, params: dict) -> str:
    run_id = f"{job}-{uuid.uuid4().hex[:12]}"
    with catalog.writer() as con:
        con.execute(
            "INSERT INTO runs VALUES (?, ?, ?, now(), NULL, 'running')",
            [run_id, job, json.dumps(params, default=str, sort_keys=True)],
        )
    return run_id


def finish_run(catalog: Catalog, run_id: str, status: str = "succeeded") -> None:
    with catalog.writer() as con:
        con.execute(
            "UPDATE runs SET finished_at = now(), status = ? WHERE run_id = ?", [status, run_id]
        )


def last_successful_run(catalog: Catalog, job: str) -> dict | None:
    with catalog.reader() as con:
        row = con.execute(
            "SELECT run_id, started_at FROM runs WHERE job = ? AND status = 'succeeded' "
            "ORDER BY started_at DESC LIMIT 1",
            [job],
        ).fetchone()
    return None if row is None else {"run_id": row[0], "started_at": row[1]}
