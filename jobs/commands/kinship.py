"""`lineage kinship M1 M2 [--base B]`: exact kinship of two models, streamed.

A thin shell over lineage.kinship.kinship. Models are catalog ids (resolved through
--catalog to their folders, catalog.resolve.CatalogResolver) or local folders/files.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import TYPE_CHECKING

from jobs.cli import add_catalog_option, existing_catalog
from lineage.kinship.metrics import DEFAULT_METRICS, METRICS

if TYPE_CHECKING:
    from lineage.kinship import KinshipResult


def register(subparsers: argparse._SubParsersAction) -> None:
    metric_help = "; ".join(f"{m.name}: {m.description}" for m in METRICS.values())
    parser = subparsers.add_parser(
        "kinship",
        help="kinship metrics of two models (Model Kinship cs/pcc/ed, l2, MoTHer)",
        description="Exact kinship of two models, streamed tensor by tensor in float64. "
        f"Metrics: {metric_help}.",
    )
    parser.add_argument("model_a", help="catalog id, model folder or .safetensors file")
    parser.add_argument("model_b", help="catalog id, model folder or .safetensors file")
    parser.add_argument("--base", help="common base model (catalog id or path): cs/pcc/ed "
                        "compare model - base")
    parser.add_argument(
        "--metrics",
        default=",".join(DEFAULT_METRICS),
        help=f"comma-separated, from {','.join(METRICS)} (default: %(default)s)",
    )
    parser.add_argument("--per-layer", action="store_true", help="also one row per tensor")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument(
        "--abs", action="store_true", help="report |cs|, as Model Kinship's merge_cal prints"
    )
    add_catalog_option(parser)
    parser.set_defaults(func=kinship_command)


def kinship_command(args: argparse.Namespace) -> int:
    from catalog.resolve import CatalogResolver
    from lineage.kinship import kinship

    result = kinship(
        args.model_a,
        args.model_b,
        args.base,
        metrics=args.metrics,
        per_layer=args.per_layer,
        absolute=args.abs,
        resolve=CatalogResolver(existing_catalog(args.catalog)),
    )
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(render_table(result))
    return 0


def render_table(result: KinshipResult) -> str:
    """Plain-text report: header, one value per metric, optional per-tensor rows, notes."""
    names = list(result.values)
    lines = [
        f"a:    {result.a}",
        f"b:    {result.b}",
        f"base: {result.base or '(none)'}",
        f"compared {result.n_tensors} tensors, {result.n_elements:,} elements ({result.method})",
        "",
        *(f"{name:<8}{_fmt(value)}" for name, value in result.values.items()),
    ]
    if result.layers:
        width = max(len(layer.name) for layer in result.layers)
        lines += ["", f"{'tensor':<{width}}  " + "  ".join(f"{n:>12}" for n in names)]
        for layer in result.layers:
            cells = "  ".join(f"{_fmt(layer.values[n]):>12}" for n in names)
            lines.append(f"{layer.name:<{width}}  {cells}")
    lines += [f"note: {note}" for note in result.notes]
    if result.skipped and result.layers:
        lines += [f"skipped {name}: {why}" for name, why in result.skipped]
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return "nan" if math.isnan(value) else f"{value:.6g}"
