"""Denoising tasks for the zoo's UNet: DDPM noise prediction on 8x8 digits.

A task is a set of images: `denoise-digits` (all digits; the roots' pretraining) or a
digits variant (`denoise-rot90`, `denoise-low`, ... the image tasks' transforms and
label subsets). The loss is DDPM's: predict the noise added at a random timestep. The
score is the fraction of noise variance explained on fixed held-out noisings,
max(0, 1 - MSE / Var(noise)); Var(noise) = 1.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass

import torch

from lineage.zoo.digits import DIGIT_TASKS, DigitsTask

DENOISE_TASKS = (
    "denoise-digits",
    *(f"denoise-{t.removeprefix('digits-')}" for t in DIGIT_TASKS if t != "digits"),
)


@functools.cache
def _alphas_cumprod() -> torch.Tensor:
    from lineage.zoo.unet import scheduler

    return scheduler().alphas_cumprod.float()


def _noisy(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    ab = _alphas_cumprod()[t].view(-1, 1, 1, 1)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


@dataclass(frozen=True)
class DenoiseTask:
    name: str
    family: str = "denoise"

    @functools.cached_property
    def _images(self) -> DigitsTask:
        variant = self.name.removeprefix("denoise-")
        return DigitsTask("digits" if variant == "digits" else f"digits-{variant}")

    @functools.cached_property
    def _eval(self) -> dict[str, torch.Tensor]:
        # Fixed timesteps and noise per task name: every model is scored on the same ones.
        gen = torch.Generator().manual_seed(zlib.crc32(self.name.encode()))
        x0 = self._images._data["eval_x"]
        t = torch.randint(len(_alphas_cumprod()), (len(x0),), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        return {"x": _noisy(x0, t, noise), "t": t, "noise": noise}

    def train_batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        x = self._images._data["train_x"]
        idx = torch.randint(len(x), (min(batch_size, len(x)),), generator=gen)
        t = torch.randint(len(_alphas_cumprod()), (len(idx),), generator=gen)
        noise = torch.randn(x[idx].shape, generator=gen)
        return {"x": _noisy(x[idx], t, noise), "t": t, "noise": noise}

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pred = model(batch["x"], batch["t"]).sample
        return torch.nn.functional.mse_loss(pred, batch["noise"])

    @torch.no_grad()
    def score(self, model: torch.nn.Module) -> float:
        data = self._eval
        pred = model(data["x"].to(model.dtype), data["t"]).sample.float()
        mse = float(torch.nn.functional.mse_loss(pred, data["noise"]))
        return max(0.0, 1.0 - mse)
