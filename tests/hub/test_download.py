"""File downloads: hf_hub_download, snapshot_download, HEAD headers and byte ranges."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError


@pytest.fixture
def served(pico_zoo, hub_server):
    return hub_server(pico_zoo), pico_zoo


def test_download_bytes_equal_and_cached(served):
    hub, root = served
    path = hf_hub_download("acme/base", "model.safetensors", endpoint=hub.endpoint)
    expected = (root / "acme/base/model.safetensors").read_bytes()
    assert Path(path).read_bytes() == expected
    url = "/acme/base/resolve/main/model.safetensors"
    assert hub.count(url, method="GET") == 1
    again = hf_hub_download("acme/base", "model.safetensors", endpoint=hub.endpoint)
    assert again == path
    assert hub.count(url, method="GET") == 1  # only a HEAD to check the etag
    assert hub.count(url, method="HEAD") == 2


def test_download_at_sha_revision(served):
    hub, root = served
    sha = HfApi(endpoint=hub.endpoint).model_info("acme/chat").sha
    path = hf_hub_download("acme/chat", "README.md", revision=sha, endpoint=hub.endpoint)
    assert f"/snapshots/{sha}/" in path
    assert Path(path).read_bytes() == (root / "acme/chat/README.md").read_bytes()


def test_missing_file_raises_entry_not_found(served):
    hub, _ = served
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("acme/base", "nope.json", endpoint=hub.endpoint)


def test_head_headers(served):
    hub, root = served
    weights = (root / "acme/base/model.safetensors").read_bytes()
    sha = HfApi(endpoint=hub.endpoint).model_info("acme/base").sha
    r = httpx2.head(f"{hub.endpoint}/acme/base/resolve/main/model.safetensors")
    assert r.status_code == 200
    assert r.headers["X-Repo-Commit"] == sha
    assert r.headers["X-Linked-Etag"] == f'"{hashlib.sha256(weights).hexdigest()}"'
    assert r.headers["X-Linked-Size"] == r.headers["Content-Length"] == str(len(weights))
    assert r.content == b""
    small = httpx2.head(f"{hub.endpoint}/acme/base/resolve/{sha}/config.json")
    assert "X-Linked-Etag" not in small.headers and small.headers["ETag"].startswith('"')


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-7", 0, 7),
        ("bytes=10-", 10, None),
        ("bytes=-5", -5, None),
        ("bytes=0-100000", 0, None),
    ],
)
def test_range_requests(served, header, start, end):
    hub, root = served
    data = (root / "acme/base/model.safetensors").read_bytes()
    r = httpx2.get(
        f"{hub.endpoint}/acme/base/resolve/main/model.safetensors", headers={"Range": header}
    )
    assert r.status_code == 206
    want = data[start:] if end is None else data[start : end + 1]
    assert r.content == want
    first = start if start >= 0 else len(data) + start
    assert r.headers["Content-Range"] == f"bytes {first}-{first + len(want) - 1}/{len(data)}"


def test_unsatisfiable_range(served):
    hub, _ = served
    r = httpx2.get(
        f"{hub.endpoint}/acme/base/resolve/main/config.json", headers={"Range": "bytes=99999-"}
    )
    assert r.status_code == 416


def test_snapshot_download(served, tmp_path):
    hub, root = served
    folder = snapshot_download("bob/big", endpoint=hub.endpoint, local_dir=tmp_path / "big")
    names = sorted(p.name for p in (tmp_path / "big").iterdir() if not p.name.startswith("."))
    assert names == sorted(p.name for p in (root / "bob/big").iterdir())
    for name in names:
        assert (tmp_path / "big" / name).read_bytes() == (root / "bob/big" / name).read_bytes()
    assert str(folder) == str(tmp_path / "big")


def test_hf_endpoint_environment_variable(served, tmp_path):
    """A fresh process that only has HF_ENDPOINT set finds the loopback Hub."""
    import os
    import subprocess
    import sys

    hub, root = served
    script = (
        "from huggingface_hub import HfApi, hf_hub_download\n"
        "print(','.join(m.id for m in HfApi().list_models(author='bob')))\n"
        "print(hf_hub_download('bob/chat-q', 'config.json'))\n"
    )
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "sub_home")}
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert out[0] == "bob/big,bob/chat-q,bob/merged"
    assert Path(out[1]).read_bytes() == (root / "bob/chat-q/config.json").read_bytes()
