"""Fingerprinting throughput beside a plain sequential read of the same files.

    python bench/fingerprint_bench.py [--mb 400] [--dir DIR] [--repeat 2]

Writes safetensors files totalling about --mb MB (GPT-like tensor shapes, F32 and BF16),
then measures in the same run, each with the files evicted from the page cache
(posix_fadvise DONTNEED) and again warm:
  - read: a plain sequential read of every file in 8 MiB blocks;
  - before: `fingerprint_model` without the recovery evidence (moments + sha256 +
    sketch for every tensor: the fingerprint of before issue 12);
  - after: `fingerprint_model` as it runs now (+ rank sketch and coordinate sample of
    every 2-D matrix);
alternating before/after --repeat times and keeping the best of each (the machine is
shared). Prints bytes/s, the ratios fingerprint/read and after/before, the catalog
bytes per model (the parquet rows of models + tensors, zstd) before and after, and the
per-stage cost of the fingerprint's arithmetic so the README can say what dominates.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from functools import partial
from pathlib import Path

import pyarrow.parquet as pq
import torch

from catalog.rows import ModelRef, fingerprint_tables
from lineage.fingerprint import (
    EvidenceOptions,
    content_hash,
    fingerprint_model,
    rank_sketch,
    sample_values,
    sketch_tensor,
    tensor_moments,
)
from lineage.weights import open_model, write_safetensors

BEFORE = EvidenceOptions(enabled=False)
AFTER = EvidenceOptions()

BLOCK = 8 << 20


def make_files(folder: Path, total_mb: int) -> list[Path]:
    """Shards of a GPT-like model: square attention, 4x MLP, an embedding; F32 + BF16."""
    hidden, files, written, i = 1024, [], 0, 0
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


def evict(files: list[Path]) -> None:
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def plain_read(files: list[Path]) -> int:
    total, buf = 0, bytearray(BLOCK)
    for path in files:
        with open(path, "rb", buffering=0) as fh:
            while n := fh.readinto(buf):
                total += n
    return total


def fingerprint_all(files: list[Path], evidence: EvidenceOptions = AFTER) -> int:
    total = 0
    for path in files:
        with open_model(path) as model:
            fingerprint_model(model, evidence=evidence)
        total += path.stat().st_size
    return total


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


def timed(fn, files):
    start = time.perf_counter()
    nbytes = fn(files)
    return nbytes / (time.perf_counter() - start)


def stage_costs(files: list[Path], repeat: int = 1) -> dict[str, float]:
    """Seconds per GB of each stage on warm data, one thread of work at a time; per
    tensor and stage the best of `repeat` runs (the machine is shared)."""
    costs = {"moments": 0.0, "sketch": 0.0, "sha256": 0.0, "rank_sketch": 0.0, "sample": 0.0}
    nbytes = 0
    with open_model(files[0]) as model:
        for name in model.names():
            tensor, raw = model.tensor(name), model.raw(name)
            nbytes += len(raw)
            stages = (
                ("moments", tensor_moments, (tensor,)),
                ("sketch", sketch_tensor, (name, tensor)),
                ("sha256", content_hash, ("F32", tuple(tensor.shape), raw)),
            )
            if tensor.ndim == 2:
                stages += (("rank_sketch", rank_sketch, (tensor,)),
                           ("sample", sample_values, (name, tensor)))
            for stage, fn, fn_args in stages:
                best = float("inf")
                for _ in range(repeat):
                    start = time.perf_counter()
                    fn(*fn_args)
                    best = min(best, time.perf_counter() - start)
                costs[stage] += best
    return {k: v / (nbytes / 1e9) for k, v in costs.items()}


def measure(files: list[Path], repeat: int) -> list[tuple[str, float, float, float]]:
    """(cache, read, before, after) bytes/s, best of `repeat` alternating runs."""
    rows = []
    for cache in ("cold", "warm"):
        best = {"read": 0.0, "before": 0.0, "after": 0.0}
        for _ in range(repeat):
            for label, fn in (("read", plain_read),
                              ("before", partial(fingerprint_all, evidence=BEFORE)),
                              ("after", partial(fingerprint_all, evidence=AFTER))):
                if cache == "cold":
                    evict(files)
                best[label] = max(best[label], timed(fn, files))
        rows.append((cache, best["read"], best["before"], best["after"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=400)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=2, help="alternating runs per mode")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        files = make_files(Path(tmp), args.mb)
        size = sum(p.stat().st_size for p in files)
        print(f"{len(files)} files, {size / 1e6:.0f} MB, torch threads {torch.get_num_threads()}")
        fingerprint_all(files[:1])  # warm up code paths and sketch plans
        rows = measure(files, args.repeat)
        print(f"{'cache':6} {'read MB/s':>10} {'before MB/s':>12} {'after MB/s':>11} "
              f"{'after/read':>10} {'after/before':>13}")
        for cache, read, before, after in rows:
            print(f"{cache:6} {read / 1e6:10.0f} {before / 1e6:12.0f} {after / 1e6:11.0f} "
                  f"{after / read:10.2f} {after / before:13.3f}")
        before_b, after_b = catalog_bytes(files, BEFORE), catalog_bytes(files, AFTER)
        print(f"catalog bytes per model ({size / 1e6:.0f} MB of weights): before {before_b:,}, "
              f"after {after_b:,} (x{after_b / before_b:.2f})")
        costs = stage_costs(files, args.repeat + 1)
        print("stage cost, seconds per GB (warm, sequential, best of "
              f"{args.repeat + 1}):", {k: round(v, 2) for k, v in costs.items()})
        main_thread = costs["moments"] + costs["sketch"]  # sha256 runs in a second thread
        print(f"evidence / (moments + sketch): "
              f"{(costs['rank_sketch'] + costs['sample']) / main_thread:.3f}")


if __name__ == "__main__":
    main()
