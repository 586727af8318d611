"""A small Hub client: every call goes through the shared limiter and the retry policy.

Built on huggingface_hub (its HTTP session, headers, errors, `model_info` and
`hf_hub_download`). Its API and download modules load on first use (about 0.2 s): a
fingerprinting actor that only writes what the driver's probe read whole never loads
them. Listing pages are fetched one by one here so each page is
rate-limited and retried on its own: a 500 on page 900 of a Hub-wide listing retries
page 900, not the whole listing. The token (argument, else `HF_TOKEN`, else the saved
login) is sent only to the configured endpoint and never appears in errors.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from huggingface_hub import constants
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from lineage.errors import HubError, MalformedWeightsError
from lineage.hub import keepalive
from lineage.hub.ids import redact, safe_join, validate_repo_id
from lineage.hub.ratelimit import Limiter, LocalLimiter, TokenBuckets, default_rates
from lineage.hub.remote import RemoteModel, remote_model
from lineage.hub.retry import RetryPolicy, call_with_retries
from lineage.weights.header import FIX, MAX_HEADER_BYTES, SafetensorsHeader, parse_header
from lineage.weights.untrusted import load_json

if TYPE_CHECKING:
    from huggingface_hub import HfApi

TIMEOUT_S = 30.0
FIRST_HEADER_READ = 100_000  # most headers fit: one request instead of two
MAX_SMALL_FILE = 4 * 1024 * 1024  # index / config files read into memory
MAX_LISTING_PAGE = 64 * 1024 * 1024  # one /api/models page (1000 models with siblings)


def default_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


class HubClient:
    """Hub calls for crawling; picklable settings, so Ray workers can rebuild one."""

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        limiter: Limiter | None = None,
        policy: RetryPolicy | None = None,
        token: str | bool | None = None,
        seed: int | None = None,
    ) -> None:
        self.endpoint = (endpoint or default_endpoint()).rstrip("/")
        self.limiter = limiter or LocalLimiter(TokenBuckets(default_rates()))
        self.policy = policy or RetryPolicy()
        self._token = token  # None: HF_TOKEN or the saved login, as huggingface_hub does
        self._rng = random.Random(seed)
        self.retries = 0

    # -- plumbing ----------------------------------------------------------------------
    @cached_property
    def api(self) -> HfApi:
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.endpoint, token=self._token)

    def _headers(self) -> dict[str, str]:
        return build_hf_headers(token=self._token)

    def _secret(self) -> str | None:
        if isinstance(self._token, str):
            return self._token
        return os.environ.get("HF_TOKEN") or None

    def _call(self, fn, *, what: str, kind: str):
        def counted(_verdict) -> None:
            self.retries += 1

        try:
            return call_with_retries(
                fn,
                what=what,
                kind=kind,
                limiter=self.limiter,
                policy=self.policy,
                rng=self._rng,
                on_retry=counted,
            )
        except HubError as err:
            raise HubError(
                redact(err.what, self._secret()), redact(err.why, self._secret()), err.fix
            ) from None
        except Exception as err:
            raise HubError(what, redact(_line(err), self._secret()), "") from None

    def _same_origin(self, url: str) -> bool:
        ours, theirs = urlsplit(self.endpoint), urlsplit(url)
        return (ours.scheme, ours.netloc) == (theirs.scheme, theirs.netloc)

    # -- listing -----------------------------------------------------------------------
    def list_models(self, **params: object) -> Iterator[dict]:
        """Raw listing items (`id` checked), page by page; params as the Hub's /api/models."""
        url: str | None = f"{self.endpoint}/api/models"
        query: dict | None = {k: v for k, v in params.items() if v is not None}
        while url is not None:
            response = self._call(
                lambda u=url, q=query: self._get_json(u, q), what=f"listing {url}", kind="api"
            )
            items, next_url = response
            for item in items:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    yield item
            if next_url is not None and not self._same_origin(next_url):
                raise HubError(
                    f"listing page link {next_url[:200]!r}",
                    "leaves the endpoint; refusing to send the token there",
                    "",
                )
            url, query = next_url, None

    def _get_json(self, url: str, query: dict | None) -> tuple[list, str | None]:
        r = get_session().get(url, params=query, headers=self._headers(), timeout=TIMEOUT_S)
        hf_raise_for_status(r)
        items = load_json(r.content, f"listing {url}", max_bytes=MAX_LISTING_PAGE)
        if not isinstance(items, list):
            raise HubError(f"listing {url}", "did not return a JSON list", "")
        return items, r.links.get("next", {}).get("url")

    # -- one repo ------------------------------------------------------------------------
    def model_info(self, repo_id: str) -> RemoteModel:
        repo_id = validate_repo_id(repo_id)
        info = self._call(
            lambda: self.api.model_info(repo_id, files_metadata=True, timeout=TIMEOUT_S),
            what=f"model {repo_id}",
            kind="api",
        )
        return remote_model(info)

    def read_range(self, repo_id: str, sha: str, filename: str, start: int, end: int) -> bytes:
        """Bytes [start, end] (inclusive) of a file, without downloading the rest."""
        return self._read(repo_id, sha, filename, start, end, exact=True)[0]

    def _read(
        self, repo_id: str, sha: str, filename: str, start: int, end: int, *, exact: bool
    ) -> tuple[bytes, int | None]:
        from huggingface_hub import hf_hub_url

        url = hf_hub_url(repo_id, filename, revision=sha, endpoint=self.endpoint)
        return self._call(
            lambda: self._get_range(url, start, end, exact),
            what=f"file {repo_id}/{filename} bytes {start}-{end}",
            kind="resolve",
        )

    def _get_range(self, url: str, start: int, end: int, exact: bool) -> tuple[bytes, int | None]:
        """(bytes, file size from Content-Range) of one ranged GET: on this thread's
        keep-alive connection (lineage.hub.keepalive: a third of the CPU) where that
        does what huggingface_hub's session would, else, and for a redirect's target,
        through the session."""
        headers = {**self._headers(), "Range": f"bytes={start}-{end}"}
        want = end - start + 1
        answer = keepalive.get(url, headers, start + want, TIMEOUT_S)
        if answer is not None and answer.status in keepalive.REDIRECTS:
            url, headers = self._redirect(answer, headers)
            answer = None
        if answer is None:
            status, answered, body = _session_get(url, headers, start + want)
        else:
            if answer.status >= 400:
                hf_raise_for_status(keepalive.as_httpx(answer))  # the session's errors
            status, answered, body = answer.status, answer.headers, answer.body
        total = _total_size(answered.get("Content-Range"))
        skip = start if status == 200 else 0  # server ignored the range
        data, got = body[skip : skip + want], len(body)
        if status == 200 and total is None:
            total = got if got < skip + want else None
        short = len(data) != want and (exact or total is None or start + len(data) < total)
        if short:
            raise OSError(f"Consistency check failed: range read {len(data)} of {want} bytes")
        return data, total

    def _redirect(self, answer: keepalive.Answer, headers: dict) -> tuple[str, dict]:
        """Where a redirect points, and the headers to send there: without the token
        when it leaves the endpoint (as the session strips it when it follows one)."""
        location = answer.headers.get("Location")
        if not location:
            raise HubError(
                f"file at {answer.url[:200]}", f"redirected (HTTP {answer.status}) to nowhere", ""
            )
        target = urljoin(answer.url, location)
        if not self._same_origin(target):
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        return target, headers

    def read_small_file(
        self, repo_id: str, sha: str, filename: str, size: int | None, limit: int = MAX_SMALL_FILE
    ) -> bytes:
        """A small file (index, config), refused above `limit` bytes."""
        if size is not None and size > limit:
            raise HubError(f"file {repo_id}/{filename}", f"is {size} bytes, over {limit}")
        if size == 0:
            return b""
        end = (size or limit + 1) - 1
        data, total = self._read(repo_id, sha, filename, 0, end, exact=size is not None)
        if total is not None and total > limit:
            raise HubError(f"file {repo_id}/{filename}", f"is {total} bytes, over {limit}")
        if size is None and total is None and len(data) > limit:
            raise HubError(f"file {repo_id}/{filename}", f"is over {limit} bytes")
        return data

    def read_header(
        self, repo_id: str, sha: str, filename: str, size: int | None
    ) -> SafetensorsHeader:
        """The validated header of a remote safetensors file, by range reads only.

        `size` may be None (a listing gives names, not sizes): the first read's
        Content-Range then tells it, which saves a model_info call per model.
        """
        return self.read_header_and_file(repo_id, sha, filename, size)[0]

    def read_header_and_file(
        self, repo_id: str, sha: str, filename: str, size: int | None
    ) -> tuple[SafetensorsHeader, bytes | None]:
        """`read_header`, plus the whole file when its first read held all of it (a
        small model: up to FIRST_HEADER_READ bytes), so it is never fetched twice."""
        where = f"{repo_id}/{filename}"
        first = FIRST_HEADER_READ if size is None else min(size, FIRST_HEADER_READ)
        head, total = self._read(repo_id, sha, filename, 0, first - 1, exact=False)
        size = size if size is not None else total if total is not None else len(head)
        if size < 8 or len(head) < 8:
            raise MalformedWeightsError(f"safetensors file {where}", f"is {size} bytes", FIX)
        length = int.from_bytes(head[:8], "little")
        if length > MAX_HEADER_BYTES:
            raise MalformedWeightsError(
                f"safetensors file {where}", "its header length field exceeds the limit", FIX
            )
        if 8 + length > size:
            raise MalformedWeightsError(
                f"safetensors file {where}",
                f"its header length field runs past the end of the {size}-byte file",
                FIX,
            )
        whole = head if len(head) == size else None
        if 8 + length > len(head):
            head += self.read_range(repo_id, sha, filename, len(head), 8 + length - 1)
        return parse_header(head[8 : 8 + length], path=where, file_size=size), whole

    def download(self, repo_id: str, sha: str, filename: str, folder: str | Path) -> Path:
        """Fetch one file into `folder` (resuming a partial download); returns its path."""
        from huggingface_hub import hf_hub_download

        target = safe_join(folder, filename)
        path = self._call(
            lambda: hf_hub_download(
                repo_id,
                filename,
                revision=sha,
                local_dir=str(folder),
                endpoint=self.endpoint,
                token=self._token,
            ),
            what=f"download {repo_id}/{filename}@{sha[:12]}",
            kind="resolve",
        )
        if Path(path).resolve() != target:
            raise HubError(f"download {repo_id}/{filename}", f"landed at {path}, not {target}")
        return target


def _session_get(url: str, headers: dict, most: int) -> tuple[int, Mapping[str, str], bytes]:
    """(status, headers, at most about `most` bytes of the body) of a GET through
    huggingface_hub's session, which follows redirects; raises for a status >= 400."""
    with get_session().stream("GET", url, headers=headers, timeout=TIMEOUT_S) as r:
        if r.status_code >= 400:
            r.read()
            hf_raise_for_status(r)
        chunks, got = [], 0
        for chunk in r.iter_bytes():
            chunks.append(chunk)
            got += len(chunk)
            if got >= most:
                break  # stop reading: the rest of a big file is not wanted
        return r.status_code, r.headers, b"".join(chunks)


def _total_size(content_range: str | None) -> int | None:
    """The size after the slash of `Content-Range: bytes 0-99/1234`."""
    if content_range and "/" in content_range:
        tail = content_range.rsplit("/", 1)[1].strip()
        return int(tail) if tail.isdigit() else None
    return None


def _line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:300] if text else ''}"
