"""The README's `ray job submit` lines, verbatim, against a `ray start --head` cluster.

The cluster is started as the README says (from the project's environment, token auth),
on free ports with a private temp dir and HOME, so it never meets another Ray on the
machine; it runs with `--block` and is ended by signalling that process, which stops
exactly the processes it started (`ray stop` would stop every Ray of this user).
The job runs in a copy of this checkout, shipped by `--working-dir .`, with no
PYTHONPATH: the job finds the project through the working dir alone.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from jobs.cli import main as lineage

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
RAY = VENV_BIN / "ray"
SUBMIT = re.compile(r"^ray job submit --working-dir \. -- python -m jobs\.\S+ .*$", re.M)


def readme_submit_lines() -> list[str]:
    section = (ROOT / "README.md").read_text().split("### Jobs on a Ray cluster")[1]
    return SUBMIT.findall(section.split("```")[1])


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def copy_checkout(dest: Path) -> Path:
    """The files git would ship (tracked and untracked-but-not-ignored)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    for rel in listed:
        src = ROOT / rel
        if src.is_file() and not src.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def ray_processes(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if marker in line and "ps -eo" not in line]


@pytest.fixture
def project(tmp_path, models_dir) -> Path:
    """A copy of the checkout whose demo-output/catalog holds three indexed models."""
    project = copy_checkout(tmp_path / "project")
    catalog = project / "demo-output" / "catalog"
    for name in ("gpt2", "gpt2-sharded", "vit"):
        assert lineage(["index", str(models_dir / "org" / name), "--quiet",
                        "--catalog", str(catalog)]) == 0
    return project


@pytest.fixture
def head(tmp_path) -> dict:
    """`ray start --head --block` on free ports; the environment jobs are submitted with."""
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: unix socket paths
    home = tmp_path / "home"
    home.mkdir()
    gcs, dash, client, agent = free_ports(4)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RAY_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HOME=str(home), PATH=f"{VENV_BIN}:{env['PATH']}", VIRTUAL_ENV=str(VENV_BIN.parent),
               RAY_AUTH_MODE="token", RAY_USAGE_STATS_ENABLED="0")
    subprocess.run([RAY, "get-auth-token", "--generate"], env=env, check=True,
                   capture_output=True)
    proc = subprocess.Popen(
        [RAY, "start", "--head", "--block", "--num-cpus", "2", f"--port={gcs}",
         f"--dashboard-port={dash}", f"--ray-client-server-port={client}",
         f"--dashboard-agent-listen-port={agent}", "--dashboard-host=127.0.0.1",
         f"--temp-dir={temp}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    env["RAY_ADDRESS"] = f"http://127.0.0.1:{dash}"
    try:
        _wait_for_dashboard(dash, proc)
        yield {"env": env, "temp": temp}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        deadline = time.monotonic() + 30
        while ray_processes(str(temp)) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = ray_processes(str(temp))
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, f"Ray processes left behind: {left}"


def _wait_for_dashboard(port: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ray start exited: {proc.stdout.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(1)
    raise AssertionError("the Ray dashboard did not come up")


def test_readme_lists_the_submit_lines():
    lines = readme_submit_lines()
    assert [line.split()[8] for line in lines] == ["jobs.kinship", "jobs.recover", "jobs.index"]


def test_readme_ray_job_submit_lines_run_verbatim(project, head, models_dir):
    from jobs.loopback_hub import LoopbackHub

    outputs = []
    with LoopbackHub(models_dir) as hub:  # what `lineage hub serve` serves
        env = {**head["env"], "HF_ENDPOINT": hub.endpoint}
        for line in readme_submit_lines():
            done = subprocess.run(["bash", "-c", line], cwd=project, env=env,
                                  capture_output=True, text=True, timeout=600)
            outputs.append(done)
    for done in outputs:
        out = done.stdout + done.stderr
        assert done.returncode == 0, out[-4000:]
        assert re.search(r"Job 'raysubmit_\w+' succeeded", out), out[-4000:]
    kinship, recover, crawl = (d.stdout + d.stderr for d in outputs)
    assert re.search(r"kinship run kinship-\w+: 3 models, wrote \d+ rows", kinship), kinship
    assert re.search(r"run recover-\w+: 3 models", recover), recover
    hub_catalog = project / "demo-output" / "hub-catalog"
    crawled = subprocess.run([sys.executable, "-m", "lineage", "sql",
                              "SELECT model_id FROM current_models ORDER BY 1", "--format", "csv",
                              "--catalog", str(hub_catalog)],
                             capture_output=True, text=True, check=True).stdout.split()
    assert "org/gpt2" in crawled and "org/vit" in crawled, crawl
    # The job read and wrote the catalog of the copy, by the absolute path it was given.
    runs = subprocess.run([sys.executable, "-m", "lineage", "sql",
                           "SELECT job, status FROM runs ORDER BY started_at", "--format", "csv",
                           "--catalog", str(project / "demo-output" / "catalog")],
                          capture_output=True, text=True, check=True).stdout.splitlines()
    assert runs[-2:] == ["kinship,succeeded", "recover,succeeded"]
