"""Which tensors two (or three, with a base) models can be compared on, and how.

A tensor is compared when every model has it under the same name with the same shape.
A vocabulary mismatch (an embedding or LM head whose shapes differ only in the first
dimension, e.g. 32000 vs 32002 rows after adding tokens) is compared on the leading rows
all models share, which are the original tokens, and a note says so. Any other shape
mismatch, and names missing from some model, are listed as skipped, never an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PlannedTensor:
    name: str
    shape: tuple[int, ...]  # the compared shape: leading rows only on a vocab mismatch

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class TensorPlan:
    tensors: list[PlannedTensor] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    notes: list[str] = field(default_factory=list)


def plan_comparison(
    shapes: Sequence[Mapping[str, tuple[int, ...]]], labels: Sequence[str]
) -> TensorPlan:
    """Plan over models given as {tensor name: shape}, labelled e.g. ('a', 'b', 'base').

    Order follows the first model's tensor order (its storage order: sequential reads).
    """
    plan = TensorPlan()
    for name in shapes[0]:
        missing = [label for label, s in zip(labels, shapes, strict=True) if name not in s]
        if missing:
            plan.skipped.append((name, f"not in {', '.join(missing)}"))
            continue
        _plan_one(name, [tuple(s[name]) for s in shapes], labels, plan)
    for label, s in zip(labels[1:], shapes[1:], strict=True):
        for name in s:
            if name not in shapes[0]:
                plan.skipped.append((name, f"only in {label}, not in {labels[0]}"))
    return plan


def _plan_one(
    name: str, shapes: list[tuple[int, ...]], labels: Sequence[str], plan: TensorPlan
) -> None:
    if all(s == shapes[0] for s in shapes):
        plan.tensors.append(PlannedTensor(name, shapes[0]))
        return
    if _differ_in_rows_only(shapes):
        rows = min(s[0] for s in shapes)
        plan.tensors.append(PlannedTensor(name, (rows, *shapes[0][1:])))
        sizes = ", ".join(f"{label}={s[0]}" for label, s in zip(labels, shapes, strict=True))
        plan.notes.append(
            f"{name}: compared the first {rows} rows only (vocabulary sizes differ: {sizes})"
        )
        return
    described = ", ".join(f"{label}={list(s)}" for label, s in zip(labels, shapes, strict=True))
    plan.skipped.append((name, f"incompatible shapes {described}"))


def _differ_in_rows_only(shapes: list[tuple[int, ...]]) -> bool:
    ranks = {len(s) for s in shapes}
    if len(ranks) != 1 or 0 in ranks:
        return False
    return len({s[1:] for s in shapes}) == 1 and min(s[0] for s in shapes) > 0
