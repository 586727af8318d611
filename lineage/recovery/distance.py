"""Weight-space distances between models of one architecture, from sketches.

The count-sketch is linear, so ||S(a) - S(b)||^2 estimates ||a - b||^2 (exactly for
matrices of <= width elements). MoTHer's full fine-tuning distance is the mean over
square matrices of RMS(W_i - W_j) = sqrt(||W_i - W_j||^2 / numel).
"""

from __future__ import annotations

import numpy as np

from lineage.recovery.features import GroupFeatures


def pair_sq_dists(sketch: np.ndarray) -> np.ndarray:
    """[n, n] squared distances between the rows of `sketch` [n, w] (float64).

    Centring first keeps |a|^2 + |b|^2 - 2<a, b> from cancelling when models differ by
    small deltas (dtype casts differ by ~1e-3 relative)."""
    x = sketch - sketch.mean(axis=0, keepdims=True)
    sq = np.einsum("ij,ij->i", x, x)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    np.fill_diagonal(d2, 0.0)
    return np.maximum(d2, 0.0)


def matrix_sq_dists(features: GroupFeatures) -> np.ndarray:
    """[M, n, n]: estimated ||W_i - W_j||^2 per matrix."""
    return np.stack([pair_sq_dists(s) for s in features.sketches])


def mother_distance(features: GroupFeatures, sq: np.ndarray | None = None) -> np.ndarray:
    """[n, n]: MoTHer's distance, mean over square matrices of RMS(W_i - W_j)."""
    sq = matrix_sq_dists(features) if sq is None else sq
    mask = features.square
    rms = np.sqrt(sq[mask] / features.numel[mask][:, None, None])
    return rms.mean(axis=0)


def relative_distance(features: GroupFeatures, sq: np.ndarray | None = None) -> np.ndarray:
    """[n, n]: ||x_i - x_j|| / sqrt((|x_i|^2 + |x_j|^2) / 2), x = all matrices, each
    scaled to unit RMS per element. About sqrt(2) for unrelated models (independent
    trainings are near-orthogonal), well below 1 for a model and its fine-tunes."""
    sq = matrix_sq_dists(features) if sq is None else sq
    numel = features.numel[:, None, None]
    diff = (sq / numel).sum(axis=0)
    norms = (features.sq_norms / features.numel[None, :]).sum(axis=1)
    scale = np.sqrt(np.maximum((norms[:, None] + norms[None, :]) / 2.0, 1e-300))
    return np.sqrt(diff) / scale


def centred_cosines(features: GroupFeatures, sq: np.ndarray | None = None) -> np.ndarray:
    """[n, n]: cosine of the models' weights, each matrix centred on its exact mean and
    scaled to unit RMS per element (every matrix weighs the same). Inner products come
    from the exact norms and the sketched distances: <a, b> = (|a|^2 + |b|^2 - |a-b|^2)/2,
    and centring subtracts numel * mean_a * mean_b. Near 0 for independent trainings."""
    sq = matrix_sq_dists(features) if sq is None else sq  # [M, n, n]
    numel = features.numel  # [M]
    norms = features.sq_norms.T  # [M, n]
    inner = (norms[:, :, None] + norms[:, None, :] - sq) / 2.0
    means = features.means.T  # [M, n]
    inner = inner - numel[:, None, None] * means[:, :, None] * means[:, None, :]
    var = np.maximum(norms - numel[:, None] * means**2, 1e-300)  # [M, n]: n * variance
    scale = 1.0 / var  # unit RMS per element: each matrix divided by its own norm
    num = (inner * np.sqrt(scale[:, :, None] * scale[:, None, :])).sum(axis=0)
    cos = num / features.numel.size
    np.fill_diagonal(cos, 1.0)
    return np.clip(cos, -1.0, 1.0)


def null_cosine_std(features: GroupFeatures) -> float:
    """Standard deviation of centred_cosines between two INDEPENDENT trainings: each
    matrix's normalised inner product has variance 1/numel (random directions in numel
    dimensions), plus 2/width where it comes from a count-sketched squared distance
    (relative variance 2/width of |a - b|^2 ~ |a|^2 + |b|^2, halved into the inner
    product); the mean over M matrices divides the summed variance by M^2."""
    numel = features.numel
    widths = np.array([s.shape[1] for s in features.sketches], dtype=np.float64)
    var = 1.0 / numel + np.where(widths < numel, 2.0 / widths, 0.0)
    return float(np.sqrt(var.sum()) / max(numel.size, 1))


def placement_distance(features: GroupFeatures, sq: np.ndarray | None = None) -> np.ndarray:
    """[n, n]: root mean square over matrices of the chord ||W_i/|W_i| - W_j/|W_j|||.

    Scale-free on purpose: weight decay (AdamW's decoupled decay, SGD's L2) multiplies
    every weight by the same factor each step, a component all siblings share, which in
    plain distances makes siblings look closer to each other than to their parent.
    Directions are untouched by it, and independent increments still add in squares
    along a path (the spanning tree stays the fine-tuning tree). Each matrix weighs the
    same, whatever its size."""
    sq = matrix_sq_dists(features) if sq is None else sq  # [M, n, n]
    norms = features.sq_norms.T  # [M, n]
    inner = (norms[:, :, None] + norms[:, None, :] - sq) / 2.0
    scale = np.sqrt(np.maximum(norms[:, :, None] * norms[:, None, :], 1e-300))
    chord_sq = np.maximum(2.0 - 2.0 * inner / scale, 0.0)
    out = np.sqrt(chord_sq.mean(axis=0))
    np.fill_diagonal(out, 0.0)
    return out
