"""Card front matter and the lineage tags the Hub derives from it."""

from __future__ import annotations

import pytest

from jobs.loopback_hub.card import base_models, card_tags, lineage_tags, read_front_matter, relation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "---\nbase_model: a/b\nlicense: mit\n---\n# Title\n",
            {"base_model": "a/b", "license": "mit"},
        ),
        ("\ufeff---\ntags: [x]\n---\n", {"tags": ["x"]}),
        ("# no front matter\n---\nkey: v\n---\n", {}),
        ("---\nbase_model: [unclosed\n---\n", {}),  # malformed YAML
        ("---\n- a list\n---\n", {}),  # not a mapping
        ("---\nbase_model: a/b\n", {}),  # never closed
        ("", {}),
    ],
)
def test_read_front_matter(text, expected):
    assert read_front_matter(text) == expected


def test_base_models_string_or_list():
    assert base_models({"base_model": "a/b"}) == ["a/b"]
    assert base_models({"base_model": ["a/b", "c/d", 3, ""]}) == ["a/b", "c/d"]
    assert base_models({"base_model": None}) == [] == base_models({})


@pytest.mark.parametrize(
    ("card", "files", "expected"),
    [
        ({"base_model": "a/b"}, ["model.safetensors"], "finetune"),
        ({"base_model": "a/b"}, ["adapter_config.json"], "adapter"),
        ({"base_model": "a/b"}, ["sub/adapter_config.json"], "adapter"),
        ({"base_model": "a/b"}, ["model-Q4.gguf"], "quantized"),
        ({"base_model": ["a/b", "c/d"]}, ["model.safetensors"], "merge"),
        ({"base_model": "a/b", "base_model_relation": "merge"}, [], "merge"),
        ({"base_model": "a/b", "base_model_relation": "bogus"}, [], "finetune"),
        ({"base_model_relation": "adapter"}, ["adapter_config.json"], None),
    ],
)
def test_relation_declared_or_inferred(card, files, expected):
    assert relation(card, files) == expected


def test_tags():
    card = {"base_model": ["a/b", "c/d"], "tags": ["pico"], "license": "apache-2.0"}
    assert card_tags(card) == ["pico", "license:apache-2.0"]
    assert lineage_tags(card, []) == [
        "base_model:a/b",
        "base_model:merge:a/b",
        "base_model:c/d",
        "base_model:merge:c/d",
    ]
    assert card_tags({"tags": "single"}) == ["single"]
