"""The HTTP request handler: routes Hub URLs to repo reads and applies the fault plan.

URL shapes served (the ones huggingface_hub 2.x calls):
  GET       /api/models                                  list_models (Link pagination)
  GET       /api/models/{org}/{name}[/revision/{rev}]    model_info / repo_info
  GET       /api/models/{org}/{name}/tree/{rev}[/{path}] list_repo_tree / list_repo_files
  POST      /api/models/{org}/{name}/paths-info/{rev}    get_paths_info
  GET       /api/models/{org}/{name}/refs                list_repo_refs
  GET|HEAD  /{org}/{name}/resolve/{rev}/{path}           hf_hub_download, file_exists, ranges
Errors carry `X-Error-Code` (RepoNotFound, RevisionNotFound, EntryNotFound), which is
how the client picks its exception class.

Every bad request gets a status, never a dropped connection: 414 for a URL over
MAX_URL, 405 for methods that write, 431 for more than 100 headers or a header line
over 64 KB (the standard library's limits, answered through our `send_response`),
413 for a body over MAX_BODY, 400 for anything unparseable.
"""

from __future__ import annotations

import io
import json
import socket
import time
import traceback
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

from jobs.loopback_hub import listing, payloads
from jobs.loopback_hub.paths import BadName, check_relative_path, check_repo_part
from jobs.loopback_hub.repo import Repo, open_repo

if TYPE_CHECKING:
    from jobs.loopback_hub.server import LoopbackHub

_CHUNK = 1 << 16
MAX_URL = 8 * 1024  # the Hub's front end refuses longer request targets too
MAX_BODY = 1024 * 1024  # paths-info bodies are a few KB
_CLOSE = {"Connection": "close"}  # sending it also sets close_connection


class NotFound(Exception):
    """Answered as 404 with the Hub's error code."""

    def __init__(self, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.headers = headers or {}


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """(start, end inclusive) of a single `bytes=` range.

    None when there is no (usable) range header: serve the whole file. "bad" when the
    range cannot be satisfied: answer 416.
    """
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[len("bytes=") :].strip().partition("-")
    try:
        if first == "":  # suffix range: the last N bytes
            n = int(last)
            return (max(0, size - n), size - 1) if n > 0 and size > 0 else "bad"
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    except ValueError:
        return None
    return (start, end) if start <= end and start < size else "bad"


class HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    # Headers and body go out in separate writes: with Nagle's algorithm the body of a
    # small answer waits for the client's delayed ACK of the headers, 40 ms per request.
    disable_nagle_algorithm = True
    # Not HTTP/0.9: an unparseable request line is answered with a status line too.
    default_request_version = "HTTP/1.0"
    timeout = 30  # seconds an idle keep-alive connection may sit before we close it
    hub: LoopbackHub  # set by the server class
    # Defaults for answers sent before `_dispatch` ran (the standard library's own 400,
    # 414 and 431 replies go through `send_response` too).
    _logged = False
    _url_path = ""
    _drop_after: int | None = None

    # -- entry points ----------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._refuse_write()

    def do_DELETE(self) -> None:
        self._refuse_write()

    def do_PATCH(self) -> None:
        self._refuse_write()

    def _refuse_write(self) -> None:
        self._logged = False
        self._url_path = self.path[:MAX_URL]
        if self._read_body() is None:
            return
        self._send_error(405, None, "this Hub is read-only", {"Allow": "GET, HEAD, POST"})

    def log_message(self, format: str, *args) -> None:
        if self.hub.verbose:
            super().log_message(format, *args)

    def send_response(self, code: int, message: str | None = None) -> None:
        # Log before any byte leaves: once the client has its answer, a test may
        # already be reading the log.
        if not self._logged:
            self._logged = True
            headers = getattr(self, "headers", None)
            range_ = headers.get("Range") if headers is not None else None
            self.hub._log(self.command or "", self._url_path, code, range_)
        super().send_response(code, message)

    def _dispatch(self, method: str) -> None:
        self._logged = False
        self._drop_after = None
        self._url_path = self.path[:MAX_URL]
        if len(self.path) > MAX_URL:
            return self._send_error(414, None, f"request target over {MAX_URL} bytes")
        try:
            url = urlsplit(self.path)
        except ValueError:
            return self._send_error(400, "BadRequest", "unparseable request target")
        self._url_path = url.path
        self.hub._count(method, url.path)
        # Read a body first, even if a fault answers: left unread, it would be taken
        # for the next request on this keep-alive connection.
        body = self._read_body()
        if body is None:
            return
        self._body = body if method == "POST" else b""
        try:
            if self._apply_fault(method, url.path):
                self._route(method, url.path, parse_qs(url.query, keep_blank_values=True))
        except BadName as err:
            self._send_error(400, "BadRequest", str(err))
        except NotFound as err:
            self._send_error(404, err.code, str(err), err.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as err:  # a server bug must answer 500, not hang the client
            traceback.print_exc()
            if self._logged:  # a status line is out already: only hanging up is honest
                self._hang_up()
            else:
                self._send_error(500, None, f"loopback hub error: {err}")
        finally:
            if not self._logged:  # hung up without a status line
                self.hub._log(method, url.path, 0, self.headers.get("Range"))

    def _read_body(self) -> bytes | None:
        """The request body (b"" when none); None when it was refused (answered 400 or
        413, and the connection closed, since the unread body cannot be skipped)."""
        if self.headers.get("Transfer-Encoding"):
            self._send_error(400, "BadRequest", "chunked request bodies are not supported", _CLOSE)
            return None
        length = self.headers.get("Content-Length", "0").strip() or "0"
        if not length.isdigit():
            self._send_error(400, "BadRequest", "Content-Length is not a number", _CLOSE)
            return None
        if len(length) > 12 or int(length) > MAX_BODY:
            self._send_error(413, None, f"request body over {MAX_BODY} bytes", _CLOSE)
            return None
        return self.rfile.read(int(length)) if int(length) else b""

    def _apply_fault(self, method: str, path: str) -> bool:
        """Apply the fault plan; False when the request was answered (or dropped) by it."""
        fault = self.hub.faults.draw(method, path)
        if fault is None:
            return True
        if fault.kind == "status":
            self._send_error(fault.status, None, f"injected HTTP {fault.status}", fault.headers)
            return False
        if fault.kind == "slow":
            time.sleep(fault.delay_s)
            return True
        if method == "HEAD":  # no body to cut: hang up without answering
            self._hang_up()
            return False
        self._drop_after = fault.after_bytes
        return True

    # -- routing -----------------------------------------------------------------------
    def _route(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        seg = [unquote(s) for s in path.split("/")[1:]]
        if seg[:2] == ["api", "models"]:
            self._route_api(method, seg[2:], query)
        elif len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
            repo = self._repo(seg[0], seg[1])
            self._resolve(method, repo, seg[3], "/".join(seg[4:]))
        else:
            raise NotFound("NotFound", f"no route for {method} {path}")

    def _route_api(self, method: str, rest: list[str], query: dict[str, list[str]]) -> None:
        if rest in ([], [""]) and method == "GET":
            return self._list(query)
        if len(rest) < 2:
            raise NotFound("RepoNotFound", "repo ids here are 'org/name'")
        repo = self._repo(rest[0], rest[1])
        op, args = (rest[2], rest[3:]) if len(rest) > 2 else ("revision", ["main"])
        if op == "revision" and args and method == "GET":
            return self._info(repo, args[0], query)
        if op == "tree" and args and method == "GET":
            return self._tree(repo, args[0], "/".join(args[1:]), query)
        if op == "paths-info" and args and method == "POST":
            return self._paths_info(repo, args[0])
        if op == "refs" and method == "GET":
            return self._send_json(payloads.refs(repo))
        raise NotFound("NotFound", f"no route for {method} /api/models/{repo.repo_id}/{op}")

    def _repo(self, org: str, name: str) -> Repo:
        check_repo_part(org)
        check_repo_part(name)
        repo = open_repo(self.hub.root, org, name, self.hub.cache)
        if repo is None:
            raise NotFound("RepoNotFound", f"repository {org}/{name} not found")
        return repo

    def _check_revision(self, repo: Repo, revision: str) -> None:
        if not repo.resolves(revision):
            raise NotFound("RevisionNotFound", f"revision {revision!r} not found in {repo.repo_id}")

    # -- API endpoints -----------------------------------------------------------------
    def _list(self, query: dict[str, list[str]]) -> None:
        result = listing.page(self.hub.root, self.hub.cache, query, self.hub.page_size)
        headers = {}
        if result.next_query is not None:
            url = f"{self.hub.endpoint}/api/models?{listing.encode_query(result.next_query)}"
            headers["Link"] = f'<{url}>; rel="next"'
        self._send_json(result.items, headers)

    def _info(self, repo: Repo, revision: str, query: dict[str, list[str]]) -> None:
        self._check_revision(repo, revision)
        blobs = query.get("blobs", ["false"])[-1].lower() == "true"
        self._send_json(payloads.model_info(repo, blobs=blobs, expand=query.get("expand")))

    def _tree(self, repo: Repo, revision: str, prefix: str, query: dict[str, list[str]]) -> None:
        self._check_revision(repo, revision)
        if prefix:
            check_relative_path(prefix)
        recursive = query.get("recursive", ["false"])[-1].lower() == "true"
        entries = payloads.tree_entries(repo, prefix, recursive)
        if entries is None:
            raise NotFound("EntryNotFound", f"{prefix!r} is not a folder of {repo.repo_id}")
        self._send_json(entries)

    def _paths_info(self, repo: Repo, revision: str) -> None:
        self._check_revision(repo, revision)
        form = parse_qs(self._body.decode("utf-8", "replace"))
        out = []
        for path in form.get("paths", []):
            path = path.strip("/")
            if path in repo.files:
                out.append(payloads.file_entry(repo, path))
            elif any(p.startswith(path + "/") for p in repo.files):
                out.append(payloads.folder_entry(repo, path))
        self._send_json(out)

    # -- file downloads ------------------------------------------------------------------
    def _resolve(self, method: str, repo: Repo, revision: str, path: str) -> None:
        self._check_revision(repo, revision)
        check_relative_path(path)
        entry = repo.files.get(path)
        if entry is None:
            raise NotFound(
                "EntryNotFound", f"{path} not found in {repo.repo_id}", {"X-Repo-Commit": repo.sha}
            )
        blob = repo.blob(path)
        headers = {
            "X-Repo-Commit": repo.sha,
            "Accept-Ranges": "bytes",
            "ETag": f'"{blob.sha256 or blob.git_oid}"',
        }
        if blob.sha256 is not None:  # an LFS file: the client reads these first
            headers["X-Linked-Etag"] = f'"{blob.sha256}"'
            headers["X-Linked-Size"] = str(entry.size)
        wanted = parse_range(self.headers.get("Range"), entry.size)
        if wanted == "bad":
            headers["Content-Range"] = f"bytes */{entry.size}"
            return self._send_error(416, None, "range not satisfiable", headers)
        start, end = wanted if isinstance(wanted, tuple) else (0, entry.size - 1)
        status = 206 if isinstance(wanted, tuple) else 200
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{entry.size}"
        with open(entry.abspath, "rb") as f:
            f.seek(start)
            self._send(
                status,
                f,
                end - start + 1,
                "application/octet-stream",
                headers,
                body=method != "HEAD",
            )

    # -- writing responses -----------------------------------------------------------------
    def _send_json(
        self, obj: object, headers: dict[str, str] | None = None, status: int = 200
    ) -> None:
        data = json.dumps(obj).encode()
        self._send(
            status,
            io.BytesIO(data),
            len(data),
            "application/json",
            headers or {},
            body=self.command != "HEAD",
        )

    def _send_error(
        self, status: int, code: str | None, message: str, headers: dict[str, str] | None = None
    ) -> None:
        extra = dict(headers or {})
        if code:
            extra["X-Error-Code"] = code
        extra["X-Error-Message"] = message.encode("ascii", "replace").decode()
        self._send_json({"error": message}, extra, status)

    def _send(
        self,
        status: int,
        stream: BinaryIO,
        length: int,
        content_type: str,
        headers: dict[str, str],
        body: bool,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if not body:
            return
        # A drop fault cuts the body short, then hangs up: the client sees a short read.
        remaining = length if self._drop_after is None else min(length, self._drop_after)
        while remaining > 0 and (chunk := stream.read(min(_CHUNK, remaining))):
            self.wfile.write(chunk)
            remaining -= len(chunk)
        if self._drop_after is not None:
            self._hang_up()

    def _hang_up(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
