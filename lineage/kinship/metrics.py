"""The kinship metrics, by name: one registry, one line each, with its source.

Delta metrics (Model Kinship, Hu et al. 2024, arXiv 2410.12613) compare x = a - base and
y = b - base over every shared element; without a base they compare raw weights.
Distance metrics compare the weights themselves and ignore the base.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lineage.errors import UnknownNameError
from lineage.kinship.stats import PairStats


@dataclass(frozen=True)
class Metric:
    name: str
    description: str
    higher_is_closer: bool


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("cs", "cosine similarity of deltas (model - base) [Model Kinship]", True),
        Metric("pcc", "Pearson correlation of deltas (model - base) [Model Kinship]", True),
        Metric("ed", "Euclidean distance of deltas (model - base) [Model Kinship]", False),
        Metric("l2", "L2 distance between the weights, |a - b|_2 (base-independent)", False),
        Metric(
            "mother",
            "mean over square 2-D matrices of RMS(a - b) [MoTHer, Horwitz et al. 2024]",
            False,
        ),
    )
}
DEFAULT_METRICS = ("cs", "pcc", "ed")


def parse_metrics(metrics: str | Iterable[str]) -> tuple[str, ...]:
    """'cs,pcc' or ['cs', 'pcc'] -> ('cs', 'pcc'); unknown names raise UnknownNameError."""
    names = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    names = [n.strip().lower() for n in names if n.strip()]
    for name in names:
        if name not in METRICS:
            raise UnknownNameError.of("metric", name, list(METRICS))
    return tuple(dict.fromkeys(names)) or DEFAULT_METRICS


def is_square_matrix(shape: Sequence[int]) -> bool:
    """MoTHer reads square 2-D matrices (attention-like projections, rows == cols)."""
    return len(shape) == 2 and shape[0] == shape[1]


def tensor_metrics(
    names: Sequence[str], shape: Sequence[int], stats: PairStats, absolute: bool = False
) -> dict[str, float | None]:
    """Per-tensor values; 'mother' is None for a tensor that is not a square matrix."""
    out: dict[str, float | None] = {}
    for name in names:
        if name == "mother":
            out[name] = stats.rms_diff() if is_square_matrix(shape) else None
        else:
            out[name] = _from_stats(name, stats, absolute)
    return out


def model_metrics(
    names: Sequence[str],
    tensors: Sequence[tuple[Sequence[int], PairStats]],
    absolute: bool = False,
) -> dict[str, float]:
    """Whole-model values from each shared tensor's (compared shape, stats)."""
    total = PairStats()
    for _, stats in tensors:
        total = total.merge(stats)
    out: dict[str, float] = {}
    for name in names:
        if name == "mother":
            rms = [s.rms_diff() for shape, s in tensors if is_square_matrix(shape)]
            out[name] = math.fsum(rms) / len(rms) if rms else math.nan
        else:
            out[name] = _from_stats(name, total, absolute)
    return out


def _from_stats(name: str, stats: PairStats, absolute: bool) -> float:
    if name == "cs":
        # The original merge_cal prints sqrt(<x,y>^2 / (|x|^2 |y|^2)), i.e. |cos|.
        value = stats.cosine()
        return abs(value) if absolute else value
    if name == "pcc":
        return stats.pearson()
    return stats.euclidean()  # ed and l2: x - y == a - b whatever the base
