"""Float64 pair statistics of two equally long vectors x, y, accumulated chunk by chunk.

Every kinship metric is a function of a few sums over the shared elements:
    n, mean(x), mean(y), Cxx = sum (x - mx)^2, Cyy, Cxy = sum (x - mx)(y - my),
    Ddd = sum (x - y)^2.
Centred co-moments are merged with Chan et al.'s pairwise update, so Pearson stays
accurate when |mean| >> std (raw weights without a base); Ddd is summed directly
rather than derived as Sxx + Syy - 2Sxy, which would cancel catastrophically for two
nearly identical models. Raw sums (what a sketch estimates) convert both ways.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairStats:
    n: int = 0
    mean_x: float = 0.0
    mean_y: float = 0.0
    cxx: float = 0.0
    cyy: float = 0.0
    cxy: float = 0.0
    ddd: float = 0.0  # sum of squared differences (x - y)^2

    # -- building ---------------------------------------------------------------------

    @staticmethod
    def of_chunk(x: np.ndarray, y: np.ndarray) -> PairStats:
        """Stats of two float64 1-D chunks of the same length."""
        n = x.size
        if n == 0:
            return PairStats()
        mx, my = float(x.mean()), float(y.mean())
        xc, yc = x - mx, y - my
        d = x - y
        # einsum: numpy's own SIMD loop, single-threaded (see reader.py for why).
        sums = [float(np.einsum("i,i->", u, v)) for u, v in ((xc, xc), (yc, yc), (xc, yc), (d, d))]
        return PairStats(n, mx, my, *sums)

    @staticmethod
    def from_raw(
        n: int, sx: float, sy: float, sxx: float, syy: float, sxy: float, sdd: float
    ) -> PairStats:
        """From raw sums (sum x, sum y, sum x^2, sum y^2, sum xy, sum (x-y)^2)."""
        if n == 0:
            return PairStats()
        mx, my = sx / n, sy / n
        return PairStats(n, mx, my, sxx - n * mx * mx, syy - n * my * my, sxy - n * mx * my, sdd)

    def merge(self, other: PairStats) -> PairStats:
        """Stats of the concatenation of two disjoint samples (Chan et al. 1979)."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        dx, dy = other.mean_x - self.mean_x, other.mean_y - self.mean_y
        w = self.n * other.n / n
        return PairStats(
            n,
            self.mean_x + dx * other.n / n,
            self.mean_y + dy * other.n / n,
            self.cxx + other.cxx + dx * dx * w,
            self.cyy + other.cyy + dy * dy * w,
            self.cxy + other.cxy + dx * dy * w,
            self.ddd + other.ddd,
        )

    # -- raw sums ---------------------------------------------------------------------

    @property
    def sxx(self) -> float:
        return self.cxx + self.n * self.mean_x * self.mean_x

    @property
    def syy(self) -> float:
        return self.cyy + self.n * self.mean_y * self.mean_y

    @property
    def sxy(self) -> float:
        return self.cxy + self.n * self.mean_x * self.mean_y

    # -- metrics ----------------------------------------------------------------------

    def cosine(self) -> float:
        """<x, y> / (|x| |y|); NaN when either vector is zero."""
        return _ratio(self.sxy, self.sxx * self.syy)

    def pearson(self) -> float:
        """Pearson correlation; NaN when either vector is constant."""
        return _ratio(self.cxy, self.cxx * self.cyy)

    def euclidean(self) -> float:
        """|x - y|_2."""
        return math.sqrt(max(self.ddd, 0.0))

    def rms_diff(self) -> float:
        """sqrt(mean (x - y)^2): MoTHer's per-matrix distance."""
        return math.sqrt(max(self.ddd, 0.0) / self.n) if self.n else math.nan


def _ratio(num: float, den_squared: float) -> float:
    # den_squared <= 0 covers zero vectors and (for sketch estimates) negative variances.
    if not den_squared > 0.0:
        return math.nan
    return max(-1.0, min(1.0, num / math.sqrt(den_squared)))
