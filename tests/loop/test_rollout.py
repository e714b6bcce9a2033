"""Progressive delivery end to end: the operator, a real Prometheus and the real serving
runtime behind simulated pods; traffic spread over the Service's EndpointSlices as kube-proxy
spreads it. A version failing at inference is aborted at the first weight step, and in a
shadow step having answered no user; one answering every label wrong is aborted on the
accuracy its ground-truth feedback gives, having answered no more than its share; a good one passes a shadow step on agreement and is
promoted through every step with no failed request; without traffic nothing is promoted; an
operator killed mid-step resumes it; spec changes, removal and deletion leave no orphan; the
user's actions (abort, retry, pause, promote) act once.

Pauses and intervals are seconds here; the p99 ratio is generous (10) because two busy cores
make latency noisy, and latency is not what these tests judge.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from devcluster import prometheus as prom
from devcluster.podrunner import PodRunner
from onnxops.monitor import queries
from support.deployments import model_deployment
from support.faults import broken_copy, permuted_labels
from support.operator_kit import Kube, Operator, wait_for
from support.readings import condition
from support.serving_harness import Models
from support.traffic import ServiceTraffic, ready_endpoints, rows

pytestmark = [pytest.mark.loop, pytest.mark.slow]


# Every serving pod serves on for the Deployment's shutdown delay (5 s) once terminating, as it
# does behind kube-proxy: this traffic follows the Service's EndpointSlices, which drop a
# terminating pod a moment after it got SIGTERM. (The loop conftest's runner reads RUNNER_ENV.)
RUNNER_ENV = {"ONNXOPS_SHUTDOWN_DELAY_S": "5"}

STEPS = [{"weight": 20, "pauseSeconds": 6}, {"weight": 60, "pauseSeconds": 6}]
ANALYSIS = {"intervalSeconds": 5, "failureLimit": 0, "minRequests": 10, "maxLatencyRatio": 10}
THREE = rows([3.0, 0.0])  # index 3: served by v1, out of range for the broken copy


def lookup(
    name: str,
    model: dict[str, Any],
    *,
    monitoring: dict[str, Any] | None = None,
    remediation: dict[str, Any] | None = None,
    **rollout: Any,
) -> dict[str, Any]:
    return model_deployment(
        name,
        model=model,
        target={"pool": "cloud"},
        replicas=3,
        monitoring={"intervalSeconds": 5, **(monitoring or {})},
        # The rollout judges; heal is the heal tests' part.
        remediation=remediation or {"mode": "off"},
        rollout={"steps": STEPS, "analysis": ANALYSIS, **rollout},
    )


def canary_gone(kube: Kube, api: Any, name: str) -> None:
    """The canary Deployment deleted, and its pods out of the Service's ready endpoints."""
    wait_for(lambda: kube.get("deployment", f"{name}-canary") is None, "no canary", 60)
    wait_for(
        lambda: (
            not [
                p
                for p, _ in ready_endpoints(api, kube.namespace, name)
                if p.startswith(f"{name}-canary-")
            ]
        ),
        "the canary out of the endpoints",
        30,
    )


class Faults:
    """The monitor's status.faults of one ModelDeployment, read every 0.5 s in a background
    thread while the block runs: every (signal, pods) seen, so a fault that stood for one
    evaluation between two reads of the test is not missed."""

    def __init__(self, api: Any, namespace: str, name: str) -> None:
        self.path = f"/apis/onnxops.io/v1alpha1/namespaces/{namespace}/modeldeployments/{name}"
        self.api = api
        self.seen: set[tuple[str, tuple[str, ...]]] = set()
        self.reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faults", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # a failed read is only one sample fewer
                body = self.api.get(self.path)
                for f in (body.get("status") or {}).get("faults") or []:
                    self.seen.add((f["signal"], tuple(f.get("pods") or ())))
                self.reads += 1
            self._stop.wait(0.5)

    def __enter__(self) -> Faults:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def env_of(dep: dict[str, Any] | None) -> dict[str, str]:
    assert dep is not None
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in c["env"]}


def rollout_of(kube: Kube, name: str) -> dict[str, Any]:
    return dict(kube.status(name).get("rollout") or {})


def start(kube: Kube, name: str, model: dict[str, Any], **rollout: Any) -> None:
    """Apply `lookup(name, model, **rollout)` and wait for v1 to serve on three pods."""
    assert kube.apply(lookup(name, model, **rollout)).returncode == 0
    wait_for(
        lambda: (
            kube.status(name).get("readyReplicas") == 3
            and rollout_of(kube, name).get("phase") == "Promoted"
        ),
        f"{name} v1 serving, settled",
        180,
    )


def patch_model(kube: Kube, name: str, model: dict[str, Any]) -> None:
    kube.run("patch", "mdep", name, "--type=merge", "-p", json.dumps({"spec": {"model": model}}))


def healed_for_errors(st: dict[str, Any]) -> list[dict[str, Any]]:
    """status.remediations (dry-run ones too) called for by 5xx or naming a canary pod."""
    return [
        r
        for r in st.get("remediations") or []
        if str(r.get("reason", "")).startswith("ErrorRate")
        or any("-canary-" in p for p in r.get("pods") or [])
    ]


def reasons(kube: Kube, name: str) -> list[str]:
    return [e["reason"] for e in kube.events(name) if e["reason"].startswith("Rollout")]


def test_a_version_failing_at_inference_is_aborted_at_the_first_weight_step(
    watcher: Operator,
    loop_kube: Kube,
    loop_runner: PodRunner,
    loop_models: Models,
    loop_prometheus: prom.Prometheus,
    tmp_path: Path,
) -> None:
    name = "abort"
    v1 = {"uri": f"file://{loop_models.poison}", "name": "lookup", "version": "1"}
    broken = broken_copy(loop_models.poison, tmp_path / "lookup-2.onnx")
    v2 = {"uri": f"file://{broken}", "name": "lookup", "version": "2"}
    # The monitor at its most eager (one bad evaluation is a fault) and heal recording what it
    # would do: the canary's 5xx must reach neither (they are the rollout's to judge). Latency
    # is not judged (two busy cores make the stable pods' p99 cross 250 ms now and then).
    start(
        loop_kube,
        name,
        v1,
        monitoring={
            "failureThreshold": 1,
            "thresholds": {"latencyP99Ms": 60000},
            "anomaly": {"enabled": False},
        },
        remediation={"mode": "dryRun"},
    )
    api = loop_kube.cluster.api()
    try:
        with (
            ServiceTraffic(api, loop_kube.namespace, name, "lookup", lambda: THREE) as traffic,
            Faults(api, loop_kube.namespace, name) as faults,
        ):
            patch_model(loop_kube, name, v2)
            r = wait_for(
                lambda: (r := rollout_of(loop_kube, name)).get("phase") == "Aborted" and r,
                "the rollout aborted",
                180,
            )
            assert r["step"] == 0 and r["failures"] == 1  # at the first weight step
            (m,) = [x for x in r["measurements"] if x["signal"] == "ErrorRate"]
            assert m["verdict"] == "Failed" and m["candidate"] > 0.02 >= m["stable"]
            assert m["threshold"] == 0.02
            # The canary goes at once; the stable pods were never touched and serve on.
            # Its pods answer (500) until they leave the Service's endpoints, as behind
            # kube-proxy; from then on (and the traffic's next read of them) only stable answers.
            canary_gone(loop_kube, api, name)
            time.sleep(1)
            failed_at_abort = traffic.failed()
            seen = traffic.total()
            wait_for(lambda: traffic.total() > seen + 50, "50 more requests", 30)
            time.sleep(3)
            after = traffic.failed() - failed_at_abort
        assert failed_at_abort > 0  # v2 failed for real, on the canary's share only
        canary_pods = {p for p in traffic.by_pod if p.startswith(f"{name}-canary-")}
        assert canary_pods, "the canary answered users in its weight step"
        assert all(
            traffic.by_pod[p].get(500, 0) == 0 for p in traffic.by_pod if p not in canary_pods
        )
        assert after == 0, ("a failure after the canary left", traffic.by_pod, traffic.errors)
        # The monitor read the served version only: no ErrorRate fault while only the canary
        # failed (its pods are left out of the per-model and per-pod 5xx ratios), and so heal
        # would have done nothing (no dry-run restart of the canary's pod, no rollback).
        assert faults.reads > 20
        assert [f for f in faults.seen if f[0].startswith("ErrorRate")] == [], faults.seen
        # By the track label the canary's series carry live (the pod label, as scraped).
        by_pod = loop_prometheus.query(
            f"count by (pod, {queries.TRACK_LABEL}) (last_over_time(onnxops_requests_total"
            f'{{namespace="{loop_kube.namespace}",onnxops_io_model_deployment="{name}"}}[5m]))'
        )
        tracks = {r["metric"]["pod"]: r["metric"].get(queries.TRACK_LABEL) for r in by_pod}
        assert {p for p, t in tracks.items() if t == "canary"} == canary_pods, tracks
        st = loop_kube.status(name)
        assert healed_for_errors(st) == [], st.get("remediations")
        aborted = condition(st, "RolloutAborted")
        assert aborted["status"] == "True" and aborted["reason"] == "ErrorRate"
        assert "threshold 0.02" in aborted["message"]
        assert st["phase"] == "Degraded"
        md = loop_kube.get("mdep", name)
        assert md is not None and md["spec"]["model"]["version"] == "2"  # spec untouched
        stable = loop_kube.get("deployment", name)
        assert env_of(stable)["ONNXOPS_MODEL_VERSION"] == "1"
        assert stable is not None and stable["spec"]["replicas"] == 3
        assert reasons(loop_kube, name).count("RolloutAborted") == 1
        # Nothing is retried while the spec stays.
        time.sleep(12)
        assert rollout_of(loop_kube, name)["phase"] == "Aborted"
        assert loop_kube.get("deployment", f"{name}-canary") is None
        assert healed_for_errors(loop_kube.status(name)) == []  # nor later
    finally:
        loop_kube.run("delete", "mdep", name, "--wait=false", check=False)


def test_a_good_version_is_promoted_through_every_step_with_no_failed_request(
    watcher: Operator, loop_kube: Kube, loop_runner: PodRunner, loop_models: Models, tmp_path: Path
) -> None:
    name = "promote"
    v1 = {"uri": f"file://{loop_models.poison}", "name": "lookup", "version": "1"}
    same = shutil.copy(loop_models.poison, tmp_path / "lookup-2.onnx")
    v2 = {"uri": f"file://{same}", "name": "lookup", "version": "2"}
    start(loop_kube, name, v1)
    api = loop_kube.cluster.api()
    steps_seen: set[tuple[int, int]] = set()
    hinted: set[str] = set()  # the tracks seen not to be disrupted during a step

    def hints(name: str) -> list[dict[str, Any]]:
        """The live pods asking autoscalers not to disrupt them."""
        pods = loop_kube.items("pods", f"onnxops.io/model-deployment={name}")
        return [
            p
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
            and (p["metadata"].get("annotations") or {}).get("karpenter.sh/do-not-disrupt")
        ]

    try:
        with ServiceTraffic(api, loop_kube.namespace, name, "lookup", lambda: THREE) as traffic:
            patch_model(loop_kube, name, v2)

            def promoted() -> dict[str, Any] | None:
                r = rollout_of(loop_kube, name)
                canary = loop_kube.get("deployment", f"{name}-canary")
                if canary is not None and r.get("step", 9) < 2:
                    steps_seen.add((r["step"], canary["spec"]["replicas"]))
                    hinted.update(p["metadata"]["labels"]["onnxops.io/track"] for p in hints(name))
                return r if r.get("phase") == "Promoted" else None

            r = wait_for(promoted, "promotion", 300)
            wait_for(lambda: loop_kube.get("deployment", f"{name}-canary") is None, "no canary", 60)
            time.sleep(3)
        assert traffic.total() > 200
        assert traffic.failed() == 0, (traffic.codes, traffic.by_pod, traffic.errors[:20])
        assert (r["stableVersion"], r.get("candidate")) == ("2", None)
        # Each weight step ran with its replica split: 20% of 3 -> 1 canary, 60% -> 2.
        assert {(0, 1), (1, 2)} <= steps_seen
        # do-not-disrupt on the stable and canary pods through the steps, on none after.
        assert hinted == {"stable", "canary"}
        assert hints(name) == []
        stable = loop_kube.get("deployment", name)
        assert env_of(stable)["ONNXOPS_MODEL_VERSION"] == "2"
        assert stable is not None and stable["spec"]["replicas"] == 3
        seen = reasons(loop_kube, name)
        assert seen.count("RolloutStarted") == 1 and seen.count("RolloutStep") == 1
        assert seen.count("RolloutPromoting") == 1 and seen.count("RolloutPromoted") == 1
        assert "RolloutAborted" not in seen
        # The promoted stable pods' readiness reaches status at the operator's next look.
        wait_for(lambda: loop_kube.status(name).get("phase") == "Ready", "promote Ready", 60)
    finally:
        loop_kube.run("delete", "mdep", name, "--wait=false", check=False)


def test_no_traffic_is_inconclusive_and_never_promoted(
    watcher: Operator, loop_kube: Kube, loop_runner: PodRunner, loop_models: Models, tmp_path: Path
) -> None:
    name = "quiet"
    v1 = {"uri": f"file://{loop_models.poison}", "name": "lookup", "version": "1"}
    same = shutil.copy(loop_models.poison, tmp_path / "lookup-2.onnx")
    v2 = {"uri": f"file://{same}", "name": "lookup", "version": "2"}
    start(loop_kube, name, v1)
    try:
        patch_model(loop_kube, name, v2)
        r = wait_for(
            lambda: (r := rollout_of(loop_kube, name)).get("phase") == "Inconclusive" and r,
            "Inconclusive",
            120,
        )
        assert "minRequests 10" in r["message"]
        time.sleep(20)  # the step's pause (6 s) long elapsed, four intervals more
        r = rollout_of(loop_kube, name)
        assert (r["phase"], r["step"], r["failures"]) == ("Inconclusive", 0, 0)
        assert {m["verdict"] for m in r["measurements"]} == {"Inconclusive"}
        assert env_of(loop_kube.get("deployment", name))["ONNXOPS_MODEL_VERSION"] == "1"
        canary = loop_kube.get("deployment", f"{name}-canary")
        assert env_of(canary)["ONNXOPS_MODEL_VERSION"] == "2"
        assert reasons(loop_kube, name).count("RolloutInconclusive") == 1  # said once
    finally:
        loop_kube.run("delete", "mdep", name, "--wait=false", check=False)


def test_an_operator_killed_mid_step_resumes_it_and_promotes_once(
    watcher: Operator, loop_kube: Kube, loop_runner: PodRunner, loop_models: Models, tmp_path: Path
) -> None:
    name = "resume"
    v1 = {"uri": f"file://{loop_models.poison}", "name": "lookup", "version": "1"}
    same = shutil.copy(loop_models.poison, tmp_path / "lookup-2.onnx")
    v2 = {"uri": f"file://{same}", "name": "lookup", "version": "2"}
    assert (
        loop_kube.apply(
            lookup(name, v1, steps=[{"weight": 20, "pauseSeconds": 25}, STEPS[1]])
        ).returncode
        == 0
    )
    wait_for(lambda: rollout_of(loop_kube, name).get("phase") == "Promoted", "settled", 180)
    api = loop_kube.cluster.api()
    try:
        with ServiceTraffic(api, loop_kube.namespace, name, "lookup", lambda: THREE) as traffic:
            patch_model(loop_kube, name, v2)
            before = wait_for(
                lambda: (r := rollout_of(loop_kube, name)).get("successes", 0) >= 1 and r,
                "a successful measurement in step 1",
                120,
            )
            canary = loop_kube.get("deployment", f"{name}-canary")
            assert canary is not None and before["step"] == 0
            watcher.kill()  # SIGKILL mid-step: nothing is cleaned up
            time.sleep(5)
            assert rollout_of(loop_kube, name)["step"] == 0  # nothing moved meanwhile
            watcher.start()
            r = wait_for(
                lambda: (r := rollout_of(loop_kube, name)).get("phase") == "Promoted" and r,
                "promotion after the restart",
                240,
            )
            wait_for(lambda: loop_kube.get("deployment", f"{name}-canary") is None, "no canary", 60)
            time.sleep(2)
        # The same rollout resumed: started once, its step's clock kept, the canary not remade.
        assert r["candidateGeneration"] == before["candidateGeneration"]
        seen = reasons(loop_kube, name)
        assert seen.count("RolloutStarted") == 1 and seen.count("RolloutPromoted") == 1
        assert seen.count("RolloutStep") == 1
        assert traffic.failed() == 0, (traffic.codes, traffic.errors[:10])
        assert env_of(loop_kube.get("deployment", name))["ONNXOPS_MODEL_VERSION"] == "2"
    finally:
        loop_kube.run("delete", "mdep", name, "--wait=false", check=False)


def owned(kube: Kube, name: str) -> list[str]:
    found = []
    for kind in ("deployments", "services", "configmaps", "replicasets"):
        for obj in kube.items(kind, f"onnxops.io/model-deployment={name}"):
            found.append(f"{obj['kind']}/{obj['metadata']['name']}")
    return sorted(found)


def test_a_spec_change_mid_rollout_restarts_it_and_deletion_leaves_no_orphan(
    watcher: Operator, loop_kube: Kube, loop_runner: PodRunner, loop_models: Models, tmp_path: Path
) -> None:
    name = "restart"
    v1 = {"uri": f"file://{loop_models.poison}", "name": "lookup", "version": "1"}
    v2 = {"uri": f"file://{shutil.copy(loop_models.poison, tmp_path / 'v2.onnx')}", "version": "2"}
    v3 = {"uri": f"file://{shutil.copy(loop_models.poison, tmp_path / 'v3.onnx')}", "version": "3"}
    start(loop_kube, name, v1)
    patch_model(loop_kube, name, {**v2, "name": "lookup"})
    wait_for(
        lambda: (
            env_of(loop_kube.get("deployment", f"{name}-canary"))["ONNXOPS_MODEL_VERSION"] == "2"
            if loop_kube.get("deployment", f"{name}-canary")
            else False
        ),
        "a v2 canary",
        120,
    )
    patch_model(loop_kube, name, {**v3, "name": "lookup"})
    r = wait_for(
        lambda: (r := rollout_of(loop_kube, name)).get("candidateVersion") == "3" and r,
        "the rollout restarted with v3",
        60,
    )
    assert (r["step"], r["stableVersion"]) == (0, "1")
    wait_for(
        lambda: (
            env_of(loop_kube.get("deployment", f"{name}-canary"))["ONNXOPS_MODEL_VERSION"] == "3"
        ),
        "the canary on v3",
        60,
    )
    canaries = loop_kube.items("deployments", "onnxops.io/track=canary")
    assert [d["metadata"]["name"] for d in canaries] == [f"{name}-canary"]  # one, not two
    assert env_of(loop_kube.get("deployment", name))["ONNXOPS_MODEL_VERSION"] == "1"
    started = [e for e in loop_kube.events(name) if e["reason"] == "RolloutStarted"]
    assert len(started) == 2
    assert sum("restarted with version 3" in e["message"] for e in started) == 1
    assert f"Deployment/{name}-canary" in owned(loop_kube, name)
    loop_kube.run("delete", "mdep", name, "--wait=false")
    wait_for(lambda: owned(loop_kube, name) == [], "every child gone", 120)
    wait_for(
        lambda: not loop_kube.items("pods", f"onnxops.io/model-deployment={name}"), "pods gone", 120
    )


def test_a_shadow_step_answers_no_user_from_the_canary_and_passes_on_agreement(
    watcher: Operator, loop_kube: Kube, loop_runner: PodRunner, loop_models: Models, tmp_path: Path
) -> None:
    """A shadow step: the Service leaves the canary out, NAME-mirror lists the canary's ready
    addresses, the stable pods' runtime mirrors to them, and agreement passes the step."""
    name = "shadow"
    v1 = {"uri": f"file://{loop_models.poison}", "name": "lookup", "version": "1"}
    same = shutil.copy(loop_models.poison, tmp_path / "lookup-2.onnx")
    v2 = {"uri": f"file://{same}", "name": "lookup", "version": "2"}
    start(loop_kube, name, v1, steps=[{"shadow": 50, "pauseSeconds": 25}, STEPS[0]])
    api = loop_kube.cluster.api()
    try:
        with ServiceTraffic(api, loop_kube.namespace, name, "lookup", lambda: THREE) as traffic:
            patch_model(loop_kube, name, v2)

            def mirror() -> dict[str, Any] | None:
                cm = loop_kube.get("configmap", f"{name}-mirror")
                config = json.loads(((cm or {}).get("data") or {}).get("mirror.json") or "{}")
                # Targets are the canary's *ready* addresses: the second pod may still start.
                return config if len(config.get("targets") or []) == 2 else None

            config = wait_for(mirror, "the mirror pointed at both canary pods", 120)
            canary_pods = loop_kube.items("pods", "onnxops.io/track=canary")
            ips = sorted(f"{p['status']['podIP']}:8080" for p in canary_pods)
            assert config["targets"] == ips and len(ips) == 2  # ceil(50% of 3)
            assert (config["percent"], config["stableVersion"], config["candidateVersion"]) == (
                50,
                "1",
                "2",
            )
            service = loop_kube.get("service", name)
            assert service is not None
            assert service["spec"]["selector"]["onnxops.io/serving"] == "true"

            def agreed() -> dict[str, Any] | None:
                r = rollout_of(loop_kube, name)
                m = {x["signal"]: x for x in r.get("measurements") or []}.get("Agreement")
                return r if m and m["verdict"] == "Successful" and r["step"] == 0 else None

            r = wait_for(agreed, "agreement measured in the shadow step", 90)
            (agreement,) = [m for m in r["measurements"] if m["signal"] == "Agreement"]
            assert agreement["candidate"] >= 0.95 and agreement["threshold"] == 0.95
            answered_in_shadow = {p: dict(c) for p, c in traffic.by_pod.items()}
            r = wait_for(
                lambda: (r := rollout_of(loop_kube, name)).get("step") == 1 and r,
                "the shadow step passed",
                90,
            )
        assert traffic.failed() == 0, (traffic.codes, traffic.errors[:10])
        assert sum(sum(c.values()) for c in answered_in_shadow.values()) > 100
        assert not [p for p in answered_in_shadow if p.startswith(f"{name}-canary-")]
        assert r["shadowPercent"] == 0 and r["canaryWeight"] == 33  # 1 of 3 pods at 20%
        stable = loop_kube.get("deployment", name)
        assert env_of(stable)["ONNXOPS_MIRROR_CONFIG"] == "/etc/onnxops/mirror/mirror.json"
        wait_for(lambda: "RolloutStep" in reasons(loop_kube, name), "the step's Event", 30)
    finally:
        loop_kube.run("delete", "mdep", name, "--wait=false", check=False)


def test_removing_spec_rollout_mid_rollout_rolls_the_spec_model_and_removes_the_canary(
    watcher: Operator, loop_kube: Kube, loop_runner: PodRunner, loop_models: Models, tmp_path: Path
) -> None:
    name = "unroll"
    v1 = {"uri": f"file://{loop_models.poison}", "name": "lookup", "version": "1"}
    v2 = {"uri": f"file://{shutil.copy(loop_models.poison, tmp_path / 'v2.onnx')}", "version": "2"}
    start(loop_kube, name, v1)
    try:
        patch_model(loop_kube, name, {**v2, "name": "lookup"})
        wait_for(lambda: loop_kube.get("deployment", f"{name}-canary"), "a canary", 120)
        loop_kube.run(
            "patch", "mdep", name, "--type=merge", "-p", json.dumps({"spec": {"rollout": None}})
        )
        wait_for(
            lambda: (
                loop_kube.get("deployment", f"{name}-canary") is None
                and "rollout" not in loop_kube.status(name)
            ),
            "the canary and the rollout's state gone",
            60,
        )
        assert loop_kube.get("service", f"{name}-canary") is None
        assert loop_kube.get("configmap", f"{name}-mirror") is None
        stable = loop_kube.get("deployment", name)
        assert env_of(stable)["ONNXOPS_MODEL_VERSION"] == "2"  # today's behaviour: all at once
        labels = (stable or {})["spec"]["template"]["metadata"]["labels"]
        assert "onnxops.io/track" not in labels
    finally:
        loop_kube.run("delete", "mdep", name, "--wait=false", check=False)


def test_the_user_aborts_retries_pauses_and_promotes(
    watcher: Operator, loop_kube: Kube, loop_runner: PodRunner, loop_models: Models, tmp_path: Path
) -> None:
    """The actions the CLI takes, as the API takes them: the annotation (once per value) and
    spec.rollout.paused. No traffic, so only the user moves the rollout on."""
    name = "actions"
    v1 = {"uri": f"file://{loop_models.poison}", "name": "lookup", "version": "1"}
    v2 = {"uri": f"file://{shutil.copy(loop_models.poison, tmp_path / 'v2.onnx')}", "version": "2"}
    start(loop_kube, name, v1)

    def act(action: str) -> str:
        value = f"{action}/{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
        loop_kube.run("annotate", "mdep", name, "--overwrite", f"onnxops.io/rollout-action={value}")
        return value

    def phase(wanted: str) -> dict[str, Any]:
        return dict(
            wait_for(
                lambda: (r := rollout_of(loop_kube, name)).get("phase") == wanted and r,
                f"phase {wanted}",
                90,
            )
        )

    try:
        patch_model(loop_kube, name, {**v2, "name": "lookup"})
        phase("Inconclusive")
        aborted = act("abort")
        r = phase("Aborted")
        assert r["handledAction"] == aborted and r["message"].startswith("UserAborted")
        wait_for(lambda: loop_kube.get("deployment", f"{name}-canary") is None, "no canary", 60)
        assert condition(loop_kube.status(name), "RolloutAborted")["reason"] == "UserAborted"
        time.sleep(1.1)  # a new value (the time is in seconds)
        act("retry")
        r = phase("Inconclusive")
        assert (r["step"], r["failures"]) == (0, 0)
        wait_for(lambda: loop_kube.get("deployment", f"{name}-canary"), "the canary again", 60)
        loop_kube.run(
            "patch", "mdep", name, "--type=merge", "-p", '{"spec":{"rollout":{"paused":true}}}'
        )
        phase("Paused")
        time.sleep(1.1)
        promoted = act("promote")
        r = phase("Promoted")
        assert r["handledAction"] == promoted and r["stableVersion"] == "2"
        wait_for(lambda: loop_kube.get("deployment", f"{name}-canary") is None, "no canary", 60)
        assert env_of(loop_kube.get("deployment", name))["ONNXOPS_MODEL_VERSION"] == "2"
        assert not condition(loop_kube.status(name), "RolloutAborted")
        seen = reasons(loop_kube, name)
        for reason in ("RolloutAborted", "RolloutRetried", "RolloutPaused", "RolloutPromoted"):
            assert seen.count(reason) == 1, (reason, seen)
    finally:
        loop_kube.run("delete", "mdep", name, "--wait=false", check=False)


def test_a_version_that_fails_the_mirror_is_aborted_in_the_shadow_step_having_served_nobody(
    watcher: Operator, loop_kube: Kube, loop_runner: PodRunner, loop_models: Models, tmp_path: Path
) -> None:
    name = "mirrorbad"
    v1 = {"uri": f"file://{loop_models.poison}", "name": "lookup", "version": "1"}
    broken = broken_copy(loop_models.poison, tmp_path / "lookup-2.onnx")
    v2 = {"uri": f"file://{broken}", "name": "lookup", "version": "2"}
    start(loop_kube, name, v1, steps=[{"shadow": 100, "pauseSeconds": 30}, STEPS[0]])
    api = loop_kube.cluster.api()
    try:
        with ServiceTraffic(api, loop_kube.namespace, name, "lookup", lambda: THREE) as traffic:
            patch_model(loop_kube, name, v2)
            r = wait_for(
                lambda: (r := rollout_of(loop_kube, name)).get("phase") == "Aborted" and r,
                "the rollout aborted",
                150,
            )
            wait_for(lambda: loop_kube.get("deployment", f"{name}-canary") is None, "no canary", 60)
            time.sleep(2)
        assert r["step"] == 0 and r["shadowPercent"] == 0  # aborted in the shadow step
        failed = {m["signal"]: m for m in r["measurements"] if m["verdict"] == "Failed"}
        assert failed, r["measurements"]
        # The users never saw v2: every answer came from the stable pods, all of them good.
        assert traffic.total() > 100 and traffic.failed() == 0, traffic.codes
        assert not [p for p in traffic.by_pod if p.startswith(f"{name}-canary-")]
        aborted = condition(loop_kube.status(name), "RolloutAborted")
        assert aborted["status"] == "True" and aborted["reason"] in failed
        assert env_of(loop_kube.get("deployment", name))["ONNXOPS_MODEL_VERSION"] == "1"
        cm = loop_kube.get("configmap", f"{name}-mirror")
        assert json.loads((cm or {})["data"]["mirror.json"])["percent"] == 0  # mirroring off
    finally:
        loop_kube.run("delete", "mdep", name, "--wait=false", check=False)


def test_a_version_with_wrong_labels_is_aborted_on_accuracy_from_feedback(
    watcher: Operator, loop_kube: Kube, loop_runner: PodRunner, loop_models: Models, tmp_path: Path
) -> None:
    """v2 answers every request 200, as fast as v1, with every label wrong (rotated by one):
    only the ground-truth labels the traffic sends back as feedback, to the pod that
    answered, show it. The truth here is what v1 predicts, so stable reads 1 and v2 0."""
    name = "wrong"
    v1 = {"uri": f"file://{loop_models.iris}", "name": "iris", "version": "1"}
    bad = permuted_labels(loop_models.iris, tmp_path / "iris-2")
    v2 = {"uri": f"file://{bad}", "name": "iris", "version": "2"}
    start(loop_kube, name, v1, analysis={**ANALYSIS, "maxAccuracyDrop": 0.1})
    x = loop_models.iris_x.tolist()
    truth_of = {
        tuple(r): [int(v)] for r, v in zip(x, loop_models.iris_labels.tolist(), strict=True)
    }
    random.Random(0).shuffle(x)  # iris is sorted by class; each pod sees the classes mixed
    turn = itertools.count()

    def payload() -> dict[str, Any]:
        return rows(x[next(turn) % len(x)], name="X")

    def truth(body: dict[str, Any]) -> list[Any]:
        return truth_of[tuple(body["inputs"][0]["data"])]

    api = loop_kube.cluster.api()
    weights: set[int] = set()
    try:
        with ServiceTraffic(api, loop_kube.namespace, name, "iris", payload, truth) as traffic:
            patch_model(loop_kube, name, v2)

            def aborted() -> dict[str, Any] | None:
                r = rollout_of(loop_kube, name)
                if r.get("phase") in ("Progressing", "Inconclusive"):
                    weights.add(r.get("canaryWeight", 0))
                return r if r.get("phase") == "Aborted" else None

            r = wait_for(aborted, "the rollout aborted", 180)
            canary_gone(loop_kube, api, name)
            time.sleep(1)
            wrong_at_abort, seen = traffic.wrong(), traffic.total()
            wait_for(lambda: traffic.total() > seen + 50, "50 more requests", 30)
            time.sleep(2)
        after = traffic.wrong() - wrong_at_abort
        assert r["step"] == 0 and r["failures"] == 1  # at the first weight step
        by_signal = {m["signal"]: m for m in r["measurements"]}
        m = by_signal["Accuracy"]
        assert m["verdict"] == "Failed", r["measurements"]
        assert (m["stable"], m["candidate"], m["threshold"]) == (1.0, 0.0, 0.1)
        # Nothing else gave it away: every answer was a 200, at v1's speed.
        assert by_signal["ErrorRate"]["verdict"] == "Successful", r["measurements"]
        assert traffic.failed() == 0, (traffic.codes, traffic.errors[:10])
        assert set(traffic.feedback_codes) == {200}, traffic.feedback_codes
        aborted_c = condition(loop_kube.status(name), "RolloutAborted")
        assert aborted_c["status"] == "True" and aborted_c["reason"] == "Accuracy"
        assert "candidate 0 vs stable 1, threshold 0.1" in aborted_c["message"]
        # Wrong answers came from the canary only, one for each it gave, none after it left.
        canary = {p for p in traffic.by_pod if p.startswith(f"{name}-canary-")}
        served = {p: sum(c.values()) for p, c in traffic.by_pod.items()}
        by_canary = sum(served[p] for p in canary)
        assert canary and by_canary >= 10  # minRequests: the measurement was conclusive
        assert {p: traffic.wrong_by_pod[p] for p in canary} == {p: served[p] for p in canary}
        assert traffic.wrong() == by_canary and after == 0
        # Its share while it served (its first to last answer) is the step's weight at most:
        # 20% of 3 replicas is 1 canary beside 2 stable pods, 33%.
        assert weights == {33}, weights
        times = [t for t, p, _ in traffic.answers if p in canary]
        window = [p for t, p, _ in traffic.answers if times[0] <= t <= times[-1]]
        share = by_canary / len(window)
        print(
            f"canary answered {by_canary} (all wrong) of {traffic.total()} requests;"
            f" {by_canary} of {len(window)} ({share:.1%}) while it served"
        )
        # Round robin gives it every third request; a window that opens and closes on its
        # answers, and the endpoints changing as stable goes 3 -> 2, allow a few more.
        assert by_canary <= len(window) / 3 + 3, (by_canary, len(window))
        # The stable Deployment is as it was: v1, its three replicas back; spec untouched.
        stable = loop_kube.get("deployment", name)
        assert env_of(stable)["ONNXOPS_MODEL_VERSION"] == "1"
        assert stable is not None and stable["spec"]["replicas"] == 3
        md = loop_kube.get("mdep", name)
        assert md is not None and md["spec"]["model"]["version"] == "2"
        # Degraded once the third stable pod is back (Progressing until then).
        wait_for(lambda: loop_kube.status(name).get("phase") == "Degraded", "Degraded", 60)
        assert reasons(loop_kube, name).count("RolloutAborted") == 1
    finally:
        loop_kube.run("delete", "mdep", name, "--wait=false", check=False)
