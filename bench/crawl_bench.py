"""End-to-end crawl throughput through the loopback Hub, beside raw downloads.

    python bench/crawl_bench.py [--zoo tiny|synthetic|PATH] [--models 12] [--mb 12]
                                [--hidden 512] [--no-driver-lane] [--hub-process]

Serves a zoo with the loopback Hub and measures, in the same run:
  - raw: plain `hf_hub_download` of every weight file (1 thread), bytes/s;
  - fingerprint: `fingerprint_model` on the same files read locally, one process (the
    per-worker compute ceiling used by infra/README.md's capacity plan);
  - crawl: `crawl(seeds=everything)` into a fresh catalog with 1 and 2 Ray workers
    (listing, header probes, downloads, fingerprints, commits), models/s and bytes/s,
    in all and steady (first to last fingerprint: without actor start-up), and how many
    times slower than the raw download each is (the issue's bar: at most 2x). In all is
    the wall time from opening the catalog and calling crawl() to its return (the last
    batch and the run's status committed), the actors (and the rate limiter's actor,
    when a rate is set; the bench sets none) started inside it;
    Ray itself is started before (as a job joining a running cluster), not counted,
    nor are imports (the crawl's and hf_hub_download's, done before either clock).
    Each crawl line says how many models the driver's lane fingerprinted while the
    actors started (jobs/crawl/lane.py; `--no-driver-lane`: none, the actors alone)
    and how many actors were asked for (none when the lane took every model).
The loopback Hub runs in the bench's process (a thread: its CPU competes with the
crawl's driver for one interpreter, which a remote Hub's does not), or with
`--hub-process` in a process of its own (`lineage hub serve`), as a Hub elsewhere would.
`synthetic` writes --models random GPT-like models of about --mb MB each (F32) so the
bytes dominate (`--mb 0 --hidden 16`: one layer of 16x16 matrices, 4 kB a model, for
many small models); `tiny` is the real tiny zoo (about 40 kB per model: overhead-bound).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import torch

from jobs.loopback_hub import LoopbackHub
from jobs.loopback_hub.pytest_plugin import write_repo


def synthetic_zoo(root: Path, models: int, mb: int, hidden: int = 512) -> Path:
    per_layer = 4 * hidden * hidden * 4  # q, k, v, o in F32
    layers = max(1, (mb << 20) // per_layer)
    for m in range(models):
        gen = torch.Generator().manual_seed(m)
        tensors = {
            f"layers.{i}.attn.{p}.weight": torch.randn(hidden, hidden, generator=gen)
            for i in range(layers)
            for p in "qkvo"
        }
        card = {"base_model": "bench/m0"} if m else {"license": "mit"}
        write_repo(root, f"bench/m{m}", tensors=tensors, card=card, config={"model_type": "bench"})
    return root


@contextlib.contextmanager
def hub_process(zoo: Path) -> Iterator[SimpleNamespace]:
    """`lineage hub serve ZOO` in a process of its own; yields its endpoint."""
    code = "import sys; from jobs.cli import main; sys.exit(main())"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "hub", "serve", str(zoo)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()  # "Serving ROOT at http://127.0.0.1:PORT"
        if " at http" not in line:
            raise RuntimeError(f"the hub process did not start: {line!r}")
        yield SimpleNamespace(endpoint=line.rsplit(" at ", 1)[1].strip())
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def weight_files(zoo: Path) -> list[tuple[str, str, Path]]:
    return [
        (p.parent.relative_to(zoo).as_posix(), p.name, p)
        for p in sorted(zoo.glob("*/*/*.safetensors"))
    ]


def raw_download(hub: LoopbackHub, files, scratch: Path) -> tuple[int, float]:
    from huggingface_hub import hf_hub_download  # imported before the clock starts

    started, total = time.perf_counter(), 0
    for repo, name, path in files:
        hf_hub_download(repo, name, local_dir=scratch / repo, endpoint=hub.endpoint)
        total += path.stat().st_size
    seconds = time.perf_counter() - started
    shutil.rmtree(scratch, ignore_errors=True)
    return total, seconds


def local_fingerprint(zoo: Path) -> tuple[int, float]:
    from lineage.fingerprint import fingerprint_model
    from lineage.weights import open_model

    started, total = time.perf_counter(), 0
    for folder in sorted({p.parent for p in zoo.glob("*/*/*.safetensors")}):
        with open_model(folder) as model:
            fingerprint_model(model)
            total += sum(i.nbytes for i in model.infos().values())
    return total, time.perf_counter() - started


def timed_crawl(hub: LoopbackHub, workers: int, work: Path, driver_lane: bool = True):
    """The crawl's report and its seconds in all: from opening the catalog and calling
    crawl() to its return (the last batch and the run's status row committed). Ray is
    already running, as under `ray job submit` or on a cluster: its start is not counted,
    nor are the imports (done in main, as for the raw download)."""
    from catalog import Catalog
    from jobs.crawl import CrawlOptions, crawl

    started = time.perf_counter()
    catalog = Catalog(work / f"catalog-{workers}")
    opts = CrawlOptions(
        seeds=["everything"],
        endpoint=hub.endpoint,
        workers=workers,
        cpus_per_worker=0.5,
        gpus_per_worker=0.0,
        progress=False,
        cache_dir=work / "cache",
        api_per_5min=0,
        resolve_per_5min=0,
        **({} if driver_lane else {"driver_lane": False}),  # the default: older code runs too
    )
    report = crawl(catalog, opts)
    return report, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", default="synthetic", help="tiny | synthetic | a zoo folder")
    parser.add_argument("--models", type=int, default=12)
    parser.add_argument("--mb", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=512, help="synthetic: matrix side")
    parser.add_argument(
        "--no-driver-lane", action="store_true", help="crawl with the actors alone"
    )
    parser.add_argument(
        "--hub-process", action="store_true", help="serve the zoo from a process of its own"
    )
    args = parser.parse_args()

    import huggingface_hub.file_download  # noqa: F401 - imports are not timed (see timed_crawl)
    import ray

    import catalog  # noqa: F401
    from jobs.crawl import crawl  # noqa: F401 - the driver's modules (jobs.crawl is lazy)

    work = Path(tempfile.mkdtemp(prefix="crawl-bench-"))
    if args.zoo == "tiny":
        from lineage.zoo import build_zoo

        zoo = build_zoo("tiny", progress=False).root
    elif args.zoo == "synthetic":
        zoo = synthetic_zoo(work / "zoo", args.models, args.mb, args.hidden)
    else:
        zoo = Path(args.zoo)
    files = weight_files(zoo)
    n_models = len({repo for repo, _, _ in files})
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with hub_process(zoo) if args.hub_process else LoopbackHub(zoo) as hub:
            raw = raw_download(hub, files, work / "raw")
            fp = local_fingerprint(zoo)
            lane = not args.no_driver_lane
            crawls = {w: timed_crawl(hub, w, work, lane) for w in (1, 2)}
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    where = "its own process" if args.hub_process else "the bench's process"
    print(
        f"zoo: {args.zoo} ({n_models} models, {raw[0] / 1e6:.1f} MB of safetensors), "
        f"hub in {where}"
    )
    raw_rate = n_models / raw[1]
    print(f"{'stage':<28}{'seconds':>9}{'models/s':>10}{'MB/s':>9}{'x raw':>8}"
          f"{'start s':>9}{'steady/s':>10}{'x raw':>8}")
    print(
        f"{'raw download (1 thread)':<28}{raw[1]:>9.2f}{raw_rate:>10.2f}"
        f"{raw[0] / raw[1] / 1e6:>9.1f}"
    )
    print(
        f"{'fingerprint only (local)':<28}{fp[1]:>9.2f}{n_models / fp[1]:>10.2f}"
        f"{fp[0] / fp[1] / 1e6:>9.1f}"
    )
    for workers, (report, seconds) in crawls.items():
        rate = len(report.fingerprinted) / seconds
        steady = report.steady_rate or float("nan")
        print(
            f"{f'crawl, {workers} worker(s)':<28}{seconds:>9.2f}"
            f"{rate:>10.2f}{report.bytes / seconds / 1e6:>9.1f}{raw_rate / rate:>8.2f}"
            f"{report.first_result_s or float('nan'):>9.2f}{steady:>10.2f}{raw_rate / steady:>8.2f}"
            f"  (driver's lane: {getattr(report, 'in_driver', '-')}, "
            f"actors: {getattr(report, 'actors', workers)})"
        )
    print(
        "crawl seconds: in all, from opening the catalog and calling crawl() to its return: "
        "starting the actors, recording the run, listing, header "
        "probes, downloads, fingerprints and catalog commits (Ray itself was started "
        "before, and the imports done, not counted); start s: from the call to the "
        "first fingerprint; steady/s "
        "counts from the first fingerprint to the last; x raw = raw models/s over crawl "
        "models/s (the bar: at most 2); driver's lane: models the driver fingerprinted "
        "while the actors started; actors: how many were asked for (none when the lane "
        "took every model)."
    )


if __name__ == "__main__":
    main()
