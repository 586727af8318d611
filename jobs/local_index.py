"""Index local model folders into a catalog (the library call behind `lineage index`).

One bad model never stops the others: whatever goes wrong with one folder (a refused
file, hostile metadata, an I/O error, even a bug) becomes one failure line naming the
model and the reason, and a `failed` row in crawl_state; the rest of the batch is
indexed. Every folder given is accounted for: indexed + unchanged + failed = folders.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from catalog import Catalog
from catalog.crawl_state import record_states
from catalog.rows import ModelRef, tables_per_model
from catalog.runs import finish_run, start_run
from lineage.errors import LineageError
from lineage.fingerprint import DEFAULT_WIDTH, ModelFingerprint, fingerprint_model
from lineage.weights import open_model
from lineage.weights.discover import discover_models, local_revision
from lineage.weights.layout import resolve_layout


@dataclass
class IndexReport:
    run_id: str
    indexed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def accounted(self) -> int:
        """Folders with an outcome: equals the number of distinct model folders found."""
        return len(self.indexed) + len(self.unchanged) + len(self.failed)


def index_local(
    catalog: Catalog,
    paths: list[str | Path],
    *,
    allow_pickle: bool = False,
    width: int = DEFAULT_WIDTH,
    batch_size: int = 256,
    commit_seconds: float = 2.0,
    progress: bool = True,
) -> IndexReport:
    """Fingerprint every model under `paths` not yet in `catalog` at its revision.

    A batch is committed when it holds `batch_size` models or `commit_seconds` have
    passed since its first model, whichever comes first: an interrupted run keeps every
    committed batch (a batch is published whole or not at all), so a crash loses at most
    one batch, and a re-run picks up the rest. Committing costs tens of milliseconds
    (DuckDB connections, a Parquet part), which is why small models share a batch. A
    model that cannot be read is recorded as failed (with the reason), with the batch,
    and the others go on.
    """
    found = _distinct(mid_folder for p in paths for mid_folder in discover_models(p))
    run_id = start_run(catalog, "index-local", {"paths": [str(p) for p in paths]})
    report = IndexReport(run_id)
    run = _Indexing(catalog, report, allow_pickle, width, batch_size, commit_seconds)
    status = "failed"
    try:
        todo = run.plan(found, catalog.known_revisions())
        run.index(todo, progress)
        status = "succeeded"
    finally:
        finish_run(catalog, run_id, status)
    return report


def _distinct(found) -> list[tuple[str, Path]]:
    """Each model folder once, however many times (or by whichever path) it was given."""
    seen: dict[Path, tuple[str, Path]] = {}
    for model_id, folder in found:
        seen.setdefault(folder.resolve(), (model_id, folder))
    return list(seen.values())


@dataclass
class _Indexing:
    catalog: Catalog
    report: IndexReport
    allow_pickle: bool
    width: int
    batch_size: int
    commit_seconds: float
    bar: tqdm | None = None  # set while `index` runs
    failed_states: list[tuple[str, str, str, str]] = field(default_factory=list)

    def plan(
        self, found: list[tuple[str, Path]], known: set[tuple[str, str]]
    ) -> list[tuple[ModelRef, Path]]:
        """The models whose (id, revision) is not in the catalog yet (each once); the
        rest are unchanged."""
        todo: dict[tuple[str, str], tuple[ModelRef, Path]] = {}
        for model_id, folder in found:
            try:
                ref = ModelRef(
                    model_id,
                    local_revision(folder),
                    f"local:{folder.resolve()}",
                    datetime.fromtimestamp(folder.stat().st_mtime, UTC),
                )
            except OSError as err:
                self._fail(ModelRef(model_id, "", ""), f"{folder}: cannot be read ({err.strerror})")
                continue
            key = (ref.model_id, ref.revision)
            if key in known or key in todo:
                self.report.unchanged.append(model_id)
            else:
                todo[key] = (ref, folder)
        return list(todo.values())

    def index(self, todo: list[tuple[ModelRef, Path]], progress: bool) -> None:
        sizes = {ref.model_id: _size(folder, self.allow_pickle) for ref, folder in todo}
        batch: list[tuple[ModelRef, ModelFingerprint]] = []
        opened = time.monotonic()
        with tqdm(
            total=sum(sizes.values()),
            unit="B",
            unit_scale=True,
            desc="fingerprinting",
            disable=not progress,
        ) as self.bar:
            for ref, folder in todo:
                fp = self._fingerprint(ref, folder, sizes[ref.model_id])
                if fp is not None:
                    batch.append((ref, fp))
                waited = time.monotonic() - opened
                if len(batch) >= self.batch_size or (batch and waited >= self.commit_seconds):
                    self._commit(batch)
                    batch, opened = [], time.monotonic()
            self._commit(batch)

    def _fingerprint(self, ref: ModelRef, folder: Path, size: int) -> ModelFingerprint | None:
        counted = 0

        def advance(n: int) -> None:
            nonlocal counted
            counted += n
            self.bar.update(n)

        try:
            with open_model(folder, allow_pickle=self.allow_pickle) as model:
                _ = model.metadata  # hostile metadata is refused before any weight is read
                return fingerprint_model(model, width=self.width, progress=advance)
        except LineageError as err:
            self._fail(ref, str(err))
        except OSError as err:  # unreadable file, or a map the machine refuses
            self._fail(ref, f"{folder}: cannot be read ({type(err).__name__}: {err.strerror})")
        except Exception as err:  # noqa: BLE001 - a bug must cost one model, not the run
            self._fail(ref, f"unexpected {type(err).__name__} (a lineage bug, please report it)")
        finally:
            self.bar.update(max(0, size - counted))  # headers, or what a failure skipped
        return None

    def _fail(self, ref: ModelRef, why: str) -> None:
        """Report the failure now; its crawl_state row goes with the next commit."""
        self.report.failed[ref.model_id] = why
        self.failed_states.append((ref.model_id, ref.revision, "failed", why))
        if self.bar is not None:
            self.bar.write(f"failed: {ref.model_id}: {why}")

    def _commit(self, batch: list[tuple[ModelRef, ModelFingerprint]]) -> None:
        """Publish the batch's rows (one Parquet part), then its states in one statement."""
        if batch:
            tables, unfit = tables_per_model(batch, self.report.run_id)
            self.catalog.commit(tables)
            for ref, _ in batch:
                if ref.model_id in unfit:
                    self._fail(ref, unfit[ref.model_id])
            fit = [r for r, _ in batch if r.model_id not in unfit]
            done = [(r.model_id, r.revision, "done", None) for r in fit]
            self.report.indexed += [r.model_id for r in fit]
        else:
            done = []
        states, self.failed_states = done + self.failed_states, []
        record_states(self.catalog, states)


def _size(folder: Path, allow_pickle: bool) -> int:
    """Bytes of the model's weight files, from os.stat alone (what the progress bar
    counts): nothing is opened, mapped or unpickled to size it."""
    try:
        layout = resolve_layout(folder, allow_pickle=allow_pickle)
        return sum(os.stat(source.file).st_size for source in layout.sources)
    except (LineageError, OSError):
        return 0
