"""A real `tiny` zoo, indexed into a catalog and recovered once per session.

The zoo comes from the zoo cache when it is there (else it is trained: ~40 s on 2
cores); indexing and recovery take a few seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalog import Catalog
from jobs.local_index import index_local
from jobs.recover import RecoverReport, run_recover
from lineage.zoo import build_zoo


@pytest.fixture(scope="session")
def tiny_root() -> Path:
    return build_zoo("tiny", progress=False).root


@pytest.fixture(scope="session")
def tiny_truth(tiny_root: Path) -> dict:
    return json.loads((tiny_root / "ground_truth.json").read_text())


@pytest.fixture(scope="session")
def tiny_catalog(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    catalog = Catalog(tmp_path_factory.mktemp("recovery") / "catalog")
    index_local(catalog, [tiny_root], progress=False)
    return catalog


@pytest.fixture(scope="session")
def recovered(tiny_catalog: Catalog) -> RecoverReport:
    return run_recover(tiny_catalog)


def edges_by_child(report: RecoverReport) -> dict[str, list]:
    out: dict[str, list] = {}
    for e in report.result.edges:
        out.setdefault(e.child, []).append(e)
    return out
