"""How fast the atlas view (`lineage graph --all --format html`) opens in Chromium.

    python bench/atlas_bench.py [--models 5000] [--keep DIR]

Builds a synthetic catalog (families of 1-40 models in random trees, relations and
confidences drawn at random, cards that name the true parent, a wrong one, or nothing),
writes a recover run's edges into it, renders the atlas through the CLI, then opens the
page in headless Chromium (tests/browser.py) and reports: seconds to write the page, its
size, seconds from navigation until the page says it is drawn (layout included), the
page's own script time (of which: creating the graph, laying it out), Chromium's CPU
seconds for the load, and seconds for a search to find one model and centre it. The
baseline printed beside it is the same page with 50 models, measured in the same run.
Bar (issue 14): 5,000 models load in < 5 s.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog import Catalog  # noqa: E402
from catalog.recovery_io import RECOVER_JOB, write_edges  # noqa: E402
from catalog.runs import finish_run, start_run  # noqa: E402
from catalog.schema import MODELS  # noqa: E402
from jobs.cli import main as lineage  # noqa: E402
from lineage.recovery.graph import RecoveredEdge  # noqa: E402
from tests.browser import Browser  # noqa: E402  (DevTools protocol over a pipe)

RELATIONS = ["finetune", "lora", "adapter", "merge", "quantized", "reupload"]


def synthetic_catalog(root: Path, n_models: int, seed: int = 0) -> Catalog:
    rng = random.Random(seed)
    rows, edges, fam = [], [], 0
    while len(rows) < n_models:
        size = min(rng.randint(1, 40), n_models - len(rows))
        ids = [f"org{fam}/model-{j}" for j in range(size)]
        for j, mid in enumerate(ids):
            card, relation = [], None
            if j:
                parent = ids[rng.randrange(j)]
                edges.append(RecoveredEdge(parent, mid, rng.choice(RELATIONS),
                                           round(rng.betavariate(5, 2), 3)))
                draw = rng.random()
                card = [parent] if draw < 0.6 else [ids[rng.randrange(size)]] if draw < 0.7 else []
                relation = "finetune" if card else None
            rows.append({"model_id": mid, "revision": "r1", "source": "synthetic",
                         "kind": "transformers", "dtype": "F32", "card_base_models": card,
                         "card_relation": relation, "run_id": "synthetic"})
        fam += 1
    catalog = Catalog(root)
    catalog.commit({"models": pa.Table.from_pylist(rows, schema=MODELS)})
    run_id = start_run(catalog, RECOVER_JOB, {"synthetic": n_models})
    write_edges(catalog, edges, run_id)
    finish_run(catalog, run_id)
    return catalog


def measure(workdir: Path, n_models: int) -> dict:
    catalog = synthetic_catalog(workdir / f"cat-{n_models}", n_models)
    page = workdir / f"atlas-{n_models}.html"
    start = time.perf_counter()
    assert lineage(["graph", "--all", "--format", "html", "--out", str(page),
                    "--catalog", str(catalog.root)]) == 0
    write_s = time.perf_counter() - start
    target = f"org{n_models // 80}/model-0"
    with Browser(1400, 900, timeout=120) as browser:
        cpu0 = browser.cpu_seconds()
        load_s = browser.open(page.as_uri(), ready="document.body?.dataset.ready === '1'")
        load_cpu = browser.cpu_seconds() - cpu0
        script_ms = browser.eval("window.atlas.loadMs")
        layout_ms = browser.eval("window.atlas.layoutMs")
        create_ms = browser.eval("window.atlas.createMs")
        drawn = browser.eval("window.atlas.cy.nodes().length")
        start = time.perf_counter()
        browser.eval("document.getElementById('search').focus()")
        browser.type(target)
        browser.press("Enter", 13)
        browser.wait_for(f"document.getElementById('detail-id')?.textContent === '{target}'")
        search_s = time.perf_counter() - start
    return {"models": drawn, "page_mb": page.stat().st_size / 1e6, "write_s": write_s,
            "load_s": load_s, "load_cpu": load_cpu, "script_s": script_ms / 1000,
            "layout_s": layout_ms / 1000, "create_s": create_ms / 1000, "search_s": search_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=5000)
    parser.add_argument("--keep", type=Path, help="keep the catalogs and pages here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        base = measure(workdir, 50)
        big = measure(workdir, args.models)
    print(f"{'models':>7} {'page MB':>8} {'write s':>8} {'load s':>7} {'script s':>9} "
          f"{'create s':>9} {'layout s':>9} {'search s':>9} {'load CPU s':>11}")
    for r in (base, big):
        print(f"{r['models']:>7} {r['page_mb']:>8.2f} {r['write_s']:>8.2f} {r['load_s']:>7.2f} "
              f"{r['script_s']:>9.2f} {r['create_s']:>9.2f} {r['layout_s']:>9.2f} "
              f"{r['search_s']:>9.2f} {r['load_cpu']:>11.2f}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(wall times grow with it; 'load CPU s' is Chromium's own CPU time, which does not)")
    print(f"load {args.models} vs 50 models: {big['load_s'] / base['load_s']:.1f}x; "
          f"bar < 5 s: {'met' if big['load_s'] < 5 else 'NOT met'} ({big['load_s']:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
