"""The zoo sweep: Model Graph recovery on randomly drawn zoos, the way a user runs it.

    python bench/recovery_sweep.py --draws N --seed S [--json] [--small]
                                   [--budget SECONDS] [--max-models M]
                                   [--cache DIR] [--work DIR]

Draw i of sweep S (i = 0..N-1) is a zoo spec drawn at random over wide ranges
(lineage.zoo.sweep), seeded by a hash of (S, i) and cached by spec hash like every zoo.
Each is built single-threaded (or taken from the zoo cache), indexed into a fresh
catalog, recovered with no flags and no tree count, and scored against its
ground_truth.json. Prints per draw and overall: directed and undirected accuracy,
relation accuracy, merge precision/recall, and the worst draw; --json prints the whole
result (every row with its recovered edges) as JSON instead.

Seeds >= 1000 are HELD OUT: nobody develops recovery on them; run them only to check
(--seed 1000 and up, or --holdout, which adds 1000 to --seed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs.commands.zoo import add_sweep_arguments  # noqa: E402
from jobs.zoo_sweep import sweep_command  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sweep_arguments(parser)
    return sweep_command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
