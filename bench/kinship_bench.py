"""Kinship at two scales: exact streaming vs the original tool, and sketch all-pairs top-k.

    python bench/kinship_bench.py [--params-m 50] [--sizes 100,1000,10000] [--k 10]
                                  [--block 2048] [--device cpu] [--dir DIR]

(1) Exact kinship of two fine-tunes against their base (GPT-2-like safetensors files of
    about --params-m million fp32 parameters each, generated in a temp dir): our
    streaming `lineage.kinship.kinship` beside the Model Kinship tool's way (load three
    full state dicts with safetensors.torch.load_file, fp32, flatten and concatenate
    the deltas, compute cs/pcc/ed). Each runs in a fresh subprocess that reports its
    wall time and peak RSS; an idle subprocess with the same imports gives the
    interpreter + torch floor. Values must agree to 1e-6. Peak RSS is VmHWM from
    /proc/self/status, the high-water mark of the process's own memory map: getrusage's
    ru_maxrss would do on a fresh interpreter, but Linux carries it across fork + exec,
    so a child forked from this (large) parent would report the parent's size.
    Then the same metrics estimated from the three models' fingerprints (width 4096):
    error against the exact values and time per estimate, no weights read.
(2) Sketch all-pairs top-k (`topk_pairs`, cosine, width 4096) over n synthetic model
    sketches (families of fine-tunes around random bases): time, time per pair, the
    scaling exponent, family recall of the neighbours, and the exact all-pairs cost
    extrapolated from (1)'s measured per-pair time.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HIDDEN, LAYERS, POSITIONS = 768, 6, 1024


# -- (1) exact: files ---------------------------------------------------------------------


def gpt2_shapes(params_m: float) -> dict[str, tuple[int, ...]]:
    """GPT-2 layout (Conv1D weights are [in, out]); the vocabulary fills up to params_m."""
    shapes: dict[str, tuple[int, ...]] = {"transformer.wpe.weight": (POSITIONS, HIDDEN)}
    for i in range(LAYERS):
        p = f"transformer.h.{i}."
        shapes |= {
            p + "ln_1.weight": (HIDDEN,), p + "ln_1.bias": (HIDDEN,),
            p + "attn.c_attn.weight": (HIDDEN, 3 * HIDDEN), p + "attn.c_attn.bias": (3 * HIDDEN,),
            p + "attn.c_proj.weight": (HIDDEN, HIDDEN), p + "attn.c_proj.bias": (HIDDEN,),
            p + "ln_2.weight": (HIDDEN,), p + "ln_2.bias": (HIDDEN,),
            p + "mlp.c_fc.weight": (HIDDEN, 4 * HIDDEN), p + "mlp.c_fc.bias": (4 * HIDDEN,),
            p + "mlp.c_proj.weight": (4 * HIDDEN, HIDDEN), p + "mlp.c_proj.bias": (HIDDEN,),
        }  # fmt: skip
    shapes |= {"transformer.ln_f.weight": (HIDDEN,), "transformer.ln_f.bias": (HIDDEN,)}
    used = sum(math.prod(s) for s in shapes.values())
    vocab = max(1000, int((params_m * 1e6 - used) / HIDDEN))
    return {"transformer.wte.weight": (vocab, HIDDEN)} | shapes


def write_models(folder: Path, params_m: float) -> dict[str, Path]:
    """base, and two children = base + rank-8 update + noise (one shared direction)."""
    import torch

    from lineage.weights import write_safetensors

    gen = torch.Generator().manual_seed(0)
    shapes = gpt2_shapes(params_m)
    paths = {}
    base = {n: 0.02 * torch.randn(s, generator=gen) for n, s in shapes.items()}
    paths["base"] = write_safetensors(folder / "base" / "model.safetensors", base).parent
    shared = {n: 1e-3 * torch.randn(s, generator=gen) for n, s in shapes.items()}
    for child in ("a", "b"):
        tensors = {}
        for name, w in base.items():
            delta = shared[name] + 1e-3 * torch.randn(w.shape, generator=gen)
            if w.ndim == 2:
                u = torch.randn(w.shape[0], 8, generator=gen) * 0.003
                delta += u @ torch.randn(8, w.shape[1], generator=gen) * 0.003
            tensors[name] = w + delta
        paths[child] = write_safetensors(folder / child / "model.safetensors", tensors).parent
        del tensors
    return paths


# -- (1) exact: workers, each in a fresh process -------------------------------------------


def worker_streaming(a: str, b: str, base: str) -> dict:
    from lineage.kinship import kinship

    start = time.perf_counter()
    result = kinship(a, b, base, metrics="cs,pcc,ed")
    return {"seconds": time.perf_counter() - start, "values": result.values}


def worker_original(a: str, b: str, base: str) -> dict:
    """The Model Kinship tool's approach: three full fp32 state dicts, concatenated deltas."""
    import torch
    from safetensors.torch import load_file

    start = time.perf_counter()
    sd = [load_file(str(Path(p) / "model.safetensors")) for p in (a, b, base)]
    sd = [{k: v.to(torch.float32) for k, v in s.items()} for s in sd]
    keys = [k for k in sd[0] if k in sd[1] and k in sd[2]]
    d1 = torch.cat([(sd[0][k] - sd[2][k]).flatten() for k in keys])
    d2 = torch.cat([(sd[1][k] - sd[2][k]).flatten() for k in keys])
    values = _fp32_vector_metrics(d1, d2)
    return {"seconds": time.perf_counter() - start, "values": values}


def _fp32_vector_metrics(d1, d2) -> dict[str, float]:  # noqa: ANN001 - torch tensors
    """cs, pcc, ed of two fp32 vectors, reduced in float64 slices so that rounding in the
    reduction does not blur the comparison (the vectors themselves stay fp32)."""
    n, sums = d1.numel(), np.zeros(6)
    for s in range(0, n, 1 << 20):
        x, y = d1[s : s + (1 << 20)].double().numpy(), d2[s : s + (1 << 20)].double().numpy()
        sums += [x.sum(), y.sum(), x @ x, y @ y, x @ y, (x - y) @ (x - y)]
    sx, sy, sxx, syy, sxy, sdd = sums
    cov, vx, vy = sxy - sx * sy / n, sxx - sx * sx / n, syy - sy * sy / n
    return {"cs": sxy / math.sqrt(sxx * syy), "pcc": cov / math.sqrt(vx * vy), "ed": sdd**0.5}


def worker_idle() -> dict:
    import torch  # noqa: F401 - the same imports as the workers, nothing else

    import lineage.kinship  # noqa: F401

    return {"seconds": 0.0, "values": {}}


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MiB; ru_maxrss where there is no /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_worker(kind: str, paths: dict[str, Path]) -> dict:
    args = [str(paths["a"]), str(paths["b"]), str(paths["base"])] if kind != "idle" else []
    out = subprocess.run(
        [sys.executable, __file__, "--worker", kind, *args],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_exact(paths: dict[str, Path], n_params: int) -> float:
    """Prints the comparison; returns the streaming seconds per pair."""
    idle, ours, theirs = (run_worker(k, paths) for k in ("idle", "streaming", "original"))
    floor = idle["rss_mb"]
    print(f"\n(1) exact kinship, 2 models + base, {n_params / 1e6:.1f}M fp32 params each")
    print(f"    {'approach':<28}{'time s':>8}{'peak RSS MB':>13}{'above floor MB':>16}")
    for name, r in (("idle (python+torch floor)", idle), ("lineage streaming", ours),
                    ("original (3 state dicts)", theirs)):  # fmt: skip
        print(f"    {name:<28}{r['seconds']:>8.2f}{r['rss_mb']:>13.0f}{r['rss_mb'] - floor:>16.0f}")
    ratio = theirs["rss_mb"] / ours["rss_mb"]
    above = (theirs["rss_mb"] - floor) / max(ours["rss_mb"] - floor, 1.0)
    print(f"    peak memory ratio original/streaming: {ratio:.1f}x ({above:.0f}x above the floor)")
    print(f"    time ratio original/streaming: {theirs['seconds'] / ours['seconds']:.2f}x")
    worst = max(abs(ours["values"][k] - theirs["values"][k]) for k in ("cs", "pcc", "ed"))
    for k in ("cs", "pcc", "ed"):
        print(f"    {k:<4} streaming {ours['values'][k]:.12f}  original {theirs['values'][k]:.12f}")
    print(f"    max |difference| {worst:.2e} (must be < 1e-6)")
    assert worst < 1e-6, "streaming and original kinship disagree"
    assert ratio >= 5, f"peak memory ratio {ratio:.1f}x is below the 5x target"
    return ours["seconds"]


def bench_sketch_estimate(paths: dict[str, Path], exact_pair_s: float) -> None:
    """Per-tensor and model-level sketch estimates against the exact values."""
    from lineage.fingerprint import fingerprint_model
    from lineage.kinship import SketchedModel, estimate_from_model_sketches, estimate_kinship
    from lineage.kinship import kinship as exact_kinship
    from lineage.weights import open_model

    start = time.perf_counter()
    sk = {}
    for key in ("a", "b", "base"):
        with open_model(paths[key]) as model:
            sk[key] = SketchedModel.from_fingerprint(fingerprint_model(model), key)
    fp_s = (time.perf_counter() - start) / 3
    exact = exact_kinship(paths["a"], paths["b"], paths["base"]).values
    start = time.perf_counter()
    for _ in range(10):
        est = estimate_kinship(sk["a"], sk["b"], sk["base"]).values
    est_s = (time.perf_counter() - start) / 10
    model = estimate_from_model_sketches(
        sk["a"].model_sketch, sk["b"].model_sketch, sk["base"].model_sketch
    )
    print(f"    sketch estimates (width 4096; fingerprinting took {fp_s:.1f} s per model):")
    for label, values in (("per-tensor sketches", est), ("model-level sketch", model)):
        errors = "  ".join(
            f"{k} {values[k] - exact[k]:+.5f}"
            if k != "ed"
            else f"ed rel {values[k] / exact[k] - 1:+.5f}"
            for k in ("cs", "pcc", "ed")
            if k in values
        )
        print(f"      {label:<20} error vs exact: {errors}")
    print(f"      per-tensor estimate: {est_s * 1e3:.1f} ms per pair, "
          f"{exact_pair_s / est_s:,.0f}x faster than exact streaming")  # fmt: skip


# -- (2) sketch all-pairs top-k -----------------------------------------------------------


def synthetic_sketches(n: int, width: int, family: int = 20, seed: int = 0) -> np.ndarray:
    """n model sketches in families of `family`: a random base sketch + small deltas."""
    rng = np.random.default_rng(seed)
    bases = rng.standard_normal((math.ceil(n / family), width), dtype=np.float32)
    x = np.repeat(bases, family, axis=0)[:n]
    x += 0.3 * rng.standard_normal((n, width), dtype=np.float32)
    return x


def bench_allpairs(sizes: list[int], k: int, block: int, device: str, exact_pair_s: float):
    import torch

    from lineage.kinship import topk_pairs

    print(f"\n(2) sketch all-pairs top-{k} (cosine, width 4096, block {block}, {device}, "
          f"{torch.get_num_threads()} threads)")  # fmt: skip
    header = f"{'n':>8}{'time s':>9}{'pairs':>14}{'us/pair':>9}{'recall':>8}{'exact all-pairs':>20}"
    print("    " + header)
    times = []
    for n in sizes:
        x = synthetic_sketches(n, 4096)
        start = time.perf_counter()
        found = topk_pairs(x, k, block=block, device=device)
        seconds = time.perf_counter() - start
        times.append(seconds)
        pairs = n * (n - 1) // 2
        recall = float(np.mean(found.i // 20 == found.j // 20))  # k < family - 1
        exact = _duration(pairs * exact_pair_s)
        print(f"    {n:>8}{seconds:>9.2f}{pairs:>14,}{seconds / pairs * 1e6:>9.3f}"
              f"{recall:>8.3f}{exact:>20}")  # fmt: skip
    if len(sizes) >= 2:
        slope = np.polyfit(np.log(sizes[-2:]), np.log(times[-2:]), 1)[0]
        print(f"    scaling exponent (time ~ n^e, last two sizes): e = {slope:.2f}")
    if sizes[-1] >= 10_000:
        print(f"    10,000-model all-pairs top-{k}: {times[-1]:.1f} s (target < 60 s)")


def _duration(seconds: float) -> str:
    for unit, size in (("years", 3.156e7), ("days", 86400), ("hours", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:.1f} s"


# -- main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params-m", type=float, default=50.0)
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--block", type=int, default=2048)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dir", type=Path, default=None, help="scratch dir (default: temp)")
    parser.add_argument("--worker", choices=("streaming", "original", "idle"))
    parser.add_argument("models", nargs="*")
    args = parser.parse_args()
    if args.worker:
        workers = {"streaming": worker_streaming, "original": worker_original}
        result = workers[args.worker](*args.models) if args.models else worker_idle()
        result["rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="kinship-bench-") as tmp:
        start = time.perf_counter()
        paths = write_models(Path(tmp), args.params_m)
        n_params = sum(math.prod(s) for s in gpt2_shapes(args.params_m).values())
        elapsed = time.perf_counter() - start
        print(f"wrote 3 models x {n_params * 4 / 1e6:.0f} MB (fp32) in {elapsed:.1f} s")
        exact_pair_s = bench_exact(paths, n_params)
        bench_sketch_estimate(paths, exact_pair_s)
    sizes = [int(s) for s in args.sizes.split(",")]
    bench_allpairs(sizes, args.k, args.block, args.device, exact_pair_s)


if __name__ == "__main__":
    main()
