"""k8s.api_client: safe to call from the monitor's write pool and kopf's handler threads at
once, with a connection for each kept for the next call (urllib3's default of cpu_count x 5
would open-and-discard the rest, a warning each, and reconnect every cycle).

The peer is a loopback HTTP server that answers like a slow apiserver: the calls must
overlap, which a real apiserver on this machine answers too fast to make certain."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes.config import kube_config
from onnxops import config as settings
from onnxops import k8s

POOL = 40  # the monitor's writes in flight, set below
CALLERS = POOL + 8  # ... and kopf's eight handler threads


class SlowApiserver(BaseHTTPRequestHandler):
    """The first CALLERS requests are answered only once all of them are in (a barrier, not a
    sleep: on a loaded machine a fixed delay let early calls finish before the last began);
    later ones after a short delay."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the apiserver
    connections: set[int] = set()
    lock = threading.Lock()
    seen = 0
    together = threading.Barrier(CALLERS)

    def do_GET(self) -> None:
        with self.lock:
            self.connections.add(self.client_address[1])
            SlowApiserver.seen += 1
            first_round = SlowApiserver.seen <= CALLERS
        if first_round:
            self.together.wait(timeout=60)
        else:
            time.sleep(0.05)
        body = json.dumps({"kind": "Status", "items": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def apiserver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowApiserver)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    # read at import by the kubernetes client, so set where it keeps it
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("ONNXOPS_MONITOR_WRITE_CONCURRENCY", str(POOL))
    monkeypatch.setattr(k8s, "_client", None)
    settings.config.cache_clear()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        settings.config.cache_clear()


def test_concurrent_calls_keep_their_connections(
    apiserver: ThreadingHTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    def call(_: int) -> dict[str, Any]:
        return k8s.request("GET", "/api/v1/namespaces/ml/pods")

    with caplog.at_level(logging.WARNING, "urllib3"), ThreadPoolExecutor(CALLERS) as pool:
        assert all(a == {"kind": "Status", "items": []} for a in pool.map(call, range(CALLERS)))
        opened = len(SlowApiserver.connections)
        list(pool.map(call, range(CALLERS)))  # the next cycle
    assert opened == CALLERS  # they did overlap
    assert [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()] == []
    assert len(SlowApiserver.connections) == opened  # the second round reused every one
