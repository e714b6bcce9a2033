"""Model fetch: local and HTTP sources, retries on transient errors, sha256 refusal."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from support.factories import ModelOrigin
from support.serving_harness import Models, spawn, stop


def _exit_message(tmp: Path, **settings: str) -> tuple[int, str]:
    server = spawn(tmp, wait_ready=False, **settings)
    try:
        code = server.proc.wait(timeout=30)
    finally:
        stop(server)
    return code, server.log()


def test_sha256_mismatch_refuses_to_start(models: Models, tmp_path: Path) -> None:
    code, log = _exit_message(tmp_path, model_uri=str(models.iris), model_sha256="0" * 64)
    assert code != 0
    assert "sha256 mismatch" in log and "ONNXOPS_MODEL_SHA256" in log
    assert "Traceback" not in log


def test_tampered_bundle_refuses_to_start(models: Models, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(models.iris, bundle)
    meta = json.loads((bundle / "model.json").read_text())
    meta["files"]["model.onnx"]["sha256"] = "f" * 64
    (bundle / "model.json").write_text(json.dumps(meta))
    code, log = _exit_message(tmp_path, model_uri=str(bundle / "model.onnx"))
    assert code != 0 and "model.json says ffff" in log


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("/no/such/model.onnx", "does not exist"),
        ("gs://bucket/model.onnx", "unsupported model URI"),
    ],
)
def test_unavailable_model_exits_with_a_clear_message(tmp_path: Path, uri: str, words: str) -> None:
    code, log = _exit_message(tmp_path, model_uri=uri)
    assert code != 0 and words in log and "Traceback" not in log


class _Origin:
    """A local HTTP server over a bundle dir whose first model download hangs, then 503s."""

    def __init__(self, root: Path) -> None:
        self.first_hit = threading.Event()
        self.release = threading.Event()
        self.hits: list[str] = []
        origin = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

            def do_GET(self) -> None:
                origin.hits.append(self.path)
                if self.path == "/iris/3/model.onnx" and not origin.first_hit.is_set():
                    origin.first_hit.set()
                    origin.release.wait(20)
                    self.send_error(503, "warming up")
                    return
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def origin(models: Models, tmp_path: Path) -> Iterator[_Origin]:
    root = tmp_path / "www"
    shutil.copytree(models.iris, root / "iris" / "3")
    server = _Origin(root)
    try:
        yield server
    finally:
        server.close()


def test_http_fetch_retries_a_transient_503(
    origin: _Origin, models: Models, tmp_path: Path
) -> None:
    server = spawn(tmp_path, wait_ready=False, model_uri=origin.url + "/iris/3/model.onnx")
    try:
        assert origin.first_hit.wait(30), server.log()
        # Live while the model is still downloading, not ready.
        deadline = time.monotonic() + 30
        while True:
            try:
                live = httpx.get(server.url + "/v2/health/live")
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.05)
        assert live.status_code == 200
        assert httpx.get(server.url + "/v2/health/ready").status_code == 503
        origin.release.set()
        deadline = time.monotonic() + 30
        while httpx.get(server.url + "/v2/health/ready").status_code != 200:
            assert server.proc.poll() is None and time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        assert origin.hits.count("/iris/3/model.onnx") == 2
        assert "/iris/3/model.json" in origin.hits
        out = httpx.post(
            server.url + "/predict", json={"features": models.iris_x[:3].tolist()}
        ).json()
        assert out["model_name"] == "iris" and out["predictions"] == models.iris_labels[:3].tolist()
    finally:
        stop(server)


def test_http_404_exits_with_a_clear_message(origin: _Origin, tmp_path: Path) -> None:
    code, log = _exit_message(tmp_path, model_uri=origin.url + "/nothing/model.onnx")
    assert code != 0 and "HTTP 404" in log


@pytest.mark.parametrize(
    ("origin_of", "path", "message"),
    [
        ("trusted", "/gone/model.onnx", "ModelNotFound: cannot download {url}: HTTP 404"),
        ("trusted", "/denied/model.onnx", "ModelAccessDenied: cannot download {url}: HTTP 403"),
        (
            "untrusted",
            "/any/model.onnx",
            "ModelFetchFailed: cannot download {url}: the server's TLS certificate is not "
            "trusted (unable to get local issuer certificate); not retried",
        ),
    ],
)
def test_https_failures_name_their_cause(
    https_origins: tuple[Path, ModelOrigin, ModelOrigin],
    tmp_path: Path,
    origin_of: str,
    path: str,
    message: str,
) -> None:
    ca, trusted, untrusted = https_origins
    url = (trusted if origin_of == "trusted" else untrusted).url + path
    written = tmp_path / "termination-log"
    started = time.monotonic()
    server = spawn(
        tmp_path, wait_ready=False, env={"SSL_CERT_FILE": str(ca)}, model_uri=url,
        termination_message_path=str(written), fetch_retries="4",
    )  # fmt: skip
    try:
        assert server.proc.wait(timeout=30) == 1, server.log()
    finally:
        stop(server)
    assert written.read_text().startswith(message.format(url=url)), written.read_text()
    assert time.monotonic() - started < 15, "none of these is retried (4 retries: 6 s of waits)"
