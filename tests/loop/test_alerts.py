"""Alerts delivered for real: the serving runtime answers real inference requests with real
5xx, Prometheus scrapes it and evaluates manifests/monitoring/rules.yaml, Alertmanager routes
the alert by manifests/monitoring/alertmanager.yaml, and a webhook receiver started here gets
OnnxopsHighErrorRate with the model's namespace and name, then the resolved notification once
the errors stop.

Only the rules' time scales are shortened (each `[5m]` window to 15 s, each `for:` to 2 s, and
the route's grouping waits to a second): the expressions, labels and the route are the
shipped ones, so a test of the file does not take half an hour.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from devcluster import alertmanager, processes
from devcluster import prometheus as prom
from support.factories import poison_model
from support.serving_harness import running

pytestmark = pytest.mark.loop

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "manifests" / "monitoring"
LABELS = {"namespace": "shop", "onnxops_io_model_deployment": "lookup"}
GOOD = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 0]}]}
BAD = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [99, 0]}]}


class Webhook:
    """An Alertmanager webhook receiver on loopback: every notification it was sent."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.notifications.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/onnxops"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def alerts(self, status: str) -> list[dict[str, Any]]:
        return [
            a
            for n in self.notifications
            for a in n.get("alerts", [])
            if a["status"] == status and a["labels"].get("alertname") == "OnnxopsHighErrorRate"
        ]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _fast_rules(path: Path) -> Path:
    text = (MONITORING / "rules.yaml").read_text()
    text = re.sub(r"\[5m\]", "[15s]", text)
    text = re.sub(r"for: \d+m", "for: 2s", text)
    path.write_text(text)
    return path


def _routed_to(webhook: Webhook, path: Path) -> Path:
    config = yaml.safe_load((MONITORING / "alertmanager.yaml").read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook.url
    config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    for route in config["route"].get("routes", []):
        route["group_wait"] = "0s"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.close()


def test_a_real_error_rate_is_delivered_then_resolved(
    tmp_path: Path, webhook: Webhook, tmp_path_factory: pytest.TempPathFactory
) -> None:

    manager = alertmanager.start(tmp_path / "am", _routed_to(webhook, tmp_path / "am.yaml"))
    try:
        server = prom.start(
            tmp_path / "prom",
            rule_files=[_fast_rules(tmp_path / "rules.yaml")],
            alertmanagers=[manager.address],
        )
        try:
            model = tmp_path / "poison.onnx"
            model.write_bytes(poison_model().SerializeToString())
            with running(tmp_path / "serving", model_uri=str(model)) as runtime:
                server.add_target("lookup", f"127.0.0.1:{runtime.port}", LABELS)
                url = f"{runtime.url}/v2/models/poison/infer"
                with httpx.Client(timeout=5) as client:
                    deadline = time.monotonic() + 90
                    while not webhook.alerts("firing"):  # half the requests fail for real
                        assert time.monotonic() < deadline, "no firing alert delivered"
                        assert client.post(url, json=BAD).status_code == 500
                        assert client.post(url, json=GOOD).status_code == 200
                        time.sleep(0.1)
                    firing = webhook.alerts("firing")[0]
                    assert firing["labels"]["namespace"] == "shop"
                    assert firing["labels"]["onnxops_io_model_deployment"] == "lookup"
                    assert firing["labels"]["severity"] == "critical"
                    assert "of inference requests fail" in firing["annotations"]["summary"]
                    deadline = time.monotonic() + 90
                    while not webhook.alerts("resolved"):  # the errors stop
                        assert time.monotonic() < deadline, "no resolved notification"
                        assert client.post(url, json=GOOD).status_code == 200
                        time.sleep(0.1)
                resolved = webhook.alerts("resolved")[0]
                assert resolved["labels"] == firing["labels"]
        finally:
            server.stop()
    finally:
        manager.stop()
    assert processes.is_running(manager.record) is False
