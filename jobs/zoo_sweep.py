"""The zoo sweep, run the way a user runs lineage: build each drawn zoo (or take it from
the zoo cache), index its folder into a fresh catalog, recover with no flags and no tree
count, score against ground_truth.json. The library call behind `lineage zoo sweep` and
bench/recovery_sweep.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from catalog import Catalog
from jobs.local_index import index_local
from jobs.recover import run_recover
from lineage.recovery import RecoveryOptions
from lineage.recovery.evaluate import confidence_rows, reliability_of, render_reliability
from lineage.zoo import build_zoo
from lineage.zoo.sweep import HOLDOUT_SEED, Draw, SweepShape, draw
from lineage.zoo.sweep_score import format_table, score_draw, summarize


def run_draw(d: Draw, *, cache_dir: Path | None, work_dir: Path,
             use_cards: bool = True) -> dict[str, Any]:
    """Build, index, recover and score one draw; a JSON-ready row. `use_cards` False:
    recovery from the weights alone (RecoveryOptions.use_cards)."""
    zoo = build_zoo(d.spec, cache_dir=cache_dir, progress=False)
    truth = zoo.ground_truth
    catalog_dir = work_dir / f"{d.spec['name']}-{zoo.spec_hash[:12]}"
    if catalog_dir.exists():  # a fresh catalog: nothing from an earlier run takes part
        shutil.rmtree(catalog_dir)
    started = time.perf_counter()
    index_local(Catalog(catalog_dir), [zoo.root], progress=False)
    index_seconds = time.perf_counter() - started
    report = run_recover(Catalog(catalog_dir), options=RecoveryOptions(use_cards=use_cards))
    edges = sorted((e.parent, e.child, e.relation) for e in report.result.edges)
    confident = confidence_rows(truth, [(e.parent, e.child, e.confidence)
                                        for e in report.result.edges])
    return {
        "draw": f"{d.sweep_seed}/{d.index}",
        "sweep_seed": d.sweep_seed,
        "index": d.index,
        "seed": d.seed,
        "held_out": d.held_out,
        "weights_only": not use_cards,
        "zoo": str(zoo.root),
        "models": truth["zoo"]["n_models"],
        "trees": truth["zoo"]["n_trees"],
        "archs": sorted({t["arch"] for t in truth["trees"]}),
        "cached": zoo.cached,
        "build_seconds": zoo.build_record.get("seconds"),
        "build_cpu_seconds": zoo.build_record.get("cpu_seconds"),
        "estimate_seconds": d.estimate_seconds,
        "adjustments": d.adjustments,
        "index_seconds": round(index_seconds, 2),
        "recover_seconds": round(report.seconds, 2),
        "scores": score_draw(truth, edges, report.result.trees),
        "recovered_edges": [list(e) for e in edges],
        "confidences": [[round(c, 6), ok] for c, ok in confident],
    }


def run_sweep(
    sweep_seed: int,
    n_draws: int,
    *,
    shape: SweepShape | None = None,
    cache_dir: Path | None = None,
    work_dir: Path | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    use_cards: bool = True,
) -> dict[str, Any]:
    """Draws 0..n_draws-1 of sweep `sweep_seed`: {"rows": [...], "overall": {...}}.

    Catalogs go under `work_dir` (kept) or a temporary folder (removed at the end).
    """
    temp = None if work_dir else Path(tempfile.mkdtemp(prefix="lineage-sweep-"))
    work = Path(work_dir or temp)
    rows = []
    try:
        for index in range(n_draws):
            row = run_draw(draw(sweep_seed, index, shape), cache_dir=cache_dir, work_dir=work,
                           use_cards=use_cards)
            rows.append(row)
            if on_row:
                on_row(row)
    finally:
        if temp:
            shutil.rmtree(temp, ignore_errors=True)
    pooled = [(c, bool(ok)) for row in rows for c, ok in row["confidences"]]
    return {"sweep_seed": sweep_seed, "weights_only": not use_cards, "rows": rows,
            "overall": summarize(rows), "calibration": reliability_of(pooled)}


def sweep_shape(args: argparse.Namespace) -> SweepShape:
    shape = SweepShape.small() if args.small else SweepShape()
    if args.budget is not None:
        shape = replace(shape, budget_seconds=args.budget)
    if args.max_models is not None:
        shape = replace(shape, max_models=args.max_models)
    return shape


def sweep_command(args: argparse.Namespace) -> int:
    """Run the sweep the flags describe; print progress, then the table (or JSON)."""
    seed = args.seed + (HOLDOUT_SEED if args.holdout else 0)
    log = sys.stderr if args.json else sys.stdout

    def progress(row: dict) -> None:
        s = row["scores"]
        took = f"{row['build_seconds']}s ({row['build_cpu_seconds']}s CPU)"
        build = f"cached (built in {took})" if row["cached"] else f"built in {took}"
        print(f"draw {row['draw']}: {row['models']} models, {row['trees']} trees "
              f"({', '.join(row['archs'])}), {build} (estimate {row['estimate_seconds']}s); "
              f"directed {_fmt(s['directed'])}, undirected {_fmt(s['undirected'])}, "
              f"relation {_fmt(s['relation'])}, merge P/R {_fmt(s['merge_precision'])}/"
              f"{_fmt(s['merge_recall'])}", file=log, flush=True)

    if args.weights_only:
        print("weights only: cards and Hub creation times are ignored", file=log, flush=True)
    if seed >= HOLDOUT_SEED:
        print(f"sweep seed {seed}: HELD-OUT draws (check only, never develop on them)",
              file=log, flush=True)
    result = run_sweep(seed, args.draws, shape=sweep_shape(args), cache_dir=args.cache,
                       work_dir=args.work, on_row=progress, use_cards=not args.weights_only)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print()
        print(format_table(result["rows"], result["overall"]))
        print()
        print("confidence of the recovered edges, all draws pooled:")
        print(render_reliability(result["calibration"]))
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
