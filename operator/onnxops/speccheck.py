"""Checks of a spec that its schema cannot express: map keys (nodeSelector) and taint keys
must be valid label keys on a pod. Pure; the reconcile calls it before judging placement."""

from __future__ import annotations

import re

from onnxops.api import LABEL_VALUE_PATTERN, ModelDeployment

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_QUALIFIED_NAME = re.compile(rf"^({_SUBDOMAIN}/)?{_NAME}$")


def _qualified_name(key: str) -> bool:
    """A label or taint key as the apiserver validates it: [prefix/]name."""
    prefix, _, _ = key.rpartition("/")
    return len(prefix) <= 253 and _QUALIFIED_NAME.fullmatch(key) is not None


def invalid_labels(md: ModelDeployment) -> str | None:
    """Why the spec's nodeSelector or toleration keys cannot go on a pod, or None.

    The schema cannot check map keys; judged here, such a key would otherwise match no
    node and read as a lack of capacity, retried forever."""
    target = md.spec.target
    bad = [f"nodeSelector key {k!r}" for k in target.node_selector if not _qualified_name(k)]
    bad += [
        f"nodeSelector value {v!r}"
        for v in target.node_selector.values()
        if len(v) > 63 or re.fullmatch(LABEL_VALUE_PATTERN, v) is None
    ]
    bad += [
        f"toleration key {t.key!r}"
        for t in target.tolerations
        if t.key is not None and not _qualified_name(t.key)
    ]
    if not bad:
        return None
    return f"{', '.join(bad)}: not valid on a pod (keys [prefix/]name, names and values up to 63 characters)"
