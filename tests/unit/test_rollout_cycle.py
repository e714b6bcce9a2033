"""The rollout cycle's pure helpers: the mirror's targets from EndpointSlices, and whether a
Deployment rolled out serving a version (what completes a promotion)."""

from __future__ import annotations

from typing import Any

from onnxops.rollout import queries
from onnxops.rollout.cycle import ready_targets, runs_version


def _slice(port_name: str, *endpoints: tuple[str, bool | None]) -> dict[str, Any]:
    return {
        "ports": [{"name": port_name, "port": 8080}],
        "endpoints": [
            {"addresses": [a], **({"conditions": {"ready": r}} if r is not None else {})}
            for a, r in endpoints
        ],
    }


def test_ready_targets_take_ready_http_endpoints_only() -> None:
    slices = [
        _slice("http", ("10.130.0.2", True), ("10.130.0.3", False), ("10.130.0.1", None)),
        _slice("grpc", ("10.130.0.9", True)),
    ]
    assert ready_targets(slices) == ["10.130.0.1:8080", "10.130.0.2:8080"]
    assert ready_targets([]) == []


def _deployment(version: str, *, rolled: bool) -> dict[str, Any]:
    return {
        "metadata": {"generation": 2},
        "spec": {
            "replicas": 2,
            "template": {
                "spec": {
                    "containers": [{"env": [{"name": "ONNXOPS_MODEL_VERSION", "value": version}]}]
                }
            },
        },
        "status": {
            "observedGeneration": 2,
            "replicas": 2,
            "updatedReplicas": 2 if rolled else 1,
            "readyReplicas": 2,
        },
    }


def test_runs_version_needs_the_version_and_a_finished_rollout() -> None:
    assert runs_version(_deployment("2", rolled=True), "2")
    assert not runs_version(_deployment("2", rolled=False), "2")
    assert not runs_version(_deployment("1", rolled=True), "2")
    assert not runs_version(None, "2")


def test_queries_group_by_version_and_candidate() -> None:
    found = {q.name: q for q in queries.by_version("md", "1m")}
    assert list(found) == ["requests", "error_ratio", "p99_s", "accuracy", "drift"]
    assert all(q.labels == ("namespace", "md", "version") for q in found.values())
    assert "by (namespace, md, version, le)" in found["p99_s"].promql
    shadow = queries.shadow("md", "1m")
    assert shadow.labels[-2:] == ("candidate_version", "outcome")
    assert "onnxops_shadow_requests_total[1m]" in shadow.promql
