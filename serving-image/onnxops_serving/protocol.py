"""The HTTP connection: uvicorn's httptools protocol with bounds on slow and oversized requests.

uvicorn bounds neither how long a request may take to arrive nor the size of its header
block: a client that sends half a request and stalls holds its connection (and the handler
waiting on the body) forever, and one endless header line grows memory without limit.
Here a request must arrive in full within ``request_timeout_s`` and its head must fit in
``max_head_bytes``. The per-request cost is two attribute writes; one timer per process
sweeps the open connections once a second.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_SWEEP_S = 1.0


def _reply(status: int, reason: str, error: str) -> bytes:
    body = b'{"error":"%s"}' % error.encode()
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n%s" % (status, reason.encode(), len(body), body)
    )


class BoundedHttpProtocol(HttpToolsProtocol):
    """One client connection; ``_began`` is set while a request is still arriving."""

    request_timeout_s = 30.0
    max_head_bytes = 64 * 1024
    _began: float | None = None
    _head_bytes = -1  # bytes seen of an unfinished request head; -1 outside a head

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        state: Any = self.server_state
        if not getattr(state, "onnxops_sweeping", False):
            state.onnxops_sweeping = True
            self.loop.call_later(_SWEEP_S, _sweep, self.loop, state, self.request_timeout_s)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_bytes >= 0:  # the head did not end in this chunk
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse(431, "Request Header Fields Too Large", "request head is too large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._began = self.loop.time()
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._head_bytes = -1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._began = None
        super().on_message_complete()

    def too_slow(self) -> None:
        """The request did not arrive in time: answer 408 and close. A handler waiting on the
        body sees the disconnect and gives up. Only a response already under way (to an
        earlier pipelined request) is not interrupted by the 408."""
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            self._refuse(408, "Request Timeout", "request did not arrive in time")
        else:
            self._began = None
            self.transport.close()

    def _refuse(self, status: int, reason: str, error: str) -> None:
        self._began = None
        self._head_bytes = -1
        if not self.transport.is_closing():
            self.transport.write(_reply(status, reason, error))
            self.transport.close()


def _sweep(loop: asyncio.AbstractEventLoop, state: Any, timeout: float) -> None:
    deadline = loop.time() - timeout
    for conn in list(state.connections):
        began = getattr(conn, "_began", None)
        if began is not None and began < deadline:
            conn.too_slow()
    loop.call_later(_SWEEP_S, _sweep, loop, state, timeout)


def protocol_class(request_timeout_s: float, max_head_bytes: int) -> type[BoundedHttpProtocol]:
    """The protocol class for uvicorn's ``http`` setting, with these bounds."""
    return type(
        "BoundedHttpProtocol",
        (BoundedHttpProtocol,),
        {"request_timeout_s": request_timeout_s, "max_head_bytes": max_head_bytes},
    )
