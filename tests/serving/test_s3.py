"""``s3://`` models against a real S3 server (versitygw on loopback): a bundle prefix and a
lone key served; each failure the user must fix ends the start with its cause and the S3
error code (and is not retried); a store that is down at start is waited for."""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from devcluster import s3store
from onnxops_serving.errors import TRANSIENT
from support.serving_harness import Models, Server, spawn, stop


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory, models: Models) -> Iterator[s3store.S3Server]:
    with s3store.running(tmp_path_factory.mktemp("s3")) as server:
        bucket = server.bucket("models")
        shutil.copytree(models.iris, bucket / "iris" / "3")
        shutil.copy(models.bare, bucket / "bare.onnx")
        yield server


def _spawn_s3(tmp: Path, env: dict[str, str], *, wait_ready: bool, **settings: str) -> Server:
    return spawn(tmp, wait_ready=wait_ready, env=env, **settings)


def test_a_bundle_prefix_serves_its_model(
    s3: s3store.S3Server, models: Models, tmp_path: Path
) -> None:
    server = _spawn_s3(tmp_path, s3.env(), wait_ready=True, model_uri="s3://models/iris/3/")
    try:
        meta = httpx.get(f"{server.url}/v2/models/iris").json()
        assert meta["versions"] == ["3"], "model.json came along with the model"
        row = models.iris_x[:1].tolist()
        body = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": row}]}
        reply = httpx.post(f"{server.url}/v2/models/iris/infer", json=body)
        assert reply.status_code == 200, reply.text
    finally:
        stop(server)


def test_a_lone_key_serves(s3: s3store.S3Server, models: Models, tmp_path: Path) -> None:
    sha = hashlib.sha256(models.bare.read_bytes()).hexdigest()
    server = _spawn_s3(
        tmp_path, s3.env(), wait_ready=True,
        model_uri="s3://models/bare.onnx", model_sha256=sha,
    )  # fmt: skip
    stop(server)
    assert server.proc.returncode == 0


def _fails(
    tmp: Path, s3: s3store.S3Server, uri: str, env: dict[str, str], **settings: str
) -> tuple[str, str]:
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "termination-log"
    server = _spawn_s3(
        tmp, env, wait_ready=False, model_uri=uri,
        termination_message_path=str(path), fetch_retries="1", **settings,
    )  # fmt: skip
    try:
        assert server.proc.wait(timeout=60) == 1
    finally:
        stop(server)
    return path.read_text(), server.log()


def test_each_failure_names_its_cause_and_code(s3: s3store.S3Server, tmp_path: Path) -> None:
    env = s3.env()
    cases = [
        ("s3://models/iris/9/", env, "ModelNotFound", "NoSuchKey"),
        ("s3://no-such-bucket/iris/3/", env, "ModelNotFound", "NoSuchBucket"),
        ("s3://models/iris/3/", {**env, "AWS_SECRET_ACCESS_KEY": "wrong"}, "ModelAccessDenied", "SignatureDoesNotMatch"),
        # versitygw answers an unknown key with 404 XAdminUserNotFound (S3: 403 InvalidAccessKeyId)
        ("s3://models/iris/3/", {**env, "AWS_ACCESS_KEY_ID": "NOBODY"}, "ModelAccessDenied", "XAdminUserNotFound"),
    ]  # fmt: skip
    for i, (uri, case_env, cause, code) in enumerate(cases):
        started = time.monotonic()
        message, log = _fails(tmp_path / str(i), s3, uri, case_env)
        assert message == f"{cause}: cannot download {uri.rstrip('/')}/model.onnx: {code}" or (
            message == f"{cause}: cannot download {uri}model.onnx: {code}"
        ), message
        assert "wrong" not in message and s3store.SECRET_KEY not in message + log
        assert time.monotonic() - started < 20, "a 403/404 is not retried"


def test_a_digest_mismatch_is_refused(s3: s3store.S3Server, tmp_path: Path) -> None:
    message, _ = _fails(tmp_path, s3, "s3://models/bare.onnx", s3.env(), model_sha256="0" * 64)
    assert message.startswith("ModelDigestMismatch: sha256 mismatch for bare.onnx")


def test_a_store_down_at_start_is_retried_until_it_answers(
    tmp_path_factory: pytest.TempPathFactory, models: Models, tmp_path: Path
) -> None:
    server = s3store.S3Server(tmp_path_factory.mktemp("s3-late"))
    shutil.copytree(models.iris, server.bucket("models") / "iris")
    starter = threading.Timer(3.0, server.start)  # the store comes up 3 s after the runtime
    try:
        starter.start()
        spawned = time.monotonic()
        runtime = _spawn_s3(
            tmp_path, server.env(), wait_ready=True,
            model_uri="s3://models/iris/", fetch_retries="8",
        )  # fmt: skip
        # Ready (spawn raises if the process gave up), and only after the store came up.
        assert time.monotonic() - spawned >= 3.0
        stop(runtime)
    finally:
        starter.cancel()
        starter.join()
        server.stop()


def test_a_store_down_past_the_retries_says_its_cause_is_transient(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    down = s3store.S3Server(tmp_path_factory.mktemp("s3-down"))  # never started
    message, _ = _fails(tmp_path, down, "s3://models/iris/", down.env())
    assert message.startswith(
        f"ModelFetchFailed: cannot download s3://models/iris/model.onnx ({TRANSIENT}): "
    ), message


def test_a_store_behind_a_private_ca_is_trusted_through_its_bundle(
    tmp_path_factory: pytest.TempPathFactory, models: Models, tmp_path: Path
) -> None:
    with s3store.running(tmp_path_factory.mktemp("s3-tls"), tls=True) as server:
        shutil.copytree(models.iris, server.bucket("models") / "iris")
        assert server.endpoint.startswith("https://")
        runtime = _spawn_s3(tmp_path, server.env(), wait_ready=True, model_uri="s3://models/iris/")
        stop(runtime)
        untrusted = {k: v for k, v in server.env().items() if k != "AWS_CA_BUNDLE"}
        message, _ = _fails(tmp_path / "b", server, "s3://models/iris/", untrusted)
        assert message.startswith("ModelFetchFailed: cannot download s3://models/iris/model.onnx")
        assert "certificate" in message.lower(), message
