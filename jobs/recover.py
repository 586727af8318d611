"""Recover the Model Graph of a catalog and write it as `recovered` edges.

    python -m jobs.recover --catalog DIR [--workers N | --ray [--address A]] [--threads T]

Loads fingerprints (models, tensors, card edges) from the catalog, recovers the graph
with lineage.recovery and commits the edges with this run's id. Weights are never read:
LoRA ranks come from the rank sketches and TIES/DARE merges from the coordinate samples
stored in the fingerprints, so a Hub-wide crawl that deleted every shard recovers the
same graph. A catalog indexed before that evidence existed still recovers (without
LoRA ranks and sparse merges for those models) and says so once, with how to re-index.
Architecture groups are independent: `--workers N` spreads them over N local processes,
`--ray` over Ray tasks (`--address`, default $RAY_ADDRESS or auto), `--threads T` CPUs
each. A group larger than RecoveryOptions.dense_limit is split on nearest-neighbour
candidate pairs instead of all pairs (lineage/recovery/sparse_group.py).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from catalog import Catalog
from catalog.recovery_io import RECOVER_JOB, load_inputs, missing_evidence, write_edges
from catalog.runs import finish_run, start_run
from jobs.entry import Parser, run_entry
from lineage.recovery import RecoveryOptions, RecoveryResult, recover_graph
from lineage.recovery.pool import limit_threads

# A catalog never fingerprints a revision it already holds (commits drop known
# revisions), so re-indexing means a fresh catalog.
REINDEX_HINT = (
    "to add it, index them again into a new catalog: `lineage index --catalog NEW PATH...` "
    "for local folders, `python -m jobs.index --catalog NEW ...` for the Hub"
)
NO_RANKS_DEPRECATION = (
    "--no-ranks is deprecated and ignored: recovery never reads weights (ranks come "
    "from the fingerprints' rank sketches); it will be removed in the next release"
)


@dataclass
class RecoverReport:
    run_id: str
    result: RecoveryResult
    n_models: int
    n_edges: int
    seconds: float


def run_recover(catalog: Catalog, *, options: RecoveryOptions | None = None,
                on_ray: bool = False) -> RecoverReport:
    """Recover and commit the graph of `catalog` from its fingerprints alone; the run is
    recorded in `runs`. `on_ray`: architecture groups run as Ray tasks (Ray must be
    connected), each with options.threads CPUs; else options.workers local processes."""
    started = time.perf_counter()
    run_id = start_run(catalog, RECOVER_JOB, {})
    status = "failed"
    try:
        models, cards = load_inputs(catalog)
        threads = (options or RecoveryOptions()).threads
        mapper = partial(ray_map_groups, threads=threads) if on_ray else None
        result = recover_graph(models, cards, options=options, map_groups=mapper)
        lacking = missing_evidence(models)
        if lacking:
            result.notes.insert(0, evidence_note(lacking))
        n_edges = write_edges(catalog, result.edges, run_id)
        status = "succeeded"
    finally:
        finish_run(catalog, run_id, status)
    return RecoverReport(run_id, result, len(models), n_edges, time.perf_counter() - started)


def ray_map_groups(fn: Callable, tasks: list[tuple], *, threads: int = 1) -> list:
    """[fn(*task) for task in tasks] as Ray tasks of `threads` CPUs each, in order; each
    task sets its BLAS/OpenMP threads to the CPUs it was given."""
    import ray

    remote = ray.remote(num_cpus=threads)(_on_worker)
    return ray.get([remote.remote(fn, task, threads) for task in tasks])


def _on_worker(fn: Callable, task: tuple, threads: int):  # noqa: ANN202
    limit_threads(threads)
    return fn(*task)


def evidence_note(lacking: list[str]) -> str:
    """One line for every model indexed before the rank sketches and coordinate samples."""
    shown = ", ".join(lacking[:5]) + (f" and {len(lacking) - 5} more" if len(lacking) > 5 else "")
    return (f"{len(lacking)} model(s) were indexed before rank sketches and coordinate "
            f"samples existed ({shown}): their LoRA edges read as fine-tunes and TIES/DARE "
            f"merges are not searched; {REINDEX_HINT}")


def summary(report: RecoverReport) -> str:
    by_relation: dict[str, int] = {}
    for e in report.result.edges:
        by_relation[e.relation] = by_relation.get(e.relation, 0) + 1
    rel = ", ".join(f"{k} {v}" for k, v in sorted(by_relation.items()))
    lines = [
        f"run {report.run_id}: {report.n_models} models, {report.n_edges} edges ({rel}), "
        f"{len(report.result.trees)} trees, {report.seconds:.1f}s",
        f"card disagreements: {len(report.result.card_disagreements)}, "
        f"undocumented edges: {len(report.result.undocumented)}",
    ]
    lines += [f"note: {n}" for n in report.result.notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return run_entry("jobs.recover", lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    parser = Parser(prog="python -m jobs.recover", description=__doc__)
    parser.add_argument("--catalog", required=True, help="catalog directory")
    parser.add_argument("--no-ranks", action="store_true", help="deprecated, ignored")
    parser.add_argument("--ray", action="store_true",
                        help="spread architecture groups over Ray tasks")
    parser.add_argument("--address", default=None,
                        help="Ray address with --ray (default: $RAY_ADDRESS, else auto)")
    parser.add_argument("--workers", type=int, default=1,
                        help="local processes for groups (without --ray)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPUs (BLAS/faiss threads) per group task")
    parser.add_argument("--weights-only", action="store_true",
                        help="ignore model cards and Hub creation times (adapter configs stay)")
    args = parser.parse_args(argv)
    if args.no_ranks:
        print(f"warning: {NO_RANKS_DEPRECATION}", file=sys.stderr)
    options = RecoveryOptions(workers=args.workers, threads=args.threads,
                              use_cards=not args.weights_only)
    catalog = Catalog(args.catalog, create=False)
    if args.ray:
        from jobs.ray_session import ray_session

        with ray_session(args.address):
            report = run_recover(catalog, options=options, on_ray=True)
    else:
        report = run_recover(catalog, options=options)
    print(summary(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
