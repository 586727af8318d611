"""The driver's lane: the driver fingerprints small models itself until an actor is up.

An actor takes a second or more to start (a process, Ray's set-up in it, imports, the
compiled kernels), and on a small crawl that start is most of the wall time: the probes
finish early and the driver waits. Until the first actor answers, the driver
fingerprints queued models the probe read whole (nothing to download; a few ms each),
on the CPU with one thread, in a thread of its own, beside the listing and the probes
(the kernels release the GIL; lending only while no probe ran was slower: measured
2.3-2.6 s against 2.1-2.4 s for the vthr-ft zoo). Its kernels load with its first
models. Once an actor has returned a task (it is up, its kernels loaded) the lane
takes no more models. With a lane the actors are asked for only when needed: when a
probed model has something to download, or once the lane has taken LANE_ALONE models
(jobs.crawl.workers.WorkerPool); a crawl of a few hundred small models is the driver's
alone, and no actor's start (about a second of a core) competes with it. Where the
driver is itself the bottleneck (the bench's loopback Hub serving from the driver's own
process) it gains less; `--no-driver-lane` turns it off (and the actors start at once).

The fingerprints are the ones a CPU actor computes (the same function over the same
bytes); only a CPU pool lends the driver, so a GPU pool's fingerprints all come from its
GPUs. A failure is the model's own, as in an actor.
"""

from __future__ import annotations

import shutil
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from pathlib import Path

from jobs.crawl.workers import WorkResult, fingerprint_probe
from lineage.hub.client import HubClient
from lineage.hub.fetch import read_whole
from lineage.hub.probe import Probe


class DriverLane:
    def __init__(self, client: HubClient, cache_dir: Path, width: int) -> None:
        self.client, self.width = client, width
        # A folder of its own under the cache (the models it takes are fingerprinted from
        # the probe's bytes in memory and write nothing; two crawls in one process, a
        # notebook or a scheduler, must not share a folder all the same).
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        self.cache_dir = Path(tempfile.mkdtemp(prefix=".lane-", dir=cache_dir))
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="lineage-lane")
        self._job: Future | None = None
        self._probes: list[Probe] = []
        self.taken = 0  # models handed to the lane so far

    @staticmethod
    def fits(probe: Probe) -> bool:
        """Only models with nothing left to download: the driver never fetches weights."""
        return read_whole(probe)

    @property
    def busy(self) -> bool:
        return self._job is not None

    @property
    def holding(self) -> int:
        return len(self._probes)

    def start(self, probes: list[Probe]) -> None:
        self._probes = probes
        self.taken += len(probes)
        self._job = self._thread.submit(self._run, probes)

    def _run(self, probes: list[Probe]) -> list[WorkResult]:
        return [
            fingerprint_probe(
                self.client,
                probe,
                self.cache_dir,
                width=self.width,
                device="cpu",
                keep_weights=False,
                threads=1,  # the driver's other threads (probes, commits) come first
                worker="driver",
            )
            for probe in probes
        ]

    def wait(self, timeout: float) -> None:
        if self._job is not None:
            wait_for([self._job], timeout=timeout)

    def take(self) -> list[WorkResult]:
        """The finished job's results (none while it runs)."""
        if self._job is None or not self._job.done():
            return []
        job, probes = self._job, self._probes
        self._job, self._probes = None, []
        try:
            return job.result()
        except Exception as err:  # noqa: BLE001 - as an actor's task error: these models fail
            why = f"driver lane: {type(err).__name__}: {str(err)[:300]}"
            return [
                WorkResult(p.model_id, p.sha, None, why, 0, 0.0, "cpu", "driver") for p in probes
            ]

    def close(self) -> None:
        self._thread.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.cache_dir, ignore_errors=True)
