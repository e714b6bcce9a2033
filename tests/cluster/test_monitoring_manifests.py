"""manifests/monitoring renders as a kustomize component over the base (with the real
kubectl kustomize): the PrometheusRule carries the alert rules, the PodMonitor selects the
operator's serving pods and maps the label the monitor's queries group by."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from support.operator_kit import ROOT


def test_monitoring_component_renders_over_the_base(crds: Any, tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    base, component = ROOT / "manifests", ROOT / "manifests" / "monitoring"
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(base, overlay)],
                "components": [os.path.relpath(component, overlay)],
            }
        )
    )
    docs = list(yaml.safe_load_all(crds.run_kubectl("kustomize", str(overlay)).stdout))
    by_kind = {d["kind"]: d for d in docs}
    assert "Deployment" in by_kind  # the base is still there
    rule = by_kind["PrometheusRule"]
    assert rule["metadata"]["namespace"] == "onnxops-system"
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"OnnxopsHighErrorRate", "OnnxopsOOMKilled", "OnnxopsInputDrift"} <= alerts
    monitor = by_kind["PodMonitor"]
    assert monitor["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/managed-by": "onnxops"}
    relabel = monitor["spec"]["podMetricsEndpoints"][0]["relabelings"][0]
    assert relabel["action"] == "labelmap" and "onnxops_io_model_deployment" in relabel["regex"]
