"""Heal's guardrails end to end: the operator (monitor + remediation) against a real
Prometheus and the pod runner as kubelet, faults produced for real (OOM kills under a small
memory limit, a model failing at inference on the rows it is sent):

- dryRun: the resize is an Event and a history entry; the pod keeps its limit and its OOM kills;
- Prometheus stopped while a fault stands: nothing is done until it can be read again;
- a flapping fault: the cooldown spaces the actions and the hourly cap ends them;
- the operator killed while its in-place resize (of a running pod short of memory) is in
  flight: the next one finishes it, once.

The operator's kill is last: it restarts the module's operator.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from devcluster import prometheus as prom
from devcluster.podrunner import PodRunner
from support.deployments import MEMORY_TIGHT, MEMORY_WATCHED, healing_deployment
from support.operator_kit import Kube, Operator, wait_for
from support.readings import condition, fault, live_pods, restarts, taken
from support.serving_harness import Models
from support.traffic import Traffic, rows

pytestmark = [pytest.mark.loop, pytest.mark.slow]

# Under a 32Mi limit the serving runtime (~44 MiB once loaded) is OOM-killed as it starts.
HUNGRY = {"requests": {"memory": "16Mi"}, "limits": {"memory": "32Mi"}}
GOOD, BAD = rows([1.0, 0.0]), rows([99.0, 0.0])  # the poison model fails on index 99
IN_FLIGHT = ("Pending", "InProgress")


def _hungry(name: str, models: Models, **remediation: Any) -> dict[str, Any]:
    body = healing_deployment(
        name,
        f"file://{models.iris}",
        resources=HUNGRY,
        remediation={"resize": {"maxMemory": "256Mi"}, **remediation},
    )
    body["spec"]["model"]["name"] = "iris"
    return body


def _time(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["time"].replace("Z", "+00:00"))


def _unreadable_evaluations(op: Operator) -> float:
    text = httpx.get(op.metrics_url, timeout=5).text  # type: ignore[attr-defined]
    for line in text.splitlines():
        if line.startswith('onnxops_operator_evaluations_total{result="unreadable"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _healthy(kube: Kube, name: str) -> bool:
    st = kube.status(name)
    return all(condition(st, c).get("status") == "True" for c in ("Healthy", "MonitoringAvailable"))


def test_dry_run_records_the_resize_and_changes_nothing(
    watcher: Operator, loop_kube: Kube, loop_models: Models
) -> None:
    assert loop_kube.apply(_hungry("dry", loop_models, mode="dryRun")).returncode == 0
    try:
        (pod,) = wait_for(lambda: list(live_pods(loop_kube, "dry").values()), "the pod", 60)
        (record,) = wait_for(
            lambda: [r for r in taken(loop_kube.status("dry"), "resize")],
            "the resize recorded as a dry run",
            180,
        )
        assert record["result"] == "DryRun" and record["reason"] == "OOMKilled"
        (now,) = list(live_pods(loop_kube, "dry").values())
        seen = restarts(now)
        # Time passes and the kernel kills it again: nothing healed it.
        wait_for(
            lambda: [p for p in list(live_pods(loop_kube, "dry").values()) if restarts(p) > seen],
            "another OOM kill after the dry run",
            180,
        )
        (now,) = list(live_pods(loop_kube, "dry").values())
        assert now["metadata"]["uid"] == pod["metadata"]["uid"]
        assert now["spec"]["containers"][0]["resources"]["limits"]["memory"] == "32Mi"
        dep = loop_kube.get("deployment", "dry")
        assert dep is not None
        limits = dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits == {"memory": "32Mi"}
        st = loop_kube.status("dry")
        assert not (st.get("override") or {}).get("resources")
        assert [r["result"] for r in taken(st)] == ["DryRun"]  # one, and only on record
        assert condition(st, "Remediating").get("status") != "True"
        reasons = {e["reason"] for e in loop_kube.events("dry")}
        assert "ResizeDryRun" in reasons
        assert not {"ResizePending", "ResizeInProgress", "ResizeSucceeded"} & reasons
    finally:
        loop_kube.run("delete", "mdep", "dry", "--wait=false", check=False)


def test_with_prometheus_stopped_a_standing_fault_is_not_acted_on_until_it_returns(
    watcher: Operator,
    loop_kube: Kube,
    loop_runner: PodRunner,
    loop_models: Models,
    loop_prometheus: prom.Prometheus,
) -> None:
    name = "blindfold"
    body = healing_deployment(
        name, f"file://{loop_models.poison}", remediation={"cooldownSeconds": 20}
    )
    assert loop_kube.apply(body).returncode == 0
    bad = [False]
    try:
        with Traffic(loop_runner, loop_kube.namespace, name, lambda: BAD if bad[0] else GOOD) as t:
            wait_for(lambda: _healthy(loop_kube, name), "healthy on good traffic", 180)
            bad[0] = True  # every request fails from now on, on every replica
            (first,) = wait_for(
                lambda: taken(loop_kube.status(name)), "the first action on the errors", 180
            )
            assert first["action"] == "rolloutRestart" and first["reason"] == "ErrorRate"
            pid = loop_prometheus.record.pid  # started by this module's fixture
            os.kill(pid, signal.SIGSTOP)  # stopped: queries hang and time out
            try:
                wait_for(
                    lambda: (
                        condition(loop_kube.status(name), "MonitoringAvailable").get("status")
                        == "False"
                    ),
                    "MonitoringAvailable=False",
                    120,
                )
                blind, errors = _unreadable_evaluations(watcher), t.codes.get(500, 0)
                cooldown_over = _time(first).timestamp() + 20
                # The moment a second action would be allowed (the cooldown over), and three
                # more evaluations that could not read Prometheus after it.
                wait_for(lambda: time.time() > cooldown_over, "the cooldown to pass", 120)
                blind = max(blind, _unreadable_evaluations(watcher))
                wait_for(
                    lambda: _unreadable_evaluations(watcher) >= blind + 3,
                    "three blind evaluations after the cooldown",
                    120,
                )
                st = loop_kube.status(name)
                assert len(taken(st)) == 1, st["remediations"]
                assert t.codes.get(500, 0) > errors  # the model kept failing, unseen
            finally:
                os.kill(pid, signal.SIGCONT)
            back = datetime.now(UTC).replace(microsecond=0)
            # Seen again, the same fault is acted on: the stop held the action, not the fault.
            second = wait_for(
                lambda: taken(loop_kube.status(name))[1:], "an action once Prometheus is back", 240
            )
            assert _time(second[0]) >= back
            bad[0] = False
    finally:
        loop_kube.run("delete", "mdep", name, "--wait=false", check=False)


def test_a_flapping_fault_is_held_by_the_cooldown_and_the_hourly_cap(
    watcher: Operator, loop_kube: Kube, loop_runner: PodRunner, loop_models: Models
) -> None:
    name = "flappy"
    remediation = {"cooldownSeconds": 20, "maxActionsPerHour": 2}
    body = healing_deployment(name, f"file://{loop_models.poison}", remediation=remediation)
    assert loop_kube.apply(body).returncode == 0
    flap_from: list[float] = []

    def payload() -> dict[str, Any]:
        # 20 s of failing rows, 10 s of good ones, over and over.
        if not flap_from:
            return GOOD
        return BAD if (time.monotonic() - flap_from[0]) % 30 < 20 else GOOD

    try:
        with Traffic(loop_runner, loop_kube.namespace, name, payload) as traffic:
            wait_for(lambda: _healthy(loop_kube, name), "healthy on good traffic", 180)
            flap_from.append(time.monotonic())
            (capped,) = wait_for(
                lambda: [
                    r
                    for r in loop_kube.status(name).get("remediations") or []
                    if r.get("refusal") == "HourlyCap"
                ],
                "an action refused by the hourly cap",
                420,
            )
            assert traffic.codes.get(500, 0) > 0
        st = loop_kube.status(name)
        actions = taken(st)
        assert len(actions) == 2, st["remediations"]  # maxActionsPerHour
        first, second = (_time(r) for r in actions)
        assert (second - first).total_seconds() >= 20  # the cooldown between them
        assert _time(capped) >= second
        refused = [
            e
            for e in loop_kube.events(name)
            if e["reason"].endswith("Refused") and "(HourlyCap)" in e["message"]
        ]
        assert refused, [e["reason"] for e in loop_kube.events(name)]
    finally:
        loop_kube.run("delete", "mdep", name, "--wait=false", check=False)


def _in_flight_resize(api: Any, path: str) -> dict[str, Any] | None:
    """The resize record while it is in flight; fails if it already ended (the kill came late)."""
    found = api.get_or_none(path)
    for record in (found or {}).get("status", {}).get("remediations") or []:
        if record["action"] != "resize" or record["result"] == "Refused":
            continue
        if record["result"] not in IN_FLIGHT:
            raise AssertionError(f"the resize ended before the kill: {record}")
        return dict(record)
    return None


def test_an_operator_killed_mid_resize_finishes_it_once_when_it_returns(
    watcher: Operator, loop_kube: Kube, loop_models: Models, devcluster: Any
) -> None:
    name = "interrupted"
    body = healing_deployment(
        name,
        f"file://{loop_models.iris}",
        thresholds=MEMORY_WATCHED,
        resources=MEMORY_TIGHT,
        remediation={"resize": {"maxMemory": "256Mi"}},
    )
    body["spec"]["model"]["name"] = "iris"
    assert loop_kube.apply(body).returncode == 0
    api = devcluster.api()
    path = f"/apis/onnxops.io/v1alpha1/namespaces/{loop_kube.namespace}/modeldeployments/{name}"
    try:
        (pod,) = wait_for(lambda: list(live_pods(loop_kube, name).values()), "the pod", 60)
        deadline = time.monotonic() + 180
        record = None
        while record is None and time.monotonic() < deadline:
            record = _in_flight_resize(api, path)  # polled straight from the apiserver: the
            time.sleep(0.05)  # in-place resize stays InProgress until the next cycle confirms it
        assert record is not None, "no resize in flight within 180 s"
        watcher.kill()  # SIGKILL: no chance to finish or clean up
        try:
            # Killed with that action in flight (Pending or InProgress by now: it may have moved on
            # between the read and the kill, but not finished: that takes the next cycle).
            (left,) = taken(loop_kube.status(name), "resize")
            assert left["id"] == record["id"] and left["result"] in IN_FLIGHT, left
        finally:
            watcher.start()
        (done,) = wait_for(
            lambda: [
                r for r in taken(loop_kube.status(name), "resize") if r["result"] == "Succeeded"
            ],
            "the resize finished by the restarted operator",
            240,
        )
        st = wait_for(
            lambda: (s := loop_kube.status(name)).get("readyReplicas") == 1 and s, "Ready", 240
        )
        assert len(taken(st, "resize")) == 1, st["remediations"]  # not repeated, not lost
        assert done["id"] == record["id"]  # the same action, finished
        (now,) = list(live_pods(loop_kube, name).values())
        assert now["metadata"]["uid"] == pod["metadata"]["uid"]
        # One resize (max(96Mi x 1.5, 96Mi + 100Mi)), not one on top of another.
        assert now["spec"]["containers"][0]["resources"]["limits"]["memory"] == "196Mi"
        # The working set is under the threshold of the new limit; nothing acted again.
        st = wait_for(
            lambda: not fault(s := loop_kube.status(name), "MemoryUtilization") and s,
            "MemoryUtilization to clear",
            120,
        )
        assert len(taken(st, "resize")) == 1, st["remediations"]
    finally:
        loop_kube.run("delete", "mdep", name, "--wait=false", check=False)
