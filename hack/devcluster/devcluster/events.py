"""Events the pod runner posts as the kubelet does (``source.component: kubelet``).

A repeated event (same pod, reason and message) bumps the first one's ``count`` and
``lastTimestamp`` instead of creating another, like client-go's event correlator, so a probe
failing every period does not flood the namespace. Posting never raises: an event is
best-effort, as it is for the kubelet.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Executor
from typing import Any

from .apiclient import ApiClient
from .podstatus import rfc3339

log = logging.getLogger("devcluster.podrunner")


class EventRecorder:
    """Posts core/v1 Events about pods; correlates repeats by (uid, reason, message)."""

    def __init__(self, api: ApiClient, executor: Executor) -> None:
        self.api = api
        self.executor = executor
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str, str], tuple[str, int]] = {}  # -> (event name, count)

    def post(
        self, pod: Mapping[str, Any], reason: str, message: str, *, warning: bool = False
    ) -> None:
        """Post (or count again) an Event, on the executor: never blocks the caller."""
        self.executor.submit(self._post, pod, reason, message, warning)

    def forget(self, uid: str) -> None:
        with self._lock:
            for key in [k for k in self._seen if k[0] == uid]:
                del self._seen[key]

    def _post(self, pod: Mapping[str, Any], reason: str, message: str, warning: bool) -> None:
        with self._lock:  # one at a time: a repeat must find the first one's name
            self._post_locked(pod, reason, message, warning)

    def _post_locked(
        self, pod: Mapping[str, Any], reason: str, message: str, warning: bool
    ) -> None:
        meta = pod["metadata"]
        namespace, uid = meta["namespace"], meta["uid"]
        key = (uid, reason, message)
        now = rfc3339(time.time())
        try:
            if key in self._seen:
                name, count = self._seen[key]
                self.api.merge_patch(
                    f"/api/v1/namespaces/{namespace}/events/{name}",
                    {"count": count + 1, "lastTimestamp": now},
                )
                self._seen[key] = (name, count + 1)
                return
            name = f"{meta['name']}.{secrets.token_hex(8)}"
            self.api.create(
                f"/api/v1/namespaces/{namespace}/events",
                {
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"name": name, "namespace": namespace},
                    "involvedObject": {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "name": meta["name"],
                        "namespace": namespace,
                        "uid": uid,
                        "fieldPath": "spec.containers{server}",
                    },
                    "reason": reason,
                    "message": message,
                    "type": "Warning" if warning else "Normal",
                    "source": {"component": "kubelet", "host": pod["spec"].get("nodeName", "")},
                    "reportingComponent": "kubelet",
                    "reportingInstance": pod["spec"].get("nodeName", ""),
                    "firstTimestamp": now,
                    "lastTimestamp": now,
                    "count": 1,
                },
            )
            self._seen[key] = (name, 1)
        except Exception as error:  # best-effort, as for the kubelet
            log.info("event %s for %s/%s not posted: %s", reason, namespace, meta["name"], error)
