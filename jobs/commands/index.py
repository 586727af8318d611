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
        default=256,
        help="models per committed batch at most (a crash loses at most one batch; "
        "a batch is also committed once --commit-seconds have passed)",
    )
    parser.add_argument(
        "--commit-seconds",
        type=float,
        default=2.0,
        help="commit the batch once this many seconds have passed since its first "
        "model (default 2), so large models are committed one by one",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for fingerprinting (default: the CPUs this process may run on, "
        "its affinity; never more)",
    )
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar (the per-model failure lines and the summary "
                        "stay: a failure is never silent)")
    parser.add_argument("--json", action="store_true",
                        help="print the report as JSON (run id, indexed, unchanged, failed)")
    add_catalog_option(parser)
    parser.set_defaults(func=run)


def check_paths(paths: list[str]) -> None:
    """Refuse, before any catalog is created, a path that does not exist or holds no
    model (indexing nothing and saying `indexed 0` hides a typo)."""
    from pathlib import Path

    from lineage.errors import ModelNotFoundError
    from lineage.weights.discover import discover_models

    for path in paths:
        if not Path(path).exists():
            raise ModelNotFoundError(f"path {path!r}", "does not exist",
                                     "Give a model folder, a .safetensors file, or a "
                                     "directory of model folders")
        if next(iter(discover_models(path)), None) is None:
            raise ModelNotFoundError(
                f"path {path!r}", "holds no model folder (none has model.safetensors, "
                "model.safetensors.index.json, adapter_config.json or model_index.json)",
                "Give a model folder or a directory of them; pickle-only folders need "
                "--allow-pickle and a .bin/.pt file given directly")


def run(args: argparse.Namespace) -> int:
    import json

    from catalog import Catalog  # heavy imports (torch) only when the command runs
    from jobs.local_index import index_local
    from lineage.threads import resolve_threads, use_threads

    threads = use_threads(resolve_threads(args.threads))  # once, before any tensor work
    check_paths(args.paths)
    catalog = Catalog(args.catalog)
    report = index_local(
        catalog,
        args.paths,
        allow_pickle=args.allow_pickle,
        width=args.sketch_width,
        batch_size=args.batch_size,
        commit_seconds=args.commit_seconds,
        progress=not (args.quiet or args.json),
    )
    if args.json:
        print(json.dumps({"run_id": report.run_id, "catalog": str(catalog.root),
                          "indexed": report.indexed, "unchanged": report.unchanged,
                          "failed": report.failed,
                          "threads": threads}, indent=1))
        return 1 if report.failed and not report.indexed else 0
    print(
        f"run {report.run_id}: indexed {len(report.indexed)}, unchanged "
        f"{len(report.unchanged)}, failed {len(report.failed)} -> {catalog.root}"
    )
    for model_id, error in report.failed.items():
        print(f"  failed {model_id}: {error}")
    # Failing only when nothing worked: a re-run that finds every good model unchanged
    # and the bad ones failing again has worked.
    return 1 if report.failed and not (report.indexed or report.unchanged) else 0
