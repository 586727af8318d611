"""`lineage fisher MODEL --data DATA --out F.safetensors`: diagonal Fisher, registered."""

from __future__ import annotations

import argparse

from jobs.cli import add_catalog_option, catalog_for


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fisher", help="estimate a model's diagonal Fisher and register it (UBGM, Fisher merges)",
        description="Diagonal Fisher (mean squared per-example gradients of log p(y|x)) of "
        "MODEL on DATA, saved as safetensors and registered in the catalog, so that a "
        "recipe entry can say `fisher: catalog`.")
    parser.add_argument("model", help="catalog id or model folder")
    parser.add_argument("--data", required=True,
                        help="zoo:<task> (a lineage.zoo task) or a .safetensors file of inputs")
    parser.add_argument("--out", required=True, help="output .safetensors file")
    parser.add_argument("--kind", choices=("sampled", "empirical"), default="sampled",
                        help="labels sampled from the model (true Fisher) or the data's own")
    parser.add_argument("--n", type=int, default=256, help="examples (default 256)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-register", action="store_true", help="do not record the artifact")
    add_catalog_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jobs.merging import fisher_job

    # Not registering: still resolve a catalog id through the catalog when there is one.
    catalog = catalog_for(args.catalog, [args.model], create=not args.no_register)
    report = fisher_job(args.model, args.data, args.out, kind=args.kind, n=args.n,
                        seed=args.seed, catalog=catalog, register=not args.no_register)
    note = "registered" if report.registered else "not registered"
    if not args.no_register and not report.registered:
        note += " (already registered, or the model is not in the catalog: `lineage index`)"
    print(f"{report.kind} Fisher of {report.model_id} over {report.n_examples} examples "
          f"-> {report.path} ({note})")
    return 0
