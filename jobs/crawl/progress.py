"""The driver's progress bar: bytes fingerprinted (with bytes/s), and model counts."""

from __future__ import annotations

from tqdm import tqdm


class CrawlProgress:
    def __init__(self, enabled: bool) -> None:
        self.bar = tqdm(total=0, unit="B", unit_scale=True, desc="crawl", disable=not enabled)
        self.counts = {"discovered": 0, "fingerprinted": 0, "skipped": 0, "failed": 0}

    def _bump(self, key: str) -> None:
        self.counts[key] += 1
        self.bar.set_postfix(self.counts, refresh=False)

    def discovered(self) -> None:
        self._bump("discovered")

    def skipped(self) -> None:
        self._bump("skipped")

    def failed(self) -> None:
        self._bump("failed")

    def add_total(self, nbytes: int) -> None:
        self.bar.total += nbytes
        self.bar.refresh()

    def fingerprinted(self, nbytes: int) -> None:
        self._bump("fingerprinted")
        self.bar.update(nbytes)

    def __enter__(self) -> CrawlProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
