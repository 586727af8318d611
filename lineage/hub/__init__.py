"""Crawl the Hugging Face Hub (or a Hub-compatible endpoint) politely and safely.

    client = HubClient("https://huggingface.co")          # HF_TOKEN used if set
    for found in walk(client, [parse_seed("org/model")]):  # the documented family
        probe = probe_model(found.remote, ...)            # headers only: cheap
        fp = fetch_and_fingerprint(client, probe, cache)   # weights, shard by shard

Everything here is plain Python over huggingface_hub: no Ray, no DuckDB (jobs/crawl
runs it on a cluster and writes the catalog). Names load on first use, so a process
that needs one small module (the rate-limiter actor: `lineage.hub.ratelimit`) does not
import huggingface_hub and the fingerprint kernels with it (about 1.2 s per process).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_WHERE = {
    "client": ("HubClient", "default_endpoint"),
    "discovery": ("Found", "Seed", "children", "parse_seed", "walk"),
    "fetch": ("fetch_and_fingerprint", "model_folder"),
    "ids": ("is_repo_id", "local_dir_name", "redact", "safe_join", "validate_repo_id"),
    "probe": ("Probe", "WeightSource", "plan_sources", "probe_model"),
    "ratelimit": ("Limiter", "LocalLimiter", "Rate", "TokenBuckets", "default_rates"),
    "remote": ("CardEdge", "RemoteModel", "edges_from_tags", "remote_model"),
    "retry": ("RetryPolicy", "call_with_retries", "classify", "server_wait"),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

if TYPE_CHECKING:
    from lineage.hub.client import HubClient, default_endpoint
    from lineage.hub.discovery import Found, Seed, children, parse_seed, walk
    from lineage.hub.fetch import fetch_and_fingerprint, model_folder
    from lineage.hub.ids import is_repo_id, local_dir_name, redact, safe_join, validate_repo_id
    from lineage.hub.probe import Probe, WeightSource, plan_sources, probe_model
    from lineage.hub.ratelimit import Limiter, LocalLimiter, Rate, TokenBuckets, default_rates
    from lineage.hub.remote import CardEdge, RemoteModel, edges_from_tags, remote_model
    from lineage.hub.retry import RetryPolicy, call_with_retries, classify, server_wait


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'lineage.hub' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"lineage.hub.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "CardEdge",
    "Found",
    "HubClient",
    "Limiter",
    "LocalLimiter",
    "Probe",
    "Rate",
    "RemoteModel",
    "RetryPolicy",
    "Seed",
    "TokenBuckets",
    "WeightSource",
    "call_with_retries",
    "children",
    "classify",
    "default_endpoint",
    "default_rates",
    "edges_from_tags",
    "fetch_and_fingerprint",
    "is_repo_id",
    "local_dir_name",
    "model_folder",
    "parse_seed",
    "plan_sources",
    "probe_model",
    "redact",
    "remote_model",
    "safe_join",
    "server_wait",
    "validate_repo_id",
    "walk",
]
