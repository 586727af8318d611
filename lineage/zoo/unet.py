"""The zoo's diffusion model: a tiny diffusers UNet2DModel denoising 8x8 digits.

MoTHer's Stable Diffusion case in miniature. A repo is a diffusers pipeline folder, as
on the Hub: `model_index.json` (DDPMPipeline), `unet/` (config.json +
diffusion_pytorch_model.safetensors) and `scheduler/` (scheduler_config.json).
Init styles: "torch" is diffusers' own (torch's reset_parameters); "hf" the
transformers-style normal(0, 0.02) on every linear and conv weight, zero biases.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lineage.zoo.spec import Size

TIMESTEPS = 100  # DDPM steps of the noise schedule
UNET_DIR = "unet"
WEIGHTS = f"{UNET_DIR}/diffusion_pytorch_model.safetensors"
CLASS_NAME = "UNet2DModel"


def unet_config(size: Size) -> dict[str, Any]:
    """`layers` blocks of `hidden` channels; the innermost attends (8x8 -> 4x4 -> ...)."""
    blocks = max(2, min(size.layers, 3))  # 8x8 halves at most twice
    return {
        "sample_size": 8,
        "in_channels": 1,
        "out_channels": 1,
        "layers_per_block": 1,
        "block_out_channels": (size.hidden,) * blocks,
        "down_block_types": ("DownBlock2D",) * (blocks - 1) + ("AttnDownBlock2D",),
        "up_block_types": ("AttnUpBlock2D",) + ("UpBlock2D",) * (blocks - 1),
        "norm_num_groups": 8,
        "attention_head_dim": 8,
    }


def new_unet(size: Size, init: str, seed: int) -> torch.nn.Module:
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    model = UNet2DModel(**unet_config(size))
    if init == "hf":
        torch.manual_seed(seed)
        for module in model.modules():
            if isinstance(module, torch.nn.Linear | torch.nn.Conv2d):
                torch.nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:
                    torch.nn.init.zeros_(module.bias)
    return model


def scheduler() -> Any:
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=TIMESTEPS)


def save_unet(model: torch.nn.Module, folder: Path) -> None:
    """A diffusers pipeline folder holding `model` (in its own dtype) and the scheduler."""
    from diffusers import DDPMPipeline

    DDPMPipeline(unet=model, scheduler=scheduler()).save_pretrained(folder)


def is_pipeline(folder: Path) -> bool:
    return (folder / "model_index.json").is_file() and (folder / WEIGHTS).is_file()


def load_unet(folder: Path, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    from diffusers import UNet2DModel

    return UNet2DModel.from_pretrained(folder / UNET_DIR, torch_dtype=dtype).eval()
