"""Across seeds: mean ± std of each method's normalised accuracy, and paired comparisons.

One seed's ranking cannot order methods 1-2 points apart (1 point of the average is about
29 test images), so the order is stated from several seeds: a method is above another
when the 95% t-interval of their per-seed difference (paired: both merged from the same
root and specialists) excludes 0, and tied otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# (method, other, what the seed papers report): each checked with the paired difference.
CLAIMS = (
    ("ties", "task_arithmetic", "TIES above task arithmetic (TIES and TALL papers: ~3 points "
                                "on ViT-B/32, 8 tasks)"),
    ("consensus_ta", "task_arithmetic", "consensus TA above task arithmetic (TALL paper)"),
    ("consensus_ties", "ties", "consensus TIES above TIES (TALL paper)"),
    ("consensus_ties", "task_arithmetic", "consensus TIES above task arithmetic (TALL paper)"),
    ("ubgm", "fisher", "UBGM above Fisher averaging (UBGM paper)"),
    ("ubgm", "task_arithmetic", "UBGM above task arithmetic (UBGM paper)"),
)
NOT_MERGES = ("root (pre-trained)", "specialists (own task)", "tall_mask (recon.)")


@dataclass(frozen=True)
class Paired:
    """Per-seed difference a - b (normalised points): mean, std, 95% half-width, wins."""

    mean: float
    std: float
    half: float
    wins: int
    n: int

    @property
    def verdict(self) -> str:
        if self.mean - self.half > 0:
            return "above"
        if self.mean + self.half < 0:
            return "below"
        return "tie"


def paired(a: list[float], b: list[float]) -> Paired:
    from scipy.stats import t as student

    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    std = float(d.std(ddof=1)) if n > 1 else math.nan
    half = float(student.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else math.inf
    return Paired(float(d.mean()), std, half, int((d > 0).sum()), n)


def _pm(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    std = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return f"{v.mean():.1f} ± {std:.1f}"


def ranks(per_seed: dict[str, list[float]]) -> dict[str, float]:
    """Mean rank of each merge method over seeds (1 = best)."""
    merges = [m for m in per_seed if m not in NOT_MERGES]
    n = len(next(iter(per_seed.values())))
    total = dict.fromkeys(merges, 0.0)
    for s in range(n):
        order = sorted(merges, key=lambda m: -per_seed[m][s])
        for r, m in enumerate(order, 1):
            total[m] += r
    return {m: total[m] / n for m in merges}


def report(per_seed: dict[str, list[float]], seeds: list[int], seconds: list[float]) -> str:
    """Markdown: the table (mean ± std, min-max, mean rank), the order, the claims."""
    mean_rank = ranks(per_seed)
    merges = sorted(mean_rank, key=lambda m: -np.mean(per_seed[m]))
    best = merges[0]
    tied = [m for m in merges[1:] if paired(per_seed[best], per_seed[m]).verdict == "tie"]
    lines = [f"Normalised accuracy % over {len(seeds)} seeds ({', '.join(map(str, seeds))}; "
             f"{np.mean(seconds):.0f} s per seed on average):", "",
             "| method | norm % mean ± std | min – max | mean rank | vs best |",
             "|---|---|---|---|---|"]
    for m in [*[x for x in per_seed if x in NOT_MERGES[:2]], *merges, NOT_MERGES[2]]:
        if m not in per_seed:
            continue
        v = per_seed[m]
        rank = f"{mean_rank[m]:.1f}" if m in mean_rank else ""
        vs = ""
        if m in mean_rank and m != best:
            p = paired(per_seed[best], per_seed[m])
            vs = f"{-p.mean:+.1f} ± {p.half:.1f}" + (" (tied)" if p.verdict == "tie" else "")
        elif m == best:
            vs = "best"
        lines.append(f"| {m} | {_pm(v)} | {min(v):.1f} – {max(v):.1f} | {rank} | {vs} |")
    lines += ["", f"Order: **{best}** has the highest mean; "
              + (f"tied with it (the 95% interval of the paired difference includes 0): "
                 f"{', '.join(tied)}." if tied else "no other method is tied with it.")]
    lines += ["", "The seed papers' claims, as paired differences (points, mean ± 95% "
              "half-width, seeds won):", ""]
    for a, b, claim in CLAIMS:
        if a not in per_seed or b not in per_seed:
            continue
        p = paired(per_seed[a], per_seed[b])
        says = {"above": "agrees", "below": "the opposite", "tie": "a tie"}[p.verdict]
        lines.append(f"- {claim}: {a} − {b} = {p.mean:+.2f} ± {p.half:.2f} "
                     f"({p.wins}/{p.n} seeds) → {says}")
    return "\n".join(lines) + "\n"


def chart(per_seed: dict[str, list[float]], path: Path, ref: str = "task_arithmetic") -> None:
    """Left: mean ± std over seeds. Right: each merge minus ``ref``, paired, with its 95%
    interval (what decides the order: an interval across 0 is a tie)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [m for m in per_seed if m not in NOT_MERGES[:2]]
    means = [float(np.mean(per_seed[m])) for m in names]
    stds = [float(np.std(per_seed[m], ddof=1)) if len(per_seed[m]) > 1 else 0.0
            for m in names]
    n = len(next(iter(per_seed.values())))
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    left.bar(names, means, yerr=stds, capsize=3, color="#4c72b0")
    root = per_seed.get(NOT_MERGES[0])
    if root:
        left.axhline(float(np.mean(root)), color="#c44e52", lw=1, ls="--", label="root (mean)")
        left.legend(loc="lower left")
    left.axhline(100, color="grey", lw=0.8)
    left.set_ylabel("normalised accuracy %, mean ± std")
    left.set_ylim(min(means) - 15, 102)
    left.set_title(f"Merging 8 digit specialists, {n} seeds")
    merges = [m for m in names if m not in NOT_MERGES and m != ref]
    diffs = [paired(per_seed[m], per_seed[ref]) for m in merges]
    colors = ["#55a868" if d.verdict == "above" else "#c44e52" if d.verdict == "below"
              else "#8c8c8c" for d in diffs]
    right.bar(merges, [d.mean for d in diffs], yerr=[d.half for d in diffs], capsize=3,
              color=colors)
    right.axhline(0, color="black", lw=0.8)
    right.set_ylabel(f"minus {ref}, points (paired, 95% interval)")
    right.set_title("grey: tied with " + ref)
    for ax in (left, right):
        plt.setp(ax.get_xticklabels(), rotation=60, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
