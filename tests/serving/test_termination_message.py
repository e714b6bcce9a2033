"""Why the runtime could not start, in its termination message: ``Cause: message`` at
``ONNXOPS_TERMINATION_MESSAGE_PATH`` (the kubelet copies it into the pod's status, and the
operator reads the cause back), one cause per kind of failure, for every source."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.factories import ModelOrigin
from support.serving_harness import REPO, Models, _env, free_port, spawn, stop


def _termination(tmp: Path, **settings: str) -> tuple[int, str, str]:
    """(exit code, termination message, log) of a start that must fail."""
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "termination-log"
    server = spawn(
        tmp, wait_ready=False, termination_message_path=str(path), fetch_retries="1", **settings
    )
    try:
        code = server.proc.wait(timeout=60)
    finally:
        stop(server)
    return code, path.read_text() if path.exists() else "", server.log()


@pytest.fixture(scope="module")
def origin(models: Models) -> Iterator[ModelOrigin]:
    # /ok/ serves the iris bundle; /denied/ 403s, the rest 404s.
    server = ModelOrigin({f"/ok/{f.name}": f.read_bytes() for f in models.iris.iterdir()})
    try:
        yield server
    finally:
        server.close()


def _bundle_with(models: Models, tmp: Path, **meta: object) -> Path:
    bundle = tmp / "bundle"
    shutil.copytree(models.iris, bundle)
    current = json.loads((bundle / "model.json").read_text())
    (bundle / "model.json").write_text(json.dumps({**current, **meta}))
    return bundle


def test_a_missing_local_model_is_not_found(tmp_path: Path) -> None:
    code, message, log = _termination(tmp_path, model_uri=str(tmp_path / "none" / "model.onnx"))
    assert code == 1
    assert message == f"ModelNotFound: model file {tmp_path}/none/model.onnx does not exist"
    assert message in log, "the log says the same, with the cause"


def test_other_bytes_than_the_spec_names_are_a_digest_mismatch(
    models: Models, tmp_path: Path
) -> None:
    code, message, _ = _termination(tmp_path, model_uri=str(models.iris), model_sha256="0" * 64)
    assert code == 1 and message.startswith("ModelDigestMismatch: sha256 mismatch for model.onnx")


def test_a_file_that_is_no_onnx_model_is_invalid(tmp_path: Path) -> None:
    junk = tmp_path / "model.onnx"
    junk.write_bytes(b"this is not a protobuf")
    code, message, _ = _termination(tmp_path, model_uri=str(junk))
    assert code == 1 and message.startswith(f"InvalidModel: ONNX Runtime cannot load {junk}")


@pytest.mark.parametrize(
    ("meta", "words"),
    [
        ({"input": {"name": "features", "shape": [None, 4]}}, "names input 'features'"),
        ({"input": {"name": "X", "shape": [None, 7]}}, "has 7 features, the model takes 4"),
        ({"feature_names": ["a", "b"]}, "lists 2 feature_names for an input of 4 features"),
    ],
)
def test_metadata_that_describes_another_input_is_a_schema_mismatch(
    models: Models, tmp_path: Path, meta: dict[str, object], words: str
) -> None:
    bundle = _bundle_with(models, tmp_path, **meta)
    code, message, _ = _termination(tmp_path, model_uri=str(bundle))
    assert code == 1 and message.startswith("InputSchemaMismatch: ") and words in message


def test_a_good_metadata_loads_and_writes_no_message(models: Models, tmp_path: Path) -> None:
    path = tmp_path / "termination-log"
    server = spawn(tmp_path, model_uri=str(models.iris), termination_message_path=str(path))
    stop(server)
    assert server.proc.returncode == 0 and not path.exists()


def test_http_answers_name_their_cause(origin: ModelOrigin, tmp_path: Path) -> None:
    _, missing, _ = _termination(tmp_path / "a", model_uri=f"{origin.url}/gone/model.onnx")
    assert (
        missing
        == f"ModelNotFound: cannot download {origin.url}/gone/model.onnx: HTTP 404 Not Found"
    )
    _, denied, log = _termination(tmp_path / "b", model_uri=f"{origin.url}/denied/model.onnx")
    assert denied.startswith("ModelAccessDenied: ") and "HTTP 403" in denied
    assert "retry" not in log, "a 403 is not retried"


def test_no_answer_is_a_fetch_failure_after_the_retries(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/m/model.onnx"  # nothing listens there
    code, message, log = _termination(tmp_path, model_uri=url)
    assert code == 1 and message.startswith(f"ModelFetchFailed: cannot download {url} after 2")
    assert "retry 1" in log


def test_a_host_that_does_not_resolve_is_a_fetch_failure(tmp_path: Path) -> None:
    """In a mount namespace of its own whose resolv.conf names 127.0.0.1 (where no DNS server
    listens): name resolution fails for real and no query leaves the machine."""
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    message_path = tmp_path / "termination-log"
    settings = {
        "model_uri": "http://models.example.com/iris/model.onnx",
        "termination_message_path": str(message_path),
        "fetch_retries": "1",
        "model_cache_dir": str(tmp_path / "cache"),
        "port": str(free_port()),
        "grpc_port": "0",
    }
    script = f"mount --bind {resolv} /etc/resolv.conf && exec {sys.executable} -m onnxops_serving"
    done = subprocess.run(
        ["unshare", "--mount", "--", "sh", "-c", script],
        env=_env(settings),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    message = message_path.read_text()
    assert message.startswith("ModelFetchFailed: cannot download http://models.example.com/")
    assert "name resolution" in message or "Name or service not known" in message
