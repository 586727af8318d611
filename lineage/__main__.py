"""`python -m lineage` is the same as the `lineage` console script."""

from jobs.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
