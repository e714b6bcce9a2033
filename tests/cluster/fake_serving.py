"""A stand-in for the serving runtime in pod-runner tests, and a fault tool: on
127.0.0.1:$ONNXOPS_PORT it serves ``/v2/health/ready``, ``/v2/health/live`` and ``/metrics``
(one gauge labelled from its environment), plus test-only faults:

- ``/alloc?mb=N`` keeps N MiB more (touched, so it is resident): past a memory limit, an OOM kill;
- ``/burn?s=S`` spins the CPU for S seconds (in a thread): over a CPU limit, throttling;
- ``/exit?code=C`` exits the process with code C;
- ``/ready?ok=0|1`` makes the readiness endpoint fail or succeed.

``FAKE_IGNORE_TERM=1`` ignores SIGTERM (a process that only SIGKILL stops); ``FAKE_ALLOC_MB=N``
holds N MiB from the start (under a smaller limit: OOM-killed at every start).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_held: list[bytearray] = []
_state = {"ready": True}


def _burn(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        status = 200
        body = b""
        if url.path == "/metrics":
            labels = ",".join(
                f'{label}="{os.environ.get(var, "")}"'
                for label, var in (
                    ("model", "ONNXOPS_MODEL_NAME"),
                    ("pod_name_env", "POD_NAME"),
                    ("threads", "ONNXOPS_THREADS"),
                    ("secret", "FAKE_SECRET"),
                    ("mirror_rewrite", "ONNXOPS_MIRROR_ADDRESS_REWRITE"),
                )
            )
            body = f"# TYPE onnxops_fake_info gauge\nonnxops_fake_info{{{labels}}} 1\n".encode()
        elif url.path == "/v2/health/ready":
            status = 200 if _state["ready"] else 503
        elif url.path == "/v2/health/live":
            pass
        elif url.path == "/ready":
            _state["ready"] = query.get("ok", "1") == "1"
        elif url.path == "/alloc":
            block = bytearray(int(query.get("mb", "1")) * 2**20)
            for i in range(0, len(block), 4096):  # touch every page: resident, not just mapped
                block[i] = 1
            _held.append(block)
        elif url.path == "/burn":
            threading.Thread(target=_burn, args=(float(query.get("s", "1")),)).start()
        elif url.path == "/exit":
            os._exit(int(query.get("code", "1")))
        else:
            self.send_error(404)
            return
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:  # keep the pod log quiet
        pass


if __name__ == "__main__":
    if os.environ.get("FAKE_ALLOC_MB"):  # a process that needs this much just to start
        _held.append(bytearray(b"x" * (int(os.environ["FAKE_ALLOC_MB"]) * 2**20)))
    if os.environ.get("FAKE_IGNORE_TERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    port = int(os.environ["ONNXOPS_PORT"])
    server = ThreadingHTTPServer((os.environ["ONNXOPS_HOST"], port), Handler)
    # Bound: from here a readiness probe is answered (the benchmark reads this line).
    print(f"serving-since {time.time():.6f}", flush=True)
    server.serve_forever()
