"""The Kubernetes client and the calls on objects (get, apply, delete, status, Events,
peering), on plain dicts; the pod and node calls are `podapi.py`, on top of `request`.

Children are applied with server-side apply (field manager `onnxops`, forced: the operator
is the authority on the fields it sets, which is also what undoes drift). 404 on delete and
409 on create count as "already done", which keeps reconciliation idempotent.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import urllib3
from kubernetes import client, config

from onnxops import api
from onnxops.config import config as settings
from onnxops.outage import ApiError, ApiUnavailable, outage, reason_of

__all__ = ["ApiError", "ApiUnavailable"]  # raised by every call here

FIELD_MANAGER = "onnxops"

# apiVersion, kind -> plural; every namespaced kind the operator touches.
PLURALS = {
    ("apps/v1", "Deployment"): "deployments",
    ("v1", "Service"): "services",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("v1", "ConfigMap"): "configmaps",
    ("discovery.k8s.io/v1", "EndpointSlice"): "endpointslices",
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaims",
    (f"{api.GROUP}/{api.VERSION}", api.KIND): api.PLURAL,
}


_client: client.ApiClient | None = None
_lock = threading.Lock()


def api_client() -> client.ApiClient:
    """One shared client: in-cluster credentials when present, else KUBECONFIG."""
    global _client
    with _lock:
        if _client is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            conf = client.Configuration.get_default_copy()
            # Thread-safe, but urllib3 keeps only cpu_count * 5 connections (10 on two cores)
            # and opens-and-discards the rest, a warning each: room for the monitor's write
            # pool, kopf's handler threads (8) and the monitor loop's own calls.
            conf.connection_pool_maxsize = max(
                conf.connection_pool_maxsize or 0, settings().monitor_write_concurrency + 16
            )
            _client = client.ApiClient(conf)
        return _client


def use_kubeconfig(config_file: str | None = None, context: str | None = None) -> str:
    """Talk to a kubeconfig's cluster, as kubectl does (the `kubectl-onnxops` plugin), never
    in-cluster credentials; returns the context's namespace ("default" when it has none).
    Raises kubernetes' ConfigException for a missing file or an unknown context."""
    global _client
    contexts, current = config.list_kube_config_contexts(config_file)
    chosen = next((c for c in contexts if c["name"] == context), None) if context else current
    if chosen is None:
        raise config.ConfigException(f"no context {context!r} in the kubeconfig")
    with _lock:
        _client = config.new_client_from_config(config_file=config_file, context=chosen["name"])
    return str(chosen.get("context", {}).get("namespace") or "default")


def request(
    method: str,
    path: str,
    *,
    query: list[tuple[str, Any]] | None = None,
    body: Any = None,
    content_type: str = "application/json",
) -> dict[str, Any]:
    """One API call; the answer as a dict, errors as ApiError."""
    c = api_client()
    _, url, headers, data, _ = c.param_serialize(
        method=method,
        resource_path=path,
        query_params=query or [],
        header_params={"Accept": "application/json", "Content-Type": content_type},
        body=body,
        auth_settings=["BearerToken"],
    )
    try:
        # Bounded, so a hung apiserver surfaces as an error (and a retry), not a stuck worker.
        resp = c.call_api(method, url, header_params=headers, body=data, _request_timeout=30)
        raw = resp.read()
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        unavailable = ApiUnavailable(0, f"{type(exc).__name__}: {reason_of(exc)}")
        outage.failed(unavailable)
        raise unavailable from exc
    text = raw.decode() if isinstance(raw, bytes) else str(raw or "")
    if resp.status >= 400:
        try:
            message = json.loads(text).get("message", text)
        except (ValueError, AttributeError):
            message = text
        if resp.status == 429 or resp.status >= 500:
            unavailable = ApiUnavailable(resp.status, message)
            outage.failed(unavailable)
            raise unavailable
        outage.succeeded()
        raise ApiError(resp.status, message)
    outage.succeeded()
    return json.loads(text) if text else {}


def object_path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{base}/namespaces/{namespace}/{PLURALS[(api_version, kind)]}"
    return f"{path}/{name}" if name else path


def get(api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    """The object, or None when it does not exist."""
    try:
        return request("GET", object_path(api_version, kind, namespace, name))
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


Outcome = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class Applied:
    kind: str
    name: str
    outcome: Outcome
    obj: dict[str, Any]
    """The object as the apiserver answered the apply (with status)."""


_UNSET: Any = object()


def _project(value: Any, shape: Any) -> Any:
    """`value` cut down to the keys `shape` has (recursively, lists item by item)."""
    if isinstance(shape, dict) and isinstance(value, dict):
        return {k: _project(value.get(k), v) for k, v in shape.items()}
    if isinstance(shape, list) and isinstance(value, list) and len(shape) == len(value):
        return [_project(v, s) for v, s in zip(value, shape, strict=True)]
    return value


def _desired_part(obj: dict[str, Any], desired: dict[str, Any]) -> Any:
    """What our apply sets: the fields of `desired` as `obj` has them.

    Comparing this (not resourceVersion) keeps writes by others between our GET and PATCH
    (status, the revision annotation the Deployment controller adds, server defaults) from
    reading as "updated"."""
    meta = obj.get("metadata", {})
    shape = {k: v for k, v in desired.items() if k not in ("metadata", "status")}
    shape["metadata"] = {
        k: v
        for k, v in desired.get("metadata", {}).items()
        if k in ("labels", "annotations", "ownerReferences")
    }
    return _project({**obj, "metadata": meta}, shape)


def _our_fields(obj: dict[str, Any]) -> Any:
    """Our managedFields entry: its time moves whenever our apply changed a field."""
    entries = obj.get("metadata", {}).get("managedFields") or []
    return [
        (e.get("time"), e.get("fieldsV1"))
        for e in entries
        if e.get("manager") == FIELD_MANAGER and e.get("operation") == "Apply"
    ]


# (kind, namespace, name) -> (uid, our managedFields entry, desired part) after our last apply.
# Lets a steady-state resync skip the GET before each apply; restarts simply start empty.
_applied: dict[tuple[str, str, str], tuple[str, Any, Any]] = {}


def apply(obj: dict[str, Any], before: dict[str, Any] | None = _UNSET) -> Applied:
    """Server-side apply; says whether the object was created, changed or already as wanted.

    `before` is the current object when the caller already fetched it (None: absent);
    otherwise the memory of our previous apply stands in for it, or a GET when there is none."""
    meta = obj["metadata"]
    key = (obj["kind"], meta["namespace"], meta["name"])
    path = object_path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
    remembered = _applied.get(key) if before is _UNSET else None
    if before is _UNSET and remembered is None:
        before = get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
    after = request(
        "PATCH",
        path,
        query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
        body=obj,
        content_type="application/apply-patch+yaml",
    )
    uid, ours = after["metadata"].get("uid", ""), _our_fields(after)
    desired = _desired_part(after, obj)
    outcome: Outcome
    if remembered is not None:
        if remembered[0] != uid:
            outcome = "created"  # deleted behind our back, created again by this apply
        elif remembered[1] != ours or remembered[2] != desired:
            outcome = "updated"
        else:
            outcome = "unchanged"
    elif before is None:
        outcome = "created"
    elif _desired_part(before, obj) != desired:
        outcome = "updated"
    else:
        outcome = "unchanged"
    with _lock:
        _applied[key] = (uid, ours, desired)
    return Applied(obj["kind"], meta["name"], outcome, after)


def forget(kind: str, namespace: str, name: str) -> None:
    """Drop the memory of an object (it was deleted)."""
    with _lock:
        _applied.pop((kind, namespace, name), None)


def delete(api_version: str, kind: str, namespace: str, name: str) -> bool:
    """Delete; False when it was already gone (404 is "already done")."""
    forget(kind, namespace, name)
    try:
        request("DELETE", object_path(api_version, kind, namespace, name))
        return True
    except ApiError as exc:
        if exc.status == 404:
            return False
        raise


def patch_status(namespace: str, name: str, status: dict[str, Any]) -> None:
    """Merge-patch a ModelDeployment's status subresource; a vanished object is ignored."""
    path = object_path(f"{api.GROUP}/{api.VERSION}", api.KIND, namespace, name) + "/status"
    try:
        request("PATCH", path, body={"status": status}, content_type="application/merge-patch+json")
    except ApiError as exc:
        if exc.status != 404:
            raise


def ensure_peering(name: str, namespaces: list[str]) -> bool:
    """Create kopf's peering object(s) unless present; False when kopf's CRD is missing.

    Cluster-wide: one ClusterKopfPeering; namespaced: one KopfPeering per namespace."""
    base = "/apis/kopf.dev/v1"
    paths = (
        [f"{base}/clusterkopfpeerings"]
        if not namespaces
        else [f"{base}/namespaces/{ns}/kopfpeerings" for ns in namespaces]
    )
    for path in paths:
        kind = "ClusterKopfPeering" if not namespaces else "KopfPeering"
        body = {"apiVersion": "kopf.dev/v1", "kind": kind, "metadata": {"name": name}}
        try:
            request("POST", path, body=body)
        except ApiError as exc:
            if exc.status == 404:  # the CRD (the resource type), not the object
                return False
            if exc.status != 409:  # 409: another replica or manifests/ made it first
                raise
    return True


def patch_status_at(
    namespace: str, name: str, status: dict[str, Any], resource_version: str
) -> bool:
    """Merge-patch status only if the object is still at `resource_version`; False on a
    conflict (someone wrote in between: re-read and decide again) or a vanished object."""
    path = object_path(f"{api.GROUP}/{api.VERSION}", api.KIND, namespace, name) + "/status"
    body = {"metadata": {"resourceVersion": resource_version}, "status": status}
    try:
        request("PATCH", path, body=body, content_type="application/merge-patch+json")
    except ApiError as exc:
        if exc.status in (404, 409):
            return False
        raise
    return True


def post_event(obj: dict[str, Any], type_: str, reason: str, message: str, component: str) -> None:
    """A core/v1 Event about `obj`, written directly: kopf's event queue only exists inside
    its per-resource handlers, and the monitor runs beside them."""
    meta = obj["metadata"]
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    event = {
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion", f"{api.GROUP}/{api.VERSION}"),
            "kind": obj.get("kind", api.KIND),
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": component},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body=event)
