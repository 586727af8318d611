"""`lineage merge --select top-k`: choose merges from the catalog by score and kinship,
run them, index them, and say why each was made.

The pool is a read-only SQL query over the catalog whose first column is model ids.
Scores come from a CSV (model_id,score) or from lineage.zoo's held-out evaluation on one
or more tasks (their mean). Kinship (cosine of deltas against the common base) is read
from the catalog's kinship table, else computed exactly from the local folders and
stored there. With zoo scores, merged models are scored too and later generations
build on them; with CSV scores one generation runs (merged models have no score).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from catalog import Catalog
from catalog.merges import common_parents, lookup_kinship, record_kinship
from catalog.query import run_query
from catalog.resolve import CatalogResolver
from catalog.runs import finish_run, start_run
from jobs.merging.job import run_merge_job
from jobs.merging.select import Generation, Proposal, propose
from lineage.errors import SpecError
from lineage.merge import get_method

Scorer = Callable[[str, Path], float]


@dataclass
class SelectionReport:
    base: str
    rows: list[dict] = field(default_factory=list)  # one per merge made
    generations: list[Generation] = field(default_factory=list)
    stopped: str = ""
    scores: dict[str, float] = field(default_factory=dict)
    kinship_computed: int = 0  # pairs not in the catalog, computed exactly (then stored)


def pool_ids(catalog: Catalog, sql: str) -> list[str]:
    result = run_query(catalog, sql)
    ids = list(dict.fromkeys(str(r[0]) for r in result.rows if r and r[0] is not None))
    if len(ids) < 2:
        raise SpecError(f"pool query {sql[:80]!r}", f"returned {len(ids)} model id(s)",
                        "The first column must list at least two model ids")
    return ids


def infer_base(catalog: Catalog, ids: list[str]) -> str:
    """The parent every pool model shares along cataloged edges, else an error."""
    shared = [p for p, n in common_parents(catalog, ids) if n == len(ids)]
    if len(shared) != 1:
        raise SpecError(f"pool of {len(ids)} models",
                        "has no single common parent in the catalog's edges"
                        + (f" (candidates: {', '.join(shared)})" if shared else ""),
                        "Pass --base with the common ancestor the models were tuned from")
    return shared[0]


def read_scores(path: str | Path) -> dict[str, float]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"model_id", "score"} <= set(rows[0]):
        raise SpecError(f"scores file {path}", "needs a header with model_id,score",
                        "Write one `model_id,score` row per model")
    return {r["model_id"]: float(r["score"]) for r in rows}


def zoo_scorer(tasks: Sequence[str]) -> Scorer:
    """Mean held-out accuracy over ``tasks`` (lineage.zoo.evaluate)."""
    from lineage.zoo import evaluate

    return lambda _id, path: sum(evaluate(path, t) for t in tasks) / len(tasks)


class KinshipTable:
    """Memoised kinship: the catalog's table first, else exact and written back."""

    def __init__(self, catalog: Catalog, resolver: CatalogResolver, base: str,
                 run_id: str) -> None:
        self.catalog, self.resolver, self.base, self.run_id = catalog, resolver, base, run_id
        self.values: dict[frozenset[str], float] = {}
        self.computed = 0

    def __call__(self, a: str, b: str) -> float:
        key = frozenset((a, b))
        if key not in self.values:
            value = lookup_kinship(self.catalog, a, b, self.base)
            if value is None:
                value = self._exact(a, b)
            self.values[key] = value
        return self.values[key]

    def _exact(self, a: str, b: str) -> float:
        from lineage.kinship import kinship

        r = self.resolver
        value = float(kinship(r(a), r(b), r(self.base), metrics="cs").values["cs"])
        record_kinship(self.catalog, [(a, b, self.base, value)], self.run_id)
        self.computed += 1
        return value


def _recipe(p: Proposal, base: str, method: str, weight: float, name: str) -> dict:
    takes_weight = "weight" in get_method(method).model_names
    params = {"weight": weight} if takes_weight else {}
    return {"merge_method": method, "base_model": base, "name": name,
            "models": [{"model": p.a, "parameters": params},
                       {"model": p.b, "parameters": params}]}


def merge_name(p: Proposal, method: str, weight: float) -> str:
    """A stable id: the same pair and settings always give the same merge."""
    key = "|".join(sorted((p.a, p.b))) + f"|{method}|{weight}"
    return "merge-" + hashlib.sha256(key.encode()).hexdigest()[:10]


def select_and_merge(
    catalog: Catalog,
    pool_sql: str,
    out_dir: str | Path,
    *,
    k: int = 2,
    base: str | None = None,
    scores_csv: str | Path | None = None,
    tasks: Sequence[str] = (),
    method: str = "task_arithmetic",
    weight: float = 0.5,
    threshold: float = 0.95,
    generations: int = 1,
    executor: str = "local",
) -> SelectionReport:
    """Top-k greedy merging with exploration over the catalog pool (see jobs.merging.select)."""
    get_method(method)  # an unknown method fails before any work
    if scores_csv is None and not tasks:
        raise SpecError("merge selection", "has no scores",
                        "Pass --scores scores.csv (model_id,score) or --task TASK")
    ids = pool_ids(catalog, pool_sql)
    base = base or infer_base(catalog, ids)
    ids = [m for m in ids if m != base]
    resolver = CatalogResolver(catalog)
    scorer = zoo_scorer(tasks) if tasks else None
    scores = _initial_scores(ids, scores_csv, scorer, resolver)
    run_id = start_run(catalog, "merge-select", {"pool": pool_sql, "k": k, "base": base,
                                                 "method": method, "threshold": threshold})
    report = SelectionReport(base, scores=scores)
    status = "failed"
    try:
        _generations(catalog, report, resolver, Path(out_dir), scorer, run_id,
                     k=k, method=method, weight=weight, threshold=threshold,
                     generations=generations if scorer else 1, executor=executor)
        status = "succeeded"
    finally:
        finish_run(catalog, run_id, status)
    return report


def _initial_scores(ids, scores_csv, scorer, resolver) -> dict[str, float]:
    if scorer is not None:
        return {m: scorer(m, resolver(m)) for m in ids}
    table = read_scores(scores_csv)
    missing = [m for m in ids if m not in table]
    if missing:
        raise SpecError(f"scores file {scores_csv}", f"has no score for {', '.join(missing)}",
                        "Add a model_id,score row for every pool model")
    return {m: table[m] for m in ids}


def _generations(catalog, report, resolver, out_dir, scorer, run_id, *, k, method, weight,
                 threshold, generations, executor) -> None:
    kin = KinshipTable(catalog, resolver, report.base, run_id)
    try:
        _loop(catalog, report, resolver, out_dir, scorer, kin, k=k, method=method,
              weight=weight, threshold=threshold, generations=generations, executor=executor)
    finally:
        report.kinship_computed = kin.computed


def _loop(catalog, report, resolver, out_dir, scorer, kin, *, k, method, weight, threshold,
          generations, executor) -> None:
    done: set[frozenset[str]] = set()
    for g in range(1, generations + 1):
        gen = propose(report.scores, kin, k=k, threshold=threshold, done=done)
        report.generations.append(gen)
        if gen.saturated:
            report.stopped = (f"generation {g}: kinship of the top {k} saturated "
                              f"({gen.mean_kinship:.3f} >= {threshold})")
            return
        if not gen.proposals:
            report.stopped = f"generation {g}: every candidate pair is already merged"
            return
        for p in gen.proposals:
            report.rows.append(_merge_one(catalog, report, p, out_dir, method, weight,
                                          executor, scorer, resolver, g))
            done.add(frozenset((p.a, p.b)))
    report.stopped = report.stopped or f"ran {generations} generation(s)"


def _merge_one(catalog, report, p: Proposal, out_dir, method, weight, executor, scorer,
               resolver, g) -> dict:
    name = merge_name(p, method, weight)
    job = run_merge_job(_recipe(p, report.base, method, weight, name), out_dir / name,
                        catalog=catalog, executor=executor, resolver=resolver)
    score = scorer(name, job.out_dir) if scorer else None
    if score is not None:
        report.scores[name] = score
    return {"generation": g, "merged": name, "a": p.a, "b": p.b, "kinship": p.kinship,
            "score_a": report.scores[p.a], "score_b": report.scores[p.b],
            "score_merged": score, "why": p.reason, "new": job.merged}
