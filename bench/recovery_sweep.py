"""The zoo sweep: Model Graph recovery on randomly drawn zoos, the way a user runs it.

    python bench/recovery_sweep.py --draws N --seed S [--json] [--small]
                                   [--budget SECONDS] [--max-models M]
                                   [--cache DIR] [--work DIR]

Draw i of sweep S (i = 0..N-1) is a zoo spec drawn at random over wide ranges
(lineage.zoo.sweep), seeded by a hash of (S, i) and cached by spec hash like every zoo.
Each is built single-threaded (or taken from the zoo cache), indexed into a fresh
catalog, recovered with no flags and no tree count, and scored against its
ground_truth.json. Prints per draw and overall: directed and undirected accuracy,
relation accuracy, merge precision/recall, and the worst draw; --json prints the whole
result (every row with its recovered edges) as JSON instead.

Seeds >= 1000 are HELD OUT: nobody develops recovery on them; run them only to check
(--seed 1000 and up, or --holdout, which adds 1000 to --seed).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs.zoo_sweep import run_sweep  # noqa: E402
from lineage.zoo.sweep import HOLDOUT_SEED, SweepShape  # noqa: E402
from lineage.zoo.sweep_score import format_table  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sweep_arguments(parser)
    return parser.parse_args(argv)


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """The sweep's flags (shared with `lineage zoo sweep`)."""
    parser.add_argument("--draws", type=int, default=6, help="number of draws (default 6)")
    parser.add_argument("--seed", type=int, default=0,
                        help=f"sweep seed; seeds >= {HOLDOUT_SEED} are held-out draws")
    parser.add_argument("--holdout", action="store_true",
                        help=f"run the held-out draws: sweep seed {HOLDOUT_SEED} + --seed")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--small", action="store_true",
                        help="tiny draws that build in seconds (the CI test's shape)")
    parser.add_argument("--budget", type=float, default=None,
                        help="estimated build seconds per draw (default 150; --small 12)")
    parser.add_argument("--max-models", type=int, default=None,
                        help="models per draw at most (default 40; --small 10)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="zoo cache (default: $LINEAGE_ZOO_CACHE or ~/.cache/lineage/zoo)")
    parser.add_argument("--work", type=Path, default=None,
                        help="keep the per-draw catalogs here (default: a temp folder)")


def sweep_shape(args: argparse.Namespace) -> SweepShape:
    shape = SweepShape.small() if args.small else SweepShape()
    if args.budget is not None:
        shape = replace(shape, budget_seconds=args.budget)
    if args.max_models is not None:
        shape = replace(shape, max_models=args.max_models)
    return shape


def run(args: argparse.Namespace) -> int:
    seed = args.seed + (HOLDOUT_SEED if args.holdout else 0)
    log = sys.stderr if args.json else sys.stdout

    def progress(row: dict) -> None:
        s = row["scores"]
        build = "cached" if row["cached"] else f"built in {row['build_seconds']}s"
        print(f"draw {row['draw']}: {row['models']} models, {row['trees']} trees "
              f"({', '.join(row['archs'])}), {build} (estimate {row['estimate_seconds']}s); "
              f"directed {_fmt(s['directed'])}, undirected {_fmt(s['undirected'])}, "
              f"relation {_fmt(s['relation'])}, merge P/R {_fmt(s['merge_precision'])}/"
              f"{_fmt(s['merge_recall'])}", file=log, flush=True)

    if seed >= HOLDOUT_SEED:
        print(f"sweep seed {seed}: HELD-OUT draws (check only, never develop on them)",
              file=log, flush=True)
    result = run_sweep(seed, args.draws, shape=sweep_shape(args), cache_dir=args.cache,
                       work_dir=args.work, on_row=progress)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print()
        print(format_table(result["rows"], result["overall"]))
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
