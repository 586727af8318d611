"""A model held in memory (Layout.held: the files a crawl's probe read whole) reads as the
same files on disk do: the same header checks and refusals, the same metadata and card
bounds, the same fingerprint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lineage.errors import MalformedMetadataError, MalformedWeightsError
from lineage.fingerprint import fingerprint_model
from lineage.weights import open_model, read_header
from lineage.weights.header import header_from_bytes
from lineage.weights.layout import Layout, Source
from lineage.weights.metadata import MAX_CONFIG_BYTES
from lineage.weights.model import ModelWeights
from lineage.weights.untrusted import MAX_CARD_BYTES
from tests.foundation.test_header_validation import CASES, _write
from tests.hardening.corpus import good_model

CARD = "---\nbase_model: acme/root\nbase_model_relation: finetune\nlicense: mit\n---\n# m\n"


def held(folder: Path, names=("model.safetensors", "config.json", "README.md")) -> ModelWeights:
    """The folder's files as a crawl holds them: bytes by name, under the repo's id."""
    files = {n: (folder / n).read_bytes() for n in names if (folder / n).exists()}
    root = Path("acme/m")
    return ModelWeights(
        Layout("transformers", root, (Source("", root / "model.safetensors"),), held=files)
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_bytes_are_refused_as_the_file_is(tmp_path, case):
    kwargs, expected = CASES[case]
    header = kwargs.pop("header", {})
    path = _write(tmp_path / "m.safetensors", header, **kwargs)
    with pytest.raises(MalformedWeightsError) as on_disk:
        read_header(path)
    with pytest.raises(MalformedWeightsError) as in_memory:
        header_from_bytes(path.read_bytes(), "acme/m/model.safetensors")
    assert expected in in_memory.value.why
    assert in_memory.value.why == on_disk.value.why
    assert in_memory.value.what == "safetensors file acme/m/model.safetensors"


@pytest.mark.parametrize("content", [b"", b"\x01\x02\x03"])
def test_bytes_shorter_than_the_length_prefix_are_refused(content):
    with pytest.raises(MalformedWeightsError, match="too short"):
        header_from_bytes(content, "acme/m/model.safetensors")


def test_a_held_model_reads_and_fingerprints_as_its_folder(tmp_path):
    folder = good_model(tmp_path / "m", seed=3)
    (folder / "README.md").write_text(CARD)
    with open_model(folder) as disk, held(folder) as memory:
        assert read_header(folder / "model.safetensors").tensors.keys() == memory.infos().keys()
        assert [(i.name, i.dtype, i.shape, i.offset, i.nbytes) for i in memory.infos().values()] \
            == [(i.name, i.dtype, i.shape, i.offset, i.nbytes) for i in disk.infos().values()]
        for name in disk.names():
            assert memory.tensor(name).tolist() == disk.tensor(name).tolist()
        a, b = fingerprint_model(disk), fingerprint_model(memory)
    np.testing.assert_array_equal(a.sketch, b.sketch)
    assert [(t.name, t.content_hash, t.mean, t.std, t.kurtosis, t.min, t.max) for t in a.tensors] \
        == [(t.name, t.content_hash, t.mean, t.std, t.kurtosis, t.min, t.max) for t in b.tensors]
    for x, y in zip(a.tensors, b.tensors, strict=True):
        np.testing.assert_array_equal(x.sketch, y.sketch)
    assert b.metadata.config == {"model_type": "tiny", "architectures": ["Tiny"]}
    assert b.metadata.model_type == "tiny" and b.metadata.architectures == ("Tiny",)
    assert b.metadata.card.base_models == ("acme/root",)
    assert b.metadata.card.relation == "finetune" and b.metadata.card.license == "mit"
    assert b.metadata == a.metadata


def test_a_held_tensor_is_a_private_copy(tmp_path):
    folder = good_model(tmp_path / "m", seed=1)
    data = (folder / "model.safetensors").read_bytes()
    with held(folder) as memory:
        name = memory.names()[0]
        before = memory.tensor(name).clone()
        memory.tensor(name).mul_(2)  # writable, as a mapped file's copy-on-write pages
    assert (folder / "model.safetensors").read_bytes() == data
    assert before.abs().sum() > 0


def test_held_metadata_keeps_the_file_bounds(tmp_path):
    folder = good_model(tmp_path / "m", seed=2)
    big = {"model_type": "tiny", "pad": "x" * MAX_CONFIG_BYTES}
    (folder / "config.json").write_text(json.dumps(big))
    with open_model(folder) as disk, pytest.raises(MalformedMetadataError) as on_disk:
        _ = disk.metadata
    with held(folder) as memory, pytest.raises(MalformedMetadataError) as in_memory:
        _ = memory.metadata
    assert f"over the {MAX_CONFIG_BYTES}-byte limit" in in_memory.value.why
    assert in_memory.value.why == on_disk.value.why
    assert in_memory.value.what == str(Path("acme/m/config.json"))


def test_a_long_held_card_is_cut_as_on_disk(tmp_path):
    folder = good_model(tmp_path / "m", seed=2)
    (folder / "README.md").write_text(CARD + "body\n" * (MAX_CARD_BYTES // 4))
    assert (folder / "README.md").stat().st_size > MAX_CARD_BYTES
    with open_model(folder) as disk, held(folder) as memory:
        assert memory.metadata.card == disk.metadata.card
        assert memory.metadata.card.license == "mit"


def test_a_held_model_without_its_weights_is_refused(tmp_path):
    folder = good_model(tmp_path / "m", seed=2)
    with pytest.raises(MalformedWeightsError, match="has no file 'model.safetensors' in memory"):
        held(folder, names=("config.json",))
