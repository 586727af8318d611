"""Independent reference computations in plain numpy float64 (no lineage code)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.torch import load_file


def concat_deltas(
    a: dict[str, np.ndarray], b: dict[str, np.ndarray], base: dict[str, np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Flatten and concatenate (a - base), (b - base) over shared names, leading rows."""
    xs, ys = [], []
    for name in a:
        if name not in b or (base is not None and name not in base):
            continue
        arrays = [a[name], b[name]] + ([base[name]] if base is not None else [])
        if {t.shape[1:] for t in arrays} != {arrays[0].shape[1:]}:
            continue
        rows = min(t.shape[0] for t in arrays) if arrays[0].ndim else None
        arrays = [t[:rows] if rows is not None else t for t in arrays]
        zero = arrays[2] if base is not None else 0.0
        xs.append((arrays[0] - zero).ravel())
        ys.append((arrays[1] - zero).ravel())
    return np.concatenate(xs), np.concatenate(ys)


def cosine(x: np.ndarray, y: np.ndarray) -> float:
    return float(x @ y / np.sqrt((x @ x) * (y @ y)))


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x, y)[0, 1])


def euclid(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.linalg.norm(x - y))


def mother(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    rms = [
        np.sqrt(np.mean((a[n] - b[n]) ** 2))
        for n in a
        if a[n].ndim == 2 and a[n].shape[0] == a[n].shape[1]
    ]
    return float(np.mean(rms))


def load_f64(folder: Path) -> dict[str, np.ndarray]:
    """Independent reference loader: safetensors' own reader, float64 numpy."""
    return {k: v.double().numpy() for k, v in load_file(folder / "model.safetensors").items()}
