"""A stand-in for the serving runtime in pod-runner tests: on 127.0.0.1:$ONNXOPS_PORT it serves
``/v2/health/ready`` and ``/metrics`` with one gauge labelled from its environment."""

from __future__ import annotations

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/metrics":
            labels = ",".join(
                f'{label}="{os.environ.get(var, "")}"'
                for label, var in (
                    ("model", "ONNXOPS_MODEL_NAME"),
                    ("pod_name_env", "POD_NAME"),
                    ("threads", "ONNXOPS_THREADS"),
                    ("secret", "FAKE_SECRET"),
                )
            )
            body = f"# TYPE onnxops_fake_info gauge\nonnxops_fake_info{{{labels}}} 1\n".encode()
        elif self.path == "/v2/health/ready":
            body = b""
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:  # keep the pod log quiet
        pass


if __name__ == "__main__":
    port = int(os.environ["ONNXOPS_PORT"])
    ThreadingHTTPServer((os.environ["ONNXOPS_HOST"], port), Handler).serve_forever()
