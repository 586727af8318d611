"""Merge methods on real zoo models: per-task accuracy, merge time, peak memory.

    python bench/merge_table.py [--out DIR] [--n-fisher 256]

Builds (or reuses from the zoo cache) a dedicated zoo: one ViT root pretrained on digits
and four full fine-tunes on different digit tasks. Every merge method of lineage.merge
merges the four fine-tunes onto the root; each result is scored with lineage.zoo's
held-out accuracy on each task. The table is the one merging papers print: accuracy
per task and average, and the average normalized by each fine-tuned model's own accuracy
(100% = as good as the specialists). Fisher and UBGM use Fishers estimated with the
`lineage fisher` logic (jobs.merging.fisher_job) on each task's training data; TALL masks
choose lambda per task on held-out accuracy and reconstruct each task's model; the
consensus rows drop weights active in fewer than two task masks.

Each merge runs in a fresh process so its time and peak RSS (ru_maxrss, plus the rise
over the process's high-water mark before the merge) are its own.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import tempfile
import time
from pathlib import Path

TASKS = ("digits-rot90", "digits-mirror", "digits-invert", "digits-noise")
SPEC = {
    "name": "merge-bench",
    "seed": 0,
    # Enough fine-tuning that each specialist really learns its shifted task (85-95%).
    "train": {"root_steps": 600, "child_steps": 150, "child_lr": 3e-3, "batch_size": 256},
    "trees": [{"arch": "vit", "init": "hf", "branching": [4], "relation": "finetune",
               "adapters": False, "tasks": list(TASKS)}],
}


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _do(kind: str, args: tuple, suffix: str = "") -> None:
    from lineage.merge import compress, merge_models, reconstruct

    if kind == "merge":
        merge_models(args[0], args[1] + suffix, progress=False)
        return
    base, models, out, lams, recon = args
    compress(base, models, out + suffix, lam=lams)
    for t, folder in enumerate(recon):
        reconstruct(out + suffix, t, folder + suffix)


def _child(job: tuple) -> tuple[float, int, int]:
    """In a fresh process: one warm-up run into scratch folders (imports, torch's thread
    pools and allocator caches), then the measured run. Returns seconds, peak RSS (KB) and
    the peak's rise over the RSS before the measured run (KB)."""
    kind, args = job
    _do(kind, args, ".warmup")
    # Writing 5 to clear_refs resets the peak-RSS mark (VmHWM), so the peak read after
    # the run is the measured run's own.
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kb("VmRSS")
    start = time.perf_counter()
    _do(kind, args)
    seconds = time.perf_counter() - start
    peak = _status_kb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return seconds, peak, max(0, peak - before)


def run_isolated(job: tuple) -> tuple[float, int, int]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(_child, (job,))


def build(out: Path) -> tuple[str, dict[str, str]]:
    """The zoo: root folder and {task: fine-tuned folder}."""
    from lineage.zoo import build_zoo

    zoo = build_zoo(SPEC, progress=False)
    nodes = zoo.ground_truth["nodes"]
    root = next(n for n in nodes if n["relation"] == "root")
    children = {n["task"]: str(zoo.root / n["id"]) for n in nodes if n["relation"] == "finetune"}
    return str(zoo.root / root["id"]), children


def fishers(base: str, children: dict[str, str], out: Path, n: int) -> dict[str, str]:
    from jobs.merging import fisher_job

    paths = {"base": str(fisher_job(base, "zoo:digits", out / "base.fisher.safetensors",
                                    n=n).path)}
    for task, folder in children.items():
        paths[task] = str(fisher_job(folder, f"zoo:{task}", out / f"{task}.fisher.safetensors",
                                     n=n).path)
    return paths


def recipes(base: str, children: dict[str, str], fisher: dict[str, str], n: int) -> dict:
    def models(**per):
        return [{"model": folder, "parameters": {k: (v(t) if callable(v) else v)
                                                 for k, v in per.items()}}
                for t, folder in children.items()]

    gta = {"base_model": base}
    return {
        "linear (average)": {"merge_method": "linear", "models": models(weight=1.0)},
        "task_arithmetic": {**gta, "merge_method": "task_arithmetic",
                            "models": models(weight=1.0), "parameters": {"lambda": 0.4}},
        "ties": {**gta, "merge_method": "ties", "models": models(weight=1.0, density=0.2)},
        "dare_ties": {**gta, "merge_method": "dare_ties", "seed": 0,
                      "models": models(weight=0.5, density=0.3)},
        "breadcrumbs_ties": {**gta, "merge_method": "breadcrumbs_ties",
                             "models": models(weight=0.5, density=0.5, gamma=0.01)},
        "model_stock": {**gta, "merge_method": "model_stock", "models": models()},
        "fisher": {"merge_method": "fisher", "models": models(fisher=lambda t: fisher[t])},
        "ubgm": {"merge_method": "ubgm", "base_model": base, "parameters": {"lambda": 1.0},
                 "models": [{"model": base, "parameters": {"fisher": fisher["base"],
                                                           "size": float(n)}},
                            *models(fisher=lambda t: fisher[t], size=float(n))]},
        "consensus_ta": {**gta, "merge_method": "consensus_ta", "models": models(weight=1.0),
                         "parameters": {"k": 2, "lam": 0.4, "lambda": 0.4}},
        "consensus_ties": {**gta, "merge_method": "consensus_ties",
                           "models": models(weight=1.0, density=0.2),
                           "parameters": {"k": 2, "lam": 0.4}},
    }


def choose_lams(base: str, children: dict[str, str], work: Path) -> list[float]:
    """TALL's per-task lambda, chosen on held-out accuracy of each reconstruction."""
    from safetensors.torch import save_file

    from lineage.merge import compress
    from lineage.zoo import evaluate

    tasks = list(children)

    def score(t, lam, state):
        folder = work / f"lam-{t}-{lam}"
        folder.mkdir(parents=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
        shutil.copy(Path(base) / "config.json", folder / "config.json")
        return evaluate(folder, tasks[t])

    result = compress(base, list(children.values()), work / "choose", score=score)
    return list(result.lams)


def evaluate_all(folder: str, tasks) -> dict[str, float]:
    from lineage.zoo import evaluate

    return {t: evaluate(folder, t) for t in tasks}


def print_table(rows: list[dict], tasks, finetuned: dict[str, float]) -> None:
    short = [t.removeprefix("digits-") for t in tasks]
    head = f"{'method':<20}" + "".join(f"{s:>8}" for s in short)
    head += f"{'avg':>8}{'norm%':>8}{'time s':>9}{'peakMB':>8}{'+MB':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        acc = [r["acc"][t] for t in tasks]
        norm = sum(r["acc"][t] / finetuned[t] for t in tasks) / len(tasks) * 100
        cells = "".join(f"{a * 100:8.1f}" for a in acc)
        timing = (f"{r['seconds']:9.2f}{r['peak_kb'] / 1024:8.0f}{r['rise_kb'] / 1024:7.1f}"
                  if "seconds" in r else f"{'':9}{'':8}{'':7}")
        print(f"{r['name']:<20}{cells}{sum(acc) / len(acc) * 100:8.1f}{norm:8.1f}{timing}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="work folder (default: a temporary one)")
    parser.add_argument("--n-fisher", type=int, default=64, help="examples per Fisher")
    args = parser.parse_args(argv)
    work = Path(args.out or tempfile.mkdtemp(prefix="merge-bench-"))
    t0 = time.perf_counter()
    base, children = build(work)
    tasks = list(children)
    print(f"zoo ready in {time.perf_counter() - t0:.0f} s: root {base}, tasks {', '.join(tasks)}")
    t0 = time.perf_counter()
    fisher = fishers(base, children, work / "fishers", args.n_fisher)
    print(f"{len(fisher)} Fishers ({args.n_fisher} examples each) in "
          f"{time.perf_counter() - t0:.1f} s")
    finetuned = {t: evaluate_all(children[t], [t])[t] for t in tasks}
    rows = [{"name": "base (root)", "acc": evaluate_all(base, tasks)},
            {"name": "fine-tuned (own task)", "acc": finetuned}]
    for name, recipe in recipes(base, children, fisher, args.n_fisher).items():
        out = work / "merged" / name.split()[0]
        seconds, peak, rise = run_isolated(("merge", (recipe, str(out))))
        rows.append({"name": name, "acc": evaluate_all(str(out), tasks), "seconds": seconds,
                     "peak_kb": peak, "rise_kb": rise})
    lams = choose_lams(base, children, work / "tall-choose")
    recon = [str(work / "tall" / f"task{t}") for t in range(len(tasks))]
    seconds, peak, rise = run_isolated(("tall", (base, list(children.values()),
                                                 str(work / "tall" / "bundle"), lams, recon)))
    acc = {t: evaluate_all(recon[i], [t])[t] for i, t in enumerate(tasks)}
    rows.append({"name": "tall_mask (recon.)", "acc": acc, "seconds": seconds,
                 "peak_kb": peak, "rise_kb": rise})
    print()
    print_table(rows, tasks, finetuned)
    print(f"\nTALL lambdas per task (chosen on held-out accuracy): {lams}; "
          "tall_mask time = compress + 4 reconstructions. work folder: " + str(work))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
