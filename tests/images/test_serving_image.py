"""The serving image started as its Deployment runs it: non-root, read-only root filesystem,
all capabilities dropped, the model mounted read-only, emptyDirs for the cache and /tmp.
It must become ready, answer an OIP v2 inference with the model's own answers, export
/metrics, and on SIGTERM turn not-ready, drain and exit 0."""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from engine import Engine, Images
from support.serving_harness import Models, free_port, metric

pytestmark = pytest.mark.images

# The Deployment's SIGTERM delay is 5 s (operator/onnxops/build.py); shorter keeps the test fast
# and still leaves a not-ready window to observe.
SHUTDOWN_DELAY_S = 3


def _readable_copy(bundle: Path, into: Path) -> Path:
    """The bundle where the image's non-root user can read it (pytest's folders are 0700)."""
    copy = into / "model"
    shutil.copytree(bundle, copy)
    copy.chmod(0o755)
    for file in copy.iterdir():
        file.chmod(0o644)
    return copy


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None


def _wait(engine: Engine, name: str, what: str, check: object, timeout_s: float = 90) -> None:
    """Poll `check` while the container runs; fail with its log if it stops or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        running = engine("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
        if running != "true":
            break
        time.sleep(0.2)
    logs = engine("logs", name, check=False)
    raise AssertionError(f"{what}: not seen in {timeout_s}s\n{logs.stdout}{logs.stderr}")


def test_serving_image_runs_as_its_deployment_runs_it(
    engine: Engine,
    images: Images,
    image_models: Models,
    container_names: list[str],
    tmp_path: Path,
) -> None:
    model = _readable_copy(image_models.iris, tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    name = f"onnxops-serving-test-{uuid.uuid4().hex[:8]}"
    container_names.append(name)
    engine(
        "run", "--detach", "--name", name,
        *engine.limits(),
        # Host networking: the test reaches it on loopback without a CNI network.
        "--network", "host",
        "--read-only", *(["--read-only-tmpfs=false"] if engine.name == "podman" else []),
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--volume", f"{model}:/models:ro",
        # The Deployment's emptyDirs (cache and /tmp); pods get them writable through fsGroup.
        "--tmpfs", "/var/cache/onnxops:rw,mode=1777", "--tmpfs", "/tmp:rw,mode=1777",
        "--env", "ONNXOPS_MODEL_URI=/models", "--env", "ONNXOPS_HOST=127.0.0.1",
        "--env", f"ONNXOPS_PORT={port}", "--env", f"ONNXOPS_SHUTDOWN_DELAY_S={SHUTDOWN_DELAY_S}",
        images.serving,
    )  # fmt: skip
    _wait(engine, name, "readiness", lambda: _status(url + "/v2/health/ready") == 200)

    # The image's own USER, not root; the root filesystem refuses writes.
    assert engine("exec", name, "id", "-u").stdout.strip() == "10001"
    wrote = engine("exec", name, "touch", "/opt/venv/x", check=False)
    assert wrote.returncode != 0 and "Read-only file system" in wrote.stderr

    x = image_models.iris_x[::10]
    body = {
        "inputs": [{"name": "X", "shape": list(x.shape), "datatype": "FP32", "data": x.tolist()}]
    }
    answer = httpx.post(url + "/v2/models/iris/infer", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    assert outputs["label"]["data"] == image_models.iris_labels[::10].tolist()
    np.testing.assert_allclose(
        np.array(outputs["probabilities"]["data"]).reshape(-1, 3),
        image_models.iris_proba[::10],
        rtol=1e-5,
    )
    if engine.name == "podman":
        # The image's HEALTHCHECK (for plain `docker run`; the kubelet ignores it), run once.
        assert engine("healthcheck", "run", name, check=False).returncode == 0
    metrics = httpx.get(url + "/metrics", timeout=5).text
    assert metric(metrics, "onnxops_requests_total", endpoint="infer", code="200") == 1

    # SIGTERM as the kubelet sends it: not ready at once (Services stop routing), still live,
    # then a drained exit with status 0 (137 would mean the engine had to SIGKILL it).
    engine("kill", "--signal", "TERM", name)
    _wait(engine, name, "not-ready after SIGTERM", lambda: _status(url + "/v2/health/ready") == 503)
    assert _status(url + "/v2/health/live") == 200
    exit_code = engine("wait", name, timeout=60).stdout.strip()
    assert exit_code == "0", engine("logs", name, check=False).stderr
