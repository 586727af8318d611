"""`python -m jobs.index` killed with SIGKILL mid-crawl, then run again: the catalog
ends equal to a clean crawl's, with no duplicates and no weights fetched twice. Both
runs have HF_TOKEN set; it must appear nowhere: not in the catalog, not in the output,
not in Ray's logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from catalog import Catalog
from jobs.loopback_hub import FaultPlan, LoopbackHub
from tests.crawl.conftest import SEED
from tests.crawl.helpers import duplicates, edges, models, tensors, weight_reads

TOKEN = "hf_lineageTestSecretToken4242"


def start_index(hub, catalog: Path, ray_tmp: Path, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "HF_TOKEN": TOKEN,
        "RAY_TMPDIR": str(ray_tmp),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HOME": str(ray_tmp / "hf"),
    }
    cmd = [
        sys.executable,
        "-m",
        "jobs.index",
        "--catalog",
        str(catalog),
        "--seeds",
        SEED,
        "--endpoint",
        hub.endpoint,
        "--ray-address",
        "local",
        "--workers",
        "2",
        "--batch-size",
        "1",
        "--retry-base",
        "0.02",
        "--api-per-5min",
        "0",
        "--resolve-per-5min",
        "0",
        "--cache-dir",
        str(catalog.parent / "cache"),
    ]
    with open(log, "ab") as out:
        return subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=Path(__file__).parents[2],
            start_new_session=True,
        )


def committed_models(catalog: Path) -> int:
    return len(list((catalog / "parts").glob("*/models.parquet")))


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the job and everything it started (its local Ray), like a lost machine."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def test_killed_crawl_resumes_to_the_same_catalog_without_refetching(
    tiny_zoo_cached, clean, tmp_path
):
    ray_tmp = Path(tempfile.mkdtemp(prefix="rk", dir="/tmp"))  # short: Ray's socket paths
    faults = FaultPlan()
    faults.slow(r"/resolve/[0-9a-f]+/model\.safetensors$", delay_s=0.5, times=None, methods=["GET"])
    catalog_dir = tmp_path / "catalog"
    log = tmp_path / "job.log"
    with LoopbackHub(tiny_zoo_cached, faults=faults) as hub:
        proc = start_index(hub, catalog_dir, ray_tmp, log)
        deadline = time.monotonic() + 240
        while committed_models(catalog_dir) < 2 and proc.poll() is None:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        kill_group(proc)
        first_batches = committed_models(catalog_dir)
        assert 2 <= first_batches < 8, log.read_text()[-3000:]  # really stopped mid-way
        done_before = {m[0] for m in models(Catalog(catalog_dir))}
        hub.reset_counts()
        faults.clear()
        proc = start_index(hub, catalog_dir, ray_tmp, log)
        assert proc.wait(timeout=240) == 0, log.read_text()[-3000:]
        refetched = [p for p in weight_reads(hub) if any(f"/{m}/" in p for m in done_before)]
    catalog = Catalog(catalog_dir)
    assert refetched == []  # what the killed run committed was not downloaded again
    assert models(catalog) == models(clean) and tensors(catalog) == tensors(clean)
    assert edges(catalog) == edges(clean)
    assert duplicates(catalog) == {"models": 0, "tensors": 0, "edges": 0}
    leaks = [
        p
        for p in [*catalog_dir.rglob("*"), *ray_tmp.rglob("*"), log]
        if p.is_file() and TOKEN.encode() in p.read_bytes()
    ]
    assert leaks == []
    assert "fingerprinted" in log.read_text()  # the log was really captured
