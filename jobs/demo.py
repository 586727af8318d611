"""The README's main job on its embedded default: `python -m jobs.demo`.

The whole pipeline on the `tiny` ground-truth zoo, with nothing from the network:
  1. build the zoo (real training; cached after the first run);
  2. serve it on the loopback Hub (127.0.0.1) and crawl + fingerprint it with Ray,
     exactly as a Hub crawl would run (`lineage crawl`);
  3. compute kinship from the stored sketches (`python -m jobs.kinship`);
  4. recover the Model Graph (`lineage recover`) and score it against the zoo's ground
     truth (`lineage eval`);
  5. write the HTML family view of one tree (`lineage graph`) and say where it is.
Every step is idempotent: a second run reuses the zoo and the catalog.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path

from catalog import Catalog
from catalog.query import run_query
from jobs.cli import main as lineage_cli
from jobs.crawl import CrawlOptions, crawl
from jobs.entry import Parser, run_entry
from jobs.kinship import run_kinship
from jobs.loopback_hub import LoopbackHub
from jobs.output import print_rows
from jobs.ray_session import ray_session
from jobs.recover import run_recover, summary
from lineage.zoo import build_zoo

SUMMARY = """
SELECT model_type, kind, dtype, count(*) AS models, sum(n_params) AS params,
       count(*) FILTER (WHERE len(card_base_models) > 0) AS with_card_base
FROM current_models GROUP BY ALL ORDER BY model_type, kind, dtype
"""


def lineage_command() -> str:
    """How to call the CLI from the user's shell: `lineage` when that is on PATH and is
    this environment's, else the full path of this environment's script (dev.sh does not
    activate the venv, so a bare `lineage` would not be found)."""
    here = Path(sys.executable).parent / "lineage"
    on_path = shutil.which("lineage")
    if on_path and here.exists() and Path(on_path).resolve() == here.resolve():
        return "lineage"
    return shlex.quote(_relative(here)) if here.exists() else f"{sys.executable} -m lineage"


def _relative(path: Path) -> str:
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def banner(text: str) -> None:
    print(f"\n== {text}")


def crawl_zoo(zoo_root: Path, catalog: Catalog, workers: int) -> None:
    with LoopbackHub(zoo_root) as hub:
        print(f"loopback Hub at {hub.endpoint} serving {zoo_root}")
        report = crawl(catalog, CrawlOptions(
            seeds=["everything"], endpoint=hub.endpoint, workers=workers,
            # no keep_weights: recovery reads the fingerprints only, as at Hub scale
        ))
    print(report.summary())
    result = run_query(catalog, SUMMARY)
    print_rows(result.columns, result.rows)


def main(argv: list[str] | None = None) -> int:
    return run_entry("jobs.demo", lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    parser = Parser(prog="python -m jobs.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("demo-output"))
    parser.add_argument("--preset", default="tiny", help="zoo preset or spec file")
    parser.add_argument("--workers", type=int, default=2, help="fingerprinting actors")
    parser.add_argument("--ray-address", default="local",
                        help="'local' (a private Ray), 'auto', or a cluster address")
    args = parser.parse_args(argv)

    banner(f"1. zoo '{args.preset}'")
    zoo = build_zoo(args.preset, args.workdir / "zoo")
    state = "reused from cache" if zoo.cached else f"built in {zoo.seconds:.0f}s"
    print(f"{len(zoo.model_ids)} models in {zoo.root} ({state})")
    catalog = Catalog(args.workdir / "catalog")

    with ray_session(args.ray_address, num_cpus=2):
        banner("2. crawl the loopback Hub and fingerprint on Ray")
        crawl_zoo(zoo.root, catalog, args.workers)
        banner("3. kinship from sketches")
        kin = run_kinship(catalog, top_k=5)
        print(f"kinship run {kin['run_id']}: {kin['models']} models, "
              f"{'up to date' if kin['skipped'] else str(kin['rows']) + ' rows'}")

    banner("4. recover the Model Graph and score it against the ground truth")
    print(summary(run_recover(catalog)))
    lineage_cli(["eval", "--truth", str(zoo.root), "--catalog", str(catalog.root)])

    banner("5. the family view")
    root = next(n["id"] for n in zoo.ground_truth["nodes"] if n["relation"] == "root")
    html = (args.workdir / "graph.html").resolve()
    lineage_cli(["graph", root, "--format", "html", "--out", str(html),
                 "--catalog", str(catalog.root)])
    lineage = lineage_command()
    print(f"open file://{html} in a browser; query the catalog with\n"
          f"  {lineage} sql --catalog {catalog.root} \"SELECT * FROM card_disagreements()\"\n"
          f"  {lineage} graph --all --format html --out {args.workdir / 'atlas.html'} "
          f"--catalog {catalog.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
