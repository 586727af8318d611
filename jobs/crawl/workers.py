"""The fingerprinting actors: download a probed model and fingerprint it, on the GPU
Ray assigned to the actor, or on the CPU when there is none (or torch cannot see it).

Actors restart when their process dies and Ray re-runs the task they were running
(`max_restarts`, `max_task_retries`): a model half-fetched by a dead worker is fetched
again (resuming the partial file) by its replacement.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import ray

from jobs.crawl.limiter import RayLimiter
from lineage.errors import LineageError
from lineage.fingerprint import ModelFingerprint
from lineage.hub.client import FIRST_HEADER_READ, HubClient
from lineage.hub.fetch import fetch_and_fingerprint
from lineage.hub.ids import redact
from lineage.hub.probe import Probe
from lineage.hub.remote import RemoteModel
from lineage.hub.retry import RetryPolicy

if TYPE_CHECKING:
    from jobs.crawl.lane import DriverLane

RESTARTS = 3
BATCH_BYTES = 64 * 1024 * 1024  # weights per task when several models share one
LANE_BATCH = 8  # models per job of the driver's lane: a result every ~40 ms
# Models the driver's lane fingerprints before the actors are asked for anyway: an actor's
# start costs about a second of a core (a process, imports, the compiled kernels), what
# the lane spends on a few hundred small models (2-5 ms each).
LANE_ALONE = 256
LANE_POLL_S = 0.005  # how long a poll waits on the actors while the lane works


@dataclass
class WorkResult:
    model_id: str
    sha: str
    fingerprint: ModelFingerprint | None
    error: str | None
    bytes: int
    seconds: float
    device: str
    worker: str = "actor"  # or "driver": the driver's lane (jobs.crawl.lane)


def pick_device() -> str:
    """ "cuda" when Ray gave this actor a GPU and torch can use it, else "cpu" (a
    CPU actor never imports torch: its import alone is ~220 MB of RSS)."""
    if not ray.get_gpu_ids():
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class FingerprintWorker:
    def __init__(
        self,
        endpoint: str,
        limiter: RayLimiter,
        policy: RetryPolicy,
        cache_dir: str,
        width: int,
        keep_weights: bool,
        threads: int | None = None,
    ) -> None:
        from huggingface_hub.utils import disable_progress_bars

        from lineage.threads import use_threads

        # Set once, as the actor starts: its threads are the CPUs Ray gave it.
        self.threads = use_threads(actor_threads(threads))

        disable_progress_bars()  # one bar, on the driver
        self.client = HubClient(endpoint, limiter=limiter, policy=policy)
        self.cache_dir = Path(cache_dir)
        self.width = width
        self.keep_weights = keep_weights
        self.device = pick_device()
        # Loading the compiled kernels (about 0.5 s) overlaps what comes before the first
        # fingerprint (the first download); a model that needs a kernel sooner waits for
        # it (numba loads a kernel once, under its compiler lock).
        threading.Thread(
            target=warm_up, args=(width, self.device), name="lineage-warm-up", daemon=True
        ).start()

    def describe(self) -> dict:
        ctx = ray.get_runtime_context()
        torch_loaded = "torch" in sys.modules  # before torch_threads below imports it
        return {
            "torch_loaded": torch_loaded,
            "pid": os.getpid(),
            "device": self.device,
            "resources": ctx.get_assigned_resources(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "threads": self.threads,
            "torch_threads": __import__("torch").get_num_threads(),
        }

    def fingerprint_many(self, probes: list[Probe]) -> list[WorkResult]:
        """Several (small) models in one task: one Ray round trip for all of them."""
        return [self.fingerprint(probe) for probe in probes]

    def fingerprint(self, probe: Probe) -> WorkResult:
        return fingerprint_probe(
            self.client,
            probe,
            self.cache_dir,
            width=self.width,
            device=self.device,
            keep_weights=self.keep_weights,
        )


def fingerprint_probe(
    client: HubClient,
    probe: Probe,
    cache_dir: Path,
    *,
    width: int,
    device: str,
    keep_weights: bool,
    threads: int | None = None,
    worker: str = "actor",
) -> WorkResult:
    """One model's WorkResult: its fingerprint, or the error that is its fate alone."""
    started = time.perf_counter()
    try:
        fp = fetch_and_fingerprint(
            client,
            probe,
            cache_dir,
            width=width,
            device=device,
            keep_weights=keep_weights,
            threads=threads,
        )
        error = None
    except LineageError as err:  # a refused file or a Hub failure: the model's fate
        fp, error = None, redact(str(err), os.environ.get("HF_TOKEN"))
    except OSError as err:  # a full disk, an unreadable download: this model only
        fp, error = None, f"{probe.model_id}: {type(err).__name__}: {err.strerror}"
    return WorkResult(
        probe.model_id,
        probe.sha,
        fp,
        error,
        probe.n_bytes if fp is not None else 0,
        time.perf_counter() - started,
        device,
        worker,
    )


def surely_downloads(remote: RemoteModel) -> bool:
    """Whether a model's file list alone shows weights the probe cannot read whole: a
    sharded index, or a safetensors file of known size over the first header read (a
    listing gives no sizes; a model's info does)."""
    for name, size in remote.files.items():
        if name.endswith(".safetensors.index.json"):
            return True
        if name.endswith(".safetensors") and size is not None and size > FIRST_HEADER_READ:
            return True
    return False


def warm_up(width: int, device: str) -> None:
    """Fingerprint a two-tensor model once, so the kernels are loaded before the first
    model needs them. Written to a private temporary folder (the cache is the models').
    A failure here is not the actor's: the first model will show it."""
    import numpy as np
    from safetensors.numpy import save_file

    from lineage.fingerprint import fingerprint_model
    from lineage.weights.layout import Layout, Source
    from lineage.weights.model import ModelWeights

    rng = np.random.default_rng(0)
    tensors = {
        "w.weight": rng.standard_normal((8, 8), dtype=np.float32),
        "w.bias": rng.standard_normal(8, dtype=np.float32),
    }
    try:
        with tempfile.TemporaryDirectory(prefix="lineage-warm-up-") as tmp:
            folder = Path(tmp)
            path = folder / "warm-up.safetensors"
            save_file(tensors, str(path))
            with ModelWeights(Layout("transformers", folder, (Source("", path),))) as model:
                fingerprint_model(model, width=width, device=device)
    except (LineageError, OSError, ValueError):
        pass


def actor_threads(requested: int | None) -> int:
    """The threads of this actor: `requested`, at most the CPUs Ray assigned it (its
    num_cpus rounded down, at least 1) and the process's affinity."""
    from lineage.threads import resolve_threads

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    given = resolve_threads(None, cpus)
    return given if requested is None else max(1, min(requested, given))


def actor_options(gpus_per_worker: float | None, cpus_per_worker: float) -> dict:
    """Resources of one actor: GPU(s) when asked or when the cluster has GPUs."""
    if gpus_per_worker is None:
        gpus_per_worker = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    opts: dict = {"max_restarts": RESTARTS, "max_task_retries": RESTARTS}
    if gpus_per_worker > 0:
        return {**opts, "num_gpus": gpus_per_worker, "num_cpus": min(cpus_per_worker, 1.0)}
    return {**opts, "num_cpus": cpus_per_worker}


class WorkerPool:
    """N actors, at most `depth` tasks in flight on each; results come back unordered.

    A task carries several queued models when they are small (up to `batch` models and
    `batch_bytes` of weights), so a small model costs a share of one Ray round trip; a
    big model goes alone. Batches form only when models wait: an idle actor gets the
    next model at once. With a `lane` (jobs.crawl.lane), the actors are asked for only
    when a model comes that the lane cannot take (something left to download) or once
    the lane has taken `lane_alone` models (a crawl big enough to pay an actor's start);
    until the first actor is up, the models the actors cannot take yet go to the lane.
    Without a lane they are asked for at once."""

    def __init__(
        self,
        n: int,
        options: dict,
        args: tuple,
        depth: int = 2,
        batch: int = 16,
        batch_bytes: int = BATCH_BYTES,
        lane: DriverLane | None = None,
        lane_alone: int = LANE_ALONE,
    ) -> None:
        self.n, self.options, self.args = max(1, n), options, args
        self.actors: list[ray.actor.ActorHandle] = []
        self.depth = depth
        self.batch = max(1, batch)
        self.batch_bytes = batch_bytes
        self.queue: deque[Probe] = deque()
        self.in_flight: dict[ray.ObjectRef, tuple[int, list[Probe]]] = {}
        self.load: list[int] = []
        self.lane = lane
        self.lane_alone = lane_alone
        # An actor returned a task: it is up, kernels loaded (its first task waited for
        # them); the lane takes no more models.
        self.actor_up = False
        if lane is None or lane_alone <= 0:
            self.start_actors()

    def start_actors(self) -> None:
        """Ask Ray for the actors (it creates them asynchronously); once only."""
        if self.actors:
            return
        remote_cls = ray.remote(FingerprintWorker).options(**self.options)
        self.actors = [remote_cls.remote(*self.args) for _ in range(self.n)]
        self.load = [0] * self.n

    def expect(self, remote: RemoteModel) -> None:
        """A model was found: ask for the actors now if its file list already says it
        has something to download (the probe would say so only after its reads)."""
        if not self.actors and surely_downloads(remote):
            self.start_actors()

    def submit(self, probe: Probe) -> None:
        if not self.actors and not self.lane.fits(probe):
            self.start_actors()  # something to download: the driver never fetches weights
        self.queue.append(probe)
        self._dispatch()

    def _dispatch(self) -> None:
        if not self.actors and self.lane.taken >= self.lane_alone:
            self.start_actors()  # a crawl this big pays an actor's start back
        while self.queue and self.actors:
            i = min(range(len(self.actors)), key=self.load.__getitem__)
            if self.load[i] >= self.depth:
                break
            probes = self._next_batch(self.batch)
            self.in_flight[self.actors[i].fingerprint_many.remote(probes)] = (i, probes)
            self.load[i] += 1
        self.lend()

    def lend(self) -> None:
        """Queued models to the lane, while no actor is up and the lane is free."""
        if self.lane is None or self.lane.busy or not self.queue or self.actor_up:
            return
        probes = self._next_batch(LANE_BATCH, self.lane.fits)
        if probes:
            self.lane.start(probes)

    def _next_batch(self, most: int, fits=None) -> list[Probe]:
        """Up to `most` queued models (those `fits` accepts), in queue order, within
        `batch_bytes` (a first model bigger than that goes alone)."""
        picked: list[Probe] = []
        passed: list[Probe] = []  # not for this taker: they keep their place
        n_bytes = 0
        while self.queue and len(picked) < most:
            probe = self.queue.popleft()
            if fits is not None and not fits(probe):
                passed.append(probe)
                continue
            if picked and n_bytes + probe.n_bytes > self.batch_bytes:
                self.queue.appendleft(probe)
                break
            picked.append(probe)
            n_bytes += probe.n_bytes
        self.queue.extendleft(reversed(passed))
        return picked

    def poll(self, timeout: float) -> list[WorkResult]:
        """Finished results (waiting up to `timeout` s for the first one)."""
        lent = self.lane is not None and self.lane.busy
        if lent and not self.in_flight:
            self.lane.wait(timeout)
        results = self._from_actors(min(timeout, LANE_POLL_S) if lent else timeout)
        if self.lane is not None:
            results += self.lane.take()
        self._dispatch()
        return results

    def _from_actors(self, timeout: float) -> list[WorkResult]:
        if not self.in_flight:
            return []
        refs = list(self.in_flight)
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:  # then take every other one that is ready too, without waiting
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            self.actor_up = True
        results = []
        for ref in ready:
            i, probes = self.in_flight.pop(ref)
            self.load[i] -= 1
            try:
                results += ray.get(ref)
            except ray.exceptions.RayError as err:  # the actor died for good
                msg = f"worker lost: {str(err).strip().splitlines()[0][:300]}"
                results += [WorkResult(p.model_id, p.sha, None, msg, 0, 0.0, "?") for p in probes]
        return results

    @property
    def busy(self) -> bool:
        """A task in flight, on an actor or in the lane."""
        return bool(self.in_flight) or (self.lane is not None and self.lane.busy)

    @property
    def waiting(self) -> int:
        """Models queued or in flight (the lane's too)."""
        held = self.lane.holding if self.lane is not None else 0
        return len(self.queue) + sum(len(p) for _, p in self.in_flight.values()) + held

    @property
    def idle(self) -> bool:
        return not self.queue and not self.busy

    def describe(self) -> list[dict]:
        self.start_actors()
        return ray.get([a.describe.remote() for a in self.actors])

    def shutdown(self) -> None:
        if self.lane is not None:
            self.lane.close()
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
