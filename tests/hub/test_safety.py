"""Hostile URLs: nothing outside ROOT is ever served (traversal, encodings, symlinks)."""

from __future__ import annotations

import http.client
import os

import pytest
from huggingface_hub import HfApi

SECRET = b"TOPSECRET-do-not-serve"


@pytest.fixture
def hostile(tmp_path, make_repo, hub_server):
    root = tmp_path / "zoo"
    make_repo(root, "acme/base", card={"license": "mit"}, files={"config.json": "{}"})
    make_repo(root, "acme/chat", card={"base_model": "acme/base"})
    (tmp_path / "secret.txt").write_bytes(SECRET)
    outside = tmp_path / "outside"
    (outside / "repo").mkdir(parents=True)
    (outside / "repo" / "secret.txt").write_bytes(SECRET)
    base = root / "acme" / "base"
    os.symlink(tmp_path / "secret.txt", base / "leak.txt")  # file link leaving ROOT
    os.symlink(outside, base / "sub")  # folder link leaving ROOT
    os.symlink(outside, root / "evil")  # an "org" that is a link outside
    os.symlink(outside / "repo", root / "acme" / "linked")  # a "repo" that is a link outside
    os.symlink(root / "acme" / "chat" / "README.md", base / "chat-card.md")  # inside: fine
    return hub_server(root)


def raw_get(hub, path: str, method: str = "GET") -> tuple[int, bytes]:
    """Send the path byte for byte: httpx would normalise away the interesting parts."""
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=5)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "path",
    [
        "/acme/base/resolve/main/../../../secret.txt",
        "/acme/base/resolve/main/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "/acme/base/resolve/main/..%2f..%2f..%2fsecret.txt",
        "/acme/base/resolve/main/%2E%2E%2F%2E%2E%2F%2E%2E%2Fsecret.txt",
        "/acme/base/resolve/main//etc/passwd",
        "/acme/base/resolve/main/%2Fetc%2Fpasswd",
        "/acme/base/resolve/main/..\\..\\..\\secret.txt",
        "/acme/base/resolve/main/config.json%00.txt",
        "/%2e%2e/%2e%2e/resolve/main/secret.txt",
        "/acme/..%2F..%2Fsecret.txt/resolve/main/x",
        "/api/models/%2e%2e/secret.txt",
        "/api/models/acme/base/tree/main/..%2F..%2F..",
        "/acme/base/resolve/main/leak.txt",
        "/acme/base/resolve/main/sub/repo/secret.txt",
        "/evil/repo/resolve/main/secret.txt",
        "/acme/linked/resolve/main/secret.txt",
        "/api/models/acme/linked",
    ],
)
def test_traversal_is_refused(hostile, path):
    for method in ("GET", "HEAD"):
        status, body = raw_get(hostile, path, method)
        assert status in (400, 404), (method, path, status)
        assert SECRET not in body


def test_links_leaving_root_are_invisible(hostile):
    api = HfApi(endpoint=hostile.endpoint)
    assert [m.id for m in api.list_models()] == ["acme/base", "acme/chat"]
    files = api.list_repo_files("acme/base")
    assert files == ["README.md", "chat-card.md", "config.json"]  # no leak.txt, no sub/


def test_links_inside_root_are_served(hostile):
    status, body = raw_get(hostile, "/acme/base/resolve/main/chat-card.md")
    assert status == 200 and b"base_model: acme/base" in body


def test_bad_names_answer_400_with_a_reason(hostile):
    status, body = raw_get(hostile, "/acme/base/resolve/main/%2e%2e/x")
    assert status == 400 and b"invalid file path" in body
