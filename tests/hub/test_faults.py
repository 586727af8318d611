"""The fault plan: the real client meets 429s, 5xx, dropped connections and slowness.

huggingface_hub waits at least 1 s before each retry, so every test here injects one
or two faults only.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import parse_ratelimit_headers

from jobs.loopback_hub import FaultPlan

WEIGHTS = r"/acme/base/resolve/main/model\.safetensors$"


def test_rate_limit_headers_are_the_hubs(pico_zoo, hub_server):
    faults = FaultPlan()
    faults.rate_limit(r"^/api/models$", retry_after=7)
    hub = hub_server(pico_zoo, faults=faults)
    r = httpx2.get(f"{hub.endpoint}/api/models")
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "7"
    info = parse_ratelimit_headers(r.headers)
    assert (info.remaining, info.reset_in_seconds, info.limit, info.window_seconds) == (
        0,
        7,
        500,
        300,
    )
    assert httpx2.get(f"{hub.endpoint}/api/models").status_code == 200  # times=1 is spent


def test_download_recovers_from_429(pico_zoo, hub_server):
    faults = FaultPlan()
    rule = faults.rate_limit(WEIGHTS, methods=["GET"])
    hub = hub_server(pico_zoo, faults=faults)
    path = hf_hub_download("acme/base", "model.safetensors", endpoint=hub.endpoint)
    assert Path(path).read_bytes() == (pico_zoo / "acme/base/model.safetensors").read_bytes()
    assert rule.fired == 1
    statuses = [r.status for r in hub.requests if r.method == "GET"]
    assert statuses == [429, 200]


def test_listing_recovers_from_5xx_mid_pagination(pico_zoo, hub_server):
    hub = hub_server(pico_zoo, page_size=3)
    api = HfApi(endpoint=hub.endpoint)
    pages = iter(api.list_models())
    assert [next(pages).id for _ in range(3)] == ["acme/base", "acme/chat", "acme/chat-lora"]
    rule = hub.faults.server_error(r"^/api/models$", status=503)  # changed while serving
    assert len([m.id for m in pages]) == 5  # page 2 fails once and is retried
    assert rule.fired == 1
    assert [r.status for r in hub.requests] == [200, 503, 200, 200]


def test_unretried_500_surfaces_then_clears(pico_zoo, hub_server):
    faults = FaultPlan()
    faults.server_error(r"/api/models/acme/base", times=1)
    hub = hub_server(pico_zoo, faults=faults)
    api = HfApi(endpoint=hub.endpoint)
    with pytest.raises(HfHubHTTPError) as err:
        api.model_info("acme/base")  # model_info does not retry: the crawler must
    assert err.value.response.status_code == 500
    assert api.model_info("acme/base").id == "acme/base"


def test_dropped_connection_is_resumed_with_a_range(pico_zoo, hub_server, monkeypatch):
    from huggingface_hub import constants

    # The client counts only whole chunks as received (10 MB by default): small chunks
    # let a 232-byte file be resumed mid-way.
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 16)
    faults = FaultPlan()
    rule = faults.drop(WEIGHTS, after_bytes=50, methods=["GET"])
    hub = hub_server(pico_zoo, faults=faults)
    path = hf_hub_download("acme/base", "model.safetensors", endpoint=hub.endpoint)
    assert Path(path).read_bytes() == (pico_zoo / "acme/base/model.safetensors").read_bytes()
    assert rule.fired == 1
    gets = [(r.status, r.range) for r in hub.requests if r.method == "GET"]
    assert gets == [(200, None), (206, "bytes=48-")]


def test_dropped_head_gets_no_answer(pico_zoo, hub_server):
    faults = FaultPlan()
    faults.drop(WEIGHTS, methods=["HEAD"])
    hub = hub_server(pico_zoo, faults=faults)
    with pytest.raises(httpx2.RemoteProtocolError):
        httpx2.head(f"{hub.endpoint}/acme/base/resolve/main/model.safetensors")


def test_slow_responses(pico_zoo, hub_server):
    faults = FaultPlan()
    faults.slow(r"/api/models/acme/base$", delay_s=0.3, times=None)
    hub = hub_server(pico_zoo, faults=faults)
    api = HfApi(endpoint=hub.endpoint)
    for _ in range(2):
        start = time.monotonic()
        api.model_info("acme/base")
        assert time.monotonic() - start >= 0.3
    start = time.monotonic()
    api.model_info("acme/chat")
    assert time.monotonic() - start < 0.3


def test_seeded_probability_is_reproducible():
    def fates(seed: int) -> list[bool]:
        plan = FaultPlan(seed=seed)
        plan.rate_limit("/resolve/", probability=0.3, times=None)
        return [plan.draw("GET", f"/a/b/resolve/main/f{i}") is not None for i in range(200)]

    assert fates(7) == fates(7)
    assert fates(7) != fates(8)
    assert 30 < sum(fates(7)) < 90
    plan = FaultPlan()
    plan.rate_limit("/resolve/", times=2)
    assert plan.draw("GET", "/api/models") is None  # pattern does not match
    assert [plan.draw("GET", "/x/y/resolve/main/f") is not None for _ in range(3)] == [
        True,
        True,
        False,
    ]


def test_bad_rules_are_refused():
    with pytest.raises(ValueError, match="probability"):
        FaultPlan().add("status", probability=2)
    with pytest.raises(ValueError, match="fault kind"):
        FaultPlan().add("explode")
