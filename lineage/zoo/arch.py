"""Architectures of the zoo: tiny ViT classifiers and tiny causal LMs from transformers.

Two initialisation styles occur in the wild and both are representable, because the
direction in which fine-tuning moves weight kurtosis depends on where training started:
- "hf":    transformers' `_init_weights` (normal, std = initializer_range = 0.02);
- "torch": torch's own `reset_parameters` (Linear: kaiming-uniform, U(+-1/sqrt(fan_in))).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from lineage.errors import ModelNotFoundError, UnknownNameError
from lineage.zoo.spec import Size
from lineage.zoo.text import BOS, PAD, VOCAB_SIZE

# LoRA targets: the square attention projections (what MoTHer's metrics read), plus the
# ViT head as a fully trained module, as the HF image-classification LoRA recipe does.
LORA_TARGETS = {
    "vit": (["q_proj", "k_proj", "v_proj", "o_proj"], ["classifier"]),
    "llama": (["q_proj", "k_proj", "v_proj", "o_proj"], []),
    "gpt2": (["c_attn", "attn.c_proj"], []),
}
LORA_MLP_TARGETS = {
    "vit": ["fc1", "fc2"],
    "llama": ["gate_proj", "up_proj", "down_proj"],
    "gpt2": ["c_fc", "mlp.c_proj"],
}
MODEL_TYPE_TO_ARCH = {"vit": "vit", "llama": "llama", "gpt2": "gpt2"}


def quiet_transformers() -> None:
    """Builds write hundreds of tiny models: keep transformers' bars and notes out."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def make_config(arch: str, size: Size) -> Any:
    from transformers import GPT2Config, LlamaConfig, ViTConfig

    if arch == "vit":
        return ViTConfig(
            image_size=8,
            patch_size=size.patch,
            num_channels=1,
            hidden_size=size.hidden,
            num_hidden_layers=size.layers,
            num_attention_heads=size.heads,
            intermediate_size=size.intermediate,
            num_labels=10,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
    if arch == "llama":
        return LlamaConfig(
            vocab_size=VOCAB_SIZE,
            hidden_size=size.hidden,
            intermediate_size=size.intermediate,
            num_hidden_layers=size.layers,
            num_attention_heads=size.heads,
            num_key_value_heads=size.heads,
            max_position_embeddings=32,
            tie_word_embeddings=False,
            bos_token_id=BOS,
            eos_token_id=None,
            pad_token_id=PAD,
        )
    if arch == "gpt2":
        return GPT2Config(
            vocab_size=VOCAB_SIZE,
            n_embd=size.hidden,
            n_layer=size.layers,
            n_head=size.heads,
            n_inner=size.intermediate,
            n_positions=32,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=BOS,
            eos_token_id=None,
            pad_token_id=PAD,
        )
    raise UnknownNameError.of("zoo architecture", arch, list(LORA_TARGETS))


def model_class(arch: str) -> type:
    from transformers import GPT2LMHeadModel, LlamaForCausalLM, ViTForImageClassification

    classes = {"vit": ViTForImageClassification, "llama": LlamaForCausalLM}
    return classes.get(arch, GPT2LMHeadModel)


def new_model(arch: str, size: Size, init: str, seed: int) -> torch.nn.Module:
    """A freshly initialised model; `seed` fixes every weight."""
    torch.manual_seed(seed)
    model = model_class(arch)(make_config(arch, size))
    if init == "torch":
        torch.manual_seed(seed)
        for module in model.modules():
            _torch_default_init(module)
    return model


def _torch_default_init(module: torch.nn.Module) -> None:
    from transformers.pytorch_utils import Conv1D

    if isinstance(module, Conv1D):
        # GPT-2's Conv1D stores (in, out); emulate nn.Linear's default on it.
        bound = 1 / math.sqrt(module.weight.shape[0])
        torch.nn.init.uniform_(module.weight, -bound, bound)
        torch.nn.init.uniform_(module.bias, -bound, bound)
    elif hasattr(module, "reset_parameters") and type(module).__module__.startswith("torch"):
        module.reset_parameters()


def arch_of(config: dict[str, Any]) -> str:
    model_type = config.get("model_type", "")
    if model_type not in MODEL_TYPE_TO_ARCH:
        raise UnknownNameError.of("zoo model_type", model_type, list(MODEL_TYPE_TO_ARCH))
    return MODEL_TYPE_TO_ARCH[model_type]


def load_model(model_dir: str | Path, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """A zoo model folder (config.json + model.safetensors) as a float32 module."""
    import json

    path = Path(model_dir)
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise ModelNotFoundError(
            str(path), "has no config.json + model.safetensors", "Give a full-weights model folder"
        )
    arch = arch_of(json.loads((path / "config.json").read_text()))
    model = model_class(arch).from_pretrained(path, dtype=dtype)
    return model.eval()
