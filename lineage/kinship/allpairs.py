"""All pairs and top-k neighbours of many sketches, by blocked matrix products.

Input: an (n, d) matrix of sketches (model-level sketches, or delta sketches: subtract a
base's sketch first, see `delta_sketches`). Work proceeds in (block x block) tiles of the
upper triangle, so working memory is O(block^2 + n * k) whatever n is, and each tile is
one matmul on the chosen device (CPU, or CUDA when `device` is given). Symmetry halves
the work: one tile updates the neighbours of its rows and of its columns.

Metrics: "cosine" and "dot" rank larger first; "l2" ranks nearer first and is computed
as |u|^2 + |v|^2 - 2<u, v> after centring on the group mean (distances are translation
invariant; centring keeps float32 from cancelling when models differ by small deltas).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch

from lineage.errors import UnknownNameError

PAIR_METRICS = ("cosine", "dot", "l2")
DEFAULT_BLOCK = 2048  # a 2048 x 2048 float32 tile is 16 MiB


class Pairs(NamedTuple):
    """Parallel arrays: pair m is (i[m], j[m]) with value[m]."""

    i: np.ndarray  # int64 [m]
    j: np.ndarray  # int64 [m]
    value: np.ndarray  # float32 [m]: cosine, dot or l2 distance

    @property
    def size(self) -> int:
        """Number of pairs (len() stays 3: this is a tuple of three arrays)."""
        return int(self.i.shape[0])

    def tolist(self) -> list[tuple[int, int, float]]:
        return list(zip(self.i.tolist(), self.j.tolist(), self.value.tolist(), strict=True))


def delta_sketches(sketches: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Sketches of (model - base): (n, d) - (d,) or (n, d) - (n, d); float64 subtraction."""
    return (np.asarray(sketches, np.float64) - np.asarray(base, np.float64)).astype(np.float32)


def topk_pairs(
    sketches: np.ndarray | torch.Tensor,
    k: int,
    *,
    metric: str = "cosine",
    block: int = DEFAULT_BLOCK,
    device: str | torch.device | None = None,
) -> Pairs:
    """The k best neighbours j != i of every row i: n * min(k, n - 1) pairs, row-major,
    best first within a row."""
    x = _prepare(sketches, metric, device)
    n = x.shape[0]
    k = min(k, n - 1)
    if k <= 0:
        return _empty()
    best_v = torch.full((n, k), -torch.inf, device=x.device)
    best_i = torch.full((n, k), -1, dtype=torch.int64, device=x.device)
    for r0, c0, tile in _tiles(x, metric, block):
        _merge_topk(best_v, best_i, r0, tile, c0, k)
        if c0 != r0:
            _merge_topk(best_v, best_i, c0, tile.T, r0, k)
    rows = torch.arange(n, device=x.device).repeat_interleave(k)
    return _pairs(rows, best_i.reshape(-1), best_v.reshape(-1), metric)


def topk_rows(
    sketches: np.ndarray | torch.Tensor,
    start: int,
    stop: int,
    k: int,
    *,
    metric: str = "cosine",
    block: int = DEFAULT_BLOCK,
    device: str | torch.device | None = None,
) -> Pairs:
    """Top-k neighbours (among all n rows) of rows start:stop only, so that one group's
    rows can be split across workers; indices are rows of `sketches`."""
    x = _prepare(sketches, metric, device)
    n = x.shape[0]
    k = min(k, n - 1)
    if k <= 0 or start >= stop:
        return _empty()
    norms = (x * x).sum(dim=1) if metric == "l2" else None
    best_v = torch.full((stop - start, k), -torch.inf, device=x.device)
    best_i = torch.full((stop - start, k), -1, dtype=torch.int64, device=x.device)
    for c0 in range(0, n, block):
        tile = _score_tile(x, norms, start, stop, c0, c0 + block)
        _mask_self(tile, start, c0)
        _merge_topk(best_v, best_i, 0, tile, c0, k)
    rows = torch.arange(start, stop, device=x.device).repeat_interleave(k)
    return _pairs(rows, best_i.reshape(-1), best_v.reshape(-1), metric)


def _mask_self(tile: torch.Tensor, row0: int, col0: int) -> None:
    """Score -inf where the global row index equals the global column index."""
    rows = torch.arange(row0, row0 + tile.shape[0], device=tile.device)[:, None]
    cols = torch.arange(col0, col0 + tile.shape[1], device=tile.device)[None, :]
    tile.masked_fill_(rows == cols, -torch.inf)


def all_pairs(
    sketches: np.ndarray | torch.Tensor,
    *,
    metric: str = "cosine",
    threshold: float | None = None,
    block: int = DEFAULT_BLOCK,
    device: str | torch.device | None = None,
) -> Pairs:
    """Every pair i < j, or only those at least as close as `threshold` (cosine/dot >=
    threshold, l2 <= threshold). The unthresholded output is n(n-1)/2 pairs: for large
    n use a threshold, `topk_pairs`, or `iter_pair_tiles` to stream tiles to storage."""
    parts = []
    for r0, c0, values in iter_pair_tiles(sketches, metric=metric, block=block, device=device):
        i, j = np.nonzero(_keep(values, metric, threshold, r0 == c0))
        parts.append((i + r0, j + c0, values[i, j]))
    if not parts:
        return _empty()
    i, j, v = (np.concatenate(p) for p in zip(*parts, strict=True))
    return Pairs(i.astype(np.int64), j.astype(np.int64), v.astype(np.float32))


def iter_pair_tiles(
    sketches: np.ndarray | torch.Tensor,
    *,
    metric: str = "cosine",
    block: int = DEFAULT_BLOCK,
    device: str | torch.device | None = None,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """(row0, col0, values [rows, cols] float32) for each upper-triangle tile, col0 >= row0.

    Diagonal tiles include i >= j entries: keep only j > i there."""
    x = _prepare(sketches, metric, device)
    for r0, c0, tile in _tiles(x, metric, block):
        yield r0, c0, _values(tile, metric).cpu().numpy()


def topk_within_blocks(
    keys: Sequence[Hashable],
    sketches: np.ndarray | torch.Tensor,
    k: int,
    *,
    metric: str = "cosine",
    block: int = DEFAULT_BLOCK,
    device: str | torch.device | None = None,
) -> Pairs:
    """Top-k neighbours of each model among models with the same key (e.g. arch
    signature) only; indices are rows of `sketches`. Groups of one yield nothing."""
    groups: dict[Hashable, list[int]] = {}
    for row, key in enumerate(keys):
        groups.setdefault(key, []).append(row)
    parts = []
    for rows in groups.values():
        if len(rows) < 2:
            continue
        index = np.asarray(rows, dtype=np.int64)
        found = topk_pairs(sketches[index], k, metric=metric, block=block, device=device)
        parts.append(Pairs(index[found.i], index[found.j], found.value))
    if not parts:
        return _empty()
    return Pairs(*(np.concatenate(p) for p in zip(*parts, strict=True)))


# -- internals ----------------------------------------------------------------------------


def _prepare(
    sketches: np.ndarray | torch.Tensor, metric: str, device: str | torch.device | None
) -> torch.Tensor:
    """float32 rows on `device`: unit rows for cosine, centred rows for l2."""
    if metric not in PAIR_METRICS:
        raise UnknownNameError.of("pair metric", metric, PAIR_METRICS)
    x = torch.as_tensor(sketches).to(torch.float64)
    if x.ndim != 2:
        raise ValueError(f"sketches must be an (n, d) matrix, got shape {tuple(x.shape)}")
    if metric == "cosine":
        x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-300)  # a zero row stays zero
    elif metric == "l2" and x.shape[0]:
        x = x - x.mean(dim=0)
    return x.to(device=device or "cpu", dtype=torch.float32)


def _tiles(x: torch.Tensor, metric: str, block: int) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Score tiles (larger = closer) of the upper triangle; self-pairs score -inf."""
    n = x.shape[0]
    norms = (x * x).sum(dim=1) if metric == "l2" else None
    for r0 in range(0, n, block):
        for c0 in range(r0, n, block):
            tile = _score_tile(x, norms, r0, r0 + block, c0, c0 + block)
            if r0 == c0:
                tile.fill_diagonal_(-torch.inf)
            yield r0, c0, tile


def _score_tile(
    x: torch.Tensor, norms: torch.Tensor | None, r0: int, r1: int, c0: int, c1: int
) -> torch.Tensor:
    """Scores (larger = closer) of rows r0:r1 against rows c0:c1: dot products, or
    -|u - v|^2 when `norms` (squared row norms, l2 metric) are given. [rows, cols]"""
    tile = x[r0:r1] @ x[c0:c1].T
    if norms is not None:
        tile.mul_(2).sub_(norms[r0:r1, None]).sub_(norms[None, c0:c1])
    return tile


def _merge_topk(
    best_v: torch.Tensor, best_i: torch.Tensor, row0: int, tile: torch.Tensor, col0: int, k: int
) -> None:
    """Fold one tile's candidates into the running top-k of rows row0 : row0 + len(tile)."""
    tv, ti = tile.topk(min(k, tile.shape[1]), dim=1)
    rows = slice(row0, row0 + tile.shape[0])
    values = torch.cat([best_v[rows], tv], dim=1)
    index = torch.cat([best_i[rows], ti + col0], dim=1)
    top, pos = values.topk(k, dim=1)
    best_v[rows] = top
    best_i[rows] = index.gather(1, pos)


def _values(scores: torch.Tensor, metric: str) -> torch.Tensor:
    return (-scores).clamp_min(0).sqrt() if metric == "l2" else scores


def _keep(values: np.ndarray, metric: str, threshold: float | None, diagonal: bool) -> np.ndarray:
    keep = np.ones(values.shape, dtype=bool)
    if threshold is not None:
        keep = values <= threshold if metric == "l2" else values >= threshold
    if diagonal:
        keep &= np.triu(np.ones(values.shape, dtype=bool), k=1)
    return keep


def _pairs(i: torch.Tensor, j: torch.Tensor, scores: torch.Tensor, metric: str) -> Pairs:
    return Pairs(
        i.cpu().numpy().astype(np.int64),
        j.cpu().numpy().astype(np.int64),
        _values(scores, metric).cpu().numpy().astype(np.float32),
    )


def _empty() -> Pairs:
    return Pairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
