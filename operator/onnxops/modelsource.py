"""Whether a model's source can be read before pods are made to load it: the pvc:// or
configmap:// object it names, or an http(s) URI that answers.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from onnxops.k8s import get


def model_source_missing(uri: str, namespace: str) -> str | None:
    """For pvc:// and configmap:// model URIs: why the referenced object is unusable, or None."""
    scheme, _, rest = uri.partition("://")
    source, _, key = rest.partition("/")
    if scheme == "pvc":
        if get("v1", "PersistentVolumeClaim", namespace, source) is None:
            return f"PersistentVolumeClaim {namespace}/{source} not found"
    elif scheme == "configmap":
        cm = get("v1", "ConfigMap", namespace, source)
        if cm is None:
            return f"ConfigMap {namespace}/{source} not found"
        if key not in (cm.get("data") or {}) and key not in (cm.get("binaryData") or {}):
            return f"ConfigMap {namespace}/{source} has no key {key!r}"
    return None


def probe_http(uri: str, timeout: float) -> str | None:
    """HEAD an http(s) model URI; the reason it is unreachable, or None when it answers < 400."""
    req = urllib.request.Request(uri, method="HEAD")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"{uri}: {getattr(exc, 'reason', exc)}"
    return None if status < 400 else f"{uri}: HTTP {status}"
