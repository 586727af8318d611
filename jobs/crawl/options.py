"""Options of a crawl, and the argparse flags shared by `python -m jobs.index`,
`lineage crawl` and `lineage schedule`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI builds its parser without importing torch or httpx
    from lineage.hub.retry import RetryPolicy

DEFAULT_WIDTH = 4096  # = lineage.fingerprint.DEFAULT_WIDTH (a test checks they agree)


@dataclass
class CrawlOptions:
    seeds: list[str]
    endpoint: str | None = None  # None: $HF_ENDPOINT, else the Hub
    workers: int = 2
    gpus_per_worker: float | None = None  # None: 1 if the cluster has GPUs, else CPU
    cpus_per_worker: float = 0.5
    threads: int | None = None  # per actor; None: its CPUs (num_cpus, at least 1)
    cache_dir: Path | None = None  # None: CATALOG/.crawl-cache
    keep_weights: bool = False
    batch_size: int = 256  # models per catalog commit, at most
    commit_seconds: float = 2.0  # a batch is committed this long after its first model
    width: int = DEFAULT_WIDTH
    family: bool = True
    since: datetime | None = None
    max_models: int | None = None
    max_bytes: int | None = None
    max_attempts: int = 3
    api_per_5min: float = 1000.0
    resolve_per_5min: float = 5000.0
    retry: RetryPolicy | None = None  # None: RetryPolicy()
    probe_threads: int = 8
    driver_lane: bool = True  # the driver fingerprints small models until an actor is up
    progress: bool = True
    run_id: str | None = None  # a fixed id (schedule slot); None: a fresh one
    job: str = "crawl"

    def params(self) -> dict:
        """What the runs table records (never a token: none is held here)."""
        keys = (
            "seeds",
            "endpoint",
            "workers",
            "gpus_per_worker",
            "batch_size",
            "commit_seconds",
            "width",
            "family",
            "since",
            "max_models",
            "max_bytes",
            "keep_weights",
        )
        return {k: getattr(self, k) for k in keys}


def add_crawl_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seeds",
        nargs="+",
        required=True,
        help="model ids, author:NAME, search:TERM, or everything",
    )
    parser.add_argument(
        "--endpoint",
        default=None,
        help="Hub URL (default: $HF_ENDPOINT, else https://huggingface.co)",
    )
    parser.add_argument("--workers", type=int, default=2, help="fingerprinting actors")
    parser.add_argument(
        "--gpus-per-worker",
        type=float,
        default=None,
        help="GPUs per actor (fractions share a GPU); default 1 on a GPU cluster, else CPU",
    )
    parser.add_argument("--cpus-per-worker", type=float, default=0.5)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads per fingerprinting actor (default: its CPUs, --cpus-per-worker "
        "rounded down, at least 1; never more)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where weights are fetched (default CATALOG/.crawl-cache)",
    )
    parser.add_argument(
        "--keep-weights",
        action="store_true",
        help="keep fetched files instead of deleting each after use",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=256,
        help="models per catalog commit, at most (a batch is also committed once "
        "--commit-seconds have passed since its first model)",
    )
    parser.add_argument(
        "--commit-seconds",
        type=float,
        default=2.0,
        help="commit a batch this long after its first model at the latest (a crash "
        "loses at most this much work; a restart redoes it)",
    )
    parser.add_argument("--sketch-width", type=int, default=DEFAULT_WIDTH)
    parser.add_argument(
        "--no-family",
        action="store_true",
        help="index the seeds only; do not walk parents and children",
    )
    parser.add_argument(
        "--since",
        type=datetime.fromisoformat,
        default=None,
        help="listing seeds: only models modified after this ISO time",
    )
    parser.add_argument("--max-models", type=int, default=None)
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=None,
        help="skip models whose weights exceed this many bytes",
    )
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=3,
        help="give up on a (model, sha) after this many failed runs",
    )
    parser.add_argument(
        "--api-per-5min",
        type=float,
        default=1000.0,
        help="Hub API calls per 5 minutes, whole job (0: unlimited)",
    )
    parser.add_argument(
        "--resolve-per-5min",
        type=float,
        default=5000.0,
        help="file requests per 5 minutes, whole job (0: unlimited)",
    )
    parser.add_argument(
        "--retry-base",
        type=float,
        default=0.5,
        help="first retry backoff in seconds (doubles, jittered)",
    )
    parser.add_argument("--retries", type=int, default=6, help="tries per Hub call")
    parser.add_argument(
        "--ray-address",
        default=None,
        help="local | auto | host:port (default: $RAY_ADDRESS, else auto)",
    )
    parser.add_argument(
        "--no-driver-lane",
        action="store_true",
        help="only the actors fingerprint (default: with CPU actors, the driver "
        "fingerprints small models it already read until the first actor is up)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def options_from_args(args: argparse.Namespace) -> CrawlOptions:
    from lineage.hub.retry import RetryPolicy

    if args.threads is not None:  # refused here, before any actor starts
        actor_cpus = min(args.cpus_per_worker, 1.0) if args.gpus_per_worker else (
            args.cpus_per_worker)
        check_threads(args.threads, actor_cpus)
    return CrawlOptions(
        seeds=list(args.seeds),
        endpoint=args.endpoint,
        workers=args.workers,
        gpus_per_worker=args.gpus_per_worker,
        cpus_per_worker=args.cpus_per_worker,
        threads=args.threads,
        cache_dir=args.cache_dir,
        keep_weights=args.keep_weights,
        batch_size=args.batch_size,
        commit_seconds=args.commit_seconds,
        width=args.sketch_width,
        family=not args.no_family,
        since=args.since,
        max_models=args.max_models,
        max_bytes=args.max_bytes,
        max_attempts=args.max_attempts,
        api_per_5min=args.api_per_5min,
        resolve_per_5min=args.resolve_per_5min,
        retry=RetryPolicy(attempts=args.retries, base_s=args.retry_base),
        progress=not args.quiet,
        driver_lane=not args.no_driver_lane,
    )


def check_threads(threads: int, actor_cpus: float) -> None:
    """Refuse more threads per actor than the CPUs it asks Ray for."""
    from lineage.errors import SpecError

    most = max(1, int(actor_cpus))
    if not 1 <= threads <= most:
        raise SpecError(
            f"--threads {threads}",
            f"each fingerprinting actor is given {actor_cpus:g} CPU(s); more threads than "
            "CPUs make them fight for the cores",
            f"Give --threads between 1 and {most}, or raise --cpus-per-worker",
        )
