"""Start or join Ray: the same job runs on a laptop and under `ray job submit`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import ray

LOCAL = "local"


def connect_ray(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Connect to Ray; True when this call started a private local instance.

    `address`: "local" (always a fresh local Ray: what tests use), "auto" (join the
    cluster this machine belongs to, else start a local one), or host:port / ray://.
    Default: $RAY_ADDRESS (set by `ray job submit`), else "auto".
    """
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or "auto"
    if address == LOCAL:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        return True
    if address == "auto":
        try:
            ray.init(address="auto", log_to_driver=False)
            return False
        except ConnectionError:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
            return True
    ray.init(address=address, log_to_driver=False)
    return False


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[None]:
    """Connect for the duration of a job; shut down only a Ray this call started, so a
    job run inside a cluster (or a test's session Ray) leaves it running."""
    import ray

    started = connect_ray(address, num_cpus=num_cpus)
    try:
        yield
    finally:
        if started:
            ray.shutdown()
