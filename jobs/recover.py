"""Recover the Model Graph of a catalog and write it as `recovered` edges.

    python -m jobs.recover --catalog DIR

Loads fingerprints (models, tensors, card edges) from the catalog, recovers the graph
with lineage.recovery and commits the edges with this run's id. Weights are never read:
LoRA ranks come from the rank sketches and TIES/DARE merges from the coordinate samples
stored in the fingerprints, so a Hub-wide crawl that deleted every shard recovers the
same graph. A catalog indexed before that evidence existed still recovers (without
LoRA ranks and sparse merges for those models) and says so once, with how to re-index.
Everything runs in-process: recovery from stored fingerprints is seconds even for
10,000 models.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from catalog import Catalog
from catalog.recovery_io import RECOVER_JOB, load_inputs, missing_evidence, write_edges
from catalog.runs import finish_run, start_run
from jobs.entry import Parser, run_entry
from lineage.recovery import RecoveryOptions, RecoveryResult, recover_graph

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


def run_recover(catalog: Catalog, *, options: RecoveryOptions | None = None) -> RecoverReport:
    """Recover and commit the graph of `catalog` from its fingerprints alone; the run is
    recorded in `runs`."""
    started = time.perf_counter()
    run_id = start_run(catalog, RECOVER_JOB, {})
    status = "failed"
    try:
        models, cards = load_inputs(catalog)
        result = recover_graph(models, cards, options=options)
        lacking = missing_evidence(models)
        if lacking:
            result.notes.insert(0, evidence_note(lacking))
        n_edges = write_edges(catalog, result.edges, run_id)
        status = "succeeded"
    finally:
        finish_run(catalog, run_id, status)
    return RecoverReport(run_id, result, len(models), n_edges, time.perf_counter() - started)


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
    args = parser.parse_args(argv)
    if args.no_ranks:
        print(f"warning: {NO_RANKS_DEPRECATION}", file=sys.stderr)
    report = run_recover(Catalog(args.catalog, create=False))
    print(summary(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
