"""Which tensors training left alone: the adapter signal that needs no rank.

A LoRA run (PEFT, bias "none") trains only its adapters and the modules it is told to
save (a new head); merged, it changes the targeted matrices and nothing else. Every
norm gain, every bias and every untargeted matrix (embeddings, a patch or input
convolution, the MLP where only attention was targeted) keeps its bits. A full
fine-tune moves every parameter that gets a gradient: norms and biases always do,
since every token passes through them.

The rank sketch tells the two apart only while the adapter's rank is below the
matrix's smaller side; a LoRA of rank 32 on a 32-wide model (or of rank 256 on a
128-wide adapter bottleneck) is a full-rank change of each targeted matrix, and read
by rank it is a fine-tune (held-out 1024/4: five rank-32 LoRA children of a 32-wide
GPT-2 read as fine-tunes). So an edge is also read as adapter-trained when

- at least one matrix is bit-identical in the two models (a full fine-tune leaves a
  whole matrix untouched only where no gradient reaches it, such as BERT's pooler
  under a masked-LM loss without weight decay), and
- more than half of the single- or double-precision vectors are bit-identical: the
  median, like `rank.rank_fraction`'s, since a saved head trains its own bias.

The vectors also overrule a low rank: a full fine-tune that barely moved can have its
difference's smallest singular values under the rounding floor (rank 63 of 64) and read
as low-rank, but its norms and biases moved (spent 1021/0 and 1021/6: two GPT-2
fine-tunes at rank fraction 0.98-0.99, none of their vectors untouched). A LoRA that
trains biases too (PEFT's bias "all", not the default) is then read as a fine-tune.

Only float32/float64 vectors count (features.exact_vector_hashes): a norm gain near 1
moved by a fine-tune's step can round back to the same bfloat16. Where no such
vector exists the rank decides alone. Low learning-rate SGD can leave float32 norm
gains (near 1, where an ulp is 1.2e-7) untouched too, but not the biases beside
them (near 0, where an ulp is tiny) nor every element of a matrix, which is why both
conditions are asked.
"""

from __future__ import annotations

import numpy as np

from lineage.recovery.features import GroupFeatures


def frozen_vector_share(features: GroupFeatures, i: int, j: int) -> float | None:
    """Share of the float32/float64 vectors both models hold that are bit-identical;
    None where they hold none."""
    if features.vector_hashes is None or features.vector_hashes.shape[1] == 0:
        return None
    a, b = features.vector_hashes[i], features.vector_hashes[j]
    both = np.array([x is not None and y is not None for x, y in zip(a, b, strict=True)])
    if not both.any():
        return None
    return float(np.mean([x == y for x, y in zip(a[both], b[both], strict=True)]))


def adapter_trained(features: GroupFeatures, i: int, j: int, low_rank: bool) -> bool:
    """The pair differs the way a merged adapter differs from its base: most
    exact-precision vectors untouched, and the change low-rank or some matrix untouched
    too. `low_rank` (the rank sketches' reading) decides where no such vector exists."""
    share = frozen_vector_share(features, i, j)
    if share is None:
        return low_rank
    same = features.hashes[i] == features.hashes[j]
    return share > 0.5 and not same.all() and (low_rank or bool(same.any()))
