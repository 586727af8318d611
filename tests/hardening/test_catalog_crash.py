"""Issue rows 7 and 8: a SIGKILL at any point of catalog creation, or mid-run, leaves a
catalog the next run opens and completes; no duplicate rows whatever the paths given
and however many writers. Real processes, real SIGKILL, real DuckDB."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from catalog import Catalog
from catalog.runs import run_status, start_run
from jobs.local_index import index_local
from tests.hardening.conftest import run_lineage
from tests.hardening.corpus import good_model

CREATE = """
import sys, time
from catalog import Catalog
print("ready", flush=True)
sys.stdin.readline()
started = time.perf_counter()
Catalog(sys.argv[1])
print(time.perf_counter() - started, flush=True)
"""


def _duplicates(catalog: Catalog) -> dict[str, int]:
    sql = {
        "models": "SELECT count(*) - count(DISTINCT (model_id, revision)) FROM models",
        "tensors": "SELECT count(*) - count(DISTINCT (model_id, revision, name)) FROM tensors",
        "edges": "SELECT count(*) - count(DISTINCT (parent, child, relation, source)) FROM edges",
    }
    with catalog.reader() as con:
        return {name: con.execute(q).fetchone()[0] for name, q in sql.items()}


def _create_and_kill(root: Path, delay_s: float | None) -> float | None:
    """Create a catalog in a child process (imports done before the clock starts) and
    SIGKILL it `delay_s` after it starts creating; returns how long creation took
    when the child finished first (None when the kill landed)."""
    child = subprocess.Popen(
        [sys.executable, "-c", CREATE, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert child.stdout.readline().strip() == "ready"
    child.stdin.write("go\n")
    child.stdin.flush()
    if delay_s is not None:
        time.sleep(delay_s)
        child.send_signal(signal.SIGKILL)
    out, _ = child.communicate()
    return float(out) if child.returncode == 0 else None


def test_sigkill_at_any_point_of_creation_leaves_a_catalog_the_next_run_completes(tmp_path):
    model = good_model(tmp_path / "m", 0)
    # How long creation takes here: the fastest of three, so that kill points spread
    # over it still land mid-creation when the machine is busy during the first one.
    took = min(_create_and_kill(tmp_path / f"measure{k}", None) for k in range(3))
    killed = 0
    for step in range(10):  # kill points spread over the creation, from its first instant
        root = tmp_path / f"cat{step}"
        killed += _create_and_kill(root, took * step / 10) is None
        catalog = Catalog(root)  # the next run: must open whatever the kill left
        report = index_local(catalog, [model], progress=False)
        assert report.indexed == ["m"] and not report.failed, (step, report)
        assert not any((root / "staging").iterdir())
        assert _duplicates(catalog) == {"models": 0, "tensors": 0, "edges": 0}
    assert killed >= 5  # most kills landed mid-creation


def test_a_dead_writers_schema_staging_is_swept_on_open(tmp_path):
    root = tmp_path / "cat"
    Catalog(root)
    # What a writer killed while publishing the schema leaves behind (the case),
    # and a creation that never wrote its marker.
    (root / "staging" / "00000000-schema").mkdir()
    (root / "staging" / "00000000-schema" / "models.parquet").write_bytes(b"half")
    (root / ".initialised").unlink()
    catalog = Catalog(root)
    assert list((root / "staging").iterdir()) == []
    report = index_local(catalog, [good_model(tmp_path / "m", 0)], progress=False)
    assert report.indexed == ["m"]


def test_a_live_writers_staging_is_never_swept(tmp_path):
    root = tmp_path / "cat"
    Catalog(root)
    live = root / "staging" / "20260101T000000-live"
    live.mkdir()
    with open(root / ".writer.lock", "a") as fh:  # another writer holds the lock
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import fcntl,sys,time\n"
                "f=open(sys.argv[1],'a'); fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True);"
                " time.sleep(60)",
                str(root / ".writer.lock"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout.readline().strip() == "held"
            Catalog(root)  # opens without waiting, and leaves the live batch alone
            assert live.is_dir()
        finally:
            holder.kill()
            holder.wait()
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the lock is free again
        fcntl.flock(fh, fcntl.LOCK_UN)
    Catalog(root)
    assert not live.exists()


RUN_THEN_HANG = """
import sys, time
from catalog import Catalog
from catalog.runs import start_run
print(start_run(Catalog(sys.argv[1]), "index-local", {}), flush=True)
time.sleep(600)
"""


def test_a_run_killed_mid_way_is_marked_killed_by_the_next_run(tmp_path):
    root = tmp_path / "cat"
    child = subprocess.Popen(
        [sys.executable, "-c", RUN_THEN_HANG, str(root)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    run_id = child.stdout.readline().strip()
    assert run_status(Catalog(root), run_id) == "running"
    child.send_signal(signal.SIGKILL)
    child.wait()
    own = start_run(Catalog(root), "index-local", {})  # the next job starts
    assert run_status(Catalog(root), run_id) == "killed"
    assert run_status(Catalog(root), own) == "running"  # a live run stays running


def test_the_same_folder_twice_is_one_model(tmp_path):
    model = good_model(tmp_path / "m", 0)
    (model / "README.md").write_text("---\nbase_model: org/base\n---\n")
    catalog = Catalog(tmp_path / "cat")
    report = index_local(catalog, [model, model, tmp_path / "m" / ".." / "m"], progress=False)
    assert report.indexed == ["m"] and report.accounted == 1
    with catalog.reader() as con:
        assert con.execute("SELECT count(*) FROM models").fetchone()[0] == 1
        assert con.execute("SELECT count(*) FROM edges").fetchone()[0] == 1
    assert _duplicates(catalog) == {"models": 0, "tensors": 0, "edges": 0}


def test_two_writers_that_both_planned_before_either_committed_store_each_row_once(tmp_path):
    from catalog.rows import ModelRef, fingerprint_tables
    from lineage.fingerprint import fingerprint_model
    from lineage.weights import open_model

    model = good_model(tmp_path / "m", 0)
    (model / "README.md").write_text("---\nbase_model: org/base\n---\n")
    with open_model(model) as weights:
        fp = fingerprint_model(weights, width=64)
    ref = ModelRef("m", "rev1", "local:m")
    first, second = Catalog(tmp_path / "cat"), Catalog(tmp_path / "cat")
    assert first.commit(fingerprint_tables([(ref, fp), (ref, fp)], "run-a")) is not None
    assert second.commit(fingerprint_tables([(ref, fp)], "run-b")) is None  # nothing new
    assert _duplicates(first) == {"models": 0, "tensors": 0, "edges": 0}


@pytest.mark.slow
def test_two_concurrent_lineage_index_processes_store_each_row_once(tmp_path):
    models = tmp_path / "models"
    for i in range(6):
        folder = good_model(models / f"m{i}", i)
        (folder / "README.md").write_text(f"---\nbase_model: org/base{i}\n---\n")
    catalog = tmp_path / "cat"
    Catalog(catalog)
    cmd = [sys.executable, "-m", "lineage", "index", str(models), "--quiet", "--batch-size", "1"]
    procs = [
        subprocess.Popen([*cmd, "--catalog", str(catalog)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    cat = Catalog(catalog)
    with cat.reader() as con:
        assert con.execute("SELECT count(*) FROM models").fetchone()[0] == 6
        assert con.execute("SELECT count(*) FROM edges").fetchone()[0] == 6
    assert _duplicates(cat) == {"models": 0, "tensors": 0, "edges": 0}
    again = run_lineage("index", str(models), "--quiet", "--catalog", str(catalog))
    assert "indexed 0, unchanged 6, failed 0" in again.stdout


@pytest.mark.slow
def test_sigkill_at_any_point_of_an_index_run_then_the_next_run_completes(tmp_path):
    models = tmp_path / "models"
    for i in range(8):
        folder = good_model(models / f"m{i}", i)
        (folder / "README.md").write_text(f"---\nbase_model: org/base{i}\n---\n")
    cmd = [sys.executable, "-m", "lineage", "index", str(models), "--quiet", "--batch-size", "1"]
    started = time.perf_counter()
    subprocess.run([*cmd, "--catalog", str(tmp_path / "measure")], check=True, timeout=300)
    took = time.perf_counter() - started
    for step in range(1, 6):  # kill points spread over the run (imports, plan, commits)
        catalog = tmp_path / f"cat{step}"
        child = subprocess.Popen([*cmd, "--catalog", str(catalog)], stdout=subprocess.DEVNULL)
        time.sleep(took * step / 6)
        child.send_signal(signal.SIGKILL)
        child.wait()
        again = run_lineage("index", str(models), "--quiet", "--catalog", str(catalog))
        assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr
        cat = Catalog(catalog)
        with cat.reader() as con:
            assert con.execute("SELECT count(*) FROM models").fetchone()[0] == 8
            assert con.execute("SELECT count(*) FROM edges").fetchone()[0] == 8
            statuses = dict(con.execute("SELECT status, count(*) FROM runs GROUP BY 1").fetchall())
        assert _duplicates(cat) == {"models": 0, "tensors": 0, "edges": 0}
        assert not any((catalog / "staging").iterdir())
        assert "running" not in statuses  # the killed run (if it had started) says killed


def test_a_database_file_left_without_its_header_is_set_aside_and_rebuilt(tmp_path):
    # What a release before the atomic creation left when killed between DuckDB
    # creating the file and writing its header: a file no open can read, no marker.
    root = tmp_path / "cat"
    root.mkdir()
    (root / "catalog.duckdb").write_bytes(b"")
    catalog = Catalog(root)
    report = index_local(catalog, [good_model(tmp_path / "m", 0)], progress=False)
    assert report.indexed == ["m"]
    kept = [p.name for p in root.iterdir() if p.name.startswith("catalog.duckdb.unfinished-")]
    assert len(kept) == 1
    with catalog.reader() as con:
        assert con.execute("SELECT count(*) FROM models").fetchone()[0] == 1
