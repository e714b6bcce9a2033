"""What the operator says, read from a ModelDeployment's status and its pods: faults,
conditions, remediations taken, and waits for them."""

from __future__ import annotations

from typing import Any

from support.operator_kit import Kube, wait_for


def fault(status: dict[str, Any], signal: str) -> dict[str, Any] | None:
    return next((f for f in status.get("faults") or [] if f["signal"] == signal), None)


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def taken(status: dict[str, Any], action: str | None = None) -> list[dict[str, Any]]:
    """The actions taken (or, in dryRun, recorded as if taken): not refusals, not warnings."""
    return [
        r
        for r in status.get("remediations") or []
        if r["result"] != "Refused" and r["action"] != "warn" and action in (None, r["action"])
    ]


def succeeded(kube: Kube, name: str, action: str, timeout_s: float) -> list[dict[str, Any]]:
    """The records of `action` once one Succeeded; on a timeout the failure shows status."""
    try:
        found: list[dict[str, Any]] = wait_for(
            lambda: [
                r
                for r in kube.status(name).get("remediations") or []
                if r["action"] == action and r["result"] == "Succeeded"
            ],
            f"the {action} Succeeded",
            timeout_s,
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; status {kube.status(name)}") from None
    return found


def live_pods(kube: Kube, name: str) -> dict[str, dict[str, Any]]:
    """The ModelDeployment's pods that are not being deleted, by name."""
    return {
        p["metadata"]["name"]: p
        for p in kube.items("pods", f"onnxops.io/model-deployment={name}")
        if not p["metadata"].get("deletionTimestamp")
    }


def restarts(pod: dict[str, Any]) -> int:
    statuses = pod.get("status", {}).get("containerStatuses") or [{}]
    return int(statuses[0].get("restartCount") or 0)


def status_when(
    kube: Kube, name: str, what: str, test: Any, timeout_s: float = 120
) -> dict[str, Any]:
    st: dict[str, Any] = wait_for(
        lambda: (s := kube.status(name)) and test(s) and s, what, timeout_s=timeout_s
    )
    return st
