"""What recovery reads: per-model metadata and per-tensor fingerprints, as plain values.

Recovery never touches weights or the catalog itself. The caller (jobs/recover.py, a
notebook, a benchmark) hands it `ModelInput`s built from the catalog's `models` and
`tensors` rows. Everything recovery needs is in them: moments and sketches for distances
and direction, and for 2-D matrices a rank sketch (LoRA ranks) and a coordinate sample
(TIES/DARE merges). Fingerprints from before those existed carry None there, and
recovery goes on without that evidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

FLOAT_DTYPES = ("F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2")


@dataclass(frozen=True)
class TensorStat:
    """One tensor's fingerprint: exact moments, content hash, linear sketch."""

    shape: tuple[int, ...]
    dtype: str
    content_hash: str
    mean: float
    std: float
    kurtosis: float
    sketch: np.ndarray  # float32 [min(width, numel)]
    rank_sketch: np.ndarray | None = None  # float32 [min(m, k), min(n, k)]: L W R
    sample: np.ndarray | None = None  # float32 values at the arch's fixed coordinates
    sample_size: int | None = None  # the sample size that placed the coordinates

    @property
    def numel(self) -> int:
        return math.prod(int(d) for d in self.shape)  # 1 for a scalar

    @property
    def sq_norm(self) -> float:
        """||x||^2 = n (std^2 + mean^2), exact from the moments."""
        return self.numel * (self.std**2 + self.mean**2)


@dataclass(frozen=True)
class ModelInput:
    """A model as recovery sees it. `tensors` may be empty for adapter-only repos."""

    model_id: str
    arch_signature: str = ""
    kind: str = "transformers"  # transformers | peft-adapter | diffusers | ...
    model_type: str | None = None
    dtype: str | None = None  # the dtype holding most elements
    card_base_models: tuple[str, ...] = ()
    card_relation: str | None = None
    adapter_base: str | None = None
    created_at: float | None = None  # Hub creation time (epoch s); tie-breaks re-uploads
    tensors: Mapping[str, TensorStat] = field(default_factory=dict)

    @property
    def is_adapter(self) -> bool:
        return self.kind == "peft-adapter"

    @property
    def org(self) -> str:
        return self.model_id.split("/")[0] if "/" in self.model_id else ""

    def content_digest(self) -> tuple[tuple[str, str], ...]:
        """(name, hash) of every tensor: equal for byte-identical models."""
        return tuple(sorted((n, t.content_hash) for n, t in self.tensors.items()))


def weights_only(model: ModelInput) -> ModelInput:
    """The model as its weights alone describe it: no card claims (base models,
    relation) and no Hub creation time. The adapter config's base stays: it is what
    PEFT loads the adapter's weights onto, so without it an adapter is not a model."""
    return replace(model, card_base_models=(), card_relation=None, created_at=None)


@dataclass(frozen=True)
class CardEdge:
    """A documented edge (card base_model or adapter config): evidence, not truth."""

    parent: str
    child: str
    relation: str | None = None
