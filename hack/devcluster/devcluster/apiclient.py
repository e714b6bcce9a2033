"""A minimal HTTPS client for the devcluster's apiserver (stdlib only, bearer token).

The start/stop tool uses it for readiness polls and node creation: forking kubectl for every
poll would cost more than the polls themselves.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class ApiClient:
    """GET/POST JSON against one apiserver."""

    def __init__(self, server: str, token: str, ca_file: Path | None) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self._lock = threading.Lock()
        self._watches: set[http.client.HTTPSConnection] = set()
        if ca_file is not None:
            self._ssl = ssl.create_default_context(cafile=str(ca_file))
        else:
            self._ssl = ssl.create_default_context()
            self._ssl.check_hostname = False
            self._ssl.verify_mode = ssl.CERT_NONE

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        timeout_s: float = 5,
        content_type: str = "application/json",
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, context=self._ssl, timeout=timeout_s) as resp:
            raw = resp.read()
        return json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode()

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def create(self, path: str, obj: dict[str, Any]) -> Any:
        """POST ``obj``; an AlreadyExists (409) counts as done."""
        try:
            return self.request("POST", path, obj)
        except urllib.error.HTTPError as error:
            if error.code == 409:
                return None
            raise

    def merge_patch(self, path: str, patch: dict[str, Any]) -> Any:
        """PATCH with a JSON merge patch (lists in ``patch`` replace the object's lists)."""
        return self.request("PATCH", path, patch, content_type="application/merge-patch+json")

    def delete(self, path: str, options: dict[str, Any] | None = None) -> Any:
        """DELETE with DeleteOptions; a 404 (already gone) or 409 (another object now) is None."""
        try:
            return self.request("DELETE", path, options or {})
        except urllib.error.HTTPError as error:
            if error.code in (404, 409):
                return None
            raise

    def ready(self) -> bool:
        try:
            return bool(self.request("GET", "/readyz", timeout_s=2) == "ok")
        except (OSError, urllib.error.URLError, ssl.SSLError):
            return False

    def get_or_none(self, path: str) -> Any:
        """GET, with None for 404 Not Found."""
        try:
            return self.get(path)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    def watch(self, path: str, resource_version: str, timeout_s: int) -> Iterator[dict[str, Any]]:
        """Watch events (``{"type", "object"}``) from ``resource_version``; the server ends the
        stream after ``timeout_s``. ``cancel_watches`` ends it at once from another thread."""
        query = urllib.parse.urlencode(
            {
                "watch": "1",
                "resourceVersion": resource_version,
                "timeoutSeconds": str(timeout_s),
                "allowWatchBookmarks": "true",
            }
        )
        url = urllib.parse.urlsplit(self.server)
        conn = http.client.HTTPSConnection(
            url.hostname or "127.0.0.1", url.port, context=self._ssl, timeout=timeout_s + 10
        )
        with self._lock:
            self._watches.add(conn)
        try:
            conn.request(
                "GET", f"{path}?{query}", headers={"Authorization": f"Bearer {self.token}"}
            )
            resp = conn.getresponse()
            if resp.status != 200:
                raise urllib.error.HTTPError(
                    self.server + path, resp.status, resp.reason, resp.headers, None
                )
            for line in resp:
                if line.strip():
                    yield json.loads(line)
        finally:
            with self._lock:
                self._watches.discard(conn)
            conn.close()

    def cancel_watches(self) -> None:
        """Drop open watch connections: an apiserver shutting down waits for open watches."""
        with self._lock:
            for conn in self._watches:
                if conn.sock is not None:
                    with contextlib.suppress(OSError):
                        conn.sock.shutdown(socket.SHUT_RDWR)
