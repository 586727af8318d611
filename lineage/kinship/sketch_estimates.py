"""Kinship estimated from linear sketches alone: no weights read.

The count-sketch S is linear and preserves inner products in expectation, so for any
models a, b and base: <a - base, b - base> ~ <S(a) - S(base), S(b) - S(base)>, and the
same for norms and distances. Sums are not preserved by S, but fingerprints carry each
tensor's exact mean, and sum(a - base) = n * (mean_a - mean_base) exactly; together they
give every metric of lineage.kinship.metrics, per tensor or per model, from sketches.

Error: a tensor with n <= width elements is sketched exactly. Otherwise a sketched
cosine is off by about (1 - cos^2) / sqrt(width) (one standard deviation; the raw inner
product by sqrt((1 + cos^2) / width) of |x||y|) and a norm or distance by about
1 / sqrt(2 * width) relative. Whole-model values from per-tensor sketches are tighter:
small tensors are exact and large ones' errors are independent. tests/kinship measure
it on real models.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from lineage.fingerprint import ModelFingerprint
from lineage.kinship.metrics import DEFAULT_METRICS, parse_metrics
from lineage.kinship.pairing import PlannedTensor, TensorPlan, plan_comparison
from lineage.kinship.result import KinshipResult, assemble_result, incompatible_error
from lineage.kinship.stats import PairStats
from lineage.weights.dtypes import is_float


@dataclass(frozen=True)
class SketchedModel:
    """A model as its per-tensor sketches (float32 [min(width, numel)]) and shapes.

    `means` (exact per-tensor means, from fingerprints) are needed for 'pcc' only.
    """

    label: str
    sketches: Mapping[str, np.ndarray]
    shapes: Mapping[str, tuple[int, ...]]
    means: Mapping[str, float] | None = None
    model_sketch: np.ndarray | None = field(default=None, compare=False)

    @classmethod
    def from_fingerprint(cls, fp: ModelFingerprint, label: str = "") -> SketchedModel:
        floats = [t for t in fp.tensors if is_float(t.dtype)]
        return cls(
            label=label,
            sketches={t.name: t.sketch for t in floats},
            shapes={t.name: tuple(t.shape) for t in floats},
            means={t.name: t.mean for t in floats},
            model_sketch=fp.sketch,
        )


def estimate_kinship(
    a: SketchedModel,
    b: SketchedModel,
    base: SketchedModel | None = None,
    *,
    metrics: str | Iterable[str] = DEFAULT_METRICS,
    per_layer: bool = False,
    absolute: bool = False,
) -> KinshipResult:
    """Estimates of lineage.kinship.kinship(a, b, base, ...) from per-tensor sketches.

    Same result type and semantics; method == "sketch". Tensors whose shapes differ
    (even a vocabulary mismatch) are skipped: sketches of different shapes use
    different random maps and are not comparable.
    """
    names = parse_metrics(metrics)
    models = [m for m in (a, b, base) if m is not None]
    labels = ["a", "b", "base"][: len(models)]
    plan = _sketch_plan(models, labels)
    if not plan.tensors:
        raise incompatible_error([m.label for m in models], plan)
    has_means = all(m.means is not None for m in models)
    per_tensor = [(t, _estimate_stats(models, t.name, has_means)) for t in plan.tensors]
    if "pcc" in names and not has_means:
        plan.notes.append("pcc needs per-tensor means (fingerprints carry them); not given")
    result = assemble_result(
        [m.label for m in models], names, per_tensor, plan, per_layer, absolute, "sketch"
    )
    return result if has_means else _without_pcc(result)


def _sketch_plan(models: list[SketchedModel], labels: list[str]) -> TensorPlan:
    plan = plan_comparison([m.shapes for m in models], labels)
    kept: list[PlannedTensor] = []
    for t in plan.tensors:
        widths = {m.sketches[t.name].shape for m in models}
        if any(m.shapes[t.name] != t.shape for m in models):
            plan.skipped.append((t.name, "shapes differ: their sketches are not comparable"))
        elif len(widths) > 1:
            plan.skipped.append((t.name, f"sketch widths differ: {sorted(widths)}"))
        else:
            kept.append(t)
    # Leading-rows notes from the plan do not apply: those tensors were skipped.
    notes = [n for n in plan.notes if "compared the first" not in n]
    return TensorPlan(kept, plan.skipped, notes)


def _estimate_stats(models: list[SketchedModel], name: str, has_means: bool) -> PairStats:
    """Estimated PairStats of x = a - base, y = b - base for one tensor."""
    sk = [np.asarray(m.sketches[name], dtype=np.float64) for m in models]
    n = int(np.prod(models[0].shapes[name]))
    mu = [float(m.means[name]) for m in models] if has_means else [0.0] * len(models)
    if len(models) == 3:
        xs, ys = sk[0] - sk[2], sk[1] - sk[2]
        mx, my = mu[0] - mu[2], mu[1] - mu[2]
    else:
        (xs, ys), (mx, my) = sk, mu
    d = xs - ys
    return PairStats.from_raw(n, n * mx, n * my, xs @ xs, ys @ ys, xs @ ys, d @ d)


def _without_pcc(result: KinshipResult) -> KinshipResult:
    values = {k: (float("nan") if k == "pcc" else v) for k, v in result.values.items()}
    layers = [
        replace(layer, values={k: (None if k == "pcc" else v) for k, v in layer.values.items()})
        for layer in result.layers
    ]
    return replace(result, values=values, layers=layers)


def estimate_from_model_sketches(
    a: np.ndarray, b: np.ndarray, base: np.ndarray | None = None, *, absolute: bool = False
) -> dict[str, float]:
    """cs, ed and l2 from model-level sketches (float32 [width]) alone.

    The model sketch folds every float tensor into one vector, so it answers whole-model
    questions only (no pcc: it needs per-tensor means; no mother: it needs per-matrix
    norms). ed and l2 coincide: (a - base) - (b - base) = a - b.
    """
    x = np.asarray(a, np.float64)
    y = np.asarray(b, np.float64)
    if base is not None:
        x, y = x - base, y - base
    d = x - y
    stats = PairStats.from_raw(x.size, 0.0, 0.0, x @ x, y @ y, x @ y, d @ d)
    cos = stats.cosine()
    return {"cs": abs(cos) if absolute else cos, "ed": stats.euclidean(), "l2": stats.euclidean()}
