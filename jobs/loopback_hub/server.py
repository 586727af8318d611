"""`LoopbackHub`: a Hub-compatible HTTP server on 127.0.0.1, in a background thread.

Test and demo infrastructure only: no auth, no uploads, one branch (`main`), the
folder is the truth. Stopping it closes every open keep-alive connection and joins
every handler thread, so tests leak neither threads nor ports.
"""

from __future__ import annotations

import re
import socket
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

from jobs.loopback_hub.blobs import BlobCache
from jobs.loopback_hub.faults import FaultPlan
from jobs.loopback_hub.handler import HubHandler


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str  # the URL path as sent (percent-encoded), without the query
    status: int  # 0 when the connection was dropped before a status line
    range: str | None = None  # the Range header, to see resumed downloads


class _Server(ThreadingHTTPServer):
    """Tracks live connections so `stop` can close idle keep-alive ones."""

    daemon_threads = False  # joined by server_close(): nothing outlives stop()
    block_on_close = True
    # The listen backlog: socketserver's default of 5 drops connections when a crawl's
    # thread pools connect at once (the kernel caps it at net.core.somaxconn).
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], handler: type) -> None:
        super().__init__(address, handler)
        self._live: set[socket.socket] = set()
        self._live_lock = threading.Lock()

    def process_request(self, request, client_address) -> None:
        with self._live_lock:
            self._live.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self._live_lock:
            self._live.discard(request)
        super().shutdown_request(request)

    def hang_up_all(self) -> None:
        with self._live_lock:
            live = list(self._live)
        for sock in live:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class LoopbackHub:
    """Serve ROOT/<org>/<name>/ folders as Hub model repos.

    Use as a context manager (or `start()` / `stop()`); `endpoint` is the base URL to
    give `HfApi(endpoint=...)`, `hf_hub_download(endpoint=...)` or `HF_ENDPOINT`.
    `faults` may be changed while serving; so may `page_size`.
    """

    def __init__(
        self,
        root: str | Path,
        faults: FaultPlan | None = None,
        page_size: int = 100,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose: bool = False,
    ) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise NotADirectoryError(f"loopback hub root {self.root} is not a directory")
        self.faults = faults if faults is not None else FaultPlan()
        self.page_size = page_size
        self.verbose = verbose
        self.cache = BlobCache()
        self.request_counts: Counter[str] = Counter()
        self.requests: list[RequestRecord] = []
        self._address = (host, port)
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> LoopbackHub:
        if self._server is not None:
            return self
        handler = type("BoundHubHandler", (HubHandler,), {"hub": self})
        self._server = _Server(self._address, handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"loopback-hub-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()  # stop accepting
        server.hang_up_all()  # wake handler threads parked on idle keep-alive reads
        server.server_close()  # close the socket, join handler threads
        if thread is not None:
            thread.join()

    def __enter__(self) -> LoopbackHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the loopback hub is not running; call start() first")
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- request accounting ---------------------------------------------------------------
    def _count(self, method: str, path: str) -> None:
        with self._lock:
            self.request_counts[path] += 1

    def _log(self, method: str, path: str, status: int, range_: str | None) -> None:
        with self._lock:
            self.requests.append(RequestRecord(method, path, status, range_))

    def count(self, pattern: str = "", method: str | None = None) -> int:
        """Requests whose path matches `pattern` (regex search), optionally of one method."""
        regex = re.compile(pattern)
        with self._lock:
            return sum(
                1
                for r in self.requests
                if regex.search(r.path) and (method is None or r.method == method.upper())
            )

    def reset_counts(self) -> None:
        with self._lock:
            self.request_counts.clear()
            self.requests.clear()
