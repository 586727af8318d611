"""What signal does a zoo carry? Build presets and report, per preset: build time, model
count, bytes, and the fraction of true fine-tune edges (full and LoRA) along which the
summed excess kurtosis of square matrices rises from parent to child (MoTHer's direction
signal), per initialisation style, per relation, and per architecture.

    python bench/zoo_signal.py tiny mixed vthr   # fresh builds in a temp dir
    python bench/zoo_signal.py tiny --cache-dir ~/.cache/lineage/zoo   # reuse a cache
"""

from __future__ import annotations

import argparse
import tempfile
from collections import defaultdict
from pathlib import Path

import torch
from safetensors import safe_open

from lineage.zoo import build_zoo

FINE_TUNE_RELATIONS = ("finetune", "lora")


def summed_square_kurtosis(weights: Path) -> float:
    """Sum over square 2-D tensors of excess kurtosis (float64)."""
    total = 0.0
    with safe_open(weights, "pt") as f:
        for name in f.keys():
            t = f.get_tensor(name)
            if t.ndim == 2 and t.shape[0] == t.shape[1]:
                c = t.double().flatten() - t.double().mean()
                total += float((c**4).mean() / (c**2).mean() ** 2 - 3)
    return total


def kurtosis_rises(root: Path, truth: dict) -> dict[str, list[bool]]:
    """Group key -> one bool per true fine-tune edge: did the summed kurtosis rise?"""
    nodes = {n["id"]: n for n in truth["nodes"]}
    cache: dict[str, float] = {}

    def k(model_id: str) -> float:
        if model_id not in cache:
            cache[model_id] = summed_square_kurtosis(root / model_id / "model.safetensors")
        return cache[model_id]

    groups: dict[str, list[bool]] = defaultdict(list)
    for edge in truth["edges"]:
        if edge["relation"] not in FINE_TUNE_RELATIONS:
            continue
        child = nodes[edge["child"]]
        rise = k(edge["child"]) > k(edge["parent"])
        for key in (
            "all",
            f"init={child['init']}",
            f"relation={edge['relation']}",
            f"init={child['init']} relation={edge['relation']}",
            f"arch={child['arch']} init={child['init']}",
        ):
            groups[key].append(rise)
    return groups


def report(preset: str, work: Path, cache_dir: Path) -> None:
    result = build_zoo(preset, work / preset, cache_dir=cache_dir)
    truth = result.ground_truth
    size = sum(p.stat().st_size for p in result.root.rglob("*") if p.is_file())
    how = "cache hit" if result.cached else "built"
    print(f"\n== {preset}: {truth['zoo']['n_models']} models, {truth['zoo']['n_trees']} trees, "
          f"{size / 1e6:.1f} MB, {how} in {result.seconds:.1f}s")  # fmt: skip
    groups = kurtosis_rises(result.root, truth)
    print("   fraction of fine-tune edges whose summed square-matrix kurtosis rises:")
    for key in sorted(groups, key=lambda g: (g != "all", g.count(" "), g)):
        rises = groups[key]
        print(f"   {key:<36} {sum(rises) / len(rises):6.2f}  ({sum(rises)}/{len(rises)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("presets", nargs="*", default=["tiny"])
    parser.add_argument("--cache-dir", type=Path, help="reuse this zoo cache (default: fresh)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="zoo-signal-") as tmp:
        work = Path(tmp)
        for preset in args.presets:
            report(preset, work, args.cache_dir or work / "cache")


if __name__ == "__main__":
    main()
