"""Parameter values that vary by tensor: mergekit's gradients and filters.

mergekit lets any parameter be

    t: 0.5                                   # a scalar
    t: [0, 0.5, 1]                           # a gradient over the layers of a slice
    t:                                       # filters: the first whose `filter` is a
      - filter: self_attn                    #   substring of the tensor name wins;
        value: [0, 0.5, 0.3, 0.7, 1]         #   an entry without `filter` matches all
      - value: 0.5

A gradient with k anchors is evaluated at the tensor's position ``t`` in [0, 1] (layer
``i`` of ``n`` in its slice: ``i / (n - 1)``; tensors outside the layers: 0) by
linear interpolation between anchors ``floor(t (k-1))`` and the next, as mergekit does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lineage.errors import SpecError

MAX_ANCHORS = 1024
MAX_FILTERS = 64


@dataclass(frozen=True)
class Gradient:
    """Anchors interpolated over a slice's layers."""

    anchors: tuple[Any, ...]


@dataclass(frozen=True)
class Filtered:
    """(substring or None, setting) pairs; the first matching pair wins."""

    cases: tuple[tuple[str | None, Any], ...]


def parse_setting(value: Any, check: Callable[[Any], Any], where: str) -> Any:
    """Validate a raw YAML value into a scalar (via ``check``), Gradient or Filtered."""
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        return Filtered(tuple(_case(v, check, where) for v in value[:MAX_FILTERS + 1]))
    if isinstance(value, list):
        if not value or len(value) > MAX_ANCHORS:
            raise SpecError(f"{where} = {value!r:.80}",
                            f"a gradient needs 1 to {MAX_ANCHORS} values", "Fix the list")
        return Gradient(tuple(check(v) for v in value))
    if isinstance(value, Mapping):
        raise SpecError(f"{where} = {value!r:.80}",
                        "a mapping is not a parameter value",
                        "Use a scalar, a list (gradient) or a list of {filter, value}")
    return check(value)


def _case(raw: Mapping, check, where: str) -> tuple[str | None, Any]:
    extra = [k for k in raw if k not in ("filter", "value")]
    flt = raw.get("filter")
    if extra or "value" not in raw or (flt is not None and not isinstance(flt, str)):
        raise SpecError(f"{where} filter entry {dict(raw)!r:.80}",
                        "each entry is {filter: <substring>, value: <value>}",
                        "Give `value:` and optionally a `filter:` string")
    inner = raw["value"]
    if isinstance(inner, list) and any(isinstance(v, Mapping) for v in inner):
        raise SpecError(f"{where}", "filters cannot nest", "Use one level of filters")
    return flt, parse_setting(inner, check, where)


def is_dynamic(setting: Any) -> bool:
    return isinstance(setting, Gradient | Filtered)


def evaluate(setting: Any, tensor_name: str, t: float) -> Any:
    """The setting's value for tensor ``tensor_name`` at layer position ``t`` in [0, 1]."""
    if isinstance(setting, Filtered):
        for flt, inner in setting.cases:
            if flt is None or flt in tensor_name:
                return evaluate(inner, tensor_name, t)
        return None
    if isinstance(setting, Gradient):
        return _interpolate(setting.anchors, t)
    if isinstance(setting, list):  # a per-model list of settings
        return [evaluate(s, tensor_name, t) for s in setting]
    return setting


def _interpolate(anchors: tuple[Any, ...], t: float) -> Any:
    if len(anchors) == 1:
        return anchors[0]
    if not all(isinstance(a, int | float) and not isinstance(a, bool) for a in anchors):
        return anchors[int(t * (len(anchors) - 1))]  # non-numeric: the anchor at t
    scaled = t * (len(anchors) - 1)
    i0 = int(math.floor(scaled))
    i1 = min(len(anchors) - 1, i0 + 1)
    frac = scaled - i0
    return (1 - frac) * anchors[i0] + frac * anchors[i1]


def evaluate_all(kwargs: Mapping[str, Any], tensor_name: str, t: float) -> dict[str, Any]:
    """Every keyword of a plan evaluated for one tensor (no-op for static values)."""
    return {k: evaluate(v, tensor_name, t) for k, v in kwargs.items()}
