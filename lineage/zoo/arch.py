"""Architectures of the zoo: tiny ViT classifiers, causal LMs (Llama, GPT-2) and a masked
LM (BERT) from transformers, and a tiny diffusers UNet (lineage.zoo.unet).

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
from lineage.zoo.text import BOS, MLM_VOCAB_SIZE, PAD, VOCAB_SIZE
from lineage.zoo.unet import CLASS_NAME, is_pipeline, load_unet, new_unet, save_unet
from lineage.zoo.unet import WEIGHTS as UNET_WEIGHTS

# LoRA targets: the square attention projections (what MoTHer's metrics read), plus the
# ViT head as a fully trained module, as the HF image-classification LoRA recipe does.
LORA_TARGETS = {
    "vit": (["q_proj", "k_proj", "v_proj", "o_proj"], ["classifier"]),
    "llama": (["q_proj", "k_proj", "v_proj", "o_proj"], []),
    "gpt2": (["c_attn", "attn.c_proj"], []),
    "bert": (["query", "key", "value", "attention.output.dense"], []),
    "unet": (["to_q", "to_k", "to_v", "to_out.0"], []),
}
LORA_MLP_TARGETS = {
    "vit": ["fc1", "fc2"],
    "llama": ["gate_proj", "up_proj", "down_proj"],
    "gpt2": ["c_fc", "mlp.c_proj"],
    "bert": ["intermediate.dense", "output.dense"],
    "unet": ["linear_1", "linear_2", "time_emb_proj"],  # the time-embedding MLPs
}
MODEL_TYPE_TO_ARCH = {"vit": "vit", "llama": "llama", "gpt2": "gpt2", "bert": "bert"}


def quiet_transformers() -> None:
    """Builds write hundreds of tiny models: keep transformers' bars and notes out."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def make_config(arch: str, size: Size) -> Any:
    from transformers import BertConfig, GPT2Config, LlamaConfig, ViTConfig

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
    if arch == "bert":
        return BertConfig(
            vocab_size=MLM_VOCAB_SIZE,
            hidden_size=size.hidden,
            num_hidden_layers=size.layers,
            num_attention_heads=size.heads,
            intermediate_size=size.intermediate,
            max_position_embeddings=32,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            pad_token_id=PAD,
        )
    raise UnknownNameError.of("zoo architecture", arch, list(LORA_TARGETS))


def model_class(arch: str) -> type:
    from transformers import (
        BertForMaskedLM,
        GPT2LMHeadModel,
        LlamaForCausalLM,
        ViTForImageClassification,
    )

    classes = {"vit": ViTForImageClassification, "llama": LlamaForCausalLM,
               "bert": BertForMaskedLM}
    return classes.get(arch, GPT2LMHeadModel)


def new_model(arch: str, size: Size, init: str, seed: int) -> torch.nn.Module:
    """A freshly initialised model; `seed` fixes every weight."""
    if arch == "unet":
        return new_unet(size, init, seed)
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
    """The zoo architecture of a transformers or diffusers config (as a dict)."""
    if config.get("_class_name") == CLASS_NAME:
        return "unet"
    model_type = config.get("model_type", "")
    if model_type not in MODEL_TYPE_TO_ARCH:
        raise UnknownNameError.of("zoo model_type", model_type, list(MODEL_TYPE_TO_ARCH))
    return MODEL_TYPE_TO_ARCH[model_type]


def arch_of_model(model: torch.nn.Module) -> str:
    """The zoo architecture of a loaded model (a diffusers config carries no model_type)."""
    if type(model).__name__ == CLASS_NAME:
        return "unet"
    return arch_of(model.config.to_dict())


def save_model(model: torch.nn.Module, folder: Path) -> None:
    """Write `model` as the Hub holds its kind: a transformers repo or a diffusers pipeline."""
    if arch_of_model(model) == "unet":
        save_unet(model, folder)
    else:
        model.save_pretrained(folder)


def weights_file(arch: str) -> str:
    """Where a full-weights repo of `arch` keeps its safetensors, relative to the repo."""
    return UNET_WEIGHTS if arch == "unet" else "model.safetensors"


def is_model_dir(path: Path) -> bool:
    return is_pipeline(path) or (
        (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    )


def load_model(model_dir: str | Path, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """A zoo model folder (config.json + model.safetensors, or a diffusers pipeline with a
    UNet) as a module in `dtype` (float32 by default)."""
    import json

    path = Path(model_dir)
    if is_pipeline(path):
        return load_unet(path, dtype)
    if not is_model_dir(path):
        raise ModelNotFoundError(
            str(path),
            "has no config.json + model.safetensors (nor a diffusers model_index.json)",
            "Give a full-weights model folder",
        )
    arch = arch_of(json.loads((path / "config.json").read_text()))
    model = model_class(arch).from_pretrained(path, dtype=dtype)
    return model.eval()
