"""A loopback, Hub-compatible HTTP server over a folder of model repos.

Test and demo infrastructure: the real `huggingface_hub` client talks to it as to the
Hub (listing with filters and pagination, model info, tree, file downloads with ranges),
and a `FaultPlan` makes it fail on purpose (429, 5xx, dropped connections, slowness).

    from huggingface_hub import HfApi
    from jobs.loopback_hub import FaultPlan, LoopbackHub

    faults = FaultPlan(seed=0)
    faults.rate_limit(r"/resolve/", times=2)              # next 2 downloads get 429
    with LoopbackHub("zoo/", faults=faults, page_size=2) as hub:
        api = HfApi(endpoint=hub.endpoint)
        children = api.list_models(filter="base_model:finetune:org/base")
        hub.faults.drop(r"model\\.safetensors$", after_bytes=100, methods=["GET"])
        hub.count(r"/resolve/main/model\\.safetensors$", method="GET")  # re-fetches?

ROOT/<org>/<name>/ folders are repos; other entries of ROOT (ground_truth.json, hidden
folders such as a zoo's half-written `.name.tmp`) are ignored. Changes to the folder
are visible on the next request; the repo's `sha` follows its content.
"""

from jobs.loopback_hub.faults import Fault, FaultPlan, rate_limit_headers
from jobs.loopback_hub.server import LoopbackHub, RequestRecord

__all__ = ["Fault", "FaultPlan", "LoopbackHub", "RequestRecord", "rate_limit_headers"]
