"""The HTML family view, loaded in headless Chromium: after its JavaScript has run, the
DOM holds one element per model and per edge, tagged with their ids."""

from __future__ import annotations

import html.parser
import shutil
import subprocess
from pathlib import Path

import pytest

from jobs.cli import main as cli

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class _Drawn(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.nodes: list[str] = []
        self.edges: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "g" and a.get("class", "").startswith("node"):
            self.nodes.append(a["data-id"])
        elif tag == "g" and a.get("class") == "edge":
            self.edges.append(a["data-id"])


@pytest.mark.skipif(not Path(CHROMIUM).exists(),
                    reason="chromium is not installed (apt-get install -y chromium)")
def test_html_view_draws_every_model_and_edge(recovered, tiny_catalog, tiny_truth, tmp_path):
    merge = next(n for n in tiny_truth["nodes"] if n["relation"] == "merge")
    page = tmp_path / "family.html"
    assert cli(["graph", merge["id"], "--format", "html", "--out", str(page),
                "--catalog", str(tiny_catalog.root), "--run", recovered.run_id]) == 0
    text = page.read_text()
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in text
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         page.as_uri()],
        capture_output=True, text=True, timeout=90, check=True,
    ).stdout
    drawn = _Drawn()
    drawn.feed(dom)
    family = sorted(n["id"] for n in tiny_truth["nodes"] if n["tree"] == merge["tree"])
    edges = sorted(f"{e.parent}->{e.child}" for e in recovered.result.edges
                   if e.child in family)
    assert sorted(drawn.nodes) == family
    assert sorted(drawn.edges) == edges
    # The focus model's card claims and what the weights say, shown beside the graph.
    assert "card says" in dom and "weights say" in dom
