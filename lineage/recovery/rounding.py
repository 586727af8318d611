"""What storing a weight in a floating-point dtype does to it: the physics behind casts
and behind "this fit is exact".

A float with p explicit mantissa bits stores w with an error |delta| <= ulp(w) / 2, and
ulp(w) = 2^(floor(log2 |w|) - p) <= 2^-p |w|, so |delta| <= 2^-(p+1) |w| element by
element (a hard bound, not an average), plus half the subnormal spacing near zero.
Summed over a tensor: ||delta|| <= 2^-(p+1) ||w|| + sqrt(n) * spacing / 2. Nothing here
is fitted to a zoo; every number comes from IEEE-754 and the formats' definitions.
"""

from __future__ import annotations

import math

# Explicit mantissa bits, and the smallest subnormal spacing, of each stored dtype.
MANTISSA_BITS = {"F64": 52, "F32": 23, "F16": 10, "BF16": 7, "F8_E4M3": 3, "F8_E5M2": 2}
SUBNORMAL_SPACING = {"F64": 2.0**-1074, "F32": 2.0**-149, "F16": 2.0**-24,
                     "BF16": 2.0**-133, "F8_E4M3": 2.0**-9, "F8_E5M2": 2.0**-16}
# Arithmetic on stored values (sketches, merges) runs in float32 at least: its rounding
# is the floor under any "exact" comparison.
COMPUTE_BITS = 23


def unit_roundoff(dtype: str | None) -> float:
    """2^-(p+1): the largest relative error of storing a value in `dtype` (float32's for
    an unknown or integer dtype, whose values are then compared in float32)."""
    return 2.0 ** -(MANTISSA_BITS.get(dtype or "", COMPUTE_BITS) + 1)


def precision_rank(dtype: str | None) -> int:
    """Larger is more precise; a cast copy points at the more precise model."""
    return MANTISSA_BITS.get(dtype or "", -1)


def rounding_bound(dtype: str | None, rms: float) -> float:
    """Upper bound on RMS(round_dtype(w) - w) / RMS(w) for weights of RMS `rms`:
    the relative bound plus half the subnormal spacing, relative to the weights."""
    spacing = SUBNORMAL_SPACING.get(dtype or "", 0.0) / 2.0
    return unit_roundoff(dtype) + (spacing / rms if rms > 0 else math.inf)
