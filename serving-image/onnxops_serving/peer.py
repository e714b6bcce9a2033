"""A minimal HTTP/1.1 client to another serving runtime (the shadow mirror's candidate).

Only what the mirror needs: POST with a known length, an answer with ``Content-Length`` (the
runtime always sends one), kept-alive connections reused per target. Nothing else in the
image speaks HTTP as a client, so a client library is not worth its dependency.
"""

from __future__ import annotations

import asyncio


class PeerError(Exception):
    """The peer could not be reached or answered something that is not HTTP/1.1."""


class _Stale(PeerError):
    """A reused connection closed before any answer (the peer's keep-alive timeout ran out)."""


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class PeerPool:
    """Idle kept-alive connections, per ``(host, port)``; one request per connection at a time."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[Connection]] = {}

    async def post(
        self, host: str, port: int, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        """POST ``body``; the status and body of the answer. Raises ``PeerError``/``OSError``."""
        key = (host, port)
        idle = self._idle.get(key)
        if idle:
            conn = idle.pop()
            try:
                return await self._exchange(conn, key, path, body, headers)
            except _Stale:
                pass  # a new connection below; any other failure is the peer's answer
        conn = await asyncio.open_connection(host, port)
        return await self._exchange(conn, key, path, body, headers)

    async def _exchange(
        self,
        conn: Connection,
        key: tuple[str, int],
        path: str,
        body: bytes,
        headers: dict[str, str],
    ) -> tuple[int, bytes]:
        reader, writer = conn
        ok = False
        try:
            extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {key[0]}:{key[1]}\r\n"
                f"Content-Length: {len(body)}\r\n{extra}\r\n"
            )
            try:
                writer.write(head.encode() + body)
                await writer.drain()
                status_line = await reader.readline()
            except (ConnectionResetError, BrokenPipeError) as exc:
                raise _Stale(str(exc)) from exc
            if not status_line:
                raise _Stale("connection closed before an answer")
            parts = status_line.split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
                raise PeerError(f"not an HTTP/1.1 answer: {status_line[:60]!r}")
            status = int(parts[1])
            length, close = None, False
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value.strip())
                elif name == b"connection":
                    close = value.strip().lower() == b"close"
            if length is None:
                raise PeerError("the answer has no Content-Length")
            answer = await reader.readexactly(length)
            ok = not close
            return status, answer
        except (ValueError, asyncio.IncompleteReadError) as exc:
            raise PeerError(f"malformed answer: {exc}") from exc
        finally:
            if ok:
                self._idle.setdefault(key, []).append(conn)
            else:
                writer.close()

    def keep_only(self, keys: set[tuple[str, int]]) -> None:
        """Close idle connections to peers that are no longer targets."""
        for key in list(self._idle):
            if key not in keys:
                for _, writer in self._idle.pop(key):
                    writer.close()

    def close(self) -> None:
        self.keep_only(set())
