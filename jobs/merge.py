"""Ray entrypoint of a merge job.

    python -m jobs.merge --recipe R.yaml --out OUT --catalog DIR
    ray job submit --working-dir . -- python -m jobs.merge --recipe R.yaml --out OUT ...

The merge runs in a Ray task (a whole GPU when the cluster has one, else half a CPU);
the driver resolves model references through the catalog before, and indexes the output
and records its merge edges after (jobs.merging.run_merge_job).
"""

from __future__ import annotations

import argparse
import os

from jobs.entry import Parser, run_entry


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(prog="python -m jobs.merge", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", required=True, help="mergekit-shaped YAML recipe")
    parser.add_argument("--out", required=True, help="output model folder")
    parser.add_argument("--catalog", default=os.environ.get("LINEAGE_CATALOG"),
                        help="catalog directory (default: $LINEAGE_CATALOG; none: no registering)")
    parser.add_argument("--no-register", action="store_true", help="do not index the output")
    parser.add_argument("--overwrite", action="store_true", help="replace an unrelated OUT")
    parser.add_argument("--address", default=os.environ.get("RAY_ADDRESS"),
                        help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    from catalog import Catalog
    from jobs.commands.merge import print_report
    from jobs.merging import run_merge_job
    from jobs.ray_session import ray_session

    with ray_session(args.address, num_cpus=args.num_cpus):
        catalog = Catalog(args.catalog) if args.catalog else None
        report = run_merge_job(args.recipe, args.out, catalog=catalog,
                               register=not args.no_register, overwrite=args.overwrite,
                               executor="ray")
    print_report(report)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_entry("jobs.merge", lambda: run(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
