"""The Grafana dashboards (manifests/monitoring/dashboards/, written by hack/dashboards.py)
hold up: each passes Grafana's own schema code strictly (`hack/dashcheck`: the foundation SDK's
strict unmarshal and Validate), and every panel's PromQL, with its variables filled in,
returns at least one series from the real Prometheus of a loop with traffic, feedback, a
cgroup-limited serving pod and the operator's own /metrics scraped."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from devcluster import prometheus as prom
from support.deployments import watched_deployment
from support.operator_kit import ROOT, Kube, Operator, wait_for
from support.serving_harness import Models

pytestmark = pytest.mark.loop

DASHBOARDS = ROOT / "manifests" / "monitoring" / "dashboards"


def _dashcheck() -> Path:
    built = subprocess.run(
        ["bash", str(ROOT / "hack" / "gotool.sh"), str(ROOT / "hack" / "dashcheck"),
         "github.com/grafana/grafana-foundation-sdk/go"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return Path(built.stdout.strip().splitlines()[-1])


def test_every_dashboard_passes_grafanas_strict_schema(tmp_path: Path) -> None:
    check = _dashcheck()
    files = sorted(DASHBOARDS.glob("*.json"))
    assert [f.name for f in files] == ["onnxops-fleet.json", "onnxops-model.json"]
    done = subprocess.run([str(check), *map(str, files)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # The check has teeth: a misspelt field and a wrong type are refused.
    board = json.loads(files[1].read_text())
    board["panels"][0]["gridPos"]["hieght"] = 8
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps(board))
    refused = subprocess.run([str(check), str(typo)], capture_output=True, text=True)
    assert refused.returncode == 1 and "hieght" in refused.stderr


def _queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in board["panels"] for t in p["targets"]]


def test_every_panel_query_returns_data_from_a_live_loop(
    deploy: Any,
    loop_kube: Kube,
    loop_models: Models,
    loop_prometheus: prom.Prometheus,
    watcher: Operator,
) -> None:
    body = watched_deployment("dash", f"file://{loop_models.iris}", anomaly={"enabled": False})
    body["spec"]["resources"] = {
        "requests": {"cpu": "200m", "memory": "256Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    }
    proc = deploy(body)
    port = watcher.metrics_url.split(":")[-1].split("/")[0]  # type: ignore[attr-defined]
    loop_prometheus.add_target("operator", f"127.0.0.1:{port}", {"component": "operator"})
    rows = loop_models.iris_x[:30].tolist()
    with httpx.Client(base_url=proc.url, timeout=10) as client:
        for _ in range(20):  # traffic, a few errors, and ground truth for accuracy
            answer = client.post("/predict", json={"features": rows}).json()
            labels = {"id": answer["id"], "labels": answer["predictions"]}
            assert client.post("/v2/models/dash/feedback", json=labels).status_code == 200
            client.post("/v2/models/dash/infer", json={"inputs": "nonsense"})  # a 4xx
            time.sleep(0.25)
    fill = {
        "$namespace": loop_kube.namespace,
        "$model": "dash",
        "$__rate_interval": "1m",
    }
    missing: dict[str, str] = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        for title, expr in _queries(json.loads(path.read_text())):
            for key, value in fill.items():
                expr = expr.replace(key, value)
            try:
                wait_for(lambda e=expr: loop_prometheus.query(e), f"{title}: {expr}", timeout_s=60)
            except AssertionError:
                missing[f"{path.name}: {title}"] = expr
    assert not missing, missing
