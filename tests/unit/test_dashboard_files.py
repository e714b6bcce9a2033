"""The dashboards in manifests/monitoring/dashboards/ are what hack/dashboards.py writes (a
stale file fails here), and their ConfigMap carries the label Grafana's sidecar looks for."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import yaml
from onnxops.monitor.queries import SERVED

ROOT = Path(__file__).resolve().parents[2]


def test_dashboards_are_fresh_and_labelled_for_the_sidecar() -> None:
    spec = importlib.util.spec_from_file_location("dashboards", ROOT / "hack" / "dashboards.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, text in module.rendered().items():
        on_disk = (ROOT / "manifests" / "monitoring" / "dashboards" / name).read_text()
        assert on_disk == text, f"{name} is stale: run python hack/dashboards.py"
    kustomization = yaml.safe_load(module.KUSTOMIZATION)
    generator = kustomization["configMapGenerator"][0]
    assert generator["options"]["labels"] == {"grafana_dashboard": "1"}
    assert sorted(generator["files"]) == ["onnxops-fleet.json", "onnxops-model.json"]


def test_the_model_dashboards_runtime_panels_leave_the_canary_out() -> None:
    # The served version's health, as the monitor and the alerts read it (monitor/queries.py);
    # the cAdvisor panels (per pod, by name) carry no track label.
    board = json.loads((ROOT / "manifests/monitoring/dashboards/onnxops-model.json").read_text())
    selectors = [
        (p["title"], found)
        for p in board["panels"]
        for t in p["targets"]
        for found in re.findall(r"onnxops_(?!io_)[a-z_]+\{[^}]*\}", t["expr"])
    ]
    assert len({title for title, _ in selectors}) == 5
    assert [title for title, found in selectors if SERVED not in found] == []
