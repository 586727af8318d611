"""The expensive stage: download a probed model's files and fingerprint them, shard by
shard, deleting each shard once fingerprinted (so the disk holds one shard at a time).

Tensor names, sketches and moments are exactly those `lineage index` computes for the
same folder: each shard is opened with the prefix its layout gives, and the model-level
sketch, being linear, is the sum of the shards' sketches.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lineage.errors import MalformedWeightsError
from lineage.fingerprint import DEFAULT_WIDTH, ModelFingerprint, fingerprint_model
from lineage.hub.client import HubClient
from lineage.hub.ids import local_dir_name, safe_join
from lineage.hub.probe import Probe
from lineage.weights.header import TensorInfo
from lineage.weights.layout import Layout, Source
from lineage.weights.metadata import read_metadata
from lineage.weights.model import ModelWeights

if TYPE_CHECKING:  # a CPU actor never imports torch (see lineage.fingerprint.model)
    import torch


def model_folder(cache_dir: str | Path, model_id: str, sha: str) -> Path:
    """Where a model's files are fetched: CACHE/org--name/<sha prefix>/ (names checked)."""
    return safe_join(cache_dir, f"{local_dir_name(model_id)}/{sha[:16]}")


def fetch_and_fingerprint(
    client: HubClient,
    probe: Probe,
    cache_dir: str | Path,
    *,
    width: int = DEFAULT_WIDTH,
    device: str | torch.device = "cpu",
    keep_weights: bool = False,
    progress: Callable[[int], None] | None = None,
    threads: int | None = None,
) -> ModelFingerprint:
    """Download and fingerprint `probe`'s model; its folder is removed unless kept.

    A model whose files the probe read whole (small weights, config, card; no file in a
    subfolder) is fingerprinted from those bytes in memory instead: nothing is
    downloaded or written. `threads`: as fingerprint_model's (default: the process's)."""
    have = dict(probe.prefetched)
    if not keep_weights and read_whole(probe):
        return _fingerprint_held(probe, have, width, device, progress, threads)
    run = (client, probe, width, device, progress, threads)
    folder = model_folder(cache_dir, probe.model_id, probe.sha)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return _fingerprint_in(folder, have, keep_weights, *run)
    finally:
        if not keep_weights:
            shutil.rmtree(folder, ignore_errors=True)


def read_whole(probe: Probe) -> bool:
    """Whether the probe read every file of the model (nothing left to download)."""
    have = {name for name, _ in probe.prefetched}
    names = [*probe.meta_files, *(s.filename for s in probe.sources)]
    return all(name in have and "/" not in name for name in names)


def _fingerprint_in(
    folder: Path,
    have: dict[str, bytes],
    keep_weights: bool,
    client: HubClient,
    probe: Probe,
    width: int,
    device: str | torch.device,
    progress: Callable[[int], None] | None,
    threads: int | None,
) -> ModelFingerprint:
    have = dict(have)
    for name in probe.meta_files:
        _fetch(client, probe, name, folder, have, None)
    parts: list[ModelFingerprint] = []
    infos: list[TensorInfo] = []
    for source in probe.sources:
        path = _fetch(client, probe, source.filename, folder, have, source.size)
        layout = Layout(probe.kind, folder, (Source(source.prefix, path),))
        with ModelWeights(layout) as model:
            parts.append(fingerprint_model(
                model, width=width, device=device, progress=progress, threads=threads
            ))
            infos += model.infos().values()
        if not keep_weights:
            path.unlink()  # this shard is done: free its disk before the next one
    if len(parts) == 1:  # read from the same folder and tensors: no second card parse
        return parts[0]
    return _combine(parts, read_metadata(probe.kind, folder, infos), width)


def _fetch(
    client: HubClient,
    probe: Probe,
    name: str,
    folder: Path,
    have: dict[str, bytes],
    size: int | None,
) -> Path:
    """`name` in `folder`: written from the bytes the probe already read, else downloaded."""
    data = have.pop(name, None)
    if data is None:
        return client.download(probe.model_id, probe.sha, name, folder)
    _check_size(probe, name, data, size)
    target = safe_join(folder, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


def _fingerprint_held(
    probe: Probe,
    have: dict[str, bytes],
    width: int,
    device: str | torch.device,
    progress: Callable[[int], None] | None,
    threads: int | None,
) -> ModelFingerprint:
    """A model the probe read whole, fingerprinted from its bytes: the same readers and
    checks as from a folder (lineage.weights reads Layout.held as it reads files), each
    weight file's length checked against the size its header gave; errors name the
    files MODEL_ID/NAME."""
    root = Path(probe.model_id)
    for source in probe.sources:
        _check_size(probe, source.filename, have[source.filename], source.size)
    layout = Layout(
        probe.kind,
        root,
        tuple(Source(s.prefix, root / s.filename) for s in probe.sources),
        held=have,
    )
    with ModelWeights(layout) as model:
        return fingerprint_model(
            model, width=width, device=device, progress=progress, threads=threads
        )


def _check_size(probe: Probe, name: str, data: bytes, size: int | None) -> None:
    if size is not None and len(data) != size:
        raise MalformedWeightsError(
            f"file {probe.model_id}/{name}",
            f"was read as {len(data)} bytes, but its header says {size}",
            "Crawl it again",
        )


def _combine(parts: list[ModelFingerprint], metadata, width: int) -> ModelFingerprint:
    sketch = np.zeros(width, dtype=np.float64)
    for part in parts:
        sketch += part.sketch  # linear: the sum of the shards' sketches is the model's
    return ModelFingerprint(
        metadata=metadata,
        tensors=[t for part in parts for t in part.tensors],
        sketch=sketch.astype(np.float32),
        sketch_width=width,
    )
