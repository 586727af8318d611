"""What a kinship computation returns, exact or estimated from sketches."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from lineage.errors import IncompatibleModelsError
from lineage.kinship.metrics import model_metrics, tensor_metrics
from lineage.kinship.pairing import PlannedTensor, TensorPlan
from lineage.kinship.stats import PairStats


@dataclass(frozen=True)
class LayerKinship:
    """One tensor's values; `shape` is the compared shape (leading rows on vocab mismatch)."""

    name: str
    shape: tuple[int, ...]
    values: dict[str, float | None]


@dataclass(frozen=True)
class KinshipResult:
    a: str
    b: str
    base: str | None
    method: str  # "exact" | "sketch" | "model-sketch"
    values: dict[str, float]  # metric name -> value (NaN when undefined)
    n_tensors: int = 0
    n_elements: int = 0
    layers: list[LayerKinship] = field(default_factory=list)  # filled with per_layer=True
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (tensor name, reason)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready: NaN becomes None (JSON has no NaN)."""
        return {
            "a": self.a,
            "b": self.b,
            "base": self.base,
            "method": self.method,
            "values": {k: _json_float(v) for k, v in self.values.items()},
            "n_tensors": self.n_tensors,
            "n_elements": self.n_elements,
            "layers": [
                {
                    "name": layer.name,
                    "shape": list(layer.shape),
                    "values": {k: _json_float(v) for k, v in layer.values.items()},
                }
                for layer in self.layers
            ],
            "skipped": [{"name": n, "reason": r} for n, r in self.skipped],
            "notes": list(self.notes),
        }


def _json_float(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def assemble_result(
    refs: list,
    names: tuple[str, ...],
    per_tensor: list[tuple[PlannedTensor, PairStats]],
    plan: TensorPlan,
    per_layer: bool,
    absolute: bool,
    method: str,
) -> KinshipResult:
    """Shared by the exact and the sketch paths: same metrics, same notes, same shape."""
    values = model_metrics(names, [(t.shape, s) for t, s in per_tensor], absolute)
    layers = [
        LayerKinship(t.name, t.shape, tensor_metrics(names, t.shape, s, absolute))
        for t, s in per_tensor
        if per_layer
    ]
    return KinshipResult(
        a=label_of(refs[0]),
        b=label_of(refs[1]),
        base=label_of(refs[2]) if len(refs) > 2 else None,
        method=method,
        values=values,
        n_tensors=len(per_tensor),
        n_elements=sum(t.numel for t, _ in per_tensor),
        layers=layers,
        skipped=list(plan.skipped),
        notes=plan.notes + _notes(names, len(refs) > 2, plan, values),
    )


def _notes(names: tuple[str, ...], has_base: bool, plan: TensorPlan, values: dict) -> list[str]:
    notes = []
    if not has_base and {"cs", "pcc", "ed"} & set(names):
        notes.append("no base given: cs, pcc and ed compare the raw weights (base = 0)")
    if "mother" in names and values["mother"] != values["mother"]:
        notes.append("mother is undefined: the models share no square 2-D matrix")
    if plan.skipped:
        notes.append(f"{len(plan.skipped)} tensors skipped (see skipped)")
    return notes


def label_of(ref: object) -> str:
    """A model's display name: an open model's path, else the reference as given."""
    path = getattr(ref, "path", None)
    return str(path) if path is not None else str(ref)


def incompatible_error(refs: list, plan: TensorPlan) -> IncompatibleModelsError:
    who = " and ".join(label_of(r) for r in refs[:2])
    if len(refs) > 2:
        who += f" (base {label_of(refs[2])})"
    reasons = "; ".join(f"{n}: {r}" for n, r in plan.skipped[:3])
    return IncompatibleModelsError(
        f"models {who}",
        "share no float tensor with the same name and a comparable shape"
        + (f" (e.g. {reasons})" if reasons else ""),
        "Compare models of the same architecture (same arch_signature), or check the base",
    )
