"""Index local model folders into a catalog (the library call behind `lineage index`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from catalog import Catalog
from catalog.crawl_state import record_states
from catalog.rows import ModelRef, fingerprint_tables
from catalog.runs import finish_run, start_run
from lineage.errors import LineageError
from lineage.fingerprint import DEFAULT_WIDTH, ModelFingerprint, fingerprint_model
from lineage.weights import open_model
from lineage.weights.discover import discover_models, local_revision


@dataclass
class IndexReport:
    run_id: str
    indexed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def index_local(
    catalog: Catalog,
    paths: list[str | Path],
    *,
    allow_pickle: bool = False,
    width: int = DEFAULT_WIDTH,
    batch_size: int = 16,
    progress: bool = True,
) -> IndexReport:
    """Fingerprint every model under `paths` not yet in `catalog` at its revision.

    Batches of `batch_size` models are committed as they finish, so an interrupted run
    keeps what it did and a re-run picks up the rest. A model that cannot be read is
    recorded as failed (with the reason) and the others go on.
    """
    found = [(mid, folder) for p in paths for mid, folder in discover_models(p)]
    run_id = start_run(catalog, "index-local", {"paths": [str(p) for p in paths]})
    report = IndexReport(run_id)
    known = catalog.known_revisions()
    todo = []
    for model_id, folder in found:
        ref = ModelRef(
            model_id,
            local_revision(folder),
            f"local:{folder.resolve()}",
            datetime.fromtimestamp(folder.stat().st_mtime, UTC),
        )
        (report.unchanged if (ref.model_id, ref.revision) in known else todo).append(ref)
    report.unchanged = [r.model_id for r in report.unchanged]
    paths_by_id = dict(found)
    status = "failed"
    try:
        _index_refs(catalog, todo, paths_by_id, report, allow_pickle, width, batch_size, progress)
        status = "succeeded"
    finally:
        finish_run(catalog, run_id, status)
    return report


def _index_refs(
    catalog, todo, paths_by_id, report, allow_pickle, width, batch_size, progress
) -> None:
    total = sum(_size(paths_by_id[r.model_id]) for r in todo)
    batch: list[tuple[ModelRef, ModelFingerprint]] = []
    with tqdm(
        total=total, unit="B", unit_scale=True, desc="fingerprinting", disable=not progress
    ) as bar:
        for ref in todo:
            try:
                with open_model(paths_by_id[ref.model_id], allow_pickle=allow_pickle) as model:
                    batch.append((ref, fingerprint_model(model, width=width, progress=bar.update)))
            except LineageError as err:
                report.failed[ref.model_id] = str(err)
                record_states(catalog, [(ref.model_id, ref.revision, "failed", str(err))])
                bar.write(f"failed: {ref.model_id}: {err}")
            if len(batch) >= batch_size:
                _commit(catalog, batch, report)
                batch = []
        _commit(catalog, batch, report)


def _commit(catalog: Catalog, batch: list, report: IndexReport) -> None:
    if not batch:
        return
    catalog.commit(fingerprint_tables(batch, report.run_id))
    record_states(catalog, [(ref.model_id, ref.revision, "done", None) for ref, _ in batch])
    report.indexed += [ref.model_id for ref, _ in batch]


def _size(path: Path) -> int:
    """Bytes of tensor data, from the headers only (what the progress bar counts)."""
    try:
        with open_model(path, allow_pickle=True) as model:
            return sum(info.nbytes for info in model.infos().values())
    except LineageError:
        return 0
