"""`lineage zoo build SPEC_OR_PRESET OUT`, `lineage zoo eval MODEL [--task T]` and
`lineage zoo sweep --draws N --seed S` (recovery on randomly drawn zoos)."""

from __future__ import annotations

import argparse
from pathlib import Path

# lineage.zoo.sweep.HOLDOUT_SEED, repeated so that the CLI starts without importing torch.
HOLDOUT = 1000


def register(subparsers: argparse._SubParsersAction) -> None:
    zoo = subparsers.add_parser("zoo", help="ground-truth model zoos trained for real")
    commands = zoo.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND")
    zoo.set_defaults(func=lambda args: zoo.print_help() or 2)

    build = commands.add_parser("build", help="build a zoo from a preset or a YAML/TOML spec")
    build.add_argument(
        "spec",
        metavar="SPEC_OR_PRESET",
        help="tiny | vthr | vthr-ft | vthr-lora | mixed, or a .yaml/.toml spec file",
    )
    build.add_argument("out", metavar="OUT", help="folder the zoo is written to")
    build.add_argument(
        "--cache-dir", help="zoo cache (default: $LINEAGE_ZOO_CACHE or ~/.cache/lineage/zoo)"
    )
    build.add_argument("--no-cache", action="store_true", help="neither read nor fill the cache")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(func=_build)

    ev = commands.add_parser("eval", help="held-out task accuracy of a model folder")
    ev.add_argument("model", metavar="MODEL", help="model folder (config.json + weights)")
    ev.add_argument("--task", help="task name (default: the model's own task in its zoo)")
    ev.set_defaults(func=_eval)

    sweep = commands.add_parser(
        "sweep",
        help="recovery accuracy on randomly drawn zoos (seeds >= 1000 are held out)",
        description="Build (or fetch from the cache) N randomly drawn zoos, index each into "
        "a fresh catalog, recover with no flags, score against the ground truth.",
    )
    add_sweep_arguments(sweep)
    sweep.set_defaults(func=_sweep)


def _build(args: argparse.Namespace) -> int:
    from lineage.zoo import build_zoo

    result = build_zoo(
        args.spec,
        args.out,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        progress=not args.quiet,
    )
    truth = result.ground_truth["zoo"]
    how = "from cache" if result.cached else "built"
    print(
        f"{truth['n_models']} models in {truth['n_trees']} trees {how} in "
        f"{result.seconds:.1f}s: {result.root}"
    )
    return 0


def _eval(args: argparse.Namespace) -> int:
    from lineage.zoo import evaluate
    from lineage.zoo.evaluate import own_task

    task = args.task or own_task(args.model)
    print(f"{task}\t{evaluate(args.model, task):.4f}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from jobs.zoo_sweep import sweep_command

    return sweep_command(args)


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """The sweep's flags (shared with `lineage zoo sweep`)."""
    parser.add_argument("--draws", type=int, default=6, help="number of draws (default 6)")
    parser.add_argument("--seed", type=int, default=0,
                        help=f"sweep seed; seeds >= {HOLDOUT} are held-out draws")
    parser.add_argument("--holdout", action="store_true",
                        help=f"run the held-out draws: sweep seed {HOLDOUT} + --seed")
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
    parser.add_argument("--weights-only", action="store_true",
                        help="recover from the weights alone: cards (base models, relations, "
                        "planted lies) are indexed but ignored, as on held-out zoos")
