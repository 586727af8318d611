"""Where a tensor sits in a transformer: before the layers, in layer i, or after them.

mergekit knows each architecture's tensor names; lineage reads any safetensors model, so
it recognises the common layer containers by name (``model.layers.3.``, ``transformer.h.3.``,
``encoder.layer.3.``, ``blocks.3.``) and classifies the other tensors: output-side ones
(final norms, ``lm_head``, classifier heads) come after the layers, everything else
(embeddings) before. This decides slices (which tensors a layer range copies) and the
position ``t`` of gradient parameters: ``i / (n - 1)`` for layer i of a slice of n layers
(1 for a one-layer slice), 0 outside the layers, before or after (mergekit 0.1.5's planner
reads both with ``t = 0``; older mergekit used 1 after the layers).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

LAYER = re.compile(r"^(?P<prefix>(?:.*\.)?(?:layers|layer|h|blocks|block))\.(?P<index>\d+)\."
                   r"(?P<rest>.+)$")
POST = re.compile(r"(^|\.)(lm_head|head|heads|classifier|score|pooler|ln_f|norm_f|"
                  r"final_layer_norm|final_layernorm|norm|layernorm|output|embed_out)(\.|$)")
LAYER_COUNT_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")


@dataclass(frozen=True)
class LayerName:
    prefix: str
    index: int
    rest: str

    def at(self, index: int) -> str:
        return f"{self.prefix}.{index}.{self.rest}"


def split_layer(name: str) -> LayerName | None:
    """``model.layers.3.mlp.up.weight`` -> (``model.layers``, 3, ``mlp.up.weight``)."""
    m = LAYER.match(name)
    return LayerName(m["prefix"], int(m["index"]), m["rest"]) if m else None


def is_post(name: str) -> bool:
    """A non-layer tensor on the output side (final norm, lm_head, classifier head)."""
    if split_layer(name) is not None or "embeddings." in name:  # embeddings' own norms: pre
        return False
    return POST.search(name) is not None


def count_layers(names: Iterable[str]) -> int:
    """Number of layers: 1 + the largest layer index (0 when no tensor is in a layer)."""
    indices = [ln.index for n in names if (ln := split_layer(n)) is not None]
    return max(indices) + 1 if indices else 0


def position(name: str, n_layers: int, offset: int = 0) -> float:
    """mergekit's ``t`` for a tensor of a whole-model merge (one slice of every layer)."""
    ln = split_layer(name)
    if ln is None:
        return 0.0  # mergekit 0.1.5 plans embeddings, final norm and lm_head at t = 0
    i = ln.index - offset
    return i / (n_layers - 1) if n_layers > 1 else 1.0
