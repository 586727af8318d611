"""lineage vs mergekit on the same YAML recipes: max |difference| per recipe and wall time.

    pip install --no-deps --target /tmp/mk mergekit==0.1.5 immutables
    python bench/merge_mergekit_parity.py --mergekit-path /tmp/mk [--hidden 256] [--only karcher]

Builds a small Llama (transformers, random weights) and two fine-tunes of it in a temporary
folder, runs every recipe below with mergekit (CPU) and with lineage, each run in a fresh
process at 1 thread (no warm-up run), and prints per recipe the largest absolute
difference over all tensors, the time ratio lineage / mergekit, the ratio of peak-RSS
rises during the merge (VmHWM reset before it, minus the RSS before it) and, for scale,
the streaming bound: the largest input tensor times the number of input models.
Both tools run with their defaults: mergekit buffers each output shard (up to 5B
parameters) in memory; lineage writes each tensor to its shard as it is computed.
mergekit is not a dependency of lineage: point --mergekit-path at a
folder where it was installed with --no-deps.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def build(root: Path, hidden: int, layers: int) -> dict[str, str]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=4, vocab_size=4096,
                      tie_word_embeddings=False)
    base = LlamaForCausalLM(cfg)
    paths = {"base": root / "base"}
    base.save_pretrained(paths["base"])
    for i in range(2):
        child = LlamaForCausalLM(cfg)
        child.load_state_dict(base.state_dict())
        g = torch.Generator().manual_seed(10 + i)
        with torch.no_grad():
            for p in child.parameters():
                p.add_(0.02 * torch.randn(p.shape, generator=g))
        paths[f"ft{i}"] = root / f"ft{i}"
        child.save_pretrained(paths[f"ft{i}"])
    return {k: str(v) for k, v in paths.items()}


def recipes(p: dict[str, str], layers: int) -> dict[str, dict]:
    two = [{"model": p["ft0"], "parameters": {"weight": 1.0}},
           {"model": p["ft1"], "parameters": {"weight": 0.5}}]
    full = [0, layers]
    return {
        "task_arithmetic": {"merge_method": "task_arithmetic", "base_model": p["base"],
                            "models": two, "parameters": {"lambda": 0.8}},
        "breadcrumbs": {"merge_method": "breadcrumbs", "base_model": p["base"],
                        "models": two, "parameters": {"density": 0.5, "gamma": 0.01}},
        "slerp gradient+filters (slices)": {
            "merge_method": "slerp", "base_model": p["ft0"],
            "slices": [{"sources": [{"model": p["ft0"], "layer_range": full},
                                    {"model": p["ft1"], "layer_range": full}]}],
            "parameters": {"t": [{"filter": "self_attn", "value": [0, 0.5, 0.3, 0.7, 1]},
                                 {"filter": "mlp", "value": [1, 0.5, 0.7, 0.3, 0]},
                                 {"value": 0.5}]}},
        "passthrough frankenmerge": {
            "merge_method": "passthrough",
            "slices": [{"sources": [{"model": p["ft0"], "layer_range": [0, layers - 1]}]},
                       {"sources": [{"model": p["ft1"], "layer_range": [1, layers]}]}]},
        "linear weight gradient": {"merge_method": "linear", "models": [
            {"model": p["ft0"], "parameters": {"weight": [1.0, 0.0]}},
            {"model": p["ft1"], "parameters": {"weight": [0.0, 1.0]}}]},
        "nuslerp": {"merge_method": "nuslerp", "base_model": p["base"], "models": two},
        "multislerp": {"merge_method": "multislerp", "base_model": p["base"], "models": two},
        "karcher": {"merge_method": "karcher", "models": [{"model": p["ft0"]},
                                                          {"model": p["ft1"]}]},
        "sce": {"merge_method": "sce", "base_model": p["base"],
                "models": [{"model": p["ft0"]}, {"model": p["ft1"]}],
                "parameters": {"select_topk": 0.5}},
        "nearswap": {"merge_method": "nearswap", "base_model": p["base"],
                     "models": [{"model": p["base"]}, {"model": p["ft0"]}],
                     "parameters": {"t": 0.01}},
        "arcee_fusion": {"merge_method": "arcee_fusion", "base_model": p["base"],
                         "models": [{"model": p["base"]}, {"model": p["ft0"]}]},
    }


def run_mergekit(recipe: dict, out: Path) -> float:
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    start = time.perf_counter()
    run_merge(MergeConfiguration.model_validate({**recipe, "dtype": "float32"}), str(out),
              options=MergeOptions(copy_tokenizer=False, lazy_unpickle=False, quiet=True))
    return time.perf_counter() - start


def run_lineage(recipe: dict, out: Path) -> float:
    from lineage.merge import merge_models

    start = time.perf_counter()
    merge_models(recipe, out, progress=False, overwrite=True)
    return time.perf_counter() - start


def _rss_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _child(job) -> tuple[float, int]:
    tool, recipe, out, mk_path = job
    sys.path.insert(0, mk_path)
    import torch

    torch.set_num_threads(1)
    run = run_mergekit if tool == "mergekit" else run_lineage
    # No warm-up run: mergekit keeps its loaders (and their mapped pages) in a process-wide
    # cache, so a second run in the same process would not count reading its inputs.
    if tool == "mergekit":
        import mergekit.merge  # noqa: F401 - imports outside the measured window
    else:
        import lineage.merge  # noqa: F401
    Path("/proc/self/clear_refs").write_text("5")
    before = _rss_kb("VmRSS")
    seconds = run(recipe, Path(out))
    return seconds, max(0, _rss_kb("VmHWM") - before)


def isolated(tool: str, recipe: dict, out: Path, mk_path: str) -> tuple[float, int]:
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_child, ((tool, recipe, str(out), mk_path),))


def stream_bound(recipe: dict) -> int:
    """Bytes of the largest input tensor times the number of input models: what a merge
    streaming tensor by tensor needs to hold its inputs (before any temporaries)."""
    from lineage.weights import open_model

    entries = recipe.get("models") or [s for sl in recipe["slices"] for s in sl["sources"]]
    models = {e["model"] for e in entries}
    if recipe.get("base_model"):
        models.add(recipe["base_model"])
    with open_model(next(iter(models))) as m:
        largest = max(i.nbytes for i in m.infos().values())
    return largest * len(models)


def max_diff(a: Path, b: Path) -> tuple[float, int, int]:
    from lineage.weights import open_model

    with open_model(a) as ma, open_model(b) as mb:
        ta, tb = ma.infos(), mb.infos()
        shared = [n for n in ta if n in tb]
        worst = 0.0
        for n in shared:
            worst = max(worst, float((ma.tensor(n).double() - mb.tensor(n).double()).abs().max()))
        return worst, len(shared), len(set(ta) ^ set(tb))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mergekit-path", required=True)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--only", default="", help="run the recipes whose name contains this")
    args = parser.parse_args(argv)
    sys.path.insert(0, args.mergekit_path)
    import torch

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="mk-parity-"))
    paths = build(work / "models", args.hidden, args.layers)
    print(f"{'recipe':32s} {'max |diff|':>10s} {'tensors':>7s} {'lineage s':>9s} "
          f"{'mergekit s':>10s} {'time':>5s} {'+MB lin':>7s} {'+MB mk':>7s} {'RSS':>5s} "
          f"{'bound MB':>8s}")
    for name, recipe in recipes(paths, args.layers).items():
        if args.only not in name:
            continue
        slug = name.split()[0]
        try:
            mk, mk_kb = isolated("mergekit", recipe, work / "mk" / slug, args.mergekit_path)
        except Exception as e:  # noqa: BLE001 - report and go on
            print(f"{name:32s} mergekit failed: {type(e).__name__}: {str(e)[:80]}")
            continue
        ln, ln_kb = isolated("lineage", recipe, work / "ln" / slug, args.mergekit_path)
        diff, n, odd = max_diff(work / "mk" / slug, work / "ln" / slug)
        names = "" if odd == 0 else f" ({odd} names differ)"
        bound = stream_bound(recipe) / 2**20
        print(f"{name:32s} {diff:10.2e} {n:7d} {ln:9.2f} {mk:10.2f} {ln / mk:5.2f} "
              f"{ln_kb / 1024:7.1f} {mk_kb / 1024:7.1f} {ln_kb / max(mk_kb, 1):5.2f} "
              f"{bound:8.1f}{names}", flush=True)
    print(f"work folder: {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
