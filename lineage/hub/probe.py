"""The cheap stage: which files hold a remote model's weights, and what their headers say.

Mirrors `lineage.weights.layout` (single file, sharded index, PEFT adapter, diffusers
components) over the repo's file list, then reads only the safetensors headers (range
reads of a few KB). That gives the architecture signature, parameter count and dtypes
without downloading any weights, and refuses malformed files before a byte of weights
is fetched. Pickle-only repos are refused with UnsafeFormatError: never unpickled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lineage.errors import HubError, MalformedWeightsError, ModelNotFoundError, UnsafeFormatError
from lineage.hub.ids import is_safe_relpath
from lineage.hub.remote import RemoteModel
from lineage.weights.header import SafetensorsHeader, TensorInfo
from lineage.weights.layout import PICKLE_SUFFIXES, WEIGHT_STEMS
from lineage.weights.metadata import architecture_signature
from lineage.weights.untrusted import load_json_object, weight_map_files

META_FILES = ("config.json", "adapter_config.json", "model_index.json", "README.md")
ReadSmall = Callable[[str], bytes]  # repo file name -> its bytes
ReadHeader = Callable[[str, int | None], SafetensorsHeader]  # (name, size?) -> header


@dataclass(frozen=True)
class WeightSource:
    prefix: str  # "" or "unet." for a diffusers component
    filename: str  # path in the repo
    size: int


@dataclass(frozen=True)
class Probe:
    model_id: str
    sha: str
    kind: str  # transformers | peft-adapter | diffusers
    sources: tuple[WeightSource, ...]
    meta_files: tuple[str, ...]
    n_params: int
    n_bytes: int  # bytes to download (weight files)
    dtypes: tuple[str, ...]
    arch_signature: str
    # Files read whole while probing (a small model's weights, its config and card):
    # the worker writes these instead of fetching them a second time.
    prefetched: tuple[tuple[str, bytes], ...] = ()


def plan_sources(remote: RemoteModel, read_small: ReadSmall) -> tuple[str, list[tuple[str, str]]]:
    """(kind, [(prefix, filename)]) of the weight files, as the local reader would pick."""
    files = remote.files
    if "model_index.json" in files:
        return "diffusers", _diffusers_sources(remote, read_small)
    kind = "peft-adapter" if "adapter_config.json" in files else "transformers"
    return kind, _folder_sources(remote, "", "", read_small)


def _folder_sources(
    remote: RemoteModel, folder: str, prefix: str, read_small: ReadSmall
) -> list[tuple[str, str]]:
    files = remote.files
    for stem in WEIGHT_STEMS:
        index = f"{folder}{stem}.safetensors.index.json"
        if index in files:
            return [(prefix, f"{folder}{name}") for name in _shards(remote, index, read_small)]
        if f"{folder}{stem}.safetensors" in files:
            return [(prefix, f"{folder}{stem}.safetensors")]
    here = [f for f in files if f.startswith(folder) and "/" not in f[len(folder) :]]
    pickles = sorted(f for f in here if f.endswith(PICKLE_SUFFIXES))
    if pickles:
        raise UnsafeFormatError(
            f"model {remote.model_id}",
            f"has only pickle weights ({', '.join(pickles[:3])}); they are never unpickled",
            "Ask the author for a safetensors export (the Hub's convert space makes one)",
        )
    raise ModelNotFoundError(
        f"model {remote.model_id}",
        f"has no safetensors weights in {folder or 'the repo root'}",
        "Nothing to fingerprint",
    )


def _shards(remote: RemoteModel, index: str, read_small: ReadSmall) -> list[str]:
    where = f"shard index {remote.model_id}/{index}"
    names = weight_map_files(load_json_object(read_small(index), where), where)
    folder = index.rsplit("/", 1)[0] + "/" if "/" in index else ""
    for name in names:
        if not isinstance(name, str) or "/" in name or not is_safe_relpath(name):
            raise MalformedWeightsError(
                where, f"names file {name[:80]!r}, which is not a plain file name", ""
            )
        if f"{folder}{name}" not in remote.files:
            raise MalformedWeightsError(where, f"lists {name[:80]!r}, absent from the repo", "")
    return names


def _diffusers_sources(remote: RemoteModel, read_small: ReadSmall) -> list[tuple[str, str]]:
    where = f"diffusers index {remote.model_id}/model_index.json"
    index = load_json_object(read_small("model_index.json"), where)
    components = sorted(k for k in index if not k.startswith("_"))
    sources: list[tuple[str, str]] = []
    for component in components:
        if not is_safe_relpath(component) or "/" in component:
            continue
        if not any(f.startswith(f"{component}/") for f in remote.files):
            continue  # schedulers and tokenizers have no weights folder
        try:
            sources += _folder_sources(remote, f"{component}/", f"{component}.", read_small)
        except ModelNotFoundError:
            continue
    if not sources:
        raise ModelNotFoundError(
            f"diffusers pipeline {remote.model_id}", "has no component with safetensors weights", ""
        )
    return sources


def probe_model(remote: RemoteModel, read_small: ReadSmall, read_header: ReadHeader) -> Probe:
    """Plan the weight files and read their headers; raises the refusal if any."""
    kind, planned = plan_sources(remote, read_small)
    sources, infos = [], []
    for prefix, filename in planned:
        header = read_header(filename, remote.files.get(filename))  # size may be unknown
        sources.append(WeightSource(prefix, filename, header.file_size))
        infos += [_prefixed(prefix, info) for info in header.tensors.values()]
    _check_unique(remote.model_id, infos)
    return Probe(
        model_id=remote.model_id,
        sha=remote.sha,
        kind=kind,
        sources=tuple(sources),
        meta_files=tuple(f for f in META_FILES if f in remote.files),
        n_params=sum(t.numel for t in infos),
        n_bytes=sum(s.size for s in sources),
        dtypes=tuple(sorted({t.dtype for t in infos})),
        arch_signature=architecture_signature(infos),
    )


def _prefixed(prefix: str, info: TensorInfo) -> TensorInfo:
    return TensorInfo(
        prefix + info.name, info.dtype, info.shape, info.file, info.offset, info.nbytes
    )


def _check_unique(model_id: str, infos: list[TensorInfo]) -> None:
    seen: dict[str, str] = {}
    for info in infos:
        if info.name in seen:
            raise MalformedWeightsError(
                f"model {model_id}",
                f"tensor {info.name!r} appears in both {seen[info.name]} and {info.file}",
                "Remove the stale shard",
            )
        seen[info.name] = info.file


def read_meta_files(
    remote: RemoteModel, names: tuple[str, ...], read_small: ReadSmall, max_bytes: int
) -> tuple[tuple[str, bytes], ...]:
    """The small metadata files (config, card) read now, by the probe threads, each in one
    request; a file over `max_bytes` or unreadable now is left to the worker's download
    (as before), so reading ahead never fails a model."""
    read: list[tuple[str, bytes]] = []
    for name in names:
        size = remote.files.get(name)
        if size is not None and size > max_bytes:
            continue
        try:
            read.append((name, read_small(name)))
        except HubError:
            continue
    return tuple(read)
