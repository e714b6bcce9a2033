"""The HTTP connection: uvicorn's httptools protocol with the bounds and answers uvicorn lacks.

uvicorn bounds neither how long a request may take to arrive, nor how long a fresh connection
may stay silent, nor the size of a request head, nor the number of open connections; it answers
parser errors in plain text, and an ``Upgrade`` header (``curl --http2`` sends ``h2c``) makes
it drop the request's body and every request pipelined after it. Here:

- a request must arrive in full within ``request_timeout_s`` (else 408); a connection that
  sends nothing for ``idle_timeout_s`` is closed; beyond ``max_connections`` a new one gets 503;
- a head over ``max_head_bytes`` gets 431, whether it arrives in one read or many;
- an ``Upgrade`` request is served as plain HTTP/1.1 (the server speaks nothing else);
- parser errors get the same ``{"error": ...}`` body as the rest, and every refusal is
  counted in ``onnxops_requests_total``.

The per-request cost is a few attribute writes; one timer per process sweeps the connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from .rest import REFUSED, endpoint_of

_SWEEP_S = 1.0
_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}

# (endpoint, status) -> None: counts a request the application never saw.
Counter = Callable[[str, int], None]


class Refusal(Exception):
    """Raised inside a parser callback to stop parsing and answer ``status``."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status


def _reply(status: int, error: str) -> bytes:
    body = b'{"error":"%s"}' % error.replace("\\", "\\\\").replace('"', '\\"').encode()
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n%s" % (status, _REASONS[status].encode(), len(body), body)
    )


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The body length of a request the parser was told not to read; None if it is chunked."""
    length = 0
    for name, value in headers:
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            length = int(value)  # the parser has already refused a malformed one
    return length


class _Held:
    """Stands in for the transport while uvicorn writes a response head: keeps the bytes."""

    __slots__ = ("closed", "parts", "real")

    def __init__(self, real: asyncio.Transport) -> None:
        self.real = real
        self.parts: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed or self.real.is_closing()


class CoalescingCycle(RequestResponseCycle):
    """uvicorn's request cycle, but the response head waits for the first body part and both
    go out in one write: over loopback each write is a send() that also wakes the reader, and
    a small answer paid two. Everything else (checks, HEAD, chunking, keep-alive) is uvicorn's."""

    _held: _Held | None = None

    async def send(self, message: Any) -> None:
        held = self._held
        if held is None and (self.response_started or message["type"] != "http.response.start"):
            await super().send(message)
            return
        real = self.transport
        capture = held if held is not None else _Held(real)
        self.transport = capture  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            self.transport = real
        if held is None:  # the head: hold it for the body
            self._held = capture if capture.parts else None
            if capture.closed:
                real.close()
            return
        self._held = None
        if not self.disconnected:
            real.write(b"".join(capture.parts))
        if capture.closed:
            real.close()


class BoundedHttpProtocol(HttpToolsProtocol):
    """One client connection.

    ``_began`` is set while a request is still arriving, ``_idle_since`` while the connection
    has neither a request arriving nor an answer pending, ``_passthrough`` while the body of an
    ``Upgrade`` request is being handed over past the parser.
    """

    request_timeout_s = 30.0
    idle_timeout_s = 10.0
    max_head_bytes = 64 * 1024
    max_connections = 1000
    count: Counter = staticmethod(lambda endpoint, status: None)
    _began: float | None = None
    _idle_since: float | None = None
    _head_bytes = -1  # bytes seen of an unfinished request head; -1 outside a head
    _chunk = 0  # size of the read being parsed
    _passthrough = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        state: Any = self.server_state
        if not getattr(state, "onnxops_sweeping", False):
            state.onnxops_sweeping = True
            self.loop.call_later(_SWEEP_S, _sweep, self.loop, state, type(self))
        if len(self.connections) > self.max_connections:
            # Refused at once, before it can hold a file descriptor for long.
            self._refuse(503, "too many open connections; try again later")
            return
        self._idle_since = self.loop.time()

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        self._idle_since = None
        if self._passthrough:
            data = self._pass_body(data)
            if not data:
                return
        self._chunk = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._serve_upgrade(data[exc.args[0] :])
        except httptools.HttpParserError as exc:
            refusal = exc.__context__ if isinstance(exc.__context__, Refusal) else None
            if refusal is not None:
                self._refuse(refusal.status, str(refusal))
            else:
                self._refuse(400, f"invalid HTTP request: {exc}")
            return
        if self._head_bytes >= 0:  # the head did not end in this chunk
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse(431, "request head is too large")
                return
        if self._began is None and (self.cycle is None or self.cycle.response_complete):
            self._idle_since = self.loop.time()  # bytes that began no request (blank lines)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._began = self.loop.time()
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        # The per-read count in data_received misses the read a head ends in. Bytes before
        # it plus the whole read bound the head from above; only past the limit is the head
        # itself measured, so a common request pays one comparison.
        if self._head_bytes + self._chunk > self.max_head_bytes:
            size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if size > self.max_head_bytes:
                raise Refusal(431, "request head is too large")
        self._head_bytes = -1
        super().on_headers_complete()
        cycle = self.cycle
        if type(cycle) is RequestResponseCycle:
            # Same fields, one method more: set here rather than copying uvicorn's
            # on_headers_complete to construct it.
            cycle.__class__ = CoalescingCycle

    def on_message_complete(self) -> None:
        if self.parser.should_upgrade() and self._passthrough_length():
            return  # the body follows, past the parser (see _serve_upgrade)
        self._began = None
        super().on_message_complete()

    def _passthrough_length(self) -> int:
        length = _content_length(self.headers)
        if length is None:
            raise Refusal(400, "an Upgrade request with a chunked body is not supported")
        return length

    def _serve_upgrade(self, rest: bytes) -> None:
        """The parser took an ``Upgrade`` request's head as the last thing on this connection
        and skipped its body. This server speaks only HTTP/1.1, so it ignores the header (as
        RFC 9110 allows) and hands the body to the request itself, then parses what follows."""
        self._passthrough = self._passthrough_length()
        rest = self._pass_body(rest) if self._passthrough else rest
        if rest:
            self.data_received(rest)

    def _pass_body(self, data: bytes) -> bytes:
        """Give up to ``_passthrough`` bytes of ``data`` to the request as its body; return
        the rest, which belongs to the next request."""
        take = min(len(data), self._passthrough)
        self._passthrough -= take
        if take and not self.cycle.response_complete:
            self.on_body(data[:take])
        if not self._passthrough:
            self._began = None
            super().on_message_complete()
        return data[take:]

    def too_slow(self) -> None:
        """The request did not arrive in time: answer 408 and close. A handler waiting on the
        body sees the disconnect and gives up. Only a response already under way (to an
        earlier pipelined request) is not interrupted by the 408."""
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            self._refuse(408, "request did not arrive in time")
        else:
            self._began = None
            self.transport.close()

    def _refuse(self, status: int, error: str) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and cycle.scope is self.scope:
            # A handler is waiting on this request's body: it sees the disconnect and counts
            # the request under its own endpoint, with this status.
            cycle.scope[REFUSED] = status  # type: ignore[literal-required]
        else:
            path = getattr(self, "url", b"").split(b"?")[0].decode("latin-1")
            self.count(endpoint_of(path) if path else "other", status)
        self._began = None
        self._idle_since = None
        self._head_bytes = -1
        self._passthrough = 0
        if not self.transport.is_closing():
            self.transport.write(_reply(status, error))
            self.transport.close()


def _sweep(loop: asyncio.AbstractEventLoop, state: Any, bounds: type[BoundedHttpProtocol]) -> None:
    now = loop.time()
    for conn in list(state.connections):
        began = getattr(conn, "_began", None)
        idle = getattr(conn, "_idle_since", None)
        if began is not None and began < now - bounds.request_timeout_s:
            conn.too_slow()
        elif idle is not None and idle < now - bounds.idle_timeout_s:
            conn._idle_since = None
            conn.transport.close()  # nothing was asked: nothing to answer
    loop.call_later(_SWEEP_S, _sweep, loop, state, bounds)


def protocol_class(
    *,
    request_timeout_s: float,
    idle_timeout_s: float,
    max_head_bytes: int,
    max_connections: int,
    count: Counter,
) -> type[BoundedHttpProtocol]:
    """The protocol class for uvicorn's ``http`` setting, with these bounds."""
    return type(
        "BoundedHttpProtocol",
        (BoundedHttpProtocol,),
        {
            "request_timeout_s": request_timeout_s,
            "idle_timeout_s": idle_timeout_s,
            "max_head_bytes": max_head_bytes,
            "max_connections": max_connections,
            "count": staticmethod(count),
        },
    )
