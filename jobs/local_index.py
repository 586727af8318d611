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
    todo = _plan(found, catalog.known_revisions(), report)
    run = _Indexing(catalog, report, allow_pickle, width, batch_size)
    status = "failed"
    try:
        run.index(todo, progress)
        status = "succeeded"
    finally:
        finish_run(catalog, run_id, status)
    return report


def _plan(
    found: list[tuple[str, Path]], known: set[tuple[str, str]], report: IndexReport
) -> list[tuple[ModelRef, Path]]:
    """The models whose (id, revision) is not in the catalog yet; the rest are unchanged."""
    todo = []
    for model_id, folder in found:
        ref = ModelRef(
            model_id,
            local_revision(folder),
            f"local:{folder.resolve()}",
            datetime.fromtimestamp(folder.stat().st_mtime, UTC),
        )
        if (ref.model_id, ref.revision) in known:
            report.unchanged.append(model_id)
        else:
            todo.append((ref, folder))
    return todo


@dataclass
class _Indexing:
    catalog: Catalog
    report: IndexReport
    allow_pickle: bool
    width: int
    batch_size: int

    def index(self, todo: list[tuple[ModelRef, Path]], progress: bool) -> None:
        total = sum(_size(folder) for _, folder in todo)
        batch: list[tuple[ModelRef, ModelFingerprint]] = []
        with tqdm(
            total=total, unit="B", unit_scale=True, desc="fingerprinting", disable=not progress
        ) as bar:
            for ref, folder in todo:
                fp = self._fingerprint(ref, folder, bar)
                if fp is not None:
                    batch.append((ref, fp))
                if len(batch) >= self.batch_size:
                    self._commit(batch)
                    batch = []
            self._commit(batch)

    def _fingerprint(self, ref: ModelRef, folder: Path, bar: tqdm) -> ModelFingerprint | None:
        try:
            with open_model(folder, allow_pickle=self.allow_pickle) as model:
                return fingerprint_model(model, width=self.width, progress=bar.update)
        except LineageError as err:
            self.report.failed[ref.model_id] = str(err)
            record_states(self.catalog, [(ref.model_id, ref.revision, "failed", str(err))])
            bar.write(f"failed: {ref.model_id}: {err}")
            return None

    def _commit(self, batch: list[tuple[ModelRef, ModelFingerprint]]) -> None:
        if not batch:
            return
        self.catalog.commit(fingerprint_tables(batch, self.report.run_id))
        states = [(ref.model_id, ref.revision, "done", None) for ref, _ in batch]
        record_states(self.catalog, states)
        self.report.indexed += [ref.model_id for ref, _ in batch]


def _size(path: Path) -> int:
    """Bytes of tensor data, from the headers only (what the progress bar counts)."""
    try:
        with open_model(path, allow_pickle=True) as model:
            return sum(info.nbytes for info in model.infos().values())
    except LineageError:
        return 0
