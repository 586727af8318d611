"""Pytest fixtures for tests that talk to a loopback Hub with the real client.

Use them from any test folder, either by listing this module in the root conftest
(`pytest_plugins = ["jobs.loopback_hub.pytest_plugin"]`) or by importing the fixtures
into a conftest (`from jobs.loopback_hub.pytest_plugin import hub_server, ...`).

    def test_crawl(make_repo, hub_server, tmp_path):
        root = tmp_path / "zoo"
        make_repo(root, "acme/base", tensors={"w": torch.ones(4, 4)})
        hub = hub_server(root, page_size=2)
        api = HfApi(endpoint=hub.endpoint)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jobs.loopback_hub.faults import FaultPlan
from jobs.loopback_hub.server import LoopbackHub


@pytest.fixture
def hub_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An isolated huggingface_hub: own HF_HOME and cache, no token, online, no telemetry.

    huggingface_hub reads its settings once at import, so the module constants are
    patched as well as the environment (the latter for subprocesses).
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import close_session

    home = tmp_path / "hf_home"
    cache = home / "hub"
    cache.mkdir(parents=True)
    for key, value in {
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_TOKEN_PATH": str(home / "token"),
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    yield home
    close_session()  # drop pooled connections to servers that are gone


@pytest.fixture
def hub_server(hub_env: Path) -> Iterator[Callable[..., LoopbackHub]]:
    """Factory: `hub_server(root, faults=None, page_size=100)` -> a running LoopbackHub.

    Every server it started is stopped (threads joined, port closed) at teardown.
    """
    started: list[LoopbackHub] = []

    def start(
        root: str | Path, faults: FaultPlan | None = None, page_size: int = 100
    ) -> LoopbackHub:
        hub = LoopbackHub(root, faults=faults, page_size=page_size).start()
        started.append(hub)
        return hub

    yield start
    for hub in started:
        hub.stop()


def write_card(path: Path, card: dict | str | None, body: str = "") -> None:
    """README.md with `card` as YAML front matter (a str is written verbatim)."""
    import yaml

    if isinstance(card, str):
        path.write_text(card, encoding="utf-8")
        return
    front = yaml.safe_dump(card or {}, sort_keys=False) if card else ""
    text = f"---\n{front}---\n{body}" if front else body
    path.write_text(text, encoding="utf-8")


def write_repo(
    root: str | Path,
    repo_id: str,
    *,
    tensors: dict | None = None,
    card: dict | str | None = None,
    config: dict | None = None,
    files: dict[str, bytes | str] | None = None,
) -> Path:
    """Write a tiny model repo folder ROOT/org/name and return it.

    `tensors` (name -> torch tensor) become model.safetensors; `card` becomes README.md;
    `config` becomes config.json; `files` are written as given (relative paths).
    """
    import json

    folder = Path(root) / repo_id
    folder.mkdir(parents=True, exist_ok=True)
    if tensors is not None:
        from safetensors.torch import save_file

        save_file(
            {k: v.contiguous() for k, v in tensors.items()}, str(folder / "model.safetensors")
        )
    if card is not None:
        write_card(folder / "README.md", card)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    for name, content in (files or {}).items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    return folder


@pytest.fixture
def make_repo() -> Callable[..., Path]:
    """The `write_repo` helper as a fixture: `make_repo(root, "org/name", tensors=...)`."""
    return write_repo
