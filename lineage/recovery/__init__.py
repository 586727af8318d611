"""Model Graph recovery: who was fine-tuned, merged, adapted or cast from whom.

Pure: fingerprints (ModelInput) in, graph (RecoveryResult) out; no Ray, no DuckDB.

    from lineage.recovery import recover_graph, ModelInput, TensorStat, CardEdge
    result = recover_graph(models, card_edges)   # fingerprints only, never weights
    result.edges, result.trees, result.card_disagreements, result.undocumented

`mother_recipe` reproduces MoTHer's own recipe (fixed kurtosis regime, lam 0.3, tree
count given, Ward clustering) for comparison; `evaluate_graph` scores a graph against
a ground truth; `render` draws a family as Mermaid, DOT or a self-contained HTML page.
"""

from lineage.recovery.graph import RELATIONS, RecoveredEdge, RecoveryResult
from lineage.recovery.inputs import CardEdge, ModelInput, TensorStat
from lineage.recovery.recover import RecoveryOptions, recover_graph

__all__ = [
    "RELATIONS",
    "CardEdge",
    "ModelInput",
    "RecoveredEdge",
    "RecoveryOptions",
    "RecoveryResult",
    "TensorStat",
    "recover_graph",
]
