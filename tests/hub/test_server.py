"""Server lifecycle and the `lineage hub serve` command."""

from __future__ import annotations

import argparse
import socket
import threading
import time

import httpx2
import pytest
from huggingface_hub import HfApi

from jobs.cli import build_parser, main
from jobs.commands.hub import serve_command
from jobs.loopback_hub import LoopbackHub


def _port_is_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_stop_joins_threads_and_frees_the_port(pico_zoo, hub_env):
    before = set(threading.enumerate())
    with LoopbackHub(pico_zoo) as hub:
        port = hub.port
        assert hub.endpoint == f"http://127.0.0.1:{port}"
        # A keep-alive connection left open by the client must not block stop().
        client = httpx2.Client()
        assert client.get(f"{hub.endpoint}/api/models").status_code == 200
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert leaked == []
    assert _port_is_closed(port)
    client.close()


def test_request_counts_per_path(pico_zoo, hub_server):
    hub = hub_server(pico_zoo)
    api = HfApi(endpoint=hub.endpoint)
    api.model_info("acme/base")
    api.model_info("acme/base")
    assert hub.request_counts["/api/models/acme/base"] == 2
    assert hub.count(r"^/api/models/acme/", method="GET") == 2
    hub.reset_counts()
    assert hub.request_counts == {} and hub.requests == []


def test_root_must_exist(tmp_path):
    with pytest.raises(NotADirectoryError):
        LoopbackHub(tmp_path / "missing")


def test_cli_registers_hub_serve(tmp_path):
    args = build_parser().parse_args(
        ["hub", "serve", str(tmp_path), "--port", "0", "--page-size", "5"]
    )
    assert args.func is serve_command and args.page_size == 5 and args.port == 0


def test_cli_serves_until_stopped(pico_zoo, hub_env, capsys):
    args = argparse.Namespace(root=pico_zoo, port=0, page_size=2, verbose=False)
    stop = threading.Event()
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(serve_command(args, stop)))
    thread.start()
    try:
        endpoint = ""
        for _ in range(100):  # wait for the endpoint line
            out = capsys.readouterr().out
            if "export HF_ENDPOINT=" in out:
                endpoint = out.split("export HF_ENDPOINT=")[1].split()[0]
                break
            time.sleep(0.02)
        assert endpoint.startswith("http://127.0.0.1:")
        assert len(list(HfApi(endpoint=endpoint).list_models())) == 8
    finally:
        stop.set()
        thread.join(timeout=5)
    assert result == [0]


def test_cli_refuses_a_missing_root(tmp_path, capsys):
    assert main(["hub", "serve", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert "is not a directory" in err and "<org>/<name>/" in err


def _thread_names(pid: int) -> list[str]:
    from pathlib import Path

    tasks = Path(f"/proc/{pid}/task")
    return sorted((t / "comm").read_text().strip() for t in tasks.iterdir()) \
        if tasks.is_dir() else []


def test_cli_process_stops_on_ctrl_c(pico_zoo, hub_env):
    """The real entry point: prints the endpoint, serves, exits 0 on SIGINT."""
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", "hub", "serve", str(pico_zoo)],
        stdout=subprocess.PIPE,
        text=True,
        # A child inherits an ignored SIGINT, and Python then never raises
        # KeyboardInterrupt. A shell without job control starts every background command
        # with SIGINT ignored (POSIX), so a suite launched as `... &` from a script (as
        # two fresh-clone CI runs were) hangs here. The child gets the default
        # disposition, as a shell gives a foreground command.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout.readline().startswith(f"Serving {pico_zoo}")
        endpoint = proc.stdout.readline().strip().split("=", 1)[1]
        assert httpx2.get(f"{endpoint}/api/models/acme/base").json()["id"] == "acme/base"
        proc.send_signal(signal.SIGINT)
        try:  # on a timeout, say what it waits on
            assert proc.wait(timeout=60) == 0
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running 60 s after SIGINT; its threads: "
                                 f"{_thread_names(proc.pid)}") from None
        assert "Stopped." in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
