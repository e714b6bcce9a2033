"""Transport floor for the benchmark: a bare ASGI app on the same uvicorn (httptools + uvloop)
that reads the body and returns a fixed OIP answer without running any model.

Usage: python floor_server.py PORT MODEL_NAME
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

BODY = b'{"model_name":"m","id":"1","outputs":[{"name":"label","datatype":"INT64","shape":[1],"data":[0]}]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]


async def app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    message = await receive()
    while message.get("more_body"):
        message = await receive()
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
        access_log=False, log_level="warning", lifespan="off", proxy_headers=False,
        server_header=False,
    )  # fmt: skip
