"""What a fingerprinting actor pays to start: importing the worker module loads neither
torch nor huggingface_hub's API and download modules (about 0.2 s more per actor), and
fingerprinting a model the probe read whole loads no more of them. The kernels load in a
background thread while the first model is being fetched: a model fingerprinted at the
same time is exactly the model fingerprinted after. Checked in a fresh interpreter (cold
kernels), as an actor's process is."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from jobs.loopback_hub.pytest_plugin import write_repo
from lineage.hub import HubClient, fetch_and_fingerprint, probe_model
from tests.crawl.conftest import pico
from tests.crawl.helpers import FAST

HEAVY = ("torch", "transformers", "huggingface_hub.hf_api", "huggingface_hub.file_download")

SCRIPT = """
import json, pickle, sys
import jobs.crawl.workers
loaded = {"import": sorted(m for m in HEAVY if m in sys.modules)}
if len(sys.argv) > 1:
    from pathlib import Path
    from lineage.hub.client import HubClient
    from lineage.hub.fetch import fetch_and_fingerprint
    import threading
    from jobs.crawl.workers import warm_up
    probe = pickle.loads(Path(sys.argv[1]).read_bytes())
    client = HubClient("http://127.0.0.1:9")  # nothing to fetch: a request would fail
    warming = threading.Thread(target=warm_up, args=(64, "cpu"))
    warming.start()  # as the actor does: the model below races the kernels' loading
    fp = fetch_and_fingerprint(client, probe, sys.argv[2], width=64)
    warming.join()
    loaded["fingerprint"] = sorted(m for m in HEAVY if m in sys.modules)
    loaded["card_license"] = fp.metadata.card.license
    loaded["sketch"] = fp.sketch.tolist()
    loaded["tensors"] = [(t.name, t.content_hash, t.mean, t.std, t.sketch.tolist())
                         for t in fp.tensors]
print(json.dumps(loaded))
"""


def _run(*args: str) -> dict:
    code = f"HEAVY = {HEAVY!r}\n{SCRIPT}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
        timeout=300, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_worker_module_imports_neither_torch_nor_the_hub_api():
    assert _run() == {"import": []}


def test_a_model_read_whole_is_fingerprinted_without_them_as_the_kernels_load(
    hub_server, tmp_path
):
    config = {"model_type": "pico", "architectures": ["PicoForCausalLM"]}
    write_repo(tmp_path / "zoo", "acme/small", tensors=pico(0), config=config,
               card={"license": "mit"})
    hub = hub_server(tmp_path / "zoo")
    client = HubClient(hub.endpoint, policy=FAST)
    remote = client.model_info("acme/small")
    probe = probe_model(
        remote,
        lambda n: client.read_small_file("acme/small", remote.sha, n, remote.files.get(n)),
        lambda n, s: client.read_header_and_file("acme/small", remote.sha, n, s)[0],
    )
    # what the driver's probe holds: the weights and the small files, read whole
    whole = {s.filename: client.read_small_file("acme/small", remote.sha, s.filename, s.size)
             for s in probe.sources}
    meta = {n: client.read_small_file("acme/small", remote.sha, n, remote.files.get(n))
            for n in probe.meta_files}
    probe = replace(probe, prefetched=(*whole.items(), *meta.items()))
    path = tmp_path / "probe.pickle"
    path.write_bytes(pickle.dumps(probe))
    loaded = _run(str(path), str(tmp_path / "cache"))
    assert loaded["import"] == [] and loaded["fingerprint"] == []
    reference = fetch_and_fingerprint(client, probe, tmp_path / "here", width=64)
    assert loaded["card_license"] == reference.metadata.card.license == "mit"
    assert loaded["sketch"] == reference.sketch.tolist()
    assert loaded["tensors"] == [
        [t.name, t.content_hash, t.mean, t.std, t.sketch.tolist()] for t in reference.tensors
    ]
    assert len(loaded["tensors"]) == len(pico(0))
    assert not list((tmp_path / "cache").glob("*/*"))  # the scratch folder left empty
