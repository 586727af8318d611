"""Small GETs on keep-alive connections of the standard library (`http.client`), one set
per thread.

Why: a crawl's probe makes three small ranged GETs per model (a weights file's first
bytes, its config, its card), and the crawl's driver is bound by its own CPU (one GIL
for the probes, the driver's lane, the rows). Through huggingface_hub's httpx session
each GET cost the driver about 0.45 ms of CPU (httpx's URL and header models, h11's
state machine, the request hook); through http.client about 0.14 ms.

Taken only where it does what the session would do (`direct_route`): huggingface_hub's
own client (a client factory the user set, for proxies or certificates, is honoured by
going through it), not offline, no proxy from the environment for the host, http or
https (https with the TLS context httpx builds by default: the same certificate
authorities, `SSL_CERT_FILE` and `SSL_CERT_DIR` honoured, host names checked). The
route is decided when a thread opens its connection to an origin; elsewhere the session
serves (`get` answers None).

Same answers as the session: the caller's headers, as given (the token goes where it
went before: to the endpoint); a redirect is answered, not followed (the caller hands
its target to the session, which follows any further hop as it always did); any other
status is answered with its body, bounded (`most`: what the caller wants of a 200 or a
206; MAX_OTHER_BODY of an error, for hf_raise_for_status, through `as_httpx`); a broken
or short answer raises httpx2's TransportError subclasses, which the retry policy
retries as it does the session's. A connection is kept only once its answer has been
read to the end; one the server closed while it sat idle is reopened once, before
anything of the answer was read (what connection pools do).
"""

from __future__ import annotations

import http.client
import os
import ssl
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import httpx2

MAX_OTHER_BODY = 64 * 1024  # of a redirect or an error: enough for its message
REDIRECTS = frozenset({301, 302, 303, 307, 308})
TRACE_HEADER = "X-Amzn-Trace-Id"  # the request id huggingface_hub's hook adds to each
# A reused connection the server already closed fails like this before any answer.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
          ConnectionAbortedError)

_local = threading.local()
_tls_lock = threading.Lock()
_tls: ssl.SSLContext | None = None


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: bytes  # at most what `get` was asked for (MAX_OTHER_BODY of other statuses)
    url: str


def direct_route(url: str) -> bool:
    """Whether `get` may serve `url` itself: what huggingface_hub's session would do the
    same way (see the module's docstring)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    # Private, but the only place that says whether the user replaced the client; when
    # it cannot be read, the session serves.
    if getattr(_http, "_GLOBAL_CLIENT_FACTORY", None) is not _http.default_client_factory:
        return False
    if constants.is_offline_mode():
        return False
    proxies = getproxies()
    if proxies.get(parts.scheme) or proxies.get("all"):
        return bool(proxy_bypass(parts.hostname))
    return True


def get(url: str, headers: Mapping[str, str], most: int, timeout: float) -> Answer | None:
    """GET `url` with `headers` on this thread's connection to its origin, reading at
    most `most` bytes of a 2xx body; None when the session must serve it instead."""
    parts = urlsplit(url)
    conn = _connection(parts, url, timeout)
    if conn is None:
        return None
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    sent = {**headers, TRACE_HEADER: str(uuid.uuid4())}
    try:
        response = _send(conn, target, sent)
        status = response.status
        limit = most if 200 <= status < 300 else MAX_OTHER_BODY
        body = response.read(limit)
        remaining = response.length  # None: unknown (chunked or until close)
        if len(body) < limit and remaining:
            raise http.client.IncompleteRead(body, remaining)
        if not response.isclosed() or response.will_close:
            _drop(parts)  # not read to its end (or the server closes it): not reusable
    except (OSError, http.client.HTTPException) as err:
        _drop(parts)
        raise transport_error(err, url) from err
    return Answer(status, response.headers, body, url)


def _send(
    conn: http.client.HTTPConnection, target: str, headers: dict[str, str]
) -> http.client.HTTPResponse:
    reused = conn.sock is not None
    try:
        conn.request("GET", target, headers=headers)
        return conn.getresponse()
    except _STALE:
        if not reused:
            raise
    conn.close()  # closed by the server while idle: once more, on a new connection
    conn.request("GET", target, headers=headers)
    return conn.getresponse()


def as_httpx(answer: Answer) -> httpx2.Response:
    """The answer as the httpx response hf_raise_for_status reads (status, headers, body,
    the request's URL)."""
    return httpx2.Response(
        answer.status,
        headers=list(answer.headers.items()),
        content=answer.body,
        request=httpx2.Request("GET", answer.url),
    )


def transport_error(err: BaseException, url: str) -> httpx2.TransportError:
    """`err` of http.client or the socket as the httpx error the session would raise."""
    why = f"{type(err).__name__}: {err}"[:300]
    request = httpx2.Request("GET", url)
    if isinstance(err, TimeoutError):
        return httpx2.ReadTimeout(why, request=request)
    if isinstance(err, (http.client.HTTPException, *_STALE)):
        return httpx2.RemoteProtocolError(why, request=request)
    return httpx2.ConnectError(why, request=request)


def close_all() -> None:
    """Close this thread's connections (a test, or a thread that is done)."""
    for key in list(_connections()):
        _connections().pop(key).close()


class _Connections(dict):
    """A thread's connections by origin; closed when the thread ends (its locals go)."""

    def __init__(self) -> None:
        super().__init__()
        self.pid = os.getpid()

    def __del__(self, getpid=os.getpid) -> None:  # bound now: usable at shutdown too
        if self.pid == getpid():  # a forked child's copies are its parent's sockets
            for conn in self.values():
                conn.close()


def _connections() -> _Connections:
    conns = getattr(_local, "conns", None)
    if conns is None or conns.pid != os.getpid():
        conns = _local.conns = _Connections()
    return conns


def _key(parts) -> tuple[str, str, int | None]:
    return parts.scheme, parts.hostname or "", parts.port


def _connection(parts, url: str, timeout: float) -> http.client.HTTPConnection | None:
    conns = _connections()
    conn = conns.get(_key(parts))
    if conn is None:
        if not direct_route(url):
            return None
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=timeout, context=_tls_context()
            )
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        conns[_key(parts)] = conn
    return conn


def _drop(parts) -> None:
    conn = _connections().pop(_key(parts), None)
    if conn is not None:
        conn.close()


def _tls_context() -> ssl.SSLContext:
    """The context httpx's session uses by default (httpcore's), built once."""
    global _tls
    with _tls_lock:
        if _tls is None:
            import httpcore2

            _tls = httpcore2.default_ssl_context()
        return _tls
