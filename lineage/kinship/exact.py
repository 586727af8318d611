"""Exact kinship of two models (optionally against a base), streaming tensor by tensor.

Memory is one chunk per model (float64, CHUNK_ELEMENTS) plus per-tensor results, never
a whole model: for each shared tensor we read the same chunk of a, b and base, form the
deltas x = a - base and y = b - base, and fold their PairStats into float64 sums.
Model Kinship's tool instead loads three full fp32 state dicts and concatenates deltas.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from lineage.errors import ModelNotFoundError
from lineage.kinship.metrics import DEFAULT_METRICS, parse_metrics
from lineage.kinship.pairing import PlannedTensor, TensorPlan, plan_comparison
from lineage.kinship.reader import CHUNK_ELEMENTS, ChunkReader
from lineage.kinship.result import KinshipResult, assemble_result, incompatible_error
from lineage.kinship.stats import PairStats
from lineage.weights import ModelWeights, open_model
from lineage.weights.dtypes import is_float

ModelRef = str | Path | ModelWeights
Resolver = Callable[[str], str | Path]


def resolve_local(ref: str) -> Path:
    """The default resolver: an existing local file or folder, else ModelNotFoundError."""
    path = Path(ref).expanduser()
    if not path.exists():
        raise ModelNotFoundError(
            f"model {ref!r}",
            "is not an existing local file or folder (catalog ids are not resolved here)",
            "Pass the path of a model folder or a .safetensors file",
        )
    return path


def kinship(
    a: ModelRef,
    b: ModelRef,
    base: ModelRef | None = None,
    *,
    metrics: str | Iterable[str] = DEFAULT_METRICS,
    per_layer: bool = False,
    absolute: bool = False,
    resolve: Resolver | None = None,
    chunk: int = CHUNK_ELEMENTS,
) -> KinshipResult:
    """Exact kinship metrics of models `a` and `b`, over deltas against `base` if given.

    Models are paths, ids that `resolve` maps to paths (default: local paths only), or
    open ModelWeights. `metrics`: names from lineage.kinship.METRICS ('cs,pcc,ed').
    `absolute` reports |cs|, as Model Kinship's merge_cal prints it.
    Raises IncompatibleModelsError when the models share no comparable float tensor.
    """
    names = parse_metrics(metrics)
    refs = [r for r in (a, b, base) if r is not None]
    labels = ["a", "b", "base"][: len(refs)]
    with ExitStack() as stack:
        models = [_open(r, resolve or resolve_local, stack) for r in refs]
        plan = _plan(models, labels)
        if not plan.tensors:
            raise incompatible_error(refs, plan)
        readers = [stack.enter_context(ChunkReader(m)) for m in models]
        per_tensor = [(t, _tensor_stats(readers, t, chunk)) for t in plan.tensors]
    return assemble_result(refs, names, per_tensor, plan, per_layer, absolute, "exact")


def _open(ref: ModelRef, resolve: Resolver, stack: ExitStack) -> ModelWeights:
    if isinstance(ref, ModelWeights):
        return ref
    path = ref if isinstance(ref, Path) else Path(resolve(str(ref)))
    return stack.enter_context(open_model(path))


def _plan(models: list[ModelWeights], labels: list[str]) -> TensorPlan:
    """Compare float tensors only; integer buffers and masks are listed as skipped."""
    infos = [m.infos() for m in models]
    shapes = [{n: i.shape for n, i in inf.items() if is_float(i.dtype)} for inf in infos]
    plan = plan_comparison(shapes, labels)
    for label, inf in zip(labels, infos, strict=True):
        for name, info in inf.items():
            if not is_float(info.dtype):
                plan.skipped.append((name, f"{info.dtype} in {label}: not a float tensor"))
    return plan


def _tensor_stats(readers: list[ChunkReader], tensor: PlannedTensor, chunk: int) -> PairStats:
    streams = [r.chunks(tensor.name, tensor.numel, chunk) for r in readers]
    stats = PairStats()
    for parts in zip(*streams, strict=True):
        if len(parts) == 3:  # chunks are fresh arrays: subtract the base in place
            x = np.subtract(parts[0], parts[2], out=parts[0])
            y = np.subtract(parts[1], parts[2], out=parts[1])
        else:
            x, y = parts
        stats = stats.merge(PairStats.of_chunk(x, y))
    return stats
