"""config.json of a merge declares the output dtype consistently, as transformers reads it."""

from __future__ import annotations

import json

import torch
from transformers import AutoConfig

from lineage.merge import merge_models
from tests.merge._helpers import Pico, save_model

LLAMA = {"model_type": "llama", "hidden_size": 8, "intermediate_size": 16,
         "num_attention_heads": 2, "num_hidden_layers": 1, "vocab_size": 11,
         "dtype": "float32", "torch_dtype": "float32"}


def test_bf16_output_config_reads_back_as_bf16(tmp_path):
    torch.manual_seed(0)
    base = save_model(tmp_path / "base", Pico(), **LLAMA)
    other = save_model(tmp_path / "other", Pico(), **LLAMA)
    recipe = {"merge_method": "linear", "dtype": "bfloat16",
              "models": [{"model": str(base), "parameters": {"weight": 1.0}},
                         {"model": str(other), "parameters": {"weight": 1.0}}]}
    out = merge_models(recipe, tmp_path / "merged", progress=False).out_dir
    written = json.loads((out / "config.json").read_text())
    assert written["dtype"] == written["torch_dtype"] == "bfloat16"
    assert AutoConfig.from_pretrained(out).dtype == torch.bfloat16
