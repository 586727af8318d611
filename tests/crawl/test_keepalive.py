"""The probe's ranged GETs on per-thread keep-alive connections (lineage.hub.keepalive):
the same bytes, errors, retries and token rules as huggingface_hub's session, which
still serves whatever the keep-alive route must not (proxies, a user's client, offline,
a redirect's target). Real HTTP on loopback: the loopback Hub, and for redirects two
small servers that record what they were sent."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from huggingface_hub.utils import get_session, set_client_factory
from huggingface_hub.utils._http import default_client_factory

from jobs.loopback_hub import FaultPlan
from lineage.errors import HubError
from lineage.hub import HubClient, LocalLimiter, Rate, RetryPolicy, TokenBuckets, keepalive
from tests.crawl.conftest import write_odd_zoo

FAST = RetryPolicy(attempts=4, base_s=0.01, cap_s=0.05)
SHA = "main"


def client_for(endpoint: str, limiter=None) -> HubClient:
    return HubClient(endpoint, policy=FAST, limiter=limiter, seed=0)


@pytest.fixture
def session_requests() -> Iterator[list[str]]:
    """URLs of the requests huggingface_hub's session sends to loopback while the test
    runs (huggingface_hub may ask huggingface.co things of its own meanwhile)."""
    seen: list[str] = []
    hooks = get_session().event_hooks["request"]

    def record(request) -> None:
        if request.url.host == "127.0.0.1":
            seen.append(str(request.url))

    hooks.append(record)
    yield seen
    hooks.remove(record)


@pytest.fixture
def zoo(tmp_path: Path) -> Path:
    return write_odd_zoo(tmp_path / "zoo")


def test_probe_reads_go_on_keepalive_connections_with_the_same_bytes(
    hub_server, zoo, session_requests
):
    hub = hub_server(zoo)
    client = client_for(hub.endpoint)
    for name in ("config.json", "README.md", "model.safetensors"):
        data = (zoo / "acme/base" / name).read_bytes()
        assert client.read_small_file("acme/base", SHA, name, None) == data
        assert client.read_range("acme/base", SHA, name, 3, 9) == data[3:10]
    header, whole = client.read_header_and_file("acme/base", SHA, "model.safetensors", None)
    assert whole == (zoo / "acme/base/model.safetensors").read_bytes()
    assert header.file_size == len(whole)
    assert session_requests == []  # none of them went through the session
    assert hub.count(r"^/acme/base/resolve/") == 7 and client.retries == 0


def test_a_connection_the_hub_closed_while_idle_is_reopened_once(hub_server, zoo):
    hub = hub_server(zoo)
    client = client_for(hub.endpoint)
    first = client.read_small_file("acme/base", SHA, "config.json", None)
    hub._server.hang_up_all()  # what a server does to an idle keep-alive connection
    time.sleep(0.05)
    assert client.read_small_file("acme/base", SHA, "config.json", None) == first
    assert client.retries == 0  # reopened at once, not counted as a failure
    assert hub.count(r"^/acme/base/resolve/main/config\.json$") == 2


def test_statuses_and_broken_answers_fail_and_retry_as_through_the_session(hub_server, zoo):
    faults = FaultPlan()
    hub = hub_server(zoo, faults=faults)
    limiter = LocalLimiter(TokenBuckets({"api": Rate(0, 1), "resolve": Rate(0, 1)}))
    client = client_for(hub.endpoint, limiter)
    with pytest.raises(HubError) as direct:
        client.read_small_file("acme/base", SHA, "absent.json", None)
    assert hub.count(r"absent\.json$") == 1  # a 404 is not retried
    faults.rate_limit(r"^/acme/base/resolve/main/config\.json$", times=1, retry_after=1)
    faults.server_error(r"^/acme/base/resolve/main/README\.md$", times=1, status=503)
    faults.drop(r"^/acme/chat/resolve/main/config\.json$", after_bytes=3, methods=["GET"])
    started = time.monotonic()
    assert client.read_small_file("acme/base", SHA, "config.json", None) == (
        zoo / "acme/base/config.json"
    ).read_bytes()
    assert time.monotonic() - started >= 1.0  # waited the window the 429 announced
    assert limiter.buckets.stats()["pauses"]["resolve"] == 1
    assert client.read_small_file("acme/base", SHA, "README.md", None)
    assert client.read_small_file("acme/chat", SHA, "config.json", None) == (
        zoo / "acme/chat/config.json"
    ).read_bytes()  # the short answer was retried
    assert client.retries == 3
    # the same 404 through the session: the same error
    set_client_factory(lambda: default_client_factory())  # a user's client: the session serves
    try:
        assert not keepalive.direct_route(hub.endpoint)
        with pytest.raises(HubError) as through_session:
            client_for(hub.endpoint).read_small_file("acme/base", SHA, "absent.json", None)
    finally:
        set_client_factory(default_client_factory)
    assert str(direct.value) == str(through_session.value)


def test_the_route_honours_proxies_offline_and_a_users_client(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    assert keepalive.direct_route("http://127.0.0.1:9/x")
    assert keepalive.direct_route("https://hub.example/x")
    assert not keepalive.direct_route("ftp://hub.example/x")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert not keepalive.direct_route("https://hub.example/x")
    assert keepalive.direct_route("http://hub.example/x")  # no proxy for plain http
    monkeypatch.setenv("NO_PROXY", "hub.example")
    assert keepalive.direct_route("https://hub.example/x")
    monkeypatch.setenv("ALL_PROXY", "http://proxy.example:3128")
    assert not keepalive.direct_route("http://elsewhere.example/x")
    monkeypatch.delenv("ALL_PROXY")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # HF_HUB_OFFLINE=1, read at import
    assert not keepalive.direct_route("http://hub.example/x")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    set_client_factory(lambda: default_client_factory())
    try:
        assert not keepalive.direct_route("http://hub.example/x")
    finally:
        set_client_factory(default_client_factory)
    assert keepalive.direct_route("http://hub.example/x")


class _Recorder(ThreadingHTTPServer):
    """Answers every GET with `answer(path)` -> (status, headers, body); records
    (path, Authorization header) of each, and the client's port (its connection)."""

    daemon_threads = True

    def __init__(self, answer) -> None:
        self.answer, self.seen, self.ports = answer, [], []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.seen.append((self.path, self.headers.get("Authorization")))
                server.ports.append(self.client_address[1])
                status, headers, body = server.answer(self.path)
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


def test_a_redirect_is_followed_by_the_session_and_the_token_stays_home(
    monkeypatch, session_requests
):
    secret = "hf_keepaliveSecret123"
    monkeypatch.setenv("HF_TOKEN", secret)
    data = bytes(range(256)) * 4
    cdn = _Recorder(lambda path: (206, {"Content-Range": f"bytes 0-99/{len(data)}"}, data[:100]))
    hub = _Recorder(
        lambda path: (302, {"Location": f"{cdn.origin}/blob"}, b"")
        if path.endswith("/far.bin")
        else (307, {"Location": "/org/m/resolve/main/here2.bin"}, b"")
        if path.endswith("/here.bin")
        else (206, {"Content-Range": f"bytes 0-99/{len(data)}"}, data[:100])
    )
    try:
        client = client_for(hub.origin)
        assert client.read_range("org/m", SHA, "far.bin", 0, 99) == data[:100]
        assert client.read_range("org/m", SHA, "here.bin", 0, 99) == data[:100]
    finally:
        hub.close()
        cdn.close()
    assert hub.seen == [
        ("/org/m/resolve/main/far.bin", f"Bearer {secret}"),  # the endpoint: the token
        ("/org/m/resolve/main/here.bin", f"Bearer {secret}"),
        ("/org/m/resolve/main/here2.bin", f"Bearer {secret}"),  # same origin: kept
    ]
    assert cdn.seen == [("/blob", None)]  # another origin: never the token
    # the redirects' targets went through the session (which follows any further hop)
    assert session_requests == [f"{cdn.origin}/blob", f"{hub.origin}/org/m/resolve/main/here2.bin"]


def test_a_big_answer_is_read_only_as_far_as_wanted():
    """A server that ignores the range and sends a whole big file: the read stops at
    what was asked for (the file is refused over its limit, as before), and that
    connection is not reused (its answer was not read to the end); one read to the end
    is."""
    big = b"x" * (4 << 20)
    server = _Recorder(lambda path: (200, {}, big if path.endswith("/w.bin") else b"{}"))
    try:
        client = client_for(server.origin)
        assert client.read_range("org/m", SHA, "w.bin", 10, 19) == b"x" * 10
        with pytest.raises(HubError, match="is over 1000 bytes"):
            client.read_small_file("org/m", SHA, "w.bin", None, limit=1000)
        assert client.read_small_file("org/m", SHA, "c.json", None) == b"{}"
        assert client.read_small_file("org/m", SHA, "c.json", None) == b"{}"
    finally:
        server.close()
    assert [path for path, _ in server.seen] == ["/org/m/resolve/main/w.bin"] * 2 + [
        "/org/m/resolve/main/c.json"
    ] * 2
    first, second, third, fourth = server.ports
    assert first != second != third  # a big answer left unread: a new connection
    assert third == fourth  # an answer read to its end: the connection kept


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, signed by its own key (cert, key paths)."""
    import datetime
    import ipaddress

    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loopback hub")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_https_checks_the_certificate_as_the_session_does(
    tmp_path, monkeypatch, session_requests
):
    """https with httpx's default TLS context: a certificate nobody vouches for is
    refused before a request is sent; one trusted through SSL_CERT_FILE (which that
    context reads) serves the same bytes."""
    import ssl

    cert, key = _self_signed(tmp_path)
    data = bytes(range(200))
    server = _Recorder(lambda path: (206, {"Content-Range": f"bytes 0-99/{len(data)}"}, data[:100]))
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    endpoint = server.origin.replace("http://", "https://")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    try:
        monkeypatch.setattr(keepalive, "_tls", None)  # built again from the environment
        with pytest.raises(HubError, match="still failing after 4 tries .connection error"):
            client_for(endpoint).read_range("org/m", SHA, "w.bin", 0, 99)
        assert server.seen == []  # nothing was sent to a server that proved nothing
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        monkeypatch.setattr(keepalive, "_tls", None)
        assert client_for(endpoint).read_range("org/m", SHA, "w.bin", 0, 99) == data[:100]
    finally:
        server.close()
    assert [path for path, _ in server.seen] == ["/org/m/resolve/main/w.bin"]
    assert session_requests == []  # on the keep-alive route, not the session's
