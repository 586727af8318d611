"""A loopback, Hub-compatible HTTP server over a folder of model repos.

Test and demo infrastructure: the real `huggingface_hub` client talks to it as to the
Hub (listing with filters and pagination, model info, tree, file downloads with ranges),
and a `FaultPlan` makes it fail on purpose (429, 5xx, dropped connections, slowness).
"""

from jobs.loopback_hub.faults import Fault, FaultPlan, rate_limit_headers
from jobs.loopback_hub.server import LoopbackHub, RequestRecord

__all__ = ["Fault", "FaultPlan", "LoopbackHub", "RequestRecord", "rate_limit_headers"]
