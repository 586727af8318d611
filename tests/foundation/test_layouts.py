"""Every layout on disk streams the same tensors the library that wrote it holds."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from lineage.weights import open_model, write_safetensors


def test_single_and_sharded_transformers_models_stream_identical_tensors(models_dir):
    with (
        open_model(models_dir / "org/gpt2") as single,
        open_model(models_dir / "org/gpt2-sharded") as sharded,
    ):
        assert sharded.kind == single.kind == "transformers"
        assert len(sharded.layout.sources) > 1
        assert sorted(sharded.names()) == sorted(single.names())
        for name, tensor in single.iter_tensors():
            assert torch.equal(tensor, sharded.tensor(name))
        assert single.metadata.arch_signature == sharded.metadata.arch_signature
        reference = load_file(str(models_dir / "org/gpt2/model.safetensors"))
        assert single.metadata.n_params == sum(t.numel() for t in reference.values())


def test_metadata_from_config_and_card(models_dir):
    meta = open_model(models_dir / "org/gpt2").metadata
    assert meta.model_type == "gpt2"
    assert meta.architectures == ("GPT2LMHeadModel",)
    assert meta.card.base_models == ("org/gpt2-base",)
    assert meta.card.relation == "finetune"
    assert meta.card.license == "apache-2.0"
    assert meta.card.tags == ("text-generation", "tiny")
    assert meta.dtypes == ("F32",)


def test_vit_and_adapter_and_diffusers(models_dir):
    vit = open_model(models_dir / "org/vit")
    assert vit.metadata.model_type == "vit" and "classifier.weight" in vit.names()
    lora = open_model(models_dir / "org/lora")
    assert lora.kind == "peft-adapter"
    assert lora.metadata.adapter_base == "org/gpt2" and lora.metadata.adapter_rank == 4
    assert lora.metadata.base_models == lora.metadata.card.base_models or ("org/gpt2",)
    assert all("lora_" in n for n in lora.names())
    pipe = open_model(models_dir / "org/pipe")
    assert pipe.kind == "diffusers"
    prefixes = {n.split(".")[0] for n in pipe.names()}
    assert prefixes == {"unet", "vae"}
    unet = load_file(str(models_dir / "org/pipe/unet/diffusion_pytorch_model.safetensors"))
    for name, tensor in unet.items():
        assert torch.equal(pipe.tensor("unet." + name), tensor)


def test_every_dtype_round_trips(tmp_path):
    tensors = {
        "f32": torch.randn(3, 5),
        "f16": torch.randn(7).half(),
        "bf16": torch.randn(2, 2).bfloat16(),
        "f8e4": torch.randn(9).to(torch.float8_e4m3fn),
        "f8e5": torch.randn(9).to(torch.float8_e5m2),
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "i64": torch.tensor([-(2**40), 2**40]),
        "bool": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 4),
    }
    write_safetensors(tmp_path / "all.safetensors", tensors)
    with open_model(tmp_path / "all.safetensors") as model:
        assert set(model.metadata.dtypes) == {
            "F32",
            "F16",
            "BF16",
            "F8_E4M3",
            "F8_E5M2",
            "I8",
            "U8",
            "I64",
            "BOOL",
        }
        for name, expected in tensors.items():
            got = model.tensor(name)
            assert got.dtype == expected.dtype and got.shape == expected.shape, name
            # Compare bit patterns: float8 has no equality kernel on every build.
            assert (
                bytes(model.raw(name)) == expected.contiguous().view(torch.uint8).numpy().tobytes()
            )
            assert torch.equal(got.view(torch.uint8), expected.view(torch.uint8)), name
