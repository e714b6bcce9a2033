"""The pod and node calls: the cluster's supply for placement, the serving pods the monitor
lists once per cycle, a model's pods, and heal's eviction and in-place resize. Plain dicts,
through `k8s.request` (its errors and outage handling).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Literal

from onnxops import supply
from onnxops.k8s import ApiError, request

# Node and pod lists feed the pool choice; a short cache keeps a burst of reconciles
# (operator start, 200 resources applied at once) from listing every pod 200 times, and one
# refresh at a time keeps eight worker threads from each parsing the same large list.
_SUPPLY_TTL_S = 2.0
_supply_cache: tuple[float, list[dict[str, Any]], list[dict[str, Any]]] | None = None
_supply_lock = threading.Lock()


def nodes_and_pods() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """All nodes, and all pods bound to a node that are not finished: from the supply
    informers (`supply.py`) while they are in sync, else listed (at most every 2 s)."""
    global _supply_cache
    watched = supply.snapshot()
    if watched is not None:
        return watched
    with _supply_lock:
        cached = _supply_cache
        if cached and time.monotonic() - cached[0] < _SUPPLY_TTL_S:
            return cached[1], cached[2]
        # resourceVersion=0: served from the apiserver's watch cache, not a quorum read of etcd.
        fresh = [("resourceVersion", "0")]
        nodes = request("GET", "/api/v1/nodes", query=fresh).get("items", [])
        selector = "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"
        pods = request("GET", "/api/v1/pods", query=[*fresh, ("fieldSelector", selector)]).get(
            "items", []
        )
        _supply_cache = (time.monotonic(), nodes, pods)
        return nodes, pods


def serving_pods(namespaces: list[str]) -> list[dict[str, Any]]:
    """The operator's serving pods (all namespaces, or the watched ones), for the monitor."""
    selector = [("labelSelector", "app.kubernetes.io/managed-by=onnxops"), ("resourceVersion", "0")]
    paths = [f"/api/v1/namespaces/{ns}/pods" for ns in namespaces] or ["/api/v1/pods"]
    return [pod for path in paths for pod in request("GET", path, query=selector).get("items", [])]


def list_pods(namespace: str, selector: str) -> list[dict[str, Any]]:
    """The pods matching a label selector in one namespace (a model's serving pods)."""
    answer = request(
        "GET", f"/api/v1/namespaces/{namespace}/pods", query=[("labelSelector", selector)]
    )
    return list(answer.get("items", []))


def pod_events(namespace: str, uid: str) -> list[dict[str, Any]]:
    """The Events about one pod (what the scheduler and a cluster autoscaler said of it)."""
    answer = request(
        "GET",
        f"/api/v1/namespaces/{namespace}/events",
        query=[("fieldSelector", f"involvedObject.uid={uid}"), ("resourceVersion", "0")],
    )
    return list(answer.get("items", []))


def evict(
    namespace: str, name: str, uid: str | None = None
) -> Literal["evicted", "gone", "blocked"]:
    """Evict a pod through the Eviction API, which honours PodDisruptionBudgets.

    `uid` makes it evict exactly that pod: a replacement with the same name is left alone.
    "blocked": a budget forbids it now (HTTP 429), "gone": the pod no longer exists."""
    body: dict[str, Any] = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": namespace},
    }
    if uid:
        body["deleteOptions"] = {"preconditions": {"uid": uid}}
    try:
        request("POST", f"/api/v1/namespaces/{namespace}/pods/{name}/eviction", body=body)
    except ApiError as exc:
        if exc.status == 404 or (exc.status == 409 and uid):  # 409: a newer pod of that name
            return "gone"
        if exc.status == 429:
            return "blocked"
        raise
    return "evicted"


def annotate_pod(namespace: str, name: str, annotations: dict[str, str | None]) -> None:
    """Set (or, with None, remove) annotations of one pod (a JSON merge patch)."""
    request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/pods/{name}",
        body={"metadata": {"annotations": annotations}},
        content_type="application/merge-patch+json",
    )


def resize_pod(
    namespace: str, name: str, container: str, resources: dict[str, dict[str, str]]
) -> dict[str, Any]:
    """Change a running pod's container resources in place (the `pods/resize` subresource)."""
    patch = {"spec": {"containers": [{"name": container, "resources": resources}]}}
    return request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/pods/{name}/resize",
        body=patch,
        content_type="application/strategic-merge-patch+json",
    )
