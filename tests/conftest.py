"""Shared fixtures. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

# One local Ray for the whole session: starting Ray costs seconds on 2 cores, so every
# Ray test shares this one. It declares 2 GPUs that do not exist: Ray schedules GPU
# actors and tasks on them and torch finds no CUDA, which is exactly the GPU placement
# path with its CPU fallback. Shut down at session end: no Ray process is left behind.
FAKE_GPUS = 2


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, num_gpus=FAKE_GPUS, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
