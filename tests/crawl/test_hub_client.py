"""The Hub client against the loopback Hub: ids, paths, rate limits, retries, probes.
No Ray here: these are the pieces each worker and the driver use."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from jobs.loopback_hub import FaultPlan
from lineage.errors import HubError, MalformedWeightsError, UnsafeFormatError
from lineage.hub import (
    HubClient,
    LocalLimiter,
    Rate,
    RetryPolicy,
    TokenBuckets,
    is_repo_id,
    local_dir_name,
    parse_seed,
    probe_model,
    safe_join,
    server_wait,
    walk,
)
from tests.crawl.conftest import write_odd_zoo

FAST = RetryPolicy(attempts=4, base_s=0.01, cap_s=0.05)


def client_for(hub, limiter=None) -> HubClient:
    return HubClient(hub.endpoint, policy=FAST, limiter=limiter, seed=0)


def probe(client: HubClient, model_id: str):
    remote = client.model_info(model_id)
    return probe_model(
        remote,
        lambda n: client.read_small_file(model_id, remote.sha, n, remote.files.get(n)),
        lambda n, size: client.read_header(model_id, remote.sha, n, size),
    )


@pytest.mark.parametrize(
    "value, ok",
    [
        ("org/name", True),
        ("gpt2", True),
        ("a.b/c_d-1", True),
        ("../etc", False),
        ("org/../x", False),
        ("org/na--me", False),
        ("/abs", False),
        ("org/name/x", False),
        ("org/-x", False),
        ("", False),
        ("org/" + "x" * 97, False),
        ("org/x\n", False),
    ],
)
def test_repo_ids_are_validated(value, ok):
    assert is_repo_id(value) is ok


def test_local_paths_never_escape(tmp_path: Path):
    assert safe_join(tmp_path, "unet/model.safetensors") == tmp_path / "unet/model.safetensors"
    for bad in ("../x", "a/../../x", "/etc/passwd", "a\\b", ".git/config", "a//b", "c:x"):
        with pytest.raises(HubError, match="not a safe relative path"):
            safe_join(tmp_path, bad)
    assert local_dir_name("org/name") == "org--name"
    with pytest.raises(HubError, match="not a valid Hub repo id"):
        local_dir_name("org/../../x")


def test_seeds_parse_and_refuse():
    assert parse_seed("org/m").kind == "model"
    assert (parse_seed("author:acme").kind, parse_seed("author:acme").value) == ("author", "acme")
    assert parse_seed("everything").kind == "everything"
    with pytest.raises(HubError, match="is not a model id, author:NAME"):
        parse_seed("../../etc")


def test_token_buckets_queue_and_pause():
    now = [0.0]
    buckets = TokenBuckets({"api": Rate(2.0, 2.0)}, clock=lambda: now[0])
    waits = [buckets.reserve("api") for _ in range(4)]
    assert waits == [0.0, 0.0, 0.5, 1.0]  # burst of 2, then one every 0.5 s
    buckets.pause("api", 10.0)
    now[0] = 4.0
    assert buckets.reserve("api") == pytest.approx(6.0)  # the pause outlasts the bucket


def test_server_wait_reads_ratelimit_then_retry_after():
    assert server_wait({"RateLimit": '"api";r=0;t=17', "Retry-After": "3"}) == 17.0
    assert server_wait({"Retry-After": "3"}) == 3.0
    assert server_wait({"RateLimit": '"api";r=5;t=17'}) is None


def test_429_is_honoured_and_pauses_the_shared_limiter(hub_server, tmp_path):
    root = write_odd_zoo(tmp_path / "zoo")
    faults = FaultPlan()
    faults.rate_limit(r"^/api/models/acme/base$", times=1, retry_after=1)
    hub = hub_server(root, faults=faults)
    limiter = LocalLimiter(TokenBuckets({"api": Rate(0, 1), "resolve": Rate(0, 1)}))
    started = time.monotonic()
    remote = client_for(hub, limiter).model_info("acme/base")
    assert remote.model_id == "acme/base" and len(remote.sha) == 40
    assert time.monotonic() - started >= 1.0  # waited the announced window
    assert limiter.buckets.stats()["pauses"]["api"] == 1
    assert hub.count(r"^/api/models/acme/base$") == 2


def test_5xx_and_dropped_connections_are_retried_then_give_up(hub_server, tmp_path):
    root = write_odd_zoo(tmp_path / "zoo")
    faults = FaultPlan()
    faults.server_error(r"^/api/models/acme/chat$", times=2, status=503)
    faults.drop(r"acme/base/resolve/.*model\.safetensors$", after_bytes=4, methods=["GET"])
    hub = hub_server(root, faults=faults)
    client = client_for(hub)
    assert client.model_info("acme/chat").model_id == "acme/chat"
    assert probe(client, "acme/base").n_params == 48  # the dropped range read was retried
    assert client.retries == 3
    faults.server_error(r"^/api/models/acme/big$", times=None, status=500)
    with pytest.raises(HubError, match=r"still failing after 4 tries \(HTTP 500"):
        client.model_info("acme/big")


def test_missing_repo_fails_at_once(hub_server, tmp_path):
    hub = hub_server(write_odd_zoo(tmp_path / "zoo"))
    with pytest.raises(HubError, match="model nobody/nothing"):
        client_for(hub).model_info("nobody/nothing")
    assert hub.count(r"nobody/nothing") == 1  # a 404 is not retried


def test_probe_reads_headers_only(hub_server, tmp_path):
    hub = hub_server(write_odd_zoo(tmp_path / "zoo"))
    client = client_for(hub)
    big = probe(client, "acme/big")
    assert [s.filename for s in big.sources] == [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    assert (big.kind, big.n_params, big.dtypes) == ("transformers", 48, ("F32",))
    lora = probe(client, "bob/chat-lora")
    assert lora.kind == "peft-adapter" and lora.meta_files == ("adapter_config.json", "README.md")
    with pytest.raises(MalformedWeightsError, match="header is not valid UTF-8 JSON"):
        probe(client, "bob/broken")
    with pytest.raises(UnsafeFormatError, match="only pickle weights .*never unpickled"):
        probe(client, "carol/pickled")
    full = [r for r in hub.requests if "/resolve/" in r.path and r.method == "GET" and not r.range]
    assert full == []  # no weight file was downloaded, only ranges


def test_walk_finds_the_family_both_ways(hub_server, tmp_path):
    hub = hub_server(write_odd_zoo(tmp_path / "zoo"))
    found = list(walk(client_for(hub), [parse_seed("bob/chat-lora")]))
    assert sorted(f.model_id for f in found) == [
        "acme/base",
        "acme/big",
        "acme/chat",
        "bob/broken",
        "bob/chat-lora",
        "carol/pickled",
    ]
    edges = {(e.parent, e.child, e.relation) for f in found for e in f.remote.card_edges}
    assert ("acme/chat", "bob/chat-lora", "adapter") in edges
    assert ("acme/base", "carol/pickled", "finetune") in edges
    assert len(edges) == 5


def test_listing_seed_stops_at_since(hub_server, tmp_path):
    import os
    from datetime import UTC, datetime, timedelta

    root = write_odd_zoo(tmp_path / "zoo")
    old = time.time() - 3600
    for path in root.rglob("*"):
        os.utime(path, (old, old))
    cut = datetime.now(UTC) - timedelta(seconds=1)  # the Hub's times have ms precision
    (root / "acme/chat/README.md").write_text("---\nbase_model: acme/base\n---\nnew\n")
    hub = hub_server(root, page_size=2)
    found = list(walk(client_for(hub), [parse_seed("everything")], family=False, since=cut))
    assert [f.model_id for f in found] == ["acme/chat"]


def test_hf_token_is_sent_but_never_shown(hub_server, tmp_path, monkeypatch):
    secret = "hf_clientTestSecret987"
    monkeypatch.setenv("HF_TOKEN", secret)
    hub = hub_server(write_odd_zoo(tmp_path / "zoo"))
    client = client_for(hub)
    assert client._headers()["authorization"] == f"Bearer {secret}"
    with pytest.raises(HubError) as caught:
        client.model_info("nobody/nothing")
    assert secret not in str(caught.value) and secret not in repr(caught.value.args)
