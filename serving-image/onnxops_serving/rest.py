"""The REST transport: a bare ASGI app that routes OIP v2 paths to the data plane.

No framework: per-request work is one path split, one body read and one send, which is
where most of a small model's serving time goes. Errors map to statuses here, once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from . import codec
from .dataplane import DataPlane
from .encoding import decode_body
from .errors import NotFound, NotReady, PayloadTooLarge, ServingError
from .metrics import CONTENT_TYPE, ServingMetrics

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_JSON = b"application/json"
_HEADER_LENGTH = b"inference-header-content-length"
# Scope key where the connection leaves the status it answered a request with when it cut the
# request off (a parser error mid-body): the handler counts that status, not its own.
REFUSED = "onnxops.refused"
Headers = list[tuple[bytes, bytes]]


class MethodNotAllowed(ServingError):
    """Wrong method; the answer lists the right ones in ``Allow`` (RFC 9110 §15.5.6)."""

    status = 405

    def __init__(self, method: str, allow: str) -> None:
        super().__init__(f"use {allow.split(',')[0]} here, not {method}")
        self.allow = allow


class Preflight(Exception):
    """An ``OPTIONS`` request: answered 204 with ``Allow``, never an error."""

    def __init__(self, allow: str) -> None:
        self.allow = allow


class ClientGone(ServingError):
    """The connection closed before the body arrived (it never gets this answer; the
    status only counts the request in the metrics)."""

    status = 408


class RestApp:
    """ASGI entry point. ``plane`` is None until the model is loaded and warm."""

    def __init__(
        self,
        metrics: ServingMetrics,
        max_body: int,
        on_startup: Callable[[], Coroutine[Any, Any, None]],
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.metrics = metrics
        self._plane: DataPlane | None = None
        # The one infer path of the served model, matched whole before any routing.
        self._infer_path: str | None = None
        self.draining = False
        self._max_body = max_body
        self._on_startup = on_startup
        self._on_shutdown = on_shutdown
        self._startup_task: asyncio.Task[None] | None = None

    @property
    def plane(self) -> DataPlane | None:
        return self._plane

    @plane.setter
    def plane(self, plane: DataPlane | None) -> None:
        self._plane = plane
        name = plane.model.name if plane is not None else ""
        # A name routing would split (or one with nothing in it) takes the general route.
        self._infer_path = f"/v2/models/{name}/infer" if name and "/" not in name else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # Load in the background: the process is live (and answers probes) while
                # it fetches and warms the model, and becomes ready afterwards.
                self._startup_task = asyncio.create_task(self._on_startup())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.draining = True
                if self._startup_task is not None and not self._startup_task.done():
                    self._startup_task.cancel()
                if self._on_shutdown is not None:
                    await self._on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _ready_plane(self) -> DataPlane:
        # Draining only turns the readiness answers false: a request that still reaches
        # the server (on an open connection, or during the shutdown delay) is served.
        if self.plane is None:
            raise NotReady("the model is not loaded yet")
        return self.plane

    def _check_ready(self) -> None:
        self._ready_plane()
        if self.draining:
            raise NotReady("the server is shutting down")

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[bytes, int | None]:
        header_length = None
        coding = None
        for key, value in scope["headers"]:
            if key == b"content-length":
                if int(value) > self._max_body:
                    raise PayloadTooLarge(
                        f"body of {int(value)} bytes is over the {self._max_body}-byte limit"
                    )
            elif key == _HEADER_LENGTH:
                try:
                    header_length = int(value)
                except ValueError:
                    raise codec.BadRequest(
                        "Inference-Header-Content-Length is not a number"
                    ) from None
            elif key == b"content-encoding":
                coding = value
        message = await receive()
        body = message.get("body", b"")
        if not body and message["type"] == "http.disconnect":
            raise ClientGone("the client went away (or was cut off) before sending its body")
        if message.get("more_body"):
            chunks = [body]
            size = len(body)
            while message.get("more_body"):
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone("the client went away (or was cut off) mid-body")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self._max_body:
                    raise PayloadTooLarge(f"body is over the {self._max_body}-byte limit")
                chunks.append(chunk)
            body = b"".join(chunks)
        elif len(body) > self._max_body:
            raise PayloadTooLarge(f"body is over the {self._max_body}-byte limit")
        if coding is not None:
            body = decode_body(body, coding, self._max_body)
        return body, header_length

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = self.metrics
        metrics.in_flight += 1
        start = time.perf_counter()
        endpoint = endpoint_of(scope["path"])
        headers: Headers = []
        try:
            status, body, headers = await self._route(scope, receive)
        except Preflight as exc:
            status, body, headers = 204, b"", [(b"allow", exc.allow.encode())]
        except ServingError as exc:
            status, body = exc.status, codec.dumps({"error": str(exc)})
            if isinstance(exc, PayloadTooLarge):
                # The unread rest of the body would be taken for the next request.
                headers = [(b"connection", b"close")]
            elif isinstance(exc, MethodNotAllowed):
                headers = [(b"allow", exc.allow.encode())]
            elif isinstance(exc, ClientGone):
                status = scope.get(REFUSED, status)
        except Exception as exc:  # never let one request take the server down
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            status, body = 500, codec.dumps({"error": f"internal error: {exc}"})
        try:
            if status != 204:  # a 204 carries neither (RFC 9110 §8.6)
                content_type = (
                    CONTENT_TYPE.encode() if endpoint == "metrics" and status == 200 else _JSON
                )
                headers = [
                    (b"content-type", content_type),
                    (b"content-length", b"%d" % len(body)),
                    *headers,
                ]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        finally:
            metrics.in_flight -= 1
            metrics.count(endpoint, status)
            if endpoint in ("infer", "predict"):
                metrics.request_latency.observe(time.perf_counter() - start)

    async def _route(self, scope: Scope, receive: Receive) -> tuple[int, bytes, Headers]:
        path: str = scope["path"]
        method: str = scope["method"]
        if path == self._infer_path and method == "POST":
            # The request this server exists for, with no routing: the path can only be
            # this once the plane is set, and names this plane's model.
            return await self._infer(self._plane, scope, receive)  # type: ignore[arg-type]
        parts = path.strip("/").split("/")
        if parts[0] == "v2" and len(parts) >= 3 and parts[1] == "models":
            return await self._model_route(parts[2:], method, scope, receive)
        if path == "/v2/health/live":
            _need(method, "GET")
            return 200, b'{"live":true}', []
        if path == "/v2/health/ready":
            _need(method, "GET")
            self._check_ready()
            return 200, b'{"ready":true}', []
        if path == "/metrics":
            _need(method, "GET")
            return 200, self.metrics.render(), []
        if path == "/predict":
            _need(method, "POST")
            body, _ = await self._read_body(scope, receive)
            return 200, await self._ready_plane().predict(body), []
        if path in ("/v2", "/v2/"):
            _need(method, "GET")
            return 200, codec.dumps(DataPlane.server_metadata()), []
        raise NotFound(f"no route for {method} {path}")

    async def _model_route(
        self, parts: list[str], method: str, scope: Scope, receive: Receive
    ) -> tuple[int, bytes, Headers]:
        name, rest = parts[0], parts[1:]
        version = None
        if len(rest) >= 2 and rest[0] == "versions":
            version, rest = rest[1], rest[2:]
        action = rest[0] if len(rest) == 1 else ("" if not rest else None)
        if action is None:
            raise NotFound(f"no route for {method} {scope['path']}")
        plane = self._ready_plane()
        plane.check(name, version)
        if action == "infer":
            _need(method, "POST")
            return await self._infer(plane, scope, receive)
        if action == "feedback":
            _need(method, "POST")
            body, _ = await self._read_body(scope, receive)
            return 200, plane.feedback(body), []
        if action == "ready":
            _need(method, "GET")
            self._check_ready()
            return 200, codec.dumps({"name": name, "ready": True}), []
        if action == "":
            _need(method, "GET")
            return 200, codec.dumps(plane.model_metadata()), []
        raise NotFound(f"no route for {method} {scope['path']}")

    async def _infer(
        self, plane: DataPlane, scope: Scope, receive: Receive
    ) -> tuple[int, bytes, Headers]:
        body, header_length = await self._read_body(scope, receive)
        out, out_header_length = await plane.infer(body, header_length)
        extra = [] if out_header_length is None else [(_HEADER_LENGTH, b"%d" % out_header_length)]
        return 200, out, extra


def endpoint_of(path: str) -> str:
    """The metrics label of a path; decided before routing so failures count where they hit."""
    if path.endswith("/infer"):
        return "infer"
    if path == "/predict":
        return "predict"
    if path.endswith("/feedback"):
        return "feedback"
    if path.startswith("/v2/health") or path.endswith("/ready"):
        return "health"
    if path == "/metrics":
        return "metrics"
    return "metadata" if path.startswith("/v2") else "other"


_ALLOW = {"GET": "GET, HEAD, OPTIONS", "POST": "POST, OPTIONS"}


def _need(method: str, allowed: str) -> None:
    """Pass the route's method, and HEAD where it is GET (the server drops HEAD's body)."""
    if method == allowed or (method == "HEAD" and allowed == "GET"):
        return
    if method == "OPTIONS":
        raise Preflight(_ALLOW[allowed])
    raise MethodNotAllowed(method, _ALLOW[allowed])
