"""Real tiny models written to tmp dirs by the libraries that write them on the Hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

CARD = """---
license: apache-2.0
base_model: {base}
base_model_relation: finetune
tags:
- text-generation
- tiny
---
# A tiny test model
"""


def _gpt2(seed: int = 0, n_embd: int = 32):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        n_embd=n_embd,
        n_layer=2,
        n_head=2,
        vocab_size=97,
        n_positions=16,
        bos_token_id=0,
        eos_token_id=0,
    )
    return GPT2LMHeadModel(config)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """org/gpt2 (+ card), org/gpt2-sharded, org/vit, org/lora (PEFT), org/pipe (diffusers)."""
    root = tmp_path_factory.mktemp("models")
    gpt2 = _gpt2()
    gpt2.save_pretrained(root / "org/gpt2")
    (root / "org/gpt2/README.md").write_text(CARD.format(base="org/gpt2-base"))
    gpt2.save_pretrained(root / "org/gpt2-sharded", max_shard_size="40KB")
    _vit(root / "org/vit")
    _lora(gpt2, root / "org/lora")
    _diffusers(root / "org/pipe")
    return root


def _vit(path: Path) -> None:
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(1)
    config = ViTConfig(
        image_size=8,
        patch_size=4,
        num_channels=1,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=10,
    )
    ViTForImageClassification(config).save_pretrained(path)


def _lora(base, path: Path) -> None:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(2)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], init_lora_weights=False)
    peft_model = get_peft_model(base, config)
    peft_model.save_pretrained(path)
    cfg = json.loads((path / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "org/gpt2"
    (path / "adapter_config.json").write_text(json.dumps(cfg))


def _diffusers(path: Path) -> None:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DModel

    torch.manual_seed(3)
    unet = UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(8, 16),
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    )
    vae = AutoencoderKL(
        in_channels=1,
        out_channels=1,
        block_out_channels=(8,),
        latent_channels=2,
        norm_num_groups=4,
        layers_per_block=1,
    )
    unet.save_pretrained(path / "unet")
    vae.save_pretrained(path / "vae")
    DDPMScheduler().save_pretrained(path / "scheduler")
    (path / "model_index.json").write_text(
        json.dumps(
            {
                "_class_name": "DDPMPipeline",
                "_diffusers_version": "0.30.0",
                "unet": ["diffusers", "UNet2DModel"],
                "vae": ["diffusers", "AutoencoderKL"],
                "scheduler": ["diffusers", "DDPMScheduler"],
            }
        )
    )
