"""Merge methods in the merging papers' regime, in miniature (2 cores, a few minutes).

    python bench/merge_regime.py [--out DIR] [--threads 1] [--seeds 5]

A root MLP pre-trained on 8 digit tasks mixed; per task a frozen head (a few-shot linear
probe of the root, standing in for CLIP's zero-shot heads) and a specialist fine-tuned
body; every method of lineage.merge merges the bodies (bench/merge_regime/tasks.py).
Prints and writes (DIR/merge_regime.md, DIR/*.png):
- accuracy per task, average, normalised accuracy (merged / specialist, per task, mean),
  merge time and peak RSS rise of every method; methods with a final scale (lambda) get it
  chosen on the validation split from 0.1..1.5, as the papers do;
- the two-model methods (slerp, nuslerp, nearswap, arcee_fusion) on the first two tasks;
- TALL-mask reconstruction per task with lambda chosen on validation, its storage ratio,
  and reconstruction accuracy vs lambda (why a large TALL lambda loses accuracy);
- Model Kinship's experiment: iterative merging over generations, greedy top-2 vs
  kinship-guided top-k with exploration (jobs.merging.select.propose), best average
  normalised accuracy per generation;
- with --seeds N, seeds 1..N-1 rerun root, specialists, every method and TALL
  (bench/merge_regime/seeds.py): mean ± std per method, the order with ties stated by
  paired 95% intervals, and the seed papers' claims as paired differences
  (DIR/merge_regime_seeds.md, DIR/merge_regime_seeds.png).
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

_env = __import__("os").environ.get
PRETRAIN_STEPS = int(_env("MERGE_REGIME_PRETRAIN", "40"))
HEAD_SHOTS = int(_env("MERGE_REGIME_SHOTS", "20"))
FT_EPOCHS = int(_env("MERGE_REGIME_EPOCHS", "8"))
FT_LR = float(_env("MERGE_REGIME_LR", "0.02"))
LAMBDAS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5)
TALL_LAMS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _worker_merge(job):
    """In the worker process: one merge, its seconds and peak RSS rise (VmHWM reset)."""
    import torch

    from lineage.merge import merge_models

    torch.set_num_threads(1)
    recipe, out = job
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kb("VmRSS")
    start = time.perf_counter()
    merge_models(recipe, out, progress=False, overwrite=True)
    return time.perf_counter() - start, max(0, _status_kb("VmHWM") - before)


def build(work: Path, threads: int, seed: int = 0):
    """Root, heads, specialists and Fishers for one seed. The seed draws the data splits,
    the root's initialisation and batches, the fine-tuning order and the Fisher labels;
    the eight tasks themselves (transforms, sensors) are the same for every seed, and seed
    0 is the run documented in the README."""
    import torch

    from bench.merge_regime import tasks as T

    torch.set_num_threads(threads)
    data = T.load_tasks(seed=100 * seed)
    root = T.pretrain_root(data, steps=PRETRAIN_STEPS, seed=seed)
    heads, bodies, folders = {}, {}, {}
    for i, task in enumerate(T.TASKS):
        few = T.Split(data[task].train.x[:HEAD_SHOTS], data[task].train.y[:HEAD_SHOTS])
        heads[task] = T.probe_head(root, few)
        bodies[task] = T.finetune(root, heads[task], data[task].train, epochs=FT_EPOCHS, lr=FT_LR,
                                  seed=100 + i + 1000 * seed)
        folders[task] = str(T.save_body(bodies[task], work / "ft" / task))
    base = str(T.save_body(root, work / "root"))
    fishers = {}
    for task in T.TASKS:
        f = T.fisher_diag(bodies[task], heads[task], data[task].train, seed=seed)
        fishers[task] = str(T.save_body(f, work / "fisher" / task) / "model.safetensors")
    fishers["root"] = str(T.save_body(T.fisher_diag(root, heads[T.TASKS[0]],
                                                    data[T.TASKS[0]].pretrain, seed=seed),
                                      work / "fisher" / "root") / "model.safetensors")
    return data, heads, base, folders, fishers


def recipes(base: str, ft: dict[str, str], fisher: dict[str, str]) -> dict[str, tuple]:
    """name -> (recipe, has a final lambda to choose on validation)."""
    def models(**per):
        return [{"model": f, "parameters": {k: (v(t) if callable(v) else v)
                                            for k, v in per.items()}} for t, f in ft.items()]

    gta = {"base_model": base}
    n = len(ft)
    return {
        "linear": ({"merge_method": "linear", "models": models(weight=1.0)}, False),
        "task_arithmetic": ({**gta, "merge_method": "task_arithmetic",
                             "models": models(weight=1.0)}, True),
        "ties": ({**gta, "merge_method": "ties", "models": models(weight=1.0, density=0.2)},
                 True),
        "dare_ties": ({**gta, "merge_method": "dare_ties", "models": models(weight=1.0,
                                                                              density=0.3)}, True),
        "dare_linear": ({**gta, "merge_method": "dare_linear",
                         "models": models(weight=1.0, density=0.3)}, True),
        "breadcrumbs": ({**gta, "merge_method": "breadcrumbs",
                         "models": models(weight=1.0, density=0.5, gamma=0.01)}, True),
        "breadcrumbs_ties": ({**gta, "merge_method": "breadcrumbs_ties",
                              "models": models(weight=1.0, density=0.5, gamma=0.01)}, True),
        "della": ({**gta, "merge_method": "della",
                   "models": models(weight=1.0, density=0.4, epsilon=0.1)}, True),
        "della_linear": ({**gta, "merge_method": "della_linear",
                          "models": models(weight=1.0, density=0.4, epsilon=0.1)}, True),
        "model_stock": ({**gta, "merge_method": "model_stock", "models": models()}, False),
        "fisher": ({"merge_method": "fisher", "models": models(fisher=lambda t: fisher[t])},
                   False),
        "ubgm": ({**gta, "merge_method": "ubgm", "parameters": {"lambda": 1.0},
                  "models": [{"model": base, "parameters": {"fisher": fisher["root"],
                                                             "size": 256.0}},
                             *models(fisher=lambda t: fisher[t], size=256.0)]}, True),
        "consensus_ta": ({**gta, "merge_method": "consensus_ta", "models": models(weight=1.0),
                          "parameters": {"k": 2, "lam": 0.4}}, True),
        "consensus_ties": ({**gta, "merge_method": "consensus_ties",
                            "models": models(weight=1.0, density=0.2),
                            "parameters": {"k": 2, "lam": 0.4}}, True),
        "sce": ({**gta, "merge_method": "sce", "models": models(),
                 "parameters": {"select_topk": 0.5}}, True),
        "multislerp": ({**gta, "merge_method": "multislerp", "models": models(weight=1.0)},
                       False),
        "karcher": ({"merge_method": "karcher", "models": models()}, False),
        "_n": n,
    }


def load_state(folder: str):
    from lineage.weights import open_model

    with open_model(folder) as m:
        return {k: v.clone().float() for k, v in m.iter_tensors()}


def scaled(base_state, merged, lam):
    return {k: base_state[k] + lam * (merged[k] - base_state[k]) for k in merged}


def scores(state, heads, data, split):
    from bench.merge_regime import tasks as T

    return {t: T.accuracy(state, heads[t], getattr(data[t], split)) for t in heads}


def run_methods(work, data, heads, base, ft, fisher, own):
    ctx = multiprocessing.get_context("spawn")
    base_state = load_state(base)
    rows = []
    table = recipes(base, ft, fisher)
    table.pop("_n")
    with ctx.Pool(1) as pool:
        pool.apply(_worker_merge, (({"merge_method": "linear",
                                     "models": [{"model": base, "parameters": {"weight": 1.0}}]},
                                    str(work / "warmup")),))
        for name, (recipe, has_lambda) in table.items():
            out = str(work / "merged" / name)
            seconds, rise = pool.apply(_worker_merge, ((recipe, out),))
            merged = load_state(out)
            lam = 1.0
            if has_lambda:  # the papers' protocol: the scale chosen on validation
                val = {x: sum(scores(scaled(base_state, merged, x), heads, data,
                                     "val").values()) for x in LAMBDAS}
                lam = max(val, key=val.get)
            acc = scores(scaled(base_state, merged, lam), heads, data, "test")
            rows.append({"name": name, "acc": acc, "seconds": seconds, "rise_kb": rise,
                         "lam": lam if has_lambda else None})
    return rows


def pair_methods(work, data, heads, base, ft):
    """Two-model methods on the first two tasks (accuracy on those two)."""
    from lineage.merge import merge_models

    t0, t1 = list(ft)[:2]
    pair = [{"model": ft[t0], "parameters": {"weight": 1.0}},
            {"model": ft[t1], "parameters": {"weight": 1.0}}]
    recipes_ = {
        "slerp (t=0.5)": {"merge_method": "slerp", "base_model": ft[t0],
                          "models": [{"model": ft[t0]}, {"model": ft[t1]}],
                          "parameters": {"t": 0.5}},
        "nuslerp (task vectors)": {"merge_method": "nuslerp", "base_model": base,
                                   "models": pair},
        "nearswap (t=0.01)": {"merge_method": "nearswap", "base_model": ft[t0],
                              "models": [{"model": ft[t1]}], "parameters": {"t": 0.01}},
        "arcee_fusion": {"merge_method": "arcee_fusion", "base_model": ft[t0],
                         "models": [{"model": ft[t1]}]},
        "task_arithmetic (l=0.5)": {"merge_method": "task_arithmetic", "base_model": base,
                                    "models": pair, "parameters": {"lambda": 0.5}},
    }
    sub = {t: heads[t] for t in (t0, t1)}
    rows = []
    for name, r in recipes_.items():
        out = work / "pair" / name.split()[0]
        merge_models(r, out, progress=False, overwrite=True)
        rows.append({"name": name, "acc": scores(load_state(str(out)), sub, data, "test")})
    return rows, (t0, t1)


def run_tall(work, data, heads, base, ft):
    from lineage.merge import compress, reconstruct

    tasks = list(ft)
    curve = {}
    for lam in TALL_LAMS:  # reconstruction accuracy vs lambda (validation), all tasks
        bundle = work / "tall" / f"lam{lam}"
        compress(base, list(ft.values()), bundle, lam=lam, overwrite=True)
        curve[lam] = {}
        for i, t in enumerate(tasks):
            out = work / "tall" / f"rec{lam}-{i}"
            reconstruct(bundle, i, out, overwrite=True)
            curve[lam][t] = scores(load_state(str(out)), {t: heads[t]}, data, "val")[t]
    lams = [max(TALL_LAMS, key=lambda x, t=t: curve[x][t]) for t in tasks]
    start = time.perf_counter()
    result = compress(base, list(ft.values()), work / "tall" / "chosen", lam=lams,
                      overwrite=True)
    acc = {}
    for i, t in enumerate(tasks):
        out = work / "tall" / f"chosen-{i}"
        reconstruct(work / "tall" / "chosen", i, out, overwrite=True)
        acc[t] = scores(load_state(str(out)), {t: heads[t]}, data, "test")[t]
    seconds = time.perf_counter() - start
    return {"name": "tall_mask (recon.)", "acc": acc, "seconds": seconds, "lams": lams,
            "ratio": result.ratio}, curve


def kinship_experiment(data, heads, base, ft, own, generations: int = 6):
    """Iterative merging: greedy top-2 vs kinship-guided top-k with exploration."""
    import torch

    from jobs.merging.select import propose, ranked

    base_state = load_state(base)
    pool0 = {t: load_state(f) for t, f in ft.items()}
    flat0 = torch.cat([v.reshape(-1) for v in base_state.values()])

    def score(state):
        acc = scores(state, heads, data, "val")
        return sum(acc[t] / own[t] for t in acc) / len(acc)

    def merge(a, b):  # task arithmetic of the pair, weight 0.5 each, lambda 1 (= average)
        return {k: 0.5 * (a[k] + b[k]) for k in a}

    def kin(a, b):
        da = torch.cat([v.reshape(-1) for v in a.values()]) - flat0
        db = torch.cat([v.reshape(-1) for v in b.values()]) - flat0
        return float(da @ db / (da.norm() * db.norm()))

    curves = {}
    for strategy in ("greedy top-2", "kinship-guided"):
        pool = dict(pool0)
        sc = {m: score(s) for m, s in pool.items()}
        done: set = set()
        best = [max(sc.values())]
        for g in range(generations):
            if strategy == "greedy top-2":
                order = ranked(sc)
                pairs = [(a, b) for i, a in enumerate(order) for b in order[i + 1:]
                         if frozenset((a, b)) not in done][:1]
            else:
                gen = propose(sc, lambda a, b, p=pool: kin(p[a], p[b]), k=2,
                              threshold=0.95, done=done)
                pairs = [(p.a, p.b) for p in gen.proposals]
            for a, b in pairs:
                done.add(frozenset((a, b)))
                name = f"g{g}({a}+{b})"
                pool[name] = merge(pool[a], pool[b])
                sc[name] = score(pool[name])
            best.append(max(sc.values()))
        curves[strategy] = best
    return curves


def norm(row, own):
    return sum(row["acc"][t] / own[t] for t in row["acc"]) / len(row["acc"]) * 100


def _curve_norm(acc, own, tasks) -> float:
    return sum(acc[t] / own[t] for t in tasks) / len(tasks) * 100


def write_outputs(out: Path, tasks, rows, own, pair_rows, pair_tasks, tall, curve, kin,
                  own_val):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = []
    head = "| method | " + " | ".join(tasks) + " | avg | norm % | lambda | time s | +RSS MB |"
    lines += [head, "|" + "---|" * (len(tasks) + 6)]
    for r in rows:
        acc = [r["acc"][t] * 100 for t in tasks]
        lam = f"{r['lam']:.1f}" if r.get("lam") is not None else ""
        timing = (f"{r['seconds']:.2f} | {r['rise_kb'] / 1024:.1f}" if "rise_kb" in r
                  else (f"{r['seconds']:.2f} | " if "seconds" in r else " | "))
        lines.append(f"| {r['name']} | " + " | ".join(f"{a:.1f}" for a in acc)
                     + f" | {sum(acc) / len(acc):.1f} | {norm(r, own):.1f} | {lam} | {timing} |")
    lines += ["", f"TALL: lambda per task {tall['lams']}; storage {tall['ratio'] * 100:.1f}% "
              f"of the {len(tasks)} fine-tuned bodies (tau_MTL + 1 bit/weight/task) keeping "
              f"{norm(tall, own):.1f}% normalised accuracy.", "",
              "TALL reconstruction (validation, normalised %) vs lambda: "
              + ", ".join(f"{lam}: {_curve_norm(curve[lam], own_val, tasks):.1f}"
                          for lam in curve), "",
              f"Two-model methods on {pair_tasks[0]} + {pair_tasks[1]} (test accuracy %):", "",
              "| method | " + " | ".join(pair_tasks) + " | norm % |", "|---|---|---|---|"]
    for r in pair_rows:
        lines.append(f"| {r['name']} | " + " | ".join(f"{r['acc'][t] * 100:.1f}"
                                                      for t in pair_tasks)
                     + f" | {norm(r, own):.1f} |")
    lines += ["", "Iterative merging, best normalised accuracy (validation) per generation:",
              ""] + [f"- {k}: " + ", ".join(f"{v * 100:.1f}" for v in c) for k, c in kin.items()]
    text = "\n".join(lines) + "\n"
    (out / "merge_regime.md").write_text(text)
    merged = [r for r in rows if "rise_kb" in r or r["name"].startswith("tall")]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.bar([r["name"] for r in merged], [norm(r, own) for r in merged], color="#4c72b0")
    ax.set_ylabel("normalised accuracy %")
    ax.set_title("Merging 8 digit specialists (bodies merged, heads per task)")
    ax.axhline(100, color="grey", lw=0.8)
    ax.axhline(norm(rows[0], own), color="#c44e52", lw=1, ls="--", label=rows[0]["name"])
    ax.legend(loc="lower left")
    plt.setp(ax.get_xticklabels(), rotation=60, ha="right")
    fig.tight_layout()
    fig.savefig(out / "merge_regime_methods.png", dpi=110)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for k, c in kin.items():
        ax.plot(range(len(c)), [v * 100 for v in c], marker="o", label=k)
    ax.set_xlabel("generation")
    ax.set_ylabel("best normalised accuracy % (val)")
    ax.set_title("Iterative merging (Model Kinship's experiment)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "merge_regime_kinship.png", dpi=110)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(list(curve), [_curve_norm(curve[x], own_val, tasks) for x in curve], marker="o")
    ax.set_xlabel("TALL lambda")
    ax.set_ylabel("reconstruction, normalised % (val)")
    fig.tight_layout()
    fig.savefig(out / "merge_regime_tall.png", dpi=110)
    return text


def one_seed(work: Path, threads: int, seed: int) -> dict[str, float]:
    """Normalised accuracy % of the root, every method and TALL reconstruction, one seed."""
    data, heads, base, ft, fisher = build(work, threads, seed)
    own = {t: scores(load_state(ft[t]), {t: heads[t]}, data, "test")[t] for t in ft}
    rows = [{"name": "root (pre-trained)", "acc": scores(load_state(base), heads, data, "test")}]
    rows += run_methods(work, data, heads, base, ft, fisher, own)
    rows.append(run_tall(work, data, heads, base, ft)[0])
    return {r["name"]: norm(r, own) for r in rows}


def across_seeds(work: Path, threads: int, n: int, first: dict[str, float],
                 first_seconds: float) -> str:
    """Seeds 1..n-1 on top of seed 0's numbers; writes merge_regime_seeds.md and .png."""
    from bench.merge_regime import seeds as S

    per_seed = {name: [v] for name, v in first.items()}
    seconds = [first_seconds]
    for seed in range(1, n):
        start = time.perf_counter()
        for name, v in one_seed(work / f"seed{seed}", threads, seed).items():
            per_seed[name].append(v)
        seconds.append(time.perf_counter() - start)
        print(f"seed {seed} in {seconds[-1]:.0f} s")
    text = S.report(per_seed, list(range(n)), seconds)
    (work / "merge_regime_seeds.md").write_text(text)
    S.chart(per_seed, work / "merge_regime_seeds.png")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="work folder (default: a temporary one)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seeds", type=int, default=1,
                        help="also rerun root, specialists, methods and TALL for seeds "
                             "1..N-1 and report mean ± std and paired comparisons")
    args = parser.parse_args(argv)
    work = Path(args.out or tempfile.mkdtemp(prefix="merge-regime-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data, heads, base, ft, fisher = build(work, args.threads)
    tasks = list(ft)
    own = {t: scores(load_state(ft[t]), {t: heads[t]}, data, "test")[t] for t in tasks}
    own_val = {t: scores(load_state(ft[t]), {t: heads[t]}, data, "val")[t] for t in tasks}
    print(f"root + 8 specialists + Fishers in {time.perf_counter() - t0:.0f} s")
    rows = [{"name": "root (pre-trained)", "acc": scores(load_state(base), heads, data, "test")},
            {"name": "specialists (own task)", "acc": own}]
    rows += run_methods(work, data, heads, base, ft, fisher, own)
    tall, curve = run_tall(work, data, heads, base, ft)
    rows.append(tall)
    seed0_seconds = time.perf_counter() - t0
    pair_rows, pair_tasks = pair_methods(work, data, heads, base, ft)
    kin = kinship_experiment(data, heads, base, ft, own_val)
    print(write_outputs(work, tasks, rows, own, pair_rows, pair_tasks, tall, curve, kin,
                        own_val))
    if args.seeds > 1:
        first = {r["name"]: norm(r, own) for r in rows if r["name"] != "specialists (own task)"}
        print(across_seeds(work, args.threads, args.seeds, first, seed0_seconds))
    print(f"total {time.perf_counter() - t0:.0f} s; tables and PNG charts in {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
