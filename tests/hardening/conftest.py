"""Fixtures for the hardening tests: the hostile corpus, and the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hardening.corpus import write_corpus


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def run_lineage(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`lineage ARGS` in a fresh process, as a user runs it (a hang fails the test)."""
    return subprocess.run(
        [sys.executable, "-m", "lineage", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
