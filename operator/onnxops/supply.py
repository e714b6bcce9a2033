"""The cluster's supply — its nodes and the pods bound to them — kept by list and watch.

Placement (and heal's failback check) needs every node and every bound pod of the cluster, not
only the operator's own. Listing them per decision costs a full decode of every pod: at 1,000
models (2,000 pods) that was a fifth of the operator's CPU in a burst and a ~10 MB dict per
listing held at once by several workers. Here one thread per kind lists once, then follows a
watch from that resourceVersion (bookmarks on; a `410 Gone` relists), and keeps a slim copy of
each object: only the fields `pools.free_per_node` reads. Until the first list has arrived, or
while the watch is broken, `snapshot()` answers None and callers list for themselves (as
`podapi.nodes_and_pods` did before), so a stale view is never used in silence.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import urllib3

from onnxops import k8s
from onnxops.reasons import KubeCondition

log = logging.getLogger("onnxops.supply")

WATCH_TIMEOUT_S = 300  # the apiserver ends a watch after this; it is then resumed
BOUND_PODS = "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"

Slim = Callable[[dict[str, Any]], dict[str, Any]]


def slim_node(node: dict[str, Any]) -> dict[str, Any]:
    meta, spec, st = node.get("metadata", {}), node.get("spec", {}), node.get("status", {})
    ready = [c for c in st.get("conditions") or [] if c.get("type") == KubeCondition.READY]
    return {
        "metadata": {"name": meta.get("name", ""), "labels": meta.get("labels") or {}},
        "spec": {"unschedulable": spec.get("unschedulable", False), "taints": spec.get("taints")},
        "status": {"allocatable": st.get("allocatable") or {}, "conditions": ready},
    }


def slim_pod(pod: dict[str, Any]) -> dict[str, Any]:
    meta, spec = pod.get("metadata", {}), pod.get("spec", {})
    containers = [
        {"resources": {"requests": (c.get("resources") or {}).get("requests") or {}}}
        for c in spec.get("containers") or []
    ]
    return {
        "metadata": {
            "namespace": meta.get("namespace", ""),
            "name": meta.get("name", ""),
            "labels": meta.get("labels") or {},
        },
        "spec": {"nodeName": spec.get("nodeName", ""), "containers": containers},
        "status": {"phase": pod.get("status", {}).get("phase", "")},
    }


class Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


def _lines(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    pending = b""
    for chunk in response.stream(65536, decode_content=True):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from (line for line in complete if line.strip())
    if pending.strip():
        yield pending


class Informer:
    """One kind's objects, listed then watched, each kept slim by its uid."""

    def __init__(self, path: str, slim: Slim, field_selector: str | None = None) -> None:
        self.path = path
        self.slim = slim
        self.selector = [("fieldSelector", field_selector)] if field_selector else []
        self._objects: dict[str, dict[str, Any]] = {}
        self._synced = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._response: urllib3.BaseHTTPResponse | None = None
        self._thread: threading.Thread | None = None
        self.relists = 0

    def start(self) -> Informer:
        self._thread = threading.Thread(target=self._run, name=f"supply {self.path}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            response.shutdown()  # wakes the thread blocked in a read of the watch
        if self._thread is not None:
            self._thread.join(timeout=5)

    def items(self) -> list[dict[str, Any]] | None:
        """The objects now, or None while no list has arrived or the watch is broken."""
        with self._lock:
            return list(self._objects.values()) if self._synced else None

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                version = self._list()
                backoff = 1.0
                while not self._stop.is_set():
                    version = self._watch(version)
            except Gone:
                log.info("supply: %s watch expired; listing again", self.path)
                continue
            except Exception as exc:  # any failure: callers list for themselves; retried
                if self._stop.is_set():
                    return
                with self._lock:
                    self._synced = False
                log.warning("supply: %s: %s; retrying in %.0f s", self.path, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def _list(self) -> str:
        # resourceVersion=0: served from the apiserver's watch cache.
        listing = k8s.request("GET", self.path, query=[("resourceVersion", "0"), *self.selector])
        objects = {item["metadata"]["uid"]: self.slim(item) for item in listing.get("items", [])}
        with self._lock:
            self._objects, self._synced = objects, True
        self.relists += 1
        return str(listing.get("metadata", {}).get("resourceVersion", ""))

    def _watch(self, version: str) -> str:
        query = [
            ("watch", "true"),
            ("resourceVersion", version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(WATCH_TIMEOUT_S)),
            *self.selector,
        ]
        c = k8s.api_client()
        _, url, headers, _, _ = c.param_serialize(
            method="GET",
            resource_path=self.path,
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        answer = c.call_api(
            "GET", url, header_params=headers, _request_timeout=(10, WATCH_TIMEOUT_S + 30)
        )
        response = answer.response
        self._response = response
        try:
            if answer.status == 410:
                raise Gone()
            if answer.status >= 400:
                raise k8s.ApiError(answer.status, response.data.decode(errors="replace")[:300])
            for line in _lines(response):
                version = self._event(json.loads(line), version)
        finally:
            self._response = None
            response.release_conn()
        return version

    def _event(self, event: dict[str, Any], version: str) -> str:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            raise k8s.ApiError(int(obj.get("code") or 500), str(obj.get("message", "")))
        meta = obj.get("metadata", {})
        if kind != "BOOKMARK":
            with self._lock:
                if kind == "DELETED":
                    self._objects.pop(meta.get("uid", ""), None)
                else:
                    self._objects[meta.get("uid", "")] = self.slim(obj)
        return str(meta.get("resourceVersion") or version)


class Supply:
    """Nodes and bound pods, each from an informer of its own."""

    def __init__(self) -> None:
        self.nodes = Informer("/api/v1/nodes", slim_node)
        self.pods = Informer("/api/v1/pods", slim_pod, BOUND_PODS)

    def start(self) -> Supply:
        self.nodes.start()
        self.pods.start()
        return self

    def stop(self) -> None:
        self.nodes.stop()
        self.pods.stop()

    def snapshot(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        nodes, pods = self.nodes.items(), self.pods.items()
        return None if nodes is None or pods is None else (nodes, pods)

    def wait_synced(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.snapshot() is None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


_running: Supply | None = None


def start() -> Supply:
    """Start the process's supply informers (the operator's startup)."""
    global _running
    if _running is None:
        _running = Supply().start()
    return _running


def stop() -> None:
    global _running
    if _running is not None:
        _running.stop()
        _running = None


def snapshot() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    """Nodes and bound pods as last watched, or None (not started, not synced, broken)."""
    return _running.snapshot() if _running is not None else None
