"""Every model that cannot load says why: the real serving runtime under the pod runner
writes the cause to its termination message, the pod runner carries it into the pod's
``lastState.terminated.message`` as the kubelet does, and the operator (without Prometheus)
shows it as ``ModelAvailable=False`` with the cause as reason, phase Failed, one Warning per
cause however often the pod restarts; a model that becomes loadable recovers by itself. The
same causes for a ``pvc://`` model (a file missing from the volume, a sha256 mismatch) and an
``https://`` one (404, 403, a certificate no CA of the pod's signed), and a host that does not
resolve (the pods' resolv.conf names a nameserver on loopback where none listens, as the
kubelet's ``--resolv-conf`` would: no query leaves the machine)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from devcluster import processes
from support.deployments import model_deployment
from support.factories import ModelOrigin, doubler_model
from support.operator_kit import Kube, Operator

pytestmark = pytest.mark.cluster

POD_RUNNER_COMMAND = None  # the real serving runtime


@pytest.fixture(scope="module")
def origin() -> Iterator[ModelOrigin]:
    server = ModelOrigin()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def pod_runner_env(https_origins: tuple[Path, ModelOrigin, ModelOrigin]) -> dict[str, str]:
    """The pods trust the private CA of the https origin, as a node image with it would."""
    return {"SSL_CERT_FILE": str(https_origins[0])}


@pytest.fixture(scope="module")
def pod_resolv_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """No DNS server listens on 127.0.0.1:53: every lookup fails at once, on loopback."""
    path = tmp_path_factory.mktemp("dns") / "resolv.conf"
    path.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str]:
    path = tmp_path_factory.mktemp("model") / "model.onnx"
    sha = doubler_model(path)
    return path.read_bytes(), sha


def _config_map(name: str, data: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "binaryData": {"model.onnx": base64.b64encode(data).decode()},
    }


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), {})


def _failed_with(kube: Kube, name: str, reason: str, timeout_s: float = 90) -> dict[str, Any]:
    def said() -> dict[str, Any] | None:
        st = kube.status(name)
        cond = _condition(st, "ModelAvailable")
        return st if cond.get("reason") == reason and st.get("phase") == "Failed" else None

    found: dict[str, Any] = processes.wait_for(
        said, timeout_s=timeout_s, what=f"{name}: Failed with ModelAvailable reason {reason}"
    )
    return found


def _pods(kube: Kube, name: str) -> list[dict[str, Any]]:
    return kube.items("pods", f"onnxops.io/model-deployment={name}")


def _restarts(kube: Kube, name: str) -> int:
    statuses = [c for p in _pods(kube, name) for c in p["status"].get("containerStatuses") or []]
    return max((int(c.get("restartCount", 0)) for c in statuses), default=0)


def _terminated(kube: Kube, name: str) -> dict[str, Any]:
    """The first pod's last (or current) termination, as the pod runner wrote it."""
    ended = _pods(kube, name)[0]["status"]["containerStatuses"][0]
    last = (ended.get("lastState") or {}).get("terminated")
    return dict(last or (ended.get("state") or {}).get("terminated") or {})


def test_each_cause_is_named_in_status_once_and_nothing_else_is_affected(
    kube: Kube, operator: Operator, origin: ModelOrigin, model: tuple[bytes, str]
) -> None:
    data, sha = model
    origin.files["/good/model.onnx"] = data
    dead = f"http://127.0.0.1:{processes.free_port()}/m/model.onnx"  # nothing listens there
    for cm in (_config_map("junk", b"not an onnx model"), _config_map("doubler", data)):
        assert kube.apply(cm).returncode == 0
    cases = {
        "not-found": ({"uri": f"{origin.url}/gone/model.onnx"}, "ModelNotFound", "HTTP 404"),
        "denied": ({"uri": f"{origin.url}/denied/model.onnx"}, "ModelAccessDenied", "HTTP 403"),
        "no-answer": ({"uri": dead}, "ModelFetchFailed", "after 5 attempts (a transient"),
        "tampered": (
            {"uri": "configmap://doubler/model.onnx", "sha256": "0" * 64},
            "ModelDigestMismatch",
            "sha256 mismatch",
        ),
        "junk": ({"uri": "configmap://junk/model.onnx"}, "InvalidModel", "cannot load"),
        "no-file": ({"uri": "file:///nonexistent/model.onnx"}, "ModelNotFound", "does not exist"),
    }
    for name, (spec, _, _) in cases.items():
        assert kube.apply(model_deployment(name, model={**spec, "version": "1"})).returncode == 0
    good = {"uri": f"{origin.url}/good/model.onnx", "sha256": sha, "version": "1"}
    assert kube.apply(model_deployment("good", model=good)).returncode == 0

    for name, (spec, reason, words) in cases.items():
        st = _failed_with(kube, name, reason)
        available = _condition(st, "ModelAvailable")
        assert available["status"] == "False"
        assert spec["uri"] in available["message"] and words in available["message"], available
        ready = _condition(st, "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "ModelLoadFailed")
        # The pod runner carried the runtime's message as the kubelet does.
        terminated = _terminated(kube, name)
        assert terminated["message"].startswith(f"{reason}: "), terminated

    # Restarts go on (back-off), the Warning is said once per cause.
    processes.wait_for(
        lambda: _restarts(kube, "not-found") >= 3, timeout_s=120, what="not-found restarts"
    )
    for name, (_, reason, _) in cases.items():
        warnings = [e for e in kube.events(name) if e["reason"] == reason]
        assert len(warnings) == 1 and warnings[0]["type"] == "Warning", (name, warnings)
        assert _condition(kube.status(name), "ModelAvailable")["reason"] == reason
    good_status = kube.status("good")
    assert good_status["phase"] == "Ready" and good_status["ready"] == "1/1"
    assert _condition(good_status, "ModelAvailable")["reason"] == "ModelLoaded"


def test_a_model_that_appears_later_recovers_by_itself(
    kube: Kube, operator: Operator, origin: ModelOrigin, model: tuple[bytes, str]
) -> None:
    data, _ = model
    uri = f"{origin.url}/late/model.onnx"
    assert kube.apply(model_deployment("late", model={"uri": uri, "version": "1"})).returncode == 0
    _failed_with(kube, "late", "ModelNotFound")
    origin.files["/late/model.onnx"] = data  # published: the next restart loads it
    processes.wait_for(
        lambda: kube.status("late").get("phase") == "Ready",
        timeout_s=120,
        what="late Ready once the model is there",
    )
    available = _condition(kube.status("late"), "ModelAvailable")
    assert (available["status"], available["reason"]) == ("True", "ModelLoaded")
    loaded = [e for e in kube.events("late") if e["reason"] == "ModelLoaded"]
    assert len(loaded) == 1 and loaded[0]["type"] == "Normal"


@pytest.fixture(scope="module")
def claim(
    kube: Kube, model: tuple[bytes, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A PVC ``models`` bound to a hostPath PV that holds the doubler as doubler.onnx."""
    store = tmp_path_factory.mktemp("pv")
    (store / "doubler.onnx").write_bytes(model[0])
    pv_name = f"models-{kube.namespace}"
    pv = {
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv_name},
        "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadOnlyMany"],
            "storageClassName": "", "hostPath": {"path": str(store)},
        },
    }  # fmt: skip
    pvc = {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "models"},
        "spec": {
            "accessModes": ["ReadOnlyMany"], "storageClassName": "", "volumeName": pv_name,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }  # fmt: skip
    assert kube.apply(pv).returncode == 0 and kube.apply(pvc).returncode == 0
    try:
        processes.wait_for(
            lambda: ((kube.get("pvc", "models") or {}).get("status") or {}).get("phase") == "Bound",
            timeout_s=60,
            what="the PVC bound",
        )
        yield "models"
    finally:
        kube.cluster.run_kubectl("delete", "pv", pv_name, "--wait=false", check=False)


# (name, which source, the path on it, spec.model.sha256, the reason, words of its message)
SOURCES = [
    ("pvc-no-file", "pvc", "nope.onnx", None, "ModelNotFound", "does not exist"),
    ("pvc-tampered", "pvc", "doubler.onnx", "0" * 64, "ModelDigestMismatch", "sha256 mismatch"),
    ("https-not-found", "https", "/gone/model.onnx", None, "ModelNotFound", "HTTP 404"),
    ("https-denied", "https", "/denied/model.onnx", None, "ModelAccessDenied", "HTTP 403"),
    (
        "https-untrusted", "untrusted", "/m/model.onnx", None, "ModelFetchFailed",
        "TLS certificate is not trusted",
    ),
    ("no-such-host", "dns", "/m/model.onnx", None, "ModelFetchFailed", "name resolution"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "source", "path", "sha", "reason", "words"), SOURCES, ids=[c[0] for c in SOURCES]
)
def test_pvc_and_https_causes_are_named_once(
    kube: Kube,
    operator: Operator,
    claim: str,
    https_origins: tuple[Path, ModelOrigin, ModelOrigin],
    name: str,
    source: str,
    path: str,
    sha: str | None,
    reason: str,
    words: str,
) -> None:
    _, trusted, untrusted = https_origins
    uri = {
        "pvc": f"pvc://{claim}/{path}",
        "https": trusted.url + path,
        "untrusted": untrusted.url + path,
        "dns": "http://models.example.com" + path,
    }[source]
    spec = {"uri": uri, "version": "1", **({"sha256": sha} if sha else {})}
    assert kube.apply(model_deployment(name, model=spec)).returncode == 0
    try:
        st = _failed_with(kube, name, reason, timeout_s=180)
        available = _condition(st, "ModelAvailable")
        assert available["status"] == "False", available
        assert f"cannot load {uri}: " in available["message"] and words in available["message"]
        assert _condition(st, "Ready")["reason"] == "ModelLoadFailed"
        terminated = _terminated(kube, name)
        assert terminated["message"].startswith(f"{reason}: "), terminated
        processes.wait_for(
            lambda: _restarts(kube, name) >= 2, timeout_s=120, what=f"{name} restarted twice"
        )
        warnings = [e for e in kube.events(name) if e["reason"] == reason]
        assert len(warnings) == 1 and warnings[0]["type"] == "Warning", warnings
        assert _condition(kube.status(name), "ModelAvailable")["reason"] == reason
        # A failed lookup may pass by itself (EAI_AGAIN, a resolver restarting); the rest not.
        transient = "transient" in json.dumps(kube.status(name))
        assert transient == (source == "dns"), kube.status(name)
    finally:  # its restarts would slow the cases after it
        kube.run("delete", "mdep", name, "--wait=false", check=False)
