"""`lineage hub serve ZOO_DIR`: serve a folder of model repos as a loopback Hub.

Test and demo infrastructure: point `HF_ENDPOINT` (or `HfApi(endpoint=...)`) at the
printed URL to crawl a zoo without the real Hub.
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from lineage.errors import ModelNotFoundError


def register(subparsers: argparse._SubParsersAction) -> None:
    hub = subparsers.add_parser("hub", help="loopback Hub-compatible server (tests, demos)")
    actions = hub.add_subparsers(dest="hub_command", metavar="ACTION", required=True)
    serve = actions.add_parser("serve", help="serve ROOT/<org>/<name>/ folders as Hub repos")
    serve.add_argument("root", type=Path, help="folder holding <org>/<name>/ repo folders")
    serve.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: free)")
    serve.add_argument("--page-size", type=int, default=100, help="models per listing page")
    serve.add_argument("--verbose", action="store_true", help="log every request to stderr")
    serve.set_defaults(func=serve_command)


def serve_command(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """Serve until Ctrl-C (or until `stop` is set, which is how tests end it)."""
    from jobs.loopback_hub import LoopbackHub

    if not args.root.is_dir():
        raise ModelNotFoundError(
            f"hub root {str(args.root)!r}",
            "is not a directory",
            "Give the folder that holds <org>/<name>/ model repo folders",
        )
    stop = stop or threading.Event()
    with LoopbackHub(
        args.root, page_size=args.page_size, port=args.port, verbose=args.verbose
    ) as hub:
        print(f"Serving {hub.root} at {hub.endpoint}", flush=True)
        print(f"export HF_ENDPOINT={hub.endpoint}", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            print("Stopped.", flush=True)
    return 0
