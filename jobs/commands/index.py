"""`lineage index PATH...`: fingerprint local model folders into the catalog."""

from __future__ import annotations

import argparse

from jobs.cli import add_catalog_option


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "index",
        help="fingerprint local model folders (or a directory of them)",
        description="Index model folders (transformers, sharded, PEFT adapters, diffusers) "
        "or .safetensors files. A directory of models is searched; ids are relative paths.",
    )
    parser.add_argument("paths", nargs="+", help="model folders, files, or directories")
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="read .bin/.pt/.ckpt with torch.load(weights_only=True)",
    )
    parser.add_argument(
        "--sketch-width",
        type=int,
        default=4096,
        help="sketch width per tensor and per model (default 4096)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=16,
        help="models per committed batch (what a crash can lose at most)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_catalog_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from catalog import Catalog  # heavy imports (torch) only when the command runs
    from jobs.local_index import index_local

    catalog = Catalog(args.catalog)
    report = index_local(
        catalog,
        args.paths,
        allow_pickle=args.allow_pickle,
        width=args.sketch_width,
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    print(
        f"run {report.run_id}: indexed {len(report.indexed)}, unchanged "
        f"{len(report.unchanged)}, failed {len(report.failed)} -> {catalog.root}"
    )
    for model_id, error in report.failed.items():
        print(f"  failed {model_id}: {error}")
    # Failing only when nothing worked: a re-run that finds every good model unchanged
    # and the bad ones failing again has worked.
    return 1 if report.failed and not (report.indexed or report.unchanged) else 0
