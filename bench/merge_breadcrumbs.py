"""Breadcrumbs' sparsification before/after: a full argsort (the old code, kept here as
the baseline) vs a partition + topk (lineage.merge.sparsify.magnitude_outliers), same run.

    python bench/merge_breadcrumbs.py [--numel 16777216] [--repeat 3]

Each variant runs in a fresh process (torch at 1 thread) so its peak RSS is its own;
prints seconds per call, the peak RSS rise over the inputs, and the ratios new / old.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from pathlib import Path


def argsort_outliers(delta, density: float, gamma: float):
    """The previous implementation: a stable argsort of every magnitude."""
    import torch

    n = delta.numel()
    n_keep, n_top = int(density * n), int(gamma * n)
    n_bot = n - n_keep - n_top
    if n_bot < 0:
        n_top, n_bot = n_top + n_bot, 0
    order = torch.argsort(delta.abs().reshape(-1), stable=True)
    mask = torch.zeros(n, dtype=delta.dtype)
    mask[order[n_bot: n - n_top]] = 1
    return delta * mask.reshape(delta.shape)


def _rss_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _measure(job):
    import torch

    from lineage.merge.sparsify import magnitude_outliers

    variant, numel, repeat = job
    torch.set_num_threads(1)
    delta = torch.randn(numel, generator=torch.Generator().manual_seed(0))
    fn = argsort_outliers if variant == "argsort" else (
        lambda d, p, g: magnitude_outliers(d, p, g))
    fn(delta[:1000], 0.5, 0.01)
    Path("/proc/self/clear_refs").write_text("5")
    before = _rss_kb("VmRSS")
    start = time.perf_counter()
    for _ in range(repeat):
        out = fn(delta, 0.5, 0.01)
    seconds = (time.perf_counter() - start) / repeat
    rise = _rss_kb("VmHWM") - before
    return seconds, rise, int((out != 0).sum())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--numel", type=int, default=1 << 24)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    ctx = multiprocessing.get_context("spawn")
    res = {}
    for variant in ("argsort", "partition"):
        with ctx.Pool(1) as pool:
            res[variant] = pool.apply(_measure, ((variant, args.numel, args.repeat),))
    print(f"breadcrumbs sparsify, {args.numel:,} entries, density 0.5, gamma 0.01, 1 thread")
    for v, (s, rise, kept) in res.items():
        print(f"  {v:9s} {s:7.3f} s/call   peak RSS rise {rise / 1024:7.1f} MB   kept {kept:,}")
    (s0, r0, k0), (s1, r1, k1) = res["argsort"], res["partition"]
    print(f"  ratio new/old: time {s1 / s0:.2f}, peak RSS rise {r1 / max(r0, 1):.2f}; "
          f"kept entries equal: {k0 == k1}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
