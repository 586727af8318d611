"""Recover the Model Graph of a catalog and write it as `recovered` edges.

    python -m jobs.recover --catalog DIR [--no-ranks]

Loads fingerprints (models, tensors, card edges) from the catalog, recovers the graph
with lineage.recovery, reads real weights only for the exact ranks of candidate pairs
(LoRA detection), and commits the edges with this run's id. Everything runs in-process:
recovery from stored fingerprints is seconds even for 10,000 models; only the rank
checks read weights, a few candidate pairs per model.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catalog import Catalog
from catalog.recovery_io import RECOVER_JOB, load_inputs, write_edges
from catalog.resolve import CatalogResolver
from catalog.runs import finish_run, start_run
from jobs.entry import Parser, run_entry
from lineage.recovery import RecoveryOptions, RecoveryResult, recover_graph


class LocalMatrices:
    """MatrixSource over model folders found by the catalog's resolver (local folders,
    or Hub-crawled weights kept with --keep-weights); keeps recent matrices cached."""

    def __init__(self, resolve: Callable[[str], Path], keep: int = 64) -> None:
        self.resolve = resolve
        self.keep = keep
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    def matrix(self, model_id: str, name: str) -> np.ndarray:
        key = (model_id, name)
        if key not in self._cache:
            self._cache[key] = self._read(model_id, name)
            if len(self._cache) > self.keep * 16:
                self._cache.popitem(last=False)
        return self._cache[key]

    def _read(self, model_id: str, name: str) -> np.ndarray:
        from lineage.weights import open_model

        with open_model(self.resolve(model_id)) as model:
            return model.tensor(name).double().numpy().copy()


@dataclass
class RecoverReport:
    run_id: str
    result: RecoveryResult
    n_models: int
    n_edges: int
    seconds: float


def run_recover(
    catalog: Catalog, *, ranks: bool = True, options: RecoveryOptions | None = None
) -> RecoverReport:
    """Recover and commit the graph of `catalog`; the run is recorded in `runs`."""
    started = time.perf_counter()
    run_id = start_run(catalog, RECOVER_JOB, {"ranks": ranks})
    status = "failed"
    try:
        models, cards = load_inputs(catalog)
        source = LocalMatrices(CatalogResolver(catalog)) if ranks else None
        result = recover_graph(models, cards, matrices=source, options=options)
        n_edges = write_edges(catalog, result.edges, run_id)
        status = "succeeded"
    finally:
        finish_run(catalog, run_id, status)
    return RecoverReport(run_id, result, len(models), n_edges, time.perf_counter() - started)


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
    parser.add_argument("--no-ranks", action="store_true",
                        help="sketches only: no exact ranks from weights (no LoRA relation)")
    args = parser.parse_args(argv)
    report = run_recover(Catalog(args.catalog, create=False), ranks=not args.no_ranks)
    print(summary(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
