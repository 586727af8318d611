"""`lineage compress BASE M1 M2 ... --out DIR` and `lineage reconstruct DIR MODEL --out D`:
TALL-mask compression (Wang, Dimitriadis et al. 2024) of fine-tunes of one base."""

from __future__ import annotations

import argparse

from jobs.cli import add_catalog_option, catalog_for, existing_catalog
from lineage.errors import SpecError


def register(subparsers: argparse._SubParsersAction) -> None:
    comp = subparsers.add_parser(
        "compress", help="TALL-mask compression: one multi-task vector + 1 bit/weight/model",
        description="Store fine-tuned models of BASE as tau_MTL plus one binary mask per "
        "model; prints the storage ratio and registers a tall-compressed artifact per model.")
    comp.add_argument("base", help="base model (catalog id or folder)")
    comp.add_argument("models", nargs="+", help="fine-tuned models (catalog ids or folders)")
    comp.add_argument("--out", required=True, help="output folder of the bundle")
    comp.add_argument("--lam", default="0.4",
                      help="mask threshold: one value, or one per model comma-separated")
    comp.add_argument("--merge", choices=("sum", "ties"), default="sum", help="tau_MTL")
    comp.add_argument("--density", type=float, default=1.0, help="TIES density of tau_MTL")
    comp.add_argument("--overwrite", action="store_true")
    comp.add_argument("--no-register", action="store_true")
    add_catalog_option(comp)
    comp.set_defaults(func=compress_command)

    rec = subparsers.add_parser("reconstruct", help="rebuild one model of a TALL bundle")
    rec.add_argument("bundle", help="folder written by `lineage compress`")
    rec.add_argument("model", help="the model's reference (as compressed) or its position")
    rec.add_argument("--out", required=True, help="output model folder")
    rec.add_argument("--base", help="override the bundle's base reference")
    rec.add_argument("--overwrite", action="store_true")
    add_catalog_option(rec)
    rec.set_defaults(func=reconstruct_command)


def _lams(text: str) -> float | list[float]:
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise SpecError(f"--lam {text!r}", "is not a number or comma-separated numbers",
                        "e.g. --lam 0.4 or --lam 0.3,0.5") from None
    return values[0] if len(values) == 1 else values


def compress_command(args: argparse.Namespace) -> int:
    from jobs.merging import compress_job

    catalog = catalog_for(args.catalog, [args.base, *args.models], create=not args.no_register)
    result, new = compress_job(args.base, args.models, args.out, lam=_lams(args.lam),
                               merge=args.merge, density=args.density, catalog=catalog,
                               register=not args.no_register, overwrite=args.overwrite)
    print(f"compressed {len(result.model_ids)} models -> {result.out_dir}: "
          f"{result.compressed_bytes / 1e6:.2f} MB for {result.full_bytes / 1e6:.2f} MB of "
          f"full models, ratio {result.ratio:.3f} (lambda {', '.join(map(str, result.lams))})")
    if catalog is not None and not args.no_register:
        print(f"registered {new} new tall-compressed artifact(s) in {catalog.root}")
    return 0


def reconstruct_command(args: argparse.Namespace) -> int:
    from jobs.merging import reconstruct_job

    result = reconstruct_job(args.bundle, args.model, args.out, base=args.base,
                             catalog=existing_catalog(args.catalog), overwrite=args.overwrite)
    print(f"reconstructed {result.model_ids[-1]} -> {result.out_dir} "
          f"({result.n_tensors} tensors, {result.total_bytes / 1e6:.2f} MB)")
    return 0
