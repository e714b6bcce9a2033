"""Cases of bench/rollout: a bad model version (failing at inference) under steady load, rolled
out all at once with heal's rollback (no spec.rollout: today's behaviour) and through
spec.rollout's steps; a good version through the same steps. Not a test suite (the file name
keeps it out of `pytest tests`): bench/rollout/run.py runs it by path and reads the row each
case writes to HEAL_BENCH_OUT (support.benchrecord): the answers users got after the spec
change, the failed or wrong ones among them, and the seconds to the decision.

Real devcluster, Prometheus, serving processes (the loop conftest's fixtures); the traffic is
support.traffic.ServiceTraffic, spread over the Service's EndpointSlices as kube-proxy spreads
it, every answer judged against the lookup model's true value.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from devcluster.podrunner import PodRunner
from support.benchrecord import bench_write
from support.deployments import FAST, model_deployment
from support.faults import broken_copy
from support.operator_kit import Kube, Operator, wait_for
from support.serving_harness import Models
from support.traffic import ServiceTraffic, rows

# As in test_rollout: a terminating pod serves on for 5 s, as it does behind kube-proxy.
RUNNER_ENV = {"ONNXOPS_SHUTDOWN_DELAY_S": "5"}
REPLICAS = int(os.environ.get("ROLLOUT_BENCH_REPLICAS", "4"))
PAUSE_S = int(os.environ.get("ROLLOUT_BENCH_PAUSE_S", "6"))
QUIET_S = 5.0
"""The bad answers are over once none came for this long after the decision."""
# The p99 ratio is generous: two busy cores make latency noisy, and it is not judged here.
ANALYSIS = {"intervalSeconds": 5, "failureLimit": 0, "minRequests": 10, "maxLatencyRatio": 10}
SHADOW_STEPS = [
    {"shadow": 100, "pauseSeconds": PAUSE_S},
    {"weight": 10, "pauseSeconds": PAUSE_S},
    {"weight": 50, "pauseSeconds": PAUSE_S},
]
THREE = rows([3.0, 0.0])  # table[3] = 13 for v1; out of range for the broken copy


def _truth(body: dict[str, Any]) -> list[Any]:
    return [13.0]


def _body(name: str, v1: dict[str, Any], steps: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The same ModelDeployment either way; `steps`: with spec.rollout (and heal off)."""
    spec: dict[str, Any] = {
        "model": v1,
        "target": {"pool": "cloud"},
        "replicas": REPLICAS,
        "monitoring": {**FAST, "anomaly": {"enabled": False}},
    }
    if steps is not None:
        spec["rollout"] = {"steps": steps, "analysis": ANALYSIS}
        # Heal off here, as in test_rollout: with it on, the monitor's per-pod ErrorRate saw
        # the shadow canary failing mirrored requests and heal restarted canary pods, and the
        # rollout did not decide within 300 s (bench/rollout/RESULTS.md).
        spec["remediation"] = {"mode": "off"}
    return model_deployment(name, **spec)


def _version(kube: Kube, name: str) -> str | None:
    dep = kube.get("deployment", name)
    if dep is None:
        return None
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return next((e.get("value") for e in c["env"] if e["name"] == "ONNXOPS_MODEL_VERSION"), None)


def _settle(kube: Kube, name: str, steps: list[dict[str, Any]] | None) -> None:
    def ready() -> bool:
        st = kube.status(name)
        if st.get("readyReplicas") != REPLICAS:
            return False
        # Heal rolls back only to a version it has seen healthy; a rollout starts once settled.
        healthy = ((st.get("models") or {}).get("healthy") or {}).get("version") == "1"
        return healthy if steps is None else (st.get("rollout") or {}).get("phase") == "Promoted"

    wait_for(ready, f"{name} v1 serving, settled", 240)


def _run_case(
    kube: Kube,
    name: str,
    v1: dict[str, Any],
    v2: dict[str, Any],
    steps: list[dict[str, Any]] | None,
    decided: Any,
) -> dict[str, Any]:
    """Apply v1, start the traffic, change spec.model to v2 and poll `decided(kube)` (a
    truthy note once decided); then wait until no bad answer came for QUIET_S."""
    assert kube.apply(_body(name, v1, steps)).returncode == 0
    api = kube.cluster.api()
    try:
        with ServiceTraffic(api, kube.namespace, name, "lookup", lambda: THREE, _truth) as traffic:
            _settle(kube, name, steps)
            wait_for(lambda: traffic.total() > 50, "steady traffic", 30)
            patch = json.dumps({"spec": {"model": v2}})
            t0 = time.monotonic()
            kube.run("patch", "mdep", name, "--type=merge", "-p", patch)
            try:
                note = wait_for(lambda: decided(kube), f"{name}: the decision", 300)
            except AssertionError as exc:  # say where it stood
                st = kube.status(name)
                raise AssertionError(f"{exc}; status: {json.dumps(st)[:3000]}") from None
            decided_s = time.monotonic() - t0

            def quiet() -> bool:
                bad = [t for t, _, good in traffic.answers if not good]
                return time.monotonic() - max([t0, *bad]) > QUIET_S

            wait_for(quiet, f"{name}: no bad answer for {QUIET_S} s", 180)
            ended = time.monotonic()
        after = [(t, pod, good) for t, pod, good in traffic.answers if t0 <= t <= ended]
        bad = [t for t, _, good in after if not good]
        canary = [pod for _, pod, _ in after if "-canary-" in pod]
        return {
            "answers": len(after),
            "bad_answers": len(bad),
            "failed": traffic.failed(),
            "wrong": traffic.wrong(),
            "by_canary": len(canary),
            "decided_s": round(decided_s, 1),
            "last_bad_s": round(max(bad) - t0, 1) if bad else None,
            "window_s": round(ended - t0, 1),
            "req_per_s": round(len(after) / (ended - t0), 1),
            "replicas": REPLICAS,
            **note,
        }
    finally:
        kube.run("delete", "mdep", name, "--wait=false", check=False)
        wait_for(
            lambda: not kube.items("pods", f"onnxops.io/model-deployment={name}"), "pods gone", 120
        )


def _models(loop_models: Models, tmp_path: Path, name: str) -> tuple[dict[str, Any], ...]:
    v1 = {"uri": f"file://{loop_models.poison}", "name": "lookup", "version": "1"}
    broken = broken_copy(loop_models.poison, tmp_path / f"{name}-2.onnx")
    return v1, {"uri": f"file://{broken}", "name": "lookup", "version": "2"}


def _rolled_back(kube: Kube, name: str) -> Any:
    records = kube.status(name).get("remediations") or []
    if _version(kube, name) == "1" and any(r["action"] == "rollback" for r in records):
        return {"how": "heal rollback"}
    return None


def _aborted(name: str, steps: list[dict[str, Any]]) -> Any:
    def check(kube: Kube) -> Any:
        r = kube.status(name).get("rollout") or {}
        if r.get("phase") != "Aborted":
            return None
        kind = "shadow" if "shadow" in steps[r["step"]] else "weight"
        return {"how": f"aborted in step {r['step'] + 1} ({kind})", "reason": r["message"]}

    return check


def test_a_bad_version_all_at_once_with_heals_rollback(
    watcher: Operator, loop_kube: Kube, loop_runner: PodRunner, loop_models: Models, tmp_path: Path
) -> None:
    v1, v2 = _models(loop_models, tmp_path, "once")
    row = _run_case(loop_kube, "once", v1, v2, None, lambda k: _rolled_back(k, "once"))
    bench_write({"fault": "bad-all-at-once", **row})
    assert row["bad_answers"] > 0  # v2 failed for real


def test_a_bad_version_through_shadow_and_weight_steps(
    watcher: Operator, loop_kube: Kube, loop_runner: PodRunner, loop_models: Models, tmp_path: Path
) -> None:
    v1, v2 = _models(loop_models, tmp_path, "stepped")
    row = _run_case(loop_kube, "stepped", v1, v2, SHADOW_STEPS, _aborted("stepped", SHADOW_STEPS))
    bench_write({"fault": "bad-shadow-10-50", **row})


def test_a_bad_version_through_weight_steps_only(
    watcher: Operator, loop_kube: Kube, loop_runner: PodRunner, loop_models: Models, tmp_path: Path
) -> None:
    """The same without the shadow step: what the first weight step lets through."""
    v1, v2 = _models(loop_models, tmp_path, "weighted")
    row = _run_case(
        loop_kube, "weighted", v1, v2, SHADOW_STEPS[1:], _aborted("weighted", SHADOW_STEPS[1:])
    )
    bench_write({"fault": "bad-10-50", **row})


def test_a_good_version_through_every_step(
    watcher: Operator, loop_kube: Kube, loop_runner: PodRunner, loop_models: Models, tmp_path: Path
) -> None:
    v1, _ = _models(loop_models, tmp_path, "good")
    same = shutil.copy(loop_models.poison, tmp_path / "good-2.onnx")
    v2 = {"uri": f"file://{same}", "name": "lookup", "version": "2"}

    def promoted(kube: Kube) -> Any:
        r = kube.status("good").get("rollout") or {}
        done = r.get("phase") == "Promoted" and r.get("stableVersion") == "2"
        return done and kube.get("deployment", "good-canary") is None and {"how": "promoted"}

    row = _run_case(loop_kube, "good", v1, v2, SHADOW_STEPS, promoted)
    pauses = sum(s["pauseSeconds"] for s in SHADOW_STEPS)
    bench_write({"fault": "good-shadow-10-50", "pauses_s": pauses, **row})
    assert row["bad_answers"] == 0, row
