"""The README's main job on its embedded default: `python -m jobs.demo`.

Builds the `tiny` ground-truth zoo (cached after the first run), indexes it into a
catalog, and prints what the catalog holds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from catalog import Catalog
from catalog.query import run_query
from jobs.local_index import index_local
from jobs.output import print_rows
from lineage.zoo import build_zoo

SUMMARY = """
SELECT model_type, kind, dtype, count(*) AS models, sum(n_params) AS params,
       count(*) FILTER (WHERE len(card_base_models) > 0) AS with_card_base
FROM current_models GROUP BY ALL ORDER BY model_type, kind, dtype
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.demo", description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path("demo-output"))
    parser.add_argument("--preset", default="tiny")
    args = parser.parse_args(argv)
    zoo = build_zoo(args.preset, args.workdir / "zoo")
    print(f"zoo: {len(zoo.model_ids)} models in {zoo.root} ({'cached' if zoo.cached else 'built'})")
    catalog = Catalog(args.workdir / "catalog")
    report = index_local(catalog, [zoo.root])
    print(
        f"indexed {len(report.indexed)}, unchanged {len(report.unchanged)}, "
        f"failed {len(report.failed)} -> {catalog.root}"
    )
    result = run_query(catalog, SUMMARY)
    print_rows(result.columns, result.rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
