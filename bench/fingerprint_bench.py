"""Fingerprinting throughput against a plain read of the same files, per-model overhead
and peak memory, all measured in one run.

    python bench/fingerprint_bench.py [--mb 400] [--dir DIR] [--repeat 2]
                                      [--tiny 200] [--rss-mb 1024] [--skip-rss]

Writes safetensors files totalling about --mb MB (GPT-like shapes, F32 and BF16), then:
  1. throughput, for cache cold (page cache dropped: /proc/sys/vm/drop_caches when
     writable, else posix_fadvise DONTNEED per file; the line says which) and warm,
     with 1 and 2 threads, on an idle machine and beside a competing CPU-bound
     process (one busy core): a plain sequential read in 8 MiB blocks (`read`), the
     fingerprint without the recovery evidence (`bare`: moments, sketch, sha256) and
     with it (`full`: + rank sketch and coordinate sample of every matrix). Printed
     as MB/s and as ratios full/read, full/bare (the evidence's cost) and busy/idle,
     and the process's CPU seconds per GB (all threads) of bare and full, which a
     shared machine disturbs less than wall time. Best of --repeat alternating runs;
  2. per-model overhead: `index_local` (what `lineage index` runs) on --tiny tiny
     models into a fresh catalog, models/s in the process (imports excluded), and the
     whole `lineage index` command's wall time (imports included);
  3. peak RSS of `lineage index --threads 2` on one --rss-mb MB file, beside the RSS of
     the same imports alone (what no fingerprint can avoid);
  4. catalog bytes per model with and without the evidence.
Threads are set per configuration with lineage.threads.use_threads (a bench may; a
real process sets them once where it starts).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import pyarrow.parquet as pq
import torch

from catalog import Catalog
from catalog.rows import ModelRef, fingerprint_tables
from jobs.local_index import index_local
from lineage.fingerprint import EvidenceOptions, fingerprint_model
from lineage.threads import cpus_given, use_threads
from lineage.weights import open_model, write_safetensors

BARE = EvidenceOptions(enabled=False)
FULL = EvidenceOptions()
BLOCK = 8 << 20


def make_files(folder: Path, total_mb: int, hidden: int = 1024) -> list[Path]:
    """Shards of a GPT-like model: square attention, 4x MLP, a norm; F32 + BF16."""
    folder.mkdir(parents=True, exist_ok=True)
    files, written, i = [], 0, 0
    gen = torch.Generator().manual_seed(0)
    while written < total_mb << 20:
        dtype = torch.bfloat16 if i % 3 == 2 else torch.float32
        tensors = {
            f"layers.{i}.attn.q.weight": torch.randn(hidden, hidden, generator=gen),
            f"layers.{i}.attn.o.weight": torch.randn(hidden, hidden, generator=gen),
            f"layers.{i}.mlp.up.weight": torch.randn(4 * hidden, hidden, generator=gen),
            f"layers.{i}.mlp.down.weight": torch.randn(hidden, 4 * hidden, generator=gen),
            f"layers.{i}.norm.weight": 1 + 0.01 * torch.randn(hidden, generator=gen),
        }
        tensors = {k: (v * 0.02).to(dtype) for k, v in tensors.items()}
        path = write_safetensors(folder / f"shard-{i:03d}.safetensors", tensors)
        files.append(path)
        written += path.stat().st_size
        i += 1
    return files


def drop_cache(files: list[Path]) -> str:
    """Evict the files from the page cache; returns how."""
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("1\n")
        return "drop_caches"
    except OSError:
        pass
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return "fadvise"


def plain_read(files: list[Path]) -> int:
    total, buf = 0, bytearray(BLOCK)
    for path in files:
        with open(path, "rb", buffering=0) as fh:
            while n := fh.readinto(buf):
                total += n
    return total


def fingerprint_all(files: list[Path], evidence: EvidenceOptions, threads: int) -> int:
    total = 0
    for path in files:
        with open_model(path) as model:
            fingerprint_model(model, evidence=evidence, threads=threads)
        total += path.stat().st_size
    return total


class Competitor:
    """A CPU-bound process (a busy loop) for the duration: one core taken."""

    def __enter__(self) -> Competitor:
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.3)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()


def throughput(files: list[Path], repeat: int) -> tuple[list[dict], str]:
    """Rows of MB/s per (cache, threads, load); best of `repeat` alternating runs."""
    rows, how = [], "warm only"
    for load in ("idle", "busy"):
        for threads in (1, 2):
            use_threads(threads)
            for cache in ("cold", "warm"):
                best = {"read": 0.0, "bare": 0.0, "full": 0.0}
                cpu = {"bare": float("inf"), "full": float("inf")}
                for _ in range(repeat):
                    for label, fn in (("read", plain_read),
                                      ("bare", partial(fingerprint_all, evidence=BARE,
                                                       threads=threads)),
                                      ("full", partial(fingerprint_all, evidence=FULL,
                                                       threads=threads))):
                        if cache == "cold":
                            how = drop_cache(files)
                        with Competitor() if load == "busy" else _nothing():
                            start, cpu_start = time.perf_counter(), _cpu_seconds()
                            nbytes = fn(files)
                            rate = nbytes / (time.perf_counter() - start)
                            spent = (_cpu_seconds() - cpu_start) / (nbytes / 1e9)
                        best[label] = max(best[label], rate)
                        if label in cpu:
                            cpu[label] = min(cpu[label], spent)
                rows.append({"load": load, "threads": threads, "cache": cache, **best,
                             "cpu_bare": cpu["bare"], "cpu_full": cpu["full"]})
    return rows, how


def _cpu_seconds() -> float:
    """CPU time of this process, every thread (the competitor is another process):
    less sensitive than wall time to what else runs on a shared machine."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def print_throughput(rows: list[dict]) -> None:
    idle = {(r["threads"], r["cache"]): r["full"] for r in rows if r["load"] == "idle"}
    print(f"{'load':5} {'thr':>3} {'cache':5} {'read MB/s':>9} {'bare MB/s':>9} "
          f"{'full MB/s':>9} {'full/read':>9} {'full/bare':>9} {'busy/idle':>9} "
          f"{'cpu s/GB bare':>13} {'full':>5} {'ratio':>5}")
    for r in rows:
        busy_idle = r["full"] / idle[(r["threads"], r["cache"])]
        print(f"{r['load']:5} {r['threads']:3d} {r['cache']:5} {r['read'] / 1e6:9.0f} "
              f"{r['bare'] / 1e6:9.0f} {r['full'] / 1e6:9.0f} {r['full'] / r['read']:9.2f} "
              f"{r['full'] / r['bare']:9.3f} {busy_idle:9.2f} {r['cpu_bare']:13.2f} "
              f"{r['cpu_full']:5.2f} {r['cpu_bare'] / r['cpu_full']:5.2f}")


def make_tiny(root: Path, n: int) -> Path:
    gen = torch.Generator().manual_seed(1)
    for i in range(n):
        folder = root / f"m{i:04d}"
        folder.mkdir(parents=True)
        tensors = {f"layer.{j}.weight": torch.randn(32, 32, generator=gen) for j in range(4)}
        tensors["norm.weight"] = torch.randn(32, generator=gen)
        write_safetensors(folder / "model.safetensors", tensors)
        (folder / "config.json").write_text(json.dumps({"model_type": "tiny"}))
    return root


def tiny_rate(tmp: Path, n: int) -> None:
    models = make_tiny(tmp / "tiny", n)
    use_threads(1)
    index_local(Catalog(tmp / "warmup"), [models / "m0000"], progress=False)  # compile
    start = time.perf_counter()
    report = index_local(Catalog(tmp / "tiny-cat"), [models], progress=False)
    took = time.perf_counter() - start
    assert len(report.indexed) == n, report.failed
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lineage", "index", str(models), "--quiet",
                    "--threads", "1", "--catalog", str(tmp / "tiny-cli")], check=True,
                   stdout=subprocess.DEVNULL)
    cli = time.perf_counter() - start
    print(f"tiny models: {n} in {took:.2f} s = {n / took:.0f} models/s "
          f"({1000 * took / n:.1f} ms each) in process; `lineage index` command "
          f"{cli:.2f} s with its imports")


# Peak RSS read from /proc/self/status (VmHWM, in kB): ru_maxrss would keep the
# bench's own peak, inherited through fork, across the child's exec.
PEAK = ("[int(l.split()[1]) for l in open('/proc/self/status') "
        "if l.startswith('VmHWM')][0]")
RSS_PROBE = f"""
from jobs.commands import index as _  # the command's own imports
import catalog, jobs.local_index, lineage.fingerprint.kernels
print({PEAK})
"""


RSS_OF_INDEX = f"""
import json, runpy, sys
sys.argv = json.loads(sys.argv[1])
try:
    runpy.run_module("lineage", run_name="__main__")
except SystemExit as done:
    assert not done.code, done.code
print({PEAK})
"""


def peak_rss(tmp: Path, mb: int) -> None:
    folder = tmp / "big"
    hidden = 128 * max(1, round(((mb << 20) / 40) ** 0.5 / 128))  # one F32 shard: 40 h^2 B
    files = make_files(folder, 1, hidden=hidden)
    imports = int(subprocess.run([sys.executable, "-c", RSS_PROBE], capture_output=True,
                                 text=True, check=True).stdout.split()[-1])
    drop_cache(files)
    started = time.perf_counter()
    argv = ["lineage", "index", str(files[0]), "--quiet", "--threads", "2", "--catalog",
            str(tmp / "rss-cat")]
    out = subprocess.run([sys.executable, "-c", RSS_OF_INDEX, json.dumps(argv)],
                         capture_output=True, text=True, check=True)
    took = time.perf_counter() - started
    worst = int(out.stdout.split()[-1])
    print(f"peak RSS of `lineage index --threads 2` on a {files[0].stat().st_size / 1e6:.0f} MB "
          f"file (cold, {took:.1f} s with imports): {worst / 1024:.0f} MB; its imports "
          f"alone: {imports / 1024:.0f} MB; above the imports: {(worst - imports) / 1024:.0f} MB")


def catalog_bytes(files: list[Path], evidence: EvidenceOptions) -> int:
    """Parquet bytes (zstd, as the catalog writes them) of the models + tensors rows of
    the files taken as one model's shards."""
    items = []
    for k, path in enumerate(files):
        with open_model(path) as model:
            items.append((ModelRef(f"bench/shard-{k}", "r", "local"),
                          fingerprint_model(model, evidence=evidence)))
    tables = fingerprint_tables(items, "bench")
    total = 0
    for name in ("models", "tensors"):
        buf = io.BytesIO()
        pq.write_table(tables[name], buf, compression="zstd")
        total += buf.tell()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=400)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=2, help="alternating runs per mode")
    parser.add_argument("--tiny", type=int, default=200, help="tiny models to index")
    parser.add_argument("--rss-mb", type=int, default=1024, help="file size for peak RSS")
    parser.add_argument("--skip-rss", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        files = make_files(Path(tmp) / "shards", args.mb)
        size = sum(p.stat().st_size for p in files)
        print(f"{len(files)} files, {size / 1e6:.0f} MB; {cpus_given()} CPUs given")
        fingerprint_all(files[:1], FULL, 2)  # compile the kernels, build the plans
        rows, how = throughput(files, args.repeat)
        print(f"cold = page cache dropped by {how}")
        print_throughput(rows)
        tiny_rate(Path(tmp), args.tiny)
        if not args.skip_rss:
            peak_rss(Path(tmp), args.rss_mb)
        bare_b, full_b = catalog_bytes(files, BARE), catalog_bytes(files, FULL)
        print(f"catalog bytes per model ({size / 1e6:.0f} MB of weights): bare {bare_b:,}, "
              f"full {full_b:,} (x{full_b / bare_b:.2f})")


if __name__ == "__main__":
    main()
