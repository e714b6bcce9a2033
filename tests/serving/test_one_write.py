"""An answer leaves the server in one socket write (head and body together), seen by strace on
the real process: over loopback each write is a send() that also runs the receiver's TCP."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time

import pytest
from support.serving_harness import Server

BODY = json.dumps(
    {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
).encode()
REQUESTS = [
    b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s"
    % (len(BODY), BODY),
    b"GET /v2/models/iris HTTP/1.1\r\nHost: t\r\n\r\n",  # the general router
    b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}",  # a 400
    b"HEAD /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n",  # a head and no body
    b"OPTIONS /v2/models/iris/infer HTTP/1.1\r\nHost: t\r\n\r\n",  # a 204
]


def _answer(sock: socket.socket, head_only: bool) -> bytes:
    """One whole answer, read by its content-length."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.search(rb"content-length: (\d+)", head, re.I)
    length = 0 if head_only or match is None else int(match.group(1))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_each_answer_is_one_write(iris_server: Server) -> None:
    tracer = subprocess.Popen(
        ["strace", "-qq", "-e", "trace=write,writev,sendto,sendmsg", "-s", "0", "-p",
         str(iris_server.proc.pid)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(1.0)  # attached (strace prints nothing at -qq; the attach takes ms)
        if tracer.poll() is not None:
            pytest.skip(
                f"strace cannot attach here: {tracer.stderr.read() if tracer.stderr else ''}"
            )
        lengths = []
        with socket.create_connection(("127.0.0.1", iris_server.port), timeout=10) as sock:
            for request in REQUESTS:
                sock.sendall(request)
                answer = _answer(sock, request.startswith(b"HEAD"))
                assert answer.startswith(b"HTTP/1.1 "), answer
                lengths.append(len(answer))
        time.sleep(0.5)
    finally:
        tracer.terminate()
        _, trace = tracer.communicate(timeout=10)
    written = [int(n) for n in re.findall(r"\)\s+= (\d+)$", trace, re.M)]
    assert written, trace
    for length in lengths:
        # The whole answer in one call: uvicorn alone writes the head, then the body.
        assert length in written, f"no single write of {length} bytes; writes: {written}"
