"""Remediation's acting half against the real apiserver, the pod runner as the kubelet: a
restart is an eviction that honours the PodDisruptionBudget and spares the healthy replicas; a
resize is the override the Deployment template takes, or in place through `pods/resize`,
confirmed by the kubelet's status, and rolled out instead when the node defers it too long; a
rollback serves the earlier model with the spec untouched; dryRun only records; an operator
killed mid-action finishes it exactly once.

`heal` and `reconcile` run in this process (no kopf loop), so nothing restores children
behind the test's back; the faults are handed in as the monitor would write them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from onnxops import k8s, podapi, reconcile
from onnxops.api import Fault, Resize
from onnxops.config import OperatorConfig
from onnxops.monitor.pods import grouped
from onnxops.pools import default_pools
from onnxops.remediation import act
from onnxops.remediation.guardrails import FleetLimit
from support.deployments import model_deployment
from support.operator_kit import Kube, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("in_process_client")]

POOLS = default_pools()
CFG = OperatorConfig()


def fault(signal: str, pods: list[str] | None = None) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "signal": signal,
        "value": 1,
        "threshold": 0.5,
        "since": now,
        "message": signal,
        "pods": pods or [],
    }


def deploy(kube: Kube, name: str, **spec: Any) -> dict[str, Any]:
    """Apply a ModelDeployment, reconcile it once here, wait for its pods to run."""
    body = model_deployment(name, **{"target": {"pool": "cloud"}, **spec})
    assert kube.apply(body).returncode == 0
    reconcile.reconcile(mdep(kube, name), POOLS, CFG)
    replicas = spec.get("replicas", 1)
    wait_for(lambda: len(running(kube, name)) == replicas, f"{replicas} running pods", 60)
    return mdep(kube, name)


def mdep(kube: Kube, name: str) -> dict[str, Any]:
    found = kube.get("mdep", name)
    assert found is not None
    return found


def running(kube: Kube, name: str) -> list[dict[str, Any]]:
    pods = kube.items("pods", f"onnxops.io/model-deployment={name}")
    return [
        p
        for p in pods
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]


def reapply(body: Any) -> None:
    reconcile.reconcile(body, POOLS, CFG)


def heal(
    kube: Kube, name: str, faults: list[dict[str, Any]], now: datetime | None = None, **kw: Any
) -> act.Healed:
    """One heal cycle as the monitor's hook runs it: the faults typed as detection makes them,
    the pods listed and parsed as the monitor's cycle does (once, for every model)."""
    kw.setdefault("fleet", FleetLimit())
    listed = grouped(podapi.serving_pods([kube.namespace]))
    return act.heal(
        mdep(kube, name),
        [Fault.model_validate(f) for f in faults],
        listed.get((kube.namespace, name), []),
        pools=POOLS,
        reapply=reapply,
        now=now or datetime.now(UTC),
        **kw,
    )


def records(kube: Kube, name: str) -> list[dict[str, Any]]:
    return list(kube.status(name).get("remediations", []))


def template(kube: Kube, name: str) -> dict[str, Any]:
    dep = kube.get("deployment", name)
    assert dep is not None
    return dict(dep["spec"]["template"])


def test_restart_evicts_only_the_bad_replica(kube: Kube) -> None:
    deploy(kube, "three", replicas=3)
    pods = sorted(running(kube, "three"), key=lambda p: p["metadata"]["name"])
    bad, good = pods[1], [pods[0], pods[2]]
    wait_for(
        lambda: (kube.get("pdb", "three") or {}).get("status", {}).get("disruptionsAllowed") == 1,
        "the PDB allows one",
    )
    healed = heal(kube, "three", [fault("ErrorRate", [bad["metadata"]["name"]])])
    (record,) = records(kube, "three")
    assert (record["action"], record["result"]) == ("restart", "Succeeded"), record
    assert record["pods"] == [f"{bad['metadata']['name']}/{bad['metadata']['uid']}"]
    assert ("Normal", "RestartSucceeded") in [e[:2] for e in healed.events]
    uids = lambda: {p["metadata"]["uid"] for p in running(kube, "three")}  # noqa: E731
    wait_for(lambda: bad["metadata"]["uid"] not in uids() and len(uids()) == 3, "a replacement")
    assert {p["metadata"]["uid"] for p in good} <= uids()  # the healthy ones untouched


def test_a_disruption_budget_that_forbids_it_stops_the_restart(kube: Kube) -> None:
    deploy(kube, "guarded", replicas=2)
    # No operator runs here to restore its PDB: make it forbid any disruption.
    kube.run("patch", "pdb", "guarded", "--type=merge", "-p", '{"spec":{"maxUnavailable":0}}')
    wait_for(
        lambda: (kube.get("pdb", "guarded") or {}).get("status", {}).get("observedGeneration") == 2,
        "the PDB re-judged",
    )
    victim = running(kube, "guarded")[0]["metadata"]
    heal(kube, "guarded", [fault("ErrorRate", [victim["name"]])])
    (record,) = records(kube, "guarded")
    assert (record["action"], record["result"]) == ("restart", "Failed")
    assert "PodDisruptionBudget forbids evicting" in record["message"]
    assert victim["uid"] in {p["metadata"]["uid"] for p in running(kube, "guarded")}


def test_dry_run_records_and_changes_nothing(kube: Kube) -> None:
    deploy(kube, "dry", replicas=2, remediation={"mode": "dryRun"})
    before = {p["metadata"]["uid"] for p in running(kube, "dry")}
    spec_before = template(kube, "dry")
    victim = sorted(before)[0]
    name = next(
        p["metadata"]["name"] for p in running(kube, "dry") if p["metadata"]["uid"] == victim
    )
    healed = heal(kube, "dry", [fault("ErrorRate", [name])])
    assert [e[1] for e in healed.events] == ["RestartDryRun"]
    healed = heal(kube, "dry", [fault("ErrorRate", [name])])  # the next cycle
    assert [e[1] for e in healed.events] == ["RestartRefused"]  # cooldown, as if taken
    assert heal(kube, "dry", [fault("ErrorRate", [name])]).events == []  # said already
    healed = heal(kube, "dry", [fault("OOMKilled")])
    assert [e[1] for e in healed.events] == ["ResizeDryRun"]
    assert [(r["action"], r["result"], r.get("refusal")) for r in records(kube, "dry")] == [
        ("restart", "DryRun", None),
        ("restart", "Refused", "Cooldown"),
        ("resize", "DryRun", None),
    ]
    assert kube.status("dry").get("override", {}).get("resources") is None
    assert {p["metadata"]["uid"] for p in running(kube, "dry")} == before
    assert template(kube, "dry") == spec_before


def container(kube: Kube, name: str) -> dict[str, Any]:
    return dict(template(kube, name)["spec"]["containers"][0])


def test_resize_by_rollout_reaches_the_template(kube: Kube) -> None:
    deploy(kube, "grow", remediation={"resize": {"inPlace": "never", "maxMemory": "1Gi"}})
    assert container(kube, "grow")["resources"]["limits"]["memory"] == "1Gi"  # cloud default
    heal(kube, "grow", [fault("OOMKilled")])
    (record,) = records(kube, "grow")
    assert (record["action"], record["result"]) == ("resize", "Refused")
    assert record["refusal"] == "Ceiling"  # 1Gi is the spec's own ceiling: nowhere to go
    kube.run(
        "patch",
        "mdep",
        "grow",
        "--type=merge",
        "-p",
        '{"spec":{"remediation":{"resize":{"maxMemory":"2Gi"}}}}',
    )
    reconcile.reconcile(mdep(kube, "grow"), POOLS, CFG)
    heal(kube, "grow", [fault("OOMKilled")])
    last = records(kube, "grow")[-1]
    assert (last["action"], last["result"]) == ("resize", "Succeeded"), last
    assert container(kube, "grow")["resources"]["limits"]["memory"] == "1536Mi"
    assert kube.status("grow")["override"]["resources"]["limits"]["memory"] == "1536Mi"
    spec_resources = mdep(kube, "grow")["spec"]["resources"]
    assert spec_resources == {"limits": {}, "requests": {}}  # the spec is the user's


HINTS = {
    "karpenter.sh/do-not-disrupt": "true",
    "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
}


def test_in_place_resize_is_confirmed_by_the_kubelets_status(kube: Kube) -> None:
    deploy(kube, "kubelet", remediation={"resize": {"inPlace": "always"}})
    (pod,) = running(kube, "kubelet")
    name = pod["metadata"]["name"]
    heal(kube, "kubelet", [fault("OOMKilled")])
    (record,) = records(kube, "kubelet")
    assert (record["action"], record["result"]) == ("resize", "InProgress"), record
    resized = kube.get("pod", name)
    assert resized is not None and resized["metadata"]["uid"] == pod["metadata"]["uid"]
    assert resized["spec"]["containers"][0]["resources"]["limits"]["memory"] == "1536Mi"
    assert container(kube, "kubelet")["resources"]["limits"]["memory"] == "1Gi"  # no rollout
    # Not to be disrupted while the resize is in flight (and evictable before: no hints).
    assert not set(HINTS) & set(pod["metadata"].get("annotations") or {})
    assert {k: resized["metadata"]["annotations"].get(k) for k in HINTS} == HINTS

    def confirmed() -> bool:
        heal(kube, "kubelet", [])  # a monitor cycle: the pod runner reports the resize done
        return bool(records(kube, "kubelet")[-1]["result"] == "Succeeded")

    wait_for(confirmed, "the kubelet to apply the resize", 60)
    assert {p["metadata"]["uid"] for p in running(kube, "kubelet")} == {pod["metadata"]["uid"]}
    done = kube.get("pod", name)
    assert done is not None and not set(HINTS) & set(done["metadata"].get("annotations") or {})
    conditions = {c["type"]: c for c in kube.status("kubelet")["conditions"]}
    assert conditions["Remediating"]["status"] == "False"


def test_heal_keeps_a_rollout_steps_hints_and_takes_them_off_after(kube: Kube) -> None:
    # The rollout cycle puts them on; heal's cycle must neither fight them mid-step nor leave
    # them behind once the rollout ended (one rule: `disruption.protected`).
    deploy(kube, "steps", replicas=2, rollout={"steps": [{"weight": 50}]})
    v1 = kube.status("steps")["rollout"]["stableModel"]  # as the reconcile wrote it: settled
    v2 = {**v1, "version": "2"}
    r = {"phase": "Progressing", "step": 0, "steps": 1, "stableModel": v1, "candidate": v2}
    k8s.patch_status(kube.namespace, "steps", {"rollout": r})

    def hinted() -> list[bool]:
        return sorted(
            (p["metadata"].get("annotations") or {}).get("karpenter.sh/do-not-disrupt") == "true"
            for p in running(kube, "steps")
        )

    heal(kube, "steps", [])
    assert hinted() == [True, True]
    heal(kube, "steps", [])  # a later cycle keeps them
    assert hinted() == [True, True]
    k8s.patch_status(kube.namespace, "steps", {"rollout": {**r, "phase": "Aborted"}})
    heal(kube, "steps", [])
    assert hinted() == [False, False]


def test_a_pod_made_after_an_in_place_resize_is_resized_too(kube: Kube) -> None:
    deploy(kube, "keeper", remediation={"resize": {"inPlace": "always"}})
    heal(kube, "keeper", [fault("OOMKilled")])
    wait_for(
        lambda: heal(kube, "keeper", []) and records(kube, "keeper")[-1]["result"] == "Succeeded",
        "the in-place resize confirmed",
        60,
    )
    (pod,) = running(kube, "keeper")
    # A lost node or an eviction: the ReplicaSet makes another pod, from the template.
    kube.run("delete", "pod", pod["metadata"]["name"], "--wait=false")
    (new,) = wait_for(
        lambda: [
            p for p in running(kube, "keeper") if p["metadata"]["uid"] != pod["metadata"]["uid"]
        ],
        "the replacement pod",
        60,
    )
    assert new["spec"]["containers"][0]["resources"]["limits"]["memory"] == "1Gi"
    healed = heal(kube, "keeper", [])
    assert [e[1] for e in healed.events] == ["ResizeApplied"], healed.events
    now = kube.get("pod", new["metadata"]["name"])
    assert now is not None and now["metadata"]["uid"] == new["metadata"]["uid"]
    assert now["spec"]["containers"][0]["resources"]["limits"]["memory"] == "1536Mi"
    assert container(kube, "keeper")["resources"]["limits"]["memory"] == "1Gi"  # no rollout
    assert [r["action"] for r in records(kube, "keeper")] == ["resize"]  # the same action, kept
    assert heal(kube, "keeper", []).events == []  # done once


def test_a_rollout_after_an_in_place_resize_keeps_the_resources(kube: Kube) -> None:
    spec = {"remediation": {"resize": {"inPlace": "always"}, "cooldownSeconds": 0}}
    deploy(kube, "carrier", **spec)
    heal(kube, "carrier", [fault("OOMKilled")])
    wait_for(
        lambda: heal(kube, "carrier", []) and records(kube, "carrier")[-1]["result"] == "Succeeded",
        "the in-place resize confirmed",
        60,
    )
    assert container(kube, "carrier")["resources"]["limits"]["memory"] == "1Gi"
    heal(kube, "carrier", [fault("ErrorRate")])  # every replica: a rollout restart
    assert [r["action"] for r in records(kube, "carrier")] == ["resize", "rolloutRestart"]
    # The rollout replaces every pod from the template: it carries the resized memory.
    assert container(kube, "carrier")["resources"]["limits"]["memory"] == "1536Mi"


def test_a_resize_the_node_cannot_fit_is_deferred_then_rolled_out(kube: Kube) -> None:
    # Edge nodes hold 2Gi. Two 600Mi fillers and our 700Mi pod share edge-0; growing ours to
    # the edge ceiling (1Gi) no longer fits there: the kubelet defers the resize.
    on_edge0 = {"pool": "edge", "nodeSelector": {"kubernetes.io/hostname": "edge-0"}}
    filler = {"requests": {"memory": "600Mi"}, "limits": {"memory": "600Mi"}}
    deploy(kube, "filler", target=on_edge0, replicas=2, resources=filler)
    tight = {"requests": {"memory": "700Mi"}, "limits": {"memory": "700Mi"}}
    deploy(kube, "tight", target=on_edge0, resources=tight)
    (pod,) = running(kube, "tight")
    heal(kube, "tight", [fault("OOMKilled")])
    assert records(kube, "tight")[-1]["result"] == "InProgress"
    conditions = wait_for(
        lambda: (
            {
                c["type"]: c.get("reason")
                for c in (kube.get("pod", pod["metadata"]["name"]) or {})["status"].get(
                    "conditions", []
                )
            }.get("PodResizePending")
            == "Deferred"
        ),
        "the resize Deferred",
        60,
    )
    assert conditions
    heal(kube, "tight", [fault("OOMKilled")])  # deferred, but not for long: wait
    # The fault stands while its answer is in flight: not proposed again, not even refused.
    assert [r["result"] for r in records(kube, "tight")] == ["InProgress"]
    # The default spec.remediation.resize.deferredSeconds (VPA's 5 minutes), just passed.
    later = datetime.now(UTC) + timedelta(seconds=Resize().deferred_seconds + 5)
    heal(kube, "tight", [], now=later)
    (record,) = records(kube, "tight")
    assert (record["action"], record["result"]) == ("resize", "Succeeded"), record
    assert "resize Deferred" in record["message"] and "rolled out instead" in record["message"]
    # Capped at the ceiling in heal's one form (1024Mi), which the apiserver writes as 1Gi.
    assert container(kube, "tight")["resources"]["limits"]["memory"] == "1Gi"


def settled(kube: Kube, name: str) -> bool:
    """Status from the Deployment, as the operator's watch would refresh it."""
    reconcile.refresh(mdep(kube, name), kube.get("deployment", name))
    return kube.status(name).get("phase") == "Ready"


def test_rollback_serves_the_earlier_model_and_leaves_the_spec(kube: Kube) -> None:
    v1 = {"uri": "https://models.example.com/roll/1/model.onnx", "version": "1"}
    # Healthy = no fault for failureThreshold x intervalSeconds: 5 s here.
    deploy(kube, "roll", model=v1, monitoring={"intervalSeconds": 5, "failureThreshold": 1})
    wait_for(lambda: settled(kube, "roll"), "Ready")

    def healthy_model() -> Any:
        heal(kube, "roll", [])  # a monitor cycle that found nothing
        return kube.status("roll")["models"].get("healthy")

    assert wait_for(healthy_model, "v1 proven healthy", 30)["version"] == "1"
    v2 = {"uri": "https://models.example.com/roll/2/model.onnx", "version": "2"}
    kube.run("patch", "mdep", "roll", "--type=merge", "-p", json.dumps({"spec": {"model": v2}}))
    reconcile.reconcile(mdep(kube, "roll"), POOLS, CFG)
    heal(kube, "roll", [fault("ErrorRate")])
    last = records(kube, "roll")[-1]
    assert (last["action"], last["result"]) == ("rollback", "Succeeded"), last
    env = {e["name"]: e["value"] for e in container(kube, "roll")["env"]}
    assert env["ONNXOPS_MODEL_VERSION"] == "1" and env["ONNXOPS_MODEL_URI"].endswith(
        "/1/model.onnx"
    )
    assert mdep(kube, "roll")["spec"]["model"]["version"] == "2"  # GitOps owns the spec
    conditions = {c["type"]: c for c in kube.status("roll")["conditions"]}
    assert "version 1 instead of 2" in conditions["RolledBack"]["message"]


def test_killed_mid_restart_finishes_it_exactly_once(
    kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy(kube, "crash", replicas=2)
    wait_for(
        lambda: (kube.get("pdb", "crash") or {}).get("status", {}).get("disruptionsAllowed") == 1,
        "the PDB allows one",
    )
    victim = running(kube, "crash")[0]["metadata"]

    def killed(*_: Any, **__: Any) -> str:
        # Stands in for SIGKILL at the one moment that matters (after the intent is written,
        # before the eviction): a real kill cannot be timed to land there.
        raise KeyboardInterrupt("operator killed")

    monkeypatch.setattr(podapi, "evict", killed)
    with pytest.raises(KeyboardInterrupt):
        heal(kube, "crash", [fault("ErrorRate", [victim["name"]])])
    (pending,) = records(kube, "crash")
    assert (pending["action"], pending["result"]) == ("restart", "Pending")
    conditions = {c["type"]: c["status"] for c in kube.status("crash")["conditions"]}
    assert conditions["Remediating"] == "True"
    monkeypatch.undo()
    # The restarted operator's first cycle; the fault is still reported.
    heal(kube, "crash", [fault("ErrorRate", [victim["name"]])])
    (done,) = [
        r for r in records(kube, "crash") if r["action"] == "restart" and r["result"] != "Refused"
    ]
    assert done["id"] == pending["id"] and done["result"] == "Succeeded"
    wait_for(
        lambda: victim["uid"] not in {p["metadata"]["uid"] for p in running(kube, "crash")},
        "evicted",
    )
    wait_for(lambda: len(running(kube, "crash")) == 2, "replaced")
    survivors = {p["metadata"]["uid"] for p in running(kube, "crash")}
    heal(kube, "crash", [fault("ErrorRate", [victim["name"]])])  # stale finding, same pod name
    assert {p["metadata"]["uid"] for p in running(kube, "crash")} == survivors
