"""`lineage zoo build SPEC_OR_PRESET OUT` and `lineage zoo eval MODEL [--task T]`."""

from __future__ import annotations

import argparse


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
