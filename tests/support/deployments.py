"""The one ModelDeployment builder of every suite and of bench/, with keyword overrides, and
the presets the watch and heal loop tests start from (built on it)."""

from __future__ import annotations

from typing import Any

# Monitoring fast enough for a test to see a fault within seconds.
FAST = {"intervalSeconds": 5, "failureThreshold": 2, "unknownThreshold": 2}
# A running pod whose memory heal is an in-place resize: the serving runtime's working set once
# loaded (~44 MiB) is over 30% of a 96Mi limit (a memoryUtilization fault at this threshold),
# and under it once raised to 196Mi (max(96Mi x 1.5, 96Mi + 100Mi)). Not an OOM-looping pod:
# that one's memory is rolled out (the kubelet resizes only running containers).
MEMORY_WATCHED = {"memoryUtilization": 0.3}
MEMORY_TIGHT = {"requests": {"memory": "16Mi"}, "limits": {"memory": "96Mi"}}


def model_deployment(
    name: str,
    *,
    namespace: str | None = None,
    metadata: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A ModelDeployment ``name`` whose ``spec`` is ``model`` (by default a model at
    models.example.com, version 1) and then ``spec``'s keys, each replacing the default;
    ``metadata`` adds to name and namespace (a uid, a generation: an object as read back), and
    ``status`` is set as given."""
    body: dict[str, Any] = {
        "model": {"uri": f"https://models.example.com/{name}/model.onnx", "version": "1"}
    }
    body.update(spec)
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta.update(metadata or {})
    out: dict[str, Any] = {
        "apiVersion": "onnxops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": meta,
        "spec": body,
    }
    if status is not None:
        out["status"] = status
    return out


def watched_deployment(name: str, uri: str, **monitoring: Any) -> dict[str, Any]:
    """The watch tests' ModelDeployment: model ``name`` from ``uri`` in the cloud pool, fast
    monitoring (``monitoring`` over `FAST`), healing off (that is the heal tests' part)."""
    return model_deployment(
        name,
        model={"uri": uri, "name": name},
        target={"pool": "cloud"},
        monitoring={**FAST, **monitoring},
        remediation={"mode": "off"},
    )


def healing_deployment(
    name: str, uri: str, *, thresholds: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    """The monitor tests' ModelDeployment (fast monitoring, no anomaly detection) with
    remediation at its defaults unless ``spec`` says otherwise (the heal tests)."""
    extra = {"thresholds": thresholds} if thresholds else {}
    body = watched_deployment(name, uri, anomaly={"enabled": False}, **extra)
    del body["spec"]["remediation"]  # the watch tests turn healing off
    body["spec"].update(spec)
    return body
