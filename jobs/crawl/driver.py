"""The crawl driver: discovery -> header probes -> fingerprinting actors -> catalog.

Discovery runs in a thread and feeds a queue; probes (range reads) run in a thread
pool, and read whole what is small (a small model's weights, its config and card) so
the worker never fetches it again; fingerprinting runs in the actor pool, several small
models per task. The driver alone writes the catalog: each batch of fingerprints (a
batch closes at `batch_size` models or `commit_seconds` after its first), with the card
edges found so far, is one atomic commit, and crawl_state is updated after it; commits
run one at a time in a committer thread, so the loop keeps feeding the actors. On
restart, every (model, sha) already committed or recorded done/skipped is passed over
without a byte fetched; a model whose sha changed is indexed again.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa

from catalog import Catalog
from catalog.crawl_state import commit_then_record, resume_state
from catalog.encoded import EncodedTable
from catalog.rows import ModelRef, tables_per_model
from catalog.runs import finish_run, start_named_run, start_run
from catalog.schema import EDGES
from jobs.crawl.heap import frozen_heap
from jobs.crawl.lane import DriverLane
from jobs.crawl.limiter import RayLimiter, start_limiter
from jobs.crawl.options import CrawlOptions
from jobs.crawl.progress import CrawlProgress
from jobs.crawl.workers import WorkerPool, WorkResult, actor_options
from lineage.errors import LineageError, ModelNotFoundError, UnsafeFormatError
from lineage.hub.client import MAX_SMALL_FILE, HubClient, default_endpoint
from lineage.hub.discovery import Found, parse_seed, walk
from lineage.hub.ids import redact
from lineage.hub.probe import Probe, probe_model, read_meta_files
from lineage.hub.ratelimit import default_rates
from lineage.hub.remote import CardEdge, RemoteModel
from lineage.hub.retry import RetryPolicy

_DONE = object()  # discovery finished
SINCE_SLACK = timedelta(minutes=5)
META_READ_AHEAD = 256 * 1024  # config/card files read by the probe; bigger: by the worker
AHEAD_PER_WORKER = 48  # models probed (their small files held) but not yet fingerprinted
CONVERT_AT = 16  # fingerprints turned into rows together while probes run (see run)


@dataclass
class CrawlReport:
    run_id: str
    discovered: list[str] = field(default_factory=list)
    fingerprinted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    edges: int = 0
    bytes: int = 0
    seconds: float = 0.0
    retries: int = 0
    in_driver: int = 0  # fingerprinted by the driver's lane while the actors started
    actors: int = 0  # actors asked for (none when the driver's lane took every model)
    first_result_s: float | None = None  # since the start: actors, listing, probes before
    last_result_s: float | None = None

    @property
    def steady_rate(self) -> float | None:
        """Models/s between the first and the last fingerprint: the per-model cost, without
        the start-up (actors starting, the first listing page)."""
        if self.first_result_s is None or self.last_result_s is None:
            return None
        span = self.last_result_s - self.first_result_s
        return (len(self.fingerprinted) - 1) / span if span > 0 else None

    def summary(self) -> str:
        rate = self.bytes / self.seconds if self.seconds else 0.0
        return (
            f"run {self.run_id}: discovered {len(self.discovered)}, fingerprinted "
            f"{len(self.fingerprinted)} ({self.in_driver} by the driver's lane; "
            f"{self.actors} actor(s) started), unchanged "
            f"{len(self.unchanged)}, skipped "
            f"{len(self.skipped)}, failed {len(self.failed)}, new card edges {self.edges}, "
            f"{self.bytes / 1e6:.1f} MB in {self.seconds:.1f} s ({rate / 1e6:.2f} MB/s)"
        )


def crawl(catalog: Catalog, opts: CrawlOptions) -> CrawlReport:
    """Crawl from `opts.seeds` into `catalog`; Ray must be connected (see connect_ray).

    The driver lists the Hub from the start, beside recording the run and reading what
    the catalog already holds. Without the driver's lane the actors are asked for first:
    Ray starts them (a process, imports, the compiled kernels: about a second of a core
    each) while the driver lists and probes. With it, they are asked for when the first
    probed model has something to download, or once the lane has taken LANE_ALONE
    models (jobs.crawl.workers): a crawl of a few small models never pays for them."""
    with frozen_heap():  # no full collection walks the process's heap meanwhile
        return _crawl(catalog, opts)


def _crawl(catalog: Catalog, opts: CrawlOptions) -> CrawlReport:
    started = time.perf_counter()
    seeds = [parse_seed(s) for s in opts.seeds]  # refuse bad seeds before any work
    opts.retry = opts.retry or RetryPolicy()
    endpoint = (opts.endpoint or default_endpoint()).rstrip("/")
    limiter = start_limiter(default_rates(opts.api_per_5min, opts.resolve_per_5min))
    job = _Crawl(catalog, opts, endpoint, limiter, started)
    pool = _start_pool(catalog, opts, endpoint, limiter)
    try:
        job.discover(seeds)
        if opts.run_id:
            run_id = start_named_run(catalog, opts.run_id, opts.job, opts.params())
        else:
            run_id = start_run(catalog, opts.job, opts.params())
        status = "failed"
        try:
            report = job.run(run_id, pool)
            status = "succeeded"
            return report
        finally:
            if status != "succeeded" or not job.run_finished:
                finish_run(catalog, run_id, status)
    finally:
        job.stop_discovery()
        pool.shutdown()


def _start_pool(
    catalog: Catalog, opts: CrawlOptions, endpoint: str, limiter: RayLimiter
) -> WorkerPool:
    """The fingerprinting actors (asked for now, or when needed with a lane: see
    WorkerPool), and the driver's lane until they are up (a CPU pool only: see
    jobs.crawl.lane)."""
    cache = Path(opts.cache_dir or catalog.root / ".crawl-cache")
    options = actor_options(opts.gpus_per_worker, opts.cpus_per_worker)
    lane = None
    if opts.driver_lane and not options.get("num_gpus") and not opts.keep_weights:
        client = HubClient(endpoint, limiter=limiter, policy=opts.retry)
        lane = DriverLane(client, cache, opts.width)
    return WorkerPool(
        opts.workers,
        options,
        (
            endpoint,
            limiter,
            opts.retry,
            str(cache),
            opts.width,
            opts.keep_weights,
            opts.threads,
        ),
        lane=lane,
    )


class _Crawl:
    def __init__(
        self,
        catalog: Catalog,
        opts: CrawlOptions,
        endpoint: str,
        limiter: RayLimiter,
        started: float,
    ) -> None:
        self.catalog, self.opts = catalog, opts
        self.report = CrawlReport("")
        self.started = started  # the crawl() call: the report's times count from there
        self.endpoint = endpoint
        self.source = "hub:" + _without_userinfo(self.endpoint)
        self.client = HubClient(self.endpoint, limiter=limiter, policy=opts.retry)
        self.since = (
            opts.since.replace(tzinfo=UTC) if opts.since and not opts.since.tzinfo else opts.since
        )
        self.batch: list[ModelRef] = []  # the open batch's models
        self.fresh: list[tuple[ModelRef, object]] = []  # their fingerprints not yet in rows
        self.converted: list[Future] = []  # (tables, unfit) of the open batch, in pieces
        self.encoded = _encoded_tables()  # the open batch's models and tensors, as they come
        self.batch_opened: float | None = None  # when the batch's first row arrived
        self.pending: list[tuple[str, str]] = []  # probed keys, marked with the next commit
        self.writing: Future | None = None  # the commit in flight (one at a time)
        self.edges: list[CardEdge] = []
        self.state_rows: list[tuple[str, str, str, str | None]] = []
        self.remotes: dict[tuple[str, str], RemoteModel] = {}
        self._walk_error: BaseException | None = None
        self.found_q: queue.Queue = queue.Queue(maxsize=10_000)
        self._stop = threading.Event()  # the crawl ended: discovery stops too
        self.run_finished = False  # the last batch recorded the run as succeeded

    def _load_state(self) -> None:
        resume = resume_state(self.catalog)
        recorded = resume.states
        self.finished = {k for k, v in recorded.items() if v["status"] in ("done", "skipped")}
        self.finished |= resume.revisions  # committed, even if state lagged
        self.attempts = {k: v["attempts"] for k, v in recorded.items() if v["status"] == "failed"}
        self.known_edges = resume.card_edges

    def discover(self, seeds) -> None:
        """Start listing the Hub, in a thread feeding `found_q`; the main loop reads it
        once the run is recorded and the catalog's state read (`run`)."""
        threading.Thread(
            target=self._discover, args=(seeds, self.found_q), daemon=True,
            name="lineage-discovery",
        ).start()

    def stop_discovery(self) -> None:
        self._stop.set()

    # -- main loop ---------------------------------------------------------------------
    def run(self, run_id: str, pool: WorkerPool) -> CrawlReport:
        self.report.run_id = run_id
        self._load_state()
        found_q = self.found_q
        probes: set[Future] = set()
        discovering = True
        self.ahead = self.opts.probe_threads + AHEAD_PER_WORKER * max(1, self.opts.workers)
        with (
            CrawlProgress(self.opts.progress) as self.progress,
            ThreadPoolExecutor(
                self.opts.probe_threads, thread_name_prefix="lineage-probe"
            ) as probe_pool,
            ThreadPoolExecutor(1, thread_name_prefix="lineage-commit") as self.committer,
        ):
            try:
                while discovering or probes or not pool.idle:
                    if len(probes) + pool.waiting < self.ahead:  # bounds what is held
                        discovering = self._take_found(
                            found_q, probe_pool, probes, pool, discovering
                        )
                    if probes and not pool.busy:  # nothing to poll: sleep on probes
                        wait_for(probes, timeout=0.02, return_when=FIRST_COMPLETED)
                    for future in [f for f in probes if f.done()]:
                        probes.discard(future)
                        self._on_probe(*future.result(), pool)
                    for result in pool.poll(timeout=0.01 if probes or discovering else 0.5):
                        self._on_result(result)
                    # once nothing is left to probe, the results still coming are the
                    # last ones, on the critical path: converted as they come
                    self._convert(waiting=CONVERT_AT if probes or discovering else 1)
                    self._collect_commit(wait=False)
                    if self.writing is None and self._commit_due():
                        self._commit()
                self._collect_commit(wait=True)
                # discovery is over: unless it failed, the last batch finishes the run
                self._commit(ends_run=self._walk_error is None)
                self._collect_commit(wait=True)
            finally:
                if self.writing is not None:
                    self.writing.cancel()
        self.report.seconds = time.perf_counter() - self.started
        self.report.retries = self.client.retries
        self.report.actors = len(pool.actors)
        if self._walk_error:
            raise self._walk_error
        return self.report

    def _discover(self, seeds, out: queue.Queue) -> None:
        try:
            for found in walk(
                self.client,
                seeds,
                family=self.opts.family,
                since=self.since,
                max_models=self.opts.max_models,
            ):
                if not self._put(out, found):
                    return
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            self._walk_error = err
        finally:
            self._put(out, _DONE)

    def _put(self, out: queue.Queue, item: object) -> bool:
        """Queue `item`, waiting for room; False once the crawl has ended."""
        while not self._stop.is_set():
            try:
                out.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _take_found(self, found_q, probe_pool, probes, pool, discovering: bool) -> bool:
        wait = discovering and not probes and pool.idle
        pending: list[tuple[str, str]] = []
        while discovering and len(probes) + pool.waiting < self.ahead:
            try:
                item = found_q.get(timeout=0.2) if wait else found_q.get_nowait()
            except queue.Empty:
                break
            wait = False
            if item is _DONE:
                discovering = False
                break
            remote = self._on_found(item)
            if remote is not None:
                pool.expect(remote)
                pending.append((remote.model_id, remote.sha))
                probes.add(probe_pool.submit(self._probe, remote))
        self.pending += pending  # written with the next commit (a statement costs ~80 ms)
        return discovering

    # -- stages ----------------------------------------------------------------------------
    def _on_found(self, found: Found) -> RemoteModel | None:
        self.report.discovered.append(found.model_id)
        self.progress.discovered()
        if found.remote is None:
            self._fail(found.model_id, "", found.error or "unreadable")
            return None
        remote = found.remote
        self._add_edges(remote.card_edges)
        key = (remote.model_id, remote.sha)
        if key in self.finished:
            self.report.unchanged.append(remote.model_id)
            return None
        if self.attempts.get(key, 0) >= self.opts.max_attempts:
            self.report.failed[remote.model_id] = "gave up earlier (max attempts)"
            return None
        self.remotes[key] = remote
        return remote

    def _probe(self, remote: RemoteModel) -> tuple[RemoteModel, Probe | None, str, str | None]:
        whole: dict[str, bytes] = {}  # weight files the header read held entirely

        def small(name: str, limit: int = MAX_SMALL_FILE) -> bytes:
            size = remote.files.get(name)
            return self.client.read_small_file(remote.model_id, remote.sha, name, size, limit)

        def header(name: str, size: int | None):
            parsed, body = self.client.read_header_and_file(
                remote.model_id, remote.sha, name, size
            )
            if body is not None:
                whole[name] = body
            return parsed

        try:
            probe = probe_model(remote, small, header)
            meta = read_meta_files(
                remote,
                probe.meta_files,
                lambda name: small(name, META_READ_AHEAD),
                META_READ_AHEAD,
            )
            probe = replace(probe, prefetched=(*whole.items(), *meta))
        except (UnsafeFormatError, ModelNotFoundError) as err:
            return remote, None, "skipped", str(err)
        except LineageError as err:
            return remote, None, "failed", str(err)
        if self.opts.max_bytes is not None and probe.n_bytes > self.opts.max_bytes:
            return remote, None, "skipped", f"{probe.n_bytes} bytes > --max-bytes"
        return remote, probe, "ok", None

    def _on_probe(
        self,
        remote: RemoteModel,
        probe: Probe | None,
        verdict: str,
        why: str | None,
        pool: WorkerPool,
    ) -> None:
        if verdict == "skipped":
            self.report.skipped[remote.model_id] = why or ""
            self.state_rows.append((remote.model_id, remote.sha, "skipped", why))
            self._opened()
            self.progress.skipped()
        elif verdict == "failed":
            self._fail(remote.model_id, remote.sha, why or "")
        else:
            self.progress.add_total(probe.n_bytes)
            pool.submit(probe)

    def _on_result(self, result: WorkResult) -> None:
        if result.fingerprint is None:
            self.remotes.pop((result.model_id, result.sha), None)
            self._fail(result.model_id, result.sha, result.error or "unknown error")
            return
        remote = self.remotes.pop((result.model_id, result.sha))
        ref = ModelRef(result.model_id, result.sha, self.source, remote.created_at)
        self.batch.append(ref)
        self.fresh.append((ref, result.fingerprint))
        self._opened()
        self.report.last_result_s = time.perf_counter() - self.started
        if self.report.first_result_s is None:
            self.report.first_result_s = self.report.last_result_s
        self.report.bytes += result.bytes
        self.report.in_driver += result.worker == "driver"
        self.progress.fingerprinted(result.bytes)

    def _fail(self, model_id: str, sha: str, error: str) -> None:
        error = redact(error, _token())
        self.report.failed[model_id] = error
        self.state_rows.append((model_id, sha, "failed", error))
        self._opened()
        self.progress.failed()

    def _add_edges(self, edges: list[CardEdge]) -> None:
        for edge in edges:
            key = (edge.parent, edge.child, edge.relation)
            if key not in self.known_edges:
                self.known_edges.add(key)
                self.edges.append(edge)

    # -- catalog ---------------------------------------------------------------------------
    def _opened(self) -> None:
        if self.batch_opened is None:
            self.batch_opened = time.monotonic()

    def _commit_due(self) -> bool:
        """A full batch, or one open for `commit_seconds` (a crash loses at most that)."""
        if self.batch_opened is None:
            return False
        if len(self.batch) >= self.opts.batch_size:
            return True
        return time.monotonic() - self.batch_opened >= self.opts.commit_seconds

    def _convert(self, *, waiting: int = CONVERT_AT) -> None:
        """Turn the fingerprints that arrived into Arrow rows in the committer thread
        while the actors work, their models and tensors encoded to Parquet at once, so a
        commit only concatenates the small tables and writes the encoded ones (the last
        commit, after the last fingerprint, is on the critical path of a small crawl).
        Once `waiting` have arrived: each piece costs a fixed share (a row group per
        column, the conversions' set-up), about 40 ms more for 105 small models in
        pieces of 6 than of 12 or more."""
        if self.fresh and len(self.fresh) >= waiting:
            rows = self.committer.submit(
                _rows_encoding, self.fresh, self.report.run_id, self.encoded
            )
            self.converted.append(rows)
            self.fresh = []

    def _commit(self, *, ends_run: bool = False) -> None:
        """Hand the batch (its rows, new card edges, states, pending marks) to the
        committer thread; its outcome is read by `_collect_commit`."""
        self._convert(waiting=1)
        job = (self.batch, self.converted, self.encoded, self.edges, self.state_rows,
               self.pending, ends_run)
        self.batch, self.converted, self.edges, self.state_rows, self.pending = [], [], [], [], []
        self.encoded = _encoded_tables()
        self.batch_opened = None
        self.writing = self.committer.submit(self._write, *job)

    def _collect_commit(self, *, wait: bool) -> None:
        """Account for the finished commit (its errors raise here, in the loop)."""
        if self.writing is None or not (wait or self.writing.done()):
            return
        done, n_edges, unfit = self.writing.result()
        self.writing = None
        self.report.fingerprinted += done
        self.report.edges += n_edges
        for model_id, error in unfit.items():
            self.report.failed[model_id] = error
            self.progress.failed()

    def _write(
        self,
        batch: list[ModelRef],
        converted: list[Future],
        encoded: dict[str, EncodedTable],
        edges,
        state_rows,
        pending,
        ends_run: bool = False,
    ) -> tuple[list[str], int, dict]:
        """One atomic batch (fingerprints + new card edges), then its crawl_state rows
        (with the crawl's last batch, the run's end: one transaction), both on one
        writer connection.

        A model whose rows do not fit the schema is recorded as failed on its own; the
        rest of the batch is committed. Runs in the committer thread: catalog only (the
        conversions were queued on this thread before: they are done)."""
        run_id = self.report.run_id
        finishing = {(ref.model_id, ref.revision) for ref in batch}
        finishing |= {(model_id, sha) for model_id, sha, _, _ in state_rows}
        pieces = [future.result() for future in converted]
        tables = _concatenated([piece for piece, _ in pieces])
        unfit = {m: redact(error, _token()) for _, why in pieces for m, error in why.items()}
        failed = [(ref.model_id, ref.revision, "failed", unfit[ref.model_id])
                  for ref in batch if ref.model_id in unfit]
        batch = [ref for ref in batch if ref.model_id not in unfit]
        if batch or edges:
            if tables:
                tables.update(encoded)  # encoded piece by piece (_convert)
            tables["edges"] = _edge_table(edges, run_id)  # the Hub's view of the cards
        done = [(ref.model_id, ref.revision, "done", None) for ref in batch]
        # with the probed models still out, marked pending (those finishing here get
        # their state instead): one transaction, after the batch is published
        still_out = [key for key in pending if key not in finishing]
        succeeded = run_id if ends_run else None  # the run's end, with its last batch
        states = done + state_rows + failed
        commit_then_record(
            self.catalog, tables if batch or edges else None, states, still_out, succeeded
        )
        self.run_finished = ends_run
        return [ref.model_id for ref in batch], len(edges), unfit


def _encoded_tables() -> dict[str, EncodedTable]:
    return {name: EncodedTable(name) for name in ("models", "tensors")}


def _rows_encoding(
    fresh: list[tuple[ModelRef, object]], run_id: str, encoded: dict[str, EncodedTable]
) -> tuple[dict[str, pa.Table], dict[str, str]]:
    """tables_per_model's (tables, unfit), the models and tensors appended to their
    `encoded` tables instead."""
    tables, unfit = tables_per_model(fresh, run_id)
    for name, table in encoded.items():
        table.add(tables.pop(name))
    return tables, unfit


def _concatenated(pieces: list[dict[str, pa.Table]]) -> dict[str, pa.Table]:
    """The batch's tables from the pieces converted as its fingerprints arrived."""
    if not pieces:
        return {}
    return {name: pa.concat_tables([piece[name] for piece in pieces]) for name in pieces[0]}


def _edge_table(edges: list[CardEdge], run_id: str) -> pa.Table:
    rows = [
        {
            "parent": e.parent,
            "child": e.child,
            "relation": e.relation,
            "confidence": None,
            "evidence": f'{{"from": "hub-tag", "tag": "base_model:{e.relation}:{e.parent}"}}',
            "source": "card",
            "run_id": run_id,
        }
        for e in edges
    ]
    return pa.Table.from_pylist(rows, schema=EDGES)


def _since(since: datetime | None) -> datetime | None:
    """`since` as UTC, moved back by a margin: the Hub's clock is not ours, and a model
    listed twice is harmless (its sha is already done), one missed is not."""
    if since is None:
        return None
    since = since.replace(tzinfo=UTC) if since.tzinfo is None else since
    return since - SINCE_SLACK


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc).geturl()


def _token() -> str | None:
    import os

    return os.environ.get("HF_TOKEN") or None
