"""Exact streaming kinship against numpy float64 over concatenated deltas."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from kinship_reference import concat_deltas, cosine, euclid, load_f64, mother, pearson

from lineage.errors import IncompatibleModelsError, ModelNotFoundError, UnknownNameError
from lineage.kinship import kinship
from lineage.weights import open_model

ALL = "cs,pcc,ed,l2,mother"


def _reference(zoo, a: str, b: str, base: str | None) -> dict[str, float]:
    ma, mb = load_f64(zoo[a]), load_f64(zoo[b])
    x, y = concat_deltas(ma, mb, load_f64(zoo[base]) if base else None)
    return {"cs": cosine(x, y), "pcc": pearson(x, y), "ed": euclid(x, y)}


@pytest.mark.parametrize(
    ("a", "b", "base"),
    [("ft1", "ft2", "base"), ("ft1", "ft1_child", "base"), ("lowrank", "ft1", "base")],
)
def test_delta_metrics_match_numpy(zoo, a, b, base):
    result = kinship(zoo[a], zoo[b], zoo[base], metrics=ALL)
    expected = _reference(zoo, a, b, base)
    for name, value in expected.items():
        assert result.values[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    assert result.values["l2"] == pytest.approx(expected["ed"], rel=1e-9)
    assert result.values["mother"] == pytest.approx(
        mother(load_f64(zoo[a]), load_f64(zoo[b])), rel=1e-9
    )
    assert result.n_tensors == 28 and result.skipped == [] and result.notes == []


def test_child_is_closer_than_sibling(zoo):
    child = kinship(zoo["ft1"], zoo["ft1_child"], zoo["base"])
    sibling = kinship(zoo["ft1"], zoo["ft2"], zoo["base"])
    assert child.values["cs"] > 0.5 > abs(sibling.values["cs"])


def test_small_chunks_merge_to_the_same_values(zoo):
    whole = kinship(zoo["ft1"], zoo["ft2"], zoo["base"], metrics=ALL)
    chunked = kinship(zoo["ft1"], zoo["ft2"], zoo["base"], metrics=ALL, chunk=1000)
    for name, value in whole.values.items():
        assert chunked.values[name] == pytest.approx(value, rel=1e-12), name


def test_per_layer_values_match_numpy(zoo):
    result = kinship(zoo["ft1"], zoo["ft2"], zoo["base"], metrics=ALL, per_layer=True)
    a, b, base = (load_f64(zoo[k]) for k in ("ft1", "ft2", "base"))
    assert [layer.name for layer in result.layers] == list(open_model(zoo["ft1"]).names())
    for layer in result.layers:
        origin = base[layer.name]
        x, y = (a[layer.name] - origin).ravel(), (b[layer.name] - origin).ravel()
        assert layer.values["cs"] == pytest.approx(cosine(x, y), rel=1e-9, abs=1e-12)
        assert layer.values["pcc"] == pytest.approx(pearson(x, y), rel=1e-9, abs=1e-12)
        assert layer.values["ed"] == pytest.approx(euclid(x, y), rel=1e-9)
        square = len(layer.shape) == 2 and layer.shape[0] == layer.shape[1]
        if square:
            rms = np.sqrt(np.mean((a[layer.name] - b[layer.name]) ** 2))
            assert layer.values["mother"] == pytest.approx(rms, rel=1e-9)
        else:
            assert layer.values["mother"] is None


def test_absolute_cosine_is_what_merge_cal_prints(zoo):
    signed = kinship(zoo["ft1"], zoo["ft2"], zoo["base"], metrics="cs")
    absolute = kinship(zoo["ft1"], zoo["ft2"], zoo["base"], metrics="cs", absolute=True)
    assert absolute.values["cs"] == pytest.approx(abs(signed.values["cs"]), rel=1e-12)
    assert signed.values["cs"] < 0  # these two fine-tunes' deltas point slightly apart


def test_without_base_compares_raw_weights(zoo):
    result = kinship(zoo["ft1"], zoo["ft2"], metrics="cs,pcc,ed")
    x, y = concat_deltas(load_f64(zoo["ft1"]), load_f64(zoo["ft2"]), None)
    assert result.values["cs"] == pytest.approx(cosine(x, y), rel=1e-9)
    assert result.values["pcc"] == pytest.approx(pearson(x, y), rel=1e-9)
    assert any("no base given" in note for note in result.notes)


def test_bf16_model_is_compared_as_stored(zoo):
    result = kinship(zoo["ft1"], zoo["ft2_bf16"], zoo["base"])
    expected = _reference(zoo, "ft1", "ft2_bf16", "base")
    for name, value in expected.items():
        assert result.values[name] == pytest.approx(value, rel=1e-9), name


def test_vocabulary_mismatch_uses_shared_rows_and_says_so(zoo):
    result = kinship(zoo["ft1_vocab"], zoo["ft2"], zoo["base"], metrics="cs,pcc,ed")
    expected = _reference(zoo, "ft1_vocab", "ft2", "base")
    for name, value in expected.items():
        assert result.values[name] == pytest.approx(value, rel=1e-9), name
    assert any(
        note.startswith("transformer.wte.weight: compared the first 96 rows")
        and "a=98, b=96, base=96" in note
        for note in result.notes
    ), result.notes
    assert ("transformer.extra_scale", "not in b, base") in result.skipped
    assert "1 tensors skipped (see skipped)" in result.notes


def test_unrelated_architectures_raise_naming_both(zoo):
    with pytest.raises(IncompatibleModelsError) as err:
        kinship(zoo["ft1"], zoo["llama"])
    text = str(err.value)
    assert str(zoo["ft1"]) in text and str(zoo["llama"]) in text
    assert "share no float tensor" in text and "arch_signature" in text
    assert str(pickle.loads(pickle.dumps(err.value))) == text


def test_unknown_metric_lists_valid_ones(zoo):
    with pytest.raises(UnknownNameError) as err:
        kinship(zoo["ft1"], zoo["ft2"], metrics="cs,kl")
    assert str(err.value) == (
        "metric 'kl': is not a known metric. Valid metrics: cs, ed, l2, mother, pcc"
    )


def test_missing_model_and_resolve_hook(zoo):
    with pytest.raises(ModelNotFoundError, match="'org/nope': is not an existing local"):
        kinship("org/nope", str(zoo["ft2"]))
    catalog = {"org/ft1": zoo["ft1"], "org/ft2": zoo["ft2"]}
    result = kinship("org/ft1", "org/ft2", metrics="l2", resolve=catalog.__getitem__)
    assert result.a == "org/ft1"
    assert result.values["l2"] == pytest.approx(
        kinship(zoo["ft1"], zoo["ft2"], metrics="l2").values["l2"], rel=1e-12
    )


def test_identical_models(zoo):
    result = kinship(zoo["ft1"], zoo["ft1"], zoo["base"], metrics=ALL)
    assert result.values["cs"] == pytest.approx(1.0) and result.values["pcc"] == pytest.approx(1)
    assert result.values["ed"] == 0.0 and result.values["mother"] == 0.0
    same_as_base = kinship(zoo["base"], zoo["ft1"], zoo["base"], metrics="cs")
    assert math.isnan(same_as_base.values["cs"])  # a zero delta has no direction
    assert same_as_base.to_dict()["values"]["cs"] is None


def test_open_models_and_pickle_sources(zoo, tmp_path):
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(zoo["ft2"] / "model.safetensors"), tmp_path / "pytorch_model.bin")
    with open_model(tmp_path, allow_pickle=True) as pickled, open_model(zoo["ft1"]) as ft1:
        result = kinship(ft1, pickled, zoo["base"], chunk=5000)
    assert result.b == str(tmp_path)
    expected = _reference(zoo, "ft1", "ft2", "base")
    for name, value in expected.items():
        assert result.values[name] == pytest.approx(value, rel=1e-9), name
