"""Fingerprinting throughput beside a plain sequential read of the same files.

    python bench/fingerprint_bench.py [--mb 400] [--dir DIR]

Writes safetensors files totalling about --mb MB (GPT-like tensor shapes, F32 and BF16),
then measures in the same run, each with the files evicted from the page cache
(posix_fadvise DONTNEED) and again warm:
  - read: a plain sequential read of every file in 8 MiB blocks;
  - fingerprint: `fingerprint_model` (moments + sha256 + sketch for every tensor);
and prints bytes/s and the ratio fingerprint/read, plus the per-stage cost of the
fingerprint's arithmetic so the README can say what dominates.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from lineage.fingerprint import content_hash, fingerprint_model, sketch_tensor, tensor_moments
from lineage.weights import open_model, write_safetensors

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


def fingerprint_all(files: list[Path]) -> int:
    total = 0
    for path in files:
        with open_model(path) as model:
            fingerprint_model(model)
        total += path.stat().st_size
    return total


def timed(fn, files):
    start = time.perf_counter()
    nbytes = fn(files)
    return nbytes / (time.perf_counter() - start)


def stage_costs(files: list[Path]) -> dict[str, float]:
    """Seconds per GB of each stage on warm data, one thread of work at a time."""
    costs = {"moments": 0.0, "sketch": 0.0, "sha256": 0.0}
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
            for stage, fn, fn_args in stages:
                start = time.perf_counter()
                fn(*fn_args)
                costs[stage] += time.perf_counter() - start
    return {k: v / (nbytes / 1e9) for k, v in costs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=400)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        files = make_files(Path(tmp), args.mb)
        size = sum(p.stat().st_size for p in files)
        print(f"{len(files)} files, {size / 1e6:.0f} MB, torch threads {torch.get_num_threads()}")
        fingerprint_all(files[:1])  # warm up code paths and sketch plans
        rows = []
        for cache in ("cold", "warm"):
            if cache == "cold":
                evict(files)
            read = timed(plain_read, files)
            if cache == "cold":
                evict(files)
            fp = timed(fingerprint_all, files)
            rows.append((cache, read, fp))
        print(f"{'cache':6} {'read MB/s':>10} {'fingerprint MB/s':>17} {'ratio':>6}")
        for cache, read, fp in rows:
            print(f"{cache:6} {read / 1e6:10.0f} {fp / 1e6:17.0f} {fp / read:6.2f}")
        print(
            "stage cost, seconds per GB (warm, sequential):",
            {k: round(v, 2) for k, v in stage_costs(files).items()},
        )


if __name__ == "__main__":
    main()
