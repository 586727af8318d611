"""`model_info`, tree listing and safetensors metadata against the loopback Hub."""

from __future__ import annotations

import hashlib
import os

import pytest
import torch
from huggingface_hub import HfApi
from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError
from safetensors.torch import save_file


@pytest.fixture
def served(pico_zoo, hub_server):
    hub = hub_server(pico_zoo)
    return HfApi(endpoint=hub.endpoint), hub, pico_zoo


def test_model_info_fields(served):
    api, _, root = served
    info = api.model_info("acme/chat", files_metadata=True)
    assert info.id == "acme/chat" and info.author == "acme"
    assert len(info.sha) == 40
    assert info.card_data.base_model == "acme/base"
    assert "base_model:finetune:acme/base" in info.tags and "pico" in info.tags
    assert info.safetensors.parameters == {"F32": 16, "F16": 4}
    assert info.safetensors.total == 20
    assert info.created_at <= info.last_modified
    siblings = {s.rfilename: s for s in info.siblings}
    assert set(siblings) == {"README.md", "config.json", "model.safetensors"}
    weights = (root / "acme/chat/model.safetensors").read_bytes()
    assert siblings["model.safetensors"].size == len(weights)
    assert siblings["model.safetensors"].lfs.sha256 == hashlib.sha256(weights).hexdigest()
    readme = (root / "acme/chat/README.md").read_bytes()
    git_oid = hashlib.sha1(b"blob %d\x00" % len(readme) + readme).hexdigest()
    assert siblings["README.md"].blob_id == git_oid and siblings["README.md"].lfs is None


def test_sharded_totals_and_missing_card(served):
    api, _, _ = served
    big = api.model_info("bob/big")
    assert big.safetensors.total == 20
    assert api.model_info("carol/undocumented").card_data is None
    pickled = api.model_info("carol/pickled")
    assert pickled.safetensors is None and pickled.card_data is None


def test_revision_by_sha_and_unknown_revisions(served):
    api, _, _ = served
    sha = api.model_info("acme/base").sha
    assert api.model_info("acme/base", revision=sha).sha == sha
    assert api.model_info("acme/base", revision="main").sha == sha
    with pytest.raises(RevisionNotFoundError):
        api.model_info("acme/base", revision="0" * 40)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("acme/nope")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("gpt2")  # single-name ids are not repos here


def test_sha_is_deterministic_and_follows_content(served):
    api, _, root = served
    before = api.model_info("acme/base").sha
    assert api.model_info("acme/base").sha == before
    save_file({"w": torch.ones(2)}, str(root / "acme/base/model.safetensors"))
    after = api.model_info("acme/base")
    assert after.sha != before
    assert after.safetensors.total == 2
    os.utime(root / "acme/base/README.md")  # touching without changing keeps the sha
    assert api.model_info("acme/base").sha == after.sha


def test_repos_appear_while_serving(served, make_repo):
    api, _, root = served
    make_repo(root, "dave/new", tensors={"w": torch.zeros(3)}, card={"base_model": "acme/base"})
    assert api.model_info("dave/new").safetensors.total == 3
    assert "dave/new" in [m.id for m in api.list_models(filter="base_model:acme/base")]


def test_safetensors_metadata_single_and_sharded(served):
    api, hub, _ = served
    single = api.get_safetensors_metadata("acme/chat")
    assert not single.sharded
    assert single.parameter_count == {"F32": 16, "F16": 4}
    assert hub.count(r"/acme/chat/resolve/main/model.safetensors", method="GET") == 1
    sharded = api.get_safetensors_metadata("bob/big")
    assert sharded.sharded
    assert set(sharded.files_metadata) == {
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    }
    assert sharded.parameter_count == {"F32": 16, "F16": 4}
    with pytest.raises(Exception, match="not a safetensors repo"):
        api.get_safetensors_metadata("carol/pickled")


def test_tree_files_refs_and_paths_info(served, make_repo):
    api, _, root = served
    make_repo(
        root,
        "dave/nested",
        files={"unet/config.json": "{}", "unet/deep/w.bin": b"x", "README.md": "hi"},
    )
    assert api.list_repo_files("dave/nested") == [
        "README.md",
        "unet/config.json",
        "unet/deep/w.bin",
    ]
    top = {e.path: type(e).__name__ for e in api.list_repo_tree("dave/nested")}
    assert top == {"README.md": "RepoFile", "unet": "RepoFolder"}
    sub = [e.path for e in api.list_repo_tree("dave/nested", path_in_repo="unet")]
    assert sub == ["unet/config.json", "unet/deep"]
    sha = api.model_info("dave/nested").sha
    assert api.list_repo_refs("dave/nested").branches[0].target_commit == sha
    found = api.get_paths_info("dave/nested", ["README.md", "unet", "missing.txt"])
    assert [(e.path, type(e).__name__) for e in found] == [
        ("README.md", "RepoFile"),
        ("unet", "RepoFolder"),
    ]
