"""Small real artefacts shared by tests and benchmarks (one builder each, no copies)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
from onnx import TensorProto, helper


def doubler_model(path: Path) -> str:
    """Write a bare ONNX model ``y = 2x`` over float rows of 2 to ``path``; return its sha256."""
    two = helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"])],
        "doubler",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        [two],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path.write_bytes(model.SerializeToString())
    return hashlib.sha256(path.read_bytes()).hexdigest()


def poison_model() -> onnx.ModelProto:
    """y = table[int(x[:, 0])]: a row with an out-of-range index makes the whole call fail."""
    table = helper.make_tensor("table", TensorProto.FLOAT, [4], [10.0, 11.0, 12.0, 13.0])
    nodes = [
        helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["col"]),
        helper.make_node("Squeeze", ["col", "axes"], ["flat"]),
        helper.make_node("Cast", ["flat"], ["idx"], to=TensorProto.INT64),
        helper.make_node("Gather", ["table", "idx"], ["y"], axis=0),
    ]
    inits = [
        table,
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [1]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
    ]
    graph = helper.make_graph(
        nodes,
        "poison",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


class ModelOrigin:
    """A loopback HTTP model server for fetch tests: paths in `files` are served, paths under
    /denied/ answer 403, the rest 404. `files` may be changed while it runs (a model published
    later). With ``tls`` (certificate, key: `devcluster.certs.private_ca`) it speaks https
    on ``host``. Stop it with `close()`."""

    def __init__(
        self,
        files: dict[str, bytes] | None = None,
        *,
        tls: tuple[Path, Path] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        import ssl
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.files: dict[str, bytes] = dict(files or {})
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/denied/"):
                    self.send_error(403, "Forbidden")
                    return
                data = origin.files.get(self.path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            # Handshakes in the handler's thread (not in accept): a client that refuses the
            # certificate cannot stall the server.
            self.httpd.socket = context.wrap_socket(
                self.httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        self.httpd.handle_error = lambda *_: None  # type: ignore[method-assign]
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://{host}:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
