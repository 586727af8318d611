"""Image tasks on scikit-learn's bundled 8x8 digits (no download needed).

A task is a transform of the same 1797 images: label subsets, relabelings, rotations,
mirror, inversion, noise. The train/eval split is fixed (independent of any zoo seed) so
any model, including one merged later by someone else, can be scored on any task.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass

import numpy as np
import torch

EVAL_SIZE = 360  # held-out images, about 20% of the 1797
_SUBSETS = {
    "low": (0, 1, 2, 3, 4),
    "high": (5, 6, 7, 8, 9),
    "even": (0, 2, 4, 6, 8),
    "odd": (1, 3, 5, 7, 9),
}
_TRANSFORMS = ("rot90", "rot180", "rot270", "mirror", "invert", "noise")
DIGIT_TASKS = (
    "digits",
    *(f"digits-{t}" for t in _TRANSFORMS),
    *(f"digits-{s}" for s in _SUBSETS),
    *(f"digits-perm{k}" for k in range(1, 6)),
)


@functools.cache
def _raw() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    images = data.images.astype(np.float32) / 16.0  # (1797, 8, 8) in [0, 1]
    order = np.random.default_rng(0).permutation(len(images))
    is_eval = np.zeros(len(images), dtype=bool)
    is_eval[order[:EVAL_SIZE]] = True
    return images, data.target.astype(np.int64), is_eval


def _transform(name: str, images: np.ndarray) -> np.ndarray:
    if name.startswith("rot"):
        return np.rot90(images, k=int(name[3:]) // 90, axes=(1, 2)).copy()
    if name == "mirror":
        return images[:, :, ::-1].copy()
    if name == "invert":
        return 1.0 - images
    if name == "noise":  # fixed noise per image, so the task is a fixed dataset
        rng = np.random.default_rng(zlib.crc32(b"digits-noise"))
        return np.clip(images + rng.normal(0, 0.35, images.shape), 0, 1).astype(np.float32)
    return images


@dataclass(frozen=True)
class DigitsTask:
    """10-way classification; `labels` are the classes the task uses (argmax over them)."""

    name: str
    family: str = "image"

    @functools.cached_property
    def _data(self) -> dict[str, torch.Tensor]:
        images, targets, is_eval = _raw()
        variant = self.name.removeprefix("digits").removeprefix("-")
        images = _transform(variant, images)
        if variant.startswith("perm"):  # a seeded relabeling of the 10 classes
            perm = np.random.default_rng(int(variant[4:])).permutation(10)
            targets = perm[targets]
        keep = np.isin(targets, self.labels)
        # ViT input: (N, 1, 8, 8), scaled to [-1, 1].
        pixels = torch.from_numpy(images * 2 - 1).unsqueeze(1).float()
        split = {"train": keep & ~is_eval, "eval": keep & is_eval}
        out = {}
        for part, mask in split.items():
            out[f"{part}_x"] = pixels[torch.from_numpy(mask)]
            out[f"{part}_y"] = torch.from_numpy(targets[mask])
        return out

    @property
    def labels(self) -> tuple[int, ...]:
        variant = self.name.removeprefix("digits-")
        return _SUBSETS.get(variant, tuple(range(10)))

    def train_batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        x, y = self._data["train_x"], self._data["train_y"]
        idx = torch.randint(len(x), (min(batch_size, len(x)),), generator=gen)
        return {"pixel_values": x[idx], "labels": y[idx]}

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(**batch).loss

    @torch.no_grad()
    def score(self, model: torch.nn.Module) -> float:
        """Held-out accuracy, the argmax taken over this task's classes only."""
        x, y = self._data["eval_x"], self._data["eval_y"]
        logits = model(pixel_values=x.to(model.dtype)).logits.float()
        labels = torch.tensor(self.labels)
        pred = labels[logits[:, labels].argmax(-1)]
        return float((pred == y).float().mean())
