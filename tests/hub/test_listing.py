"""`HfApi.list_models` against the loopback Hub: filters, relations, pagination."""

from __future__ import annotations

import pytest
from huggingface_hub import HfApi

ALL = [
    "acme/base",
    "acme/chat",
    "acme/chat-lora",
    "bob/big",
    "bob/chat-q",
    "bob/merged",
    "carol/pickled",
    "carol/undocumented",
]


@pytest.fixture
def api(pico_zoo, hub_server):
    hub = hub_server(pico_zoo, page_size=3)
    return HfApi(endpoint=hub.endpoint), hub


def ids(models) -> list[str]:
    return [m.id for m in models]


def test_lists_every_repo_and_ignores_clutter(api):
    client, _ = api
    assert ids(client.list_models()) == ALL


def test_pagination_follows_link_headers(api):
    client, hub = api
    assert len(ids(client.list_models())) == 8
    assert hub.count(r"^/api/models$") == 3  # ceil(8 / 3) pages
    hub.page_size = 100  # changeable while serving
    hub.reset_counts()
    assert len(ids(client.list_models())) == 8
    assert hub.count(r"^/api/models$") == 1


def test_limit_stops_early(api):
    client, hub = api
    assert ids(client.list_models(limit=2)) == ALL[:2]
    assert hub.count(r"^/api/models$") == 1


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("base_model:finetune:acme/base", ["acme/chat", "bob/big"]),
        ("base_model:adapter:acme/base", ["acme/chat-lora"]),
        ("base_model:merge:acme/base", ["bob/merged"]),
        ("base_model:merge:acme/chat", ["bob/merged"]),
        ("base_model:quantized:acme/chat", ["bob/chat-q"]),
        ("base_model:finetune:acme/chat", []),
        ("base_model:acme/chat", ["bob/chat-q", "bob/merged"]),
        ("license:mit", ["acme/base", "acme/chat"]),
        (
            "safetensors",
            [
                "acme/base",
                "acme/chat",
                "acme/chat-lora",
                "bob/big",
                "bob/chat-q",
                "bob/merged",
                "carol/undocumented",
            ],
        ),
    ],
)
def test_filter_by_derived_tags(api, tag, expected):
    client, _ = api
    assert ids(client.list_models(filter=tag)) == expected


def test_filters_combine(api):
    client, _ = api
    both = ["base_model:acme/base", "peft"]
    assert ids(client.list_models(filter=both)) == ["acme/chat-lora"]


def test_author_search_and_sort(api):
    client, _ = api
    assert ids(client.list_models(author="carol")) == ["carol/pickled", "carol/undocumented"]
    assert ids(client.list_models(search="CHAT")) == ["acme/chat", "acme/chat-lora", "bob/chat-q"]
    assert ids(client.list_models(author="acme", search="lora")) == ["acme/chat-lora"]
    assert sorted(ids(client.list_models(sort="created_at"))) == ALL


def test_card_data_full_and_expand(api):
    client, _ = api
    plain = next(iter(client.list_models(search="acme/chat", limit=1)))
    assert plain.card_data is None and plain.sha is None and plain.siblings is None
    (chat,) = client.list_models(search="acme/chat-lora", cardData=True)
    assert chat.card_data.base_model == ["acme/base"]
    (full,) = client.list_models(search="bob/chat-q", full=True)
    assert len(full.sha) == 40
    assert [s.rfilename for s in full.siblings] == ["README.md", "config.json", "model.safetensors"]
    (expanded,) = client.list_models(search="bob/chat-q", expand=["sha", "tags"])
    assert expanded.sha == full.sha
    assert "base_model:quantized:acme/chat" in expanded.tags
    assert expanded.created_at is None  # not asked for


def test_plain_listing_hashes_nothing(api):
    client, hub = api
    assert len(list(client.list_models(filter="base_model:acme/base"))) == 4
    assert hub.cache._ids == {}  # sha and blob ids are computed only when asked for
    next(iter(client.list_models(search="acme/base", full=True)))
    assert len(hub.cache._ids) == 3
