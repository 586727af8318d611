"""Issue rows 1 (Hub side), 10, 11, 12: the loopback Hub answers every bad request with a
status, isolates a broken repo to its own endpoints, and serves 200 connections at once."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from jobs.loopback_hub import LoopbackHub
from jobs.loopback_hub.pytest_plugin import write_repo
from tests.hardening.corpus import ALIAS_BOMB, deep_json, deep_yaml, weights

CONFIG = {"model_type": "tiny", "architectures": ["Tiny"]}


@pytest.fixture(scope="module")
def hub_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hubroot")
    write_repo(root, "good/base", tensors=weights(0), config=CONFIG, card={"license": "mit"})
    write_repo(
        root, "good/child", tensors=weights(1), config=CONFIG, card={"base_model": "good/base"}
    )
    write_repo(
        root,
        "evil/deep-config",
        tensors=weights(2),
        card={"base_model": "good/base"},
        files={"config.json": deep_json()},
    )
    write_repo(root, "evil/deep-card", tensors=weights(3), config=CONFIG, card=deep_yaml())
    write_repo(
        root, "evil/bomb", tensors=weights(4), config=CONFIG, card=ALIAS_BOMB.format(field="tags")
    )
    write_repo(
        root,
        "evil/deep-header",
        config=CONFIG,
        files={"model.safetensors": _deep_header()},
    )
    return root


def _deep_header() -> bytes:
    header = ("{" + '"a": ' * 0 + '"w": ' + "[" * 100_000 + "]" * 100_000 + "}").encode()
    return len(header).to_bytes(8, "little") + header


@pytest.fixture(scope="module")
def hub(hub_root):
    with LoopbackHub(hub_root) as server:
        yield server


def _raw(hub: LoopbackHub, request: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send raw bytes, half-close, read everything: (status, whole response)."""
    with socket.create_connection(("127.0.0.1", hub.port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading all we sent
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    data = b"".join(chunks)
    assert data.startswith(b"HTTP/1."), data[:200]  # an answer, not a dropped connection
    return int(data.split(b" ", 2)[1]), data


def _get(path: str, headers: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode()


@pytest.mark.parametrize(
    ("name", "request_bytes", "status"),
    [
        ("65 KB URL", _get("/api/models/" + "a" * 65_000), 414),
        ("9 KB URL", _get("/api/models?search=" + "a" * 9_000), 414),
        (
            "PUT",
            b"PUT /api/models/good/base HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
            405,
        ),
        ("DELETE", b"DELETE /api/models/good/base HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        ("120 headers", _get("/api/models", "".join(f"X-H{i}: v\r\n" for i in range(120))), 431),
        ("70 KB header", _get("/api/models", "X-Big: " + "b" * 70_000 + "\r\n"), 431),
        (
            "huge Content-Length",
            b"POST /api/models/good/base/paths-info/main HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 999999999999\r\n\r\npaths=a",
            413,
        ),
        ("garbage request line", b"GARBAGE\r\n\r\n", 400),
        ("bad Content-Length", _get("/api/models", "Content-Length: abc\r\n"), 400),
        ("chunked body", _get("/api/models", "Transfer-Encoding: chunked\r\n"), 400),
        ("bad HTTP version", b"GET /api/models HTTP/9\r\n\r\n", 400),
    ],
)
def test_bad_requests_get_the_right_status(hub, name, request_bytes, status):
    got, data = _raw(hub, request_bytes)
    assert got == status, (name, data[:300])
    assert b"Traceback" not in data
    # ... and the server goes on serving.
    assert _raw(hub, _get("/api/models/good/base"))[0] == 200


def test_an_alias_bomb_card_gives_a_small_model_info(hub):
    started = time.perf_counter()
    status, data = _raw(hub, _get("/api/models/evil/bomb"))
    assert status == 200
    assert len(data) < 20_000  # the bomb is not expanded (the issue saw 80 MB)
    assert b"lol" not in data
    assert time.perf_counter() - started < 10


def test_broken_repos_stay_out_of_everyone_elses_listings(hub):
    api = HfApi(endpoint=hub.endpoint)
    listed = {m.id for m in api.list_models()}
    assert {"good/base", "good/child"} <= listed
    with_cards = {m.id: m.card_data for m in api.list_models(cardData=True, full=True)}
    assert with_cards["good/child"]["base_model"] == "good/base"
    # The broken repos are listed without the part that is broken, never a 500 for all.
    assert not with_cards.get("evil/deep-card") and not with_cards.get("evil/bomb")
    children = {m.id for m in api.list_models(filter="base_model:finetune:good/base")}
    assert children == {"good/child", "evil/deep-config"}
    info = api.model_info("evil/deep-config")
    assert info.config is None and info.id == "evil/deep-config"
    assert api.model_info("evil/deep-header", files_metadata=True).safetensors is None
    assert api.model_info("good/base").safetensors.total == 20


def test_two_hundred_simultaneous_connections_all_get_answers(hub):
    request = _get("/api/models/good/base", "Connection: close\r\n")
    socks = [socket.create_connection(("127.0.0.1", hub.port), timeout=60) for _ in range(200)]
    try:
        for sock in socks:  # every connection is open before any is answered
            sock.sendall(request)
        statuses = []
        for sock in socks:
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            statuses.append(int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0)
    finally:
        for sock in socks:
            sock.close()
    assert statuses == [200] * 200
