"""Threads are the CPUs a process was given, never more, set once where it starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lineage.errors import SpecError
from lineage.threads import cpus_given, resolve_threads

ONE_CPU = {min(os.sched_getaffinity(0))}

PROBE = (
    "import torch, os; from lineage.threads import resolve_threads, use_threads; "
    "n = use_threads(resolve_threads()); "
    "print(n, torch.get_num_threads(), os.environ['OMP_NUM_THREADS'])"
)


def _on_one_cpu() -> None:
    os.sched_setaffinity(0, ONE_CPU)


def test_a_process_restricted_to_one_cpu_uses_one_thread():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         preexec_fn=_on_one_cpu, check=True)
    assert out.stdout.split() == ["1", "1", "1"]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_an_unrestricted_process_uses_every_cpu_it_may_run_on():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         check=True)
    given = len(os.sched_getaffinity(0))
    assert out.stdout.split() == [str(given)] * 3


def test_more_threads_than_cpus_are_refused_with_the_limit():
    with pytest.raises(SpecError, match=rf"between 1 and {cpus_given()}"):
        resolve_threads(cpus_given() + 1)
    with pytest.raises(SpecError, match="threads 0"):
        resolve_threads(0)
    assert resolve_threads(None, cpus=0.5) == 1  # a fractional Ray CPU: one thread
    assert resolve_threads(None, cpus=64.0) == cpus_given()  # never above the affinity


def test_lineage_index_reports_the_threads_it_set(models_dir, tmp_path):
    def index(*flags, one_cpu=False):
        return subprocess.run(
            [sys.executable, "-m", "lineage", "index", str(models_dir / "org/vit"), "--json",
             "--catalog", str(tmp_path / "cat"), *flags],
            capture_output=True, text=True, preexec_fn=_on_one_cpu if one_cpu else None)

    limited = index(one_cpu=True)
    assert limited.returncode == 0, limited.stderr
    assert json.loads(limited.stdout)["threads"] == 1
    refused = index("--threads", "2", one_cpu=True)
    assert refused.returncode == 1
    assert "threads 2" in refused.stderr and "between 1 and 1" in refused.stderr
    asked = index("--threads", "1")
    assert json.loads(asked.stdout)["threads"] == 1


def test_a_library_caller_gets_omp_num_threads_or_the_affinity():
    """Without use_threads (a notebook, a Ray task), the fingerprint takes the thread
    count Ray (or the user) put in OMP_NUM_THREADS, capped by the affinity."""
    probe = "from lineage.threads import configured_threads; print(configured_threads())"
    for value, expected in (("1", "1"), ("64", str(cpus_given())), ("x", str(cpus_given()))):
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                             check=True, env={**os.environ, "OMP_NUM_THREADS": value})
        assert out.stdout.strip() == expected, value
