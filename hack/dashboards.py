"""Writes the Grafana dashboards of manifests/monitoring/dashboards/ (run it after changing a
panel: `python hack/dashboards.py`; tests/unit/test_dashboards.py fails if they are stale).

Two dashboards, for Grafana's dashboard sidecar (ConfigMap label `grafana_dashboard: "1"`):
- onnxops-fleet ($namespace, several or All): ModelDeployments by phase, faults by signal,
  remediations by action and result, rollouts by phase, traffic by model, monitor cycle time
  (the operator's series carry `model_namespace`, the namespace of the models they count);
- onnxops-model: one model ($namespace, $model): requests, errors, p50/p99, online accuracy,
  drift of the version it serves (a rollout's canary pods left out: the rollout judges them),
  CPU and memory against their limits, throttling, OOM kills, restarts per pod (canary pods
  among them, by name).
Every query reads only what the serving runtime, the pod's cAdvisor and the operator export.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "manifests" / "monitoring" / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
# The served version's series: a rollout's canary pods left out (`onnxops_io_track!="canary"`,
# as the monitor's queries and the alerts do; it also matches series without the label).
MODEL = 'namespace="$namespace", onnxops_io_model_deployment="$model", onnxops_io_track!="canary"'
POD = 'namespace="$namespace", pod=~"$model-.*", container="server"'
INFER = 'endpoint=~"infer|predict"'


def panel(pid: int, title: str, exprs: list[tuple[str, str]], *, unit: str = "short",
          x: int = 0, y: int = 0, w: int = 12, kind: str = "timeseries") -> dict[str, Any]:  # fmt: skip
    return {
        "id": pid,
        "type": kind,
        "title": title,
        "datasource": DS,
        "gridPos": {"h": 8, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {
            "legend": {
                "displayMode": "list",
                "placement": "bottom",
                "showLegend": True,
                "calcs": [],
            },
            "tooltip": {"mode": "multi", "sort": "none"},
        },
        "targets": [
            {"refId": chr(65 + i), "datasource": DS, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(exprs)
        ],
    }


def variable(name: str, query: str, label: str) -> dict[str, Any]:
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DS,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,
        "current": {"text": "", "value": ""},
        "options": [],
        "multi": False,
        "includeAll": False,
    }


DATASOURCE = {
    "type": "datasource",
    "name": "datasource",
    "label": "Prometheus",
    "query": "prometheus",
    "current": {"text": "Prometheus", "value": "prometheus"},
    "options": [],
}


def dashboard(uid: str, title: str, panels: list[dict[str, Any]], variables: list[Any]) -> dict[str, Any]:  # fmt: skip
    return {
        "uid": uid,
        "title": title,
        "tags": ["onnxops"],
        "editable": True,
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": [DATASOURCE, *variables]},
        "annotations": {"list": []},
        "panels": panels,
    }


def fleet() -> dict[str, Any]:
    by_model = "sum by (namespace, onnxops_io_model_deployment)"
    ns = 'model_namespace=~"$namespace"'  # the operator's series: the models' namespace
    panels = [
        panel(1, "ModelDeployments by phase",
              [(f"sum by (phase) (onnxops_operator_model_deployments_by_phase{{{ns}}})", "{{phase}}")]),
        panel(2, "Faults standing, by signal",
              [(f"sum by (signal) (onnxops_operator_faults{{{ns}}})", "{{signal}}")], x=12),
        panel(3, "Remediations, by action and result",
              [(f"sum by (action, result) (increase(onnxops_operator_remediations_total{{{ns}}}[$__rate_interval]))",
                "{{action}} {{result}}")], y=8),
        panel(4, "Rollouts, by phase (Promoted: none running)",
              [(f"sum by (phase) (onnxops_operator_rollouts{{{ns}}})", "{{phase}}")],
              x=12, y=8),
        panel(5, "Inference requests/s, by model",
              [(f'{by_model} (rate(onnxops_requests_total{{namespace=~"$namespace", {INFER}}}[$__rate_interval]))',
                "{{namespace}}/{{onnxops_io_model_deployment}}")], unit="reqps", y=16),
        panel(6, "Monitor cycle time (p99)",
              [("histogram_quantile(0.99, sum by (le) (rate(onnxops_operator_evaluation_cycle_seconds_bucket[$__rate_interval])))",
                "p99")], unit="s", x=12, y=16),
    ]  # fmt: skip
    namespaces = variable(
        "namespace",
        "label_values(onnxops_operator_model_deployments_by_phase, model_namespace)",
        "Namespace",
    )
    namespaces.update({"multi": True, "includeAll": True, "allValue": ".*",
                       "current": {"text": "All", "value": "$__all"}})  # fmt: skip
    return dashboard("onnxops-fleet", "onnxops / fleet", panels, [namespaces])


def model() -> dict[str, Any]:
    panels = [
        panel(1, "Requests/s by endpoint and code",
              [(f"sum by (endpoint, code) (rate(onnxops_requests_total{{{MODEL}}}[$__rate_interval]))",
                "{{endpoint}} {{code}}")], unit="reqps"),
        panel(2, "Error ratio (5xx of inference)",
              [(f'(sum(rate(onnxops_requests_total{{{MODEL}, {INFER}, code=~"5.."}}[$__rate_interval])) or vector(0))'
                f" / sum(rate(onnxops_requests_total{{{MODEL}, {INFER}}}[$__rate_interval]))", "errors")],
              unit="percentunit", x=12),
        panel(3, "Latency p50 / p99",
              [(f"histogram_quantile({q}, sum by (le) (rate(onnxops_request_duration_seconds_bucket{{{MODEL}}}[$__rate_interval])))",
                f"p{int(q * 100)}") for q in (0.5, 0.99)], unit="s", y=8),
        panel(4, "Online accuracy (ground-truth feedback)",
              [(f"min(onnxops_online_accuracy{{{MODEL}}})", "accuracy")], unit="percentunit", x=12, y=8),
        panel(5, "Input drift (largest feature PSI)",
              [(f"max(onnxops_drift_psi_max{{{MODEL}}})", "PSI")], y=16),
        panel(6, "CPU used vs limit (cores)",
              [(f"sum by (pod) (rate(container_cpu_usage_seconds_total{{{POD}}}[$__rate_interval]))", "{{pod}} used"),
               (f"max by (pod) (container_spec_cpu_quota{{{POD}}} / container_spec_cpu_period{{{POD}}})", "{{pod}} limit")],
              x=12, y=16),
        panel(7, "Memory working set vs limit",
              [(f"max by (pod) (container_memory_working_set_bytes{{{POD}}})", "{{pod}} used"),
               (f"max by (pod) (container_spec_memory_limit_bytes{{{POD}}} > 0)", "{{pod}} limit")],
              unit="bytes", y=24),
        panel(8, "CPU throttling (share of periods)",
              [(f"sum by (pod) (rate(container_cpu_cfs_throttled_periods_total{{{POD}}}[$__rate_interval]))"
                f" / sum by (pod) (rate(container_cpu_cfs_periods_total{{{POD}}}[$__rate_interval]))", "{{pod}}")],
              unit="percentunit", x=12, y=24),
        panel(9, "OOM kills (1h)",
              [(f"sum by (pod) (increase(container_oom_events_total{{{POD}}}[1h]))", "{{pod}}")], y=32),
        panel(10, "Restarts (1h)",
              [(f"sum by (pod) (changes(container_start_time_seconds{{{POD}}}[1h]))", "{{pod}}")], x=12, y=32),
    ]  # fmt: skip
    variables = [
        variable("namespace", "label_values(onnxops_requests_total, namespace)", "Namespace"),
        variable("model", 'label_values(onnxops_requests_total{namespace="$namespace"}, onnxops_io_model_deployment)', "Model"),
    ]  # fmt: skip
    return dashboard("onnxops-model", "onnxops / model", panels, variables)


KUSTOMIZATION = """\
# Grafana dashboards as ConfigMaps for Grafana's dashboard sidecar (label grafana_dashboard).
# Written by hack/dashboards.py.
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
configMapGenerator:
  - name: onnxops-dashboards
    files: [onnxops-fleet.json, onnxops-model.json]
    options:
      disableNameSuffixHash: true
      labels: {grafana_dashboard: "1"}
"""


def rendered() -> dict[str, str]:
    files = {f"{d['uid']}.json": json.dumps(d, indent=2) + "\n" for d in (fleet(), model())}
    files["kustomization.yaml"] = KUSTOMIZATION
    return files


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in rendered().items():
        (OUT / name).write_text(text)
    sys.exit(0)
