"""A container's environment as the kubelet would build it: ``env``, ``envFrom``, ``valueFrom``
and ``$(VAR)`` expansion. Pure, apart from the ``lookup`` callback that reads ConfigMaps and
Secrets.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

# (kind, namespace, name) -> the object's data as strings (Secrets decoded), or None if absent.
Lookup = Callable[[str, str, str], Mapping[str, str] | None]

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_FIELD_KEY = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")
_SUFFIX = {
    "m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


class EnvError(ValueError):
    """The environment cannot be built (the kubelet reports CreateContainerConfigError)."""


def quantity(text: str) -> float:
    """A Kubernetes resource quantity (``250m``, ``1.5Gi``, ``2e3``) as a number."""
    match = re.fullmatch(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)", str(text).strip())
    if not match or match.group(2) not in _SUFFIX:
        raise EnvError(f"bad quantity {text!r}")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def expand(value: str, env: Mapping[str, str]) -> str:
    """Expand ``$(NAME)`` from earlier variables; ``$$`` is a literal ``$``; unknown refs stay."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REF.sub(sub, value)


def _field(pod: Mapping[str, Any], path: str) -> str:
    keyed = _FIELD_KEY.match(path)
    if keyed:
        return str(pod["metadata"].get(keyed.group(1), {}).get(keyed.group(2), ""))
    simple = {
        "metadata.name": pod["metadata"].get("name"),
        "metadata.namespace": pod["metadata"].get("namespace"),
        "metadata.uid": pod["metadata"].get("uid"),
        "spec.nodeName": pod["spec"].get("nodeName"),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName"),
        "status.podIP": pod.get("status", {}).get("podIP"),
        "status.hostIP": pod.get("status", {}).get("hostIP"),
    }
    if path not in simple:
        raise EnvError(f"unsupported fieldRef {path!r}")
    return str(simple[path] or "")


def _resource(container: Mapping[str, Any], ref: Mapping[str, Any]) -> str:
    kind, _, name = str(ref["resource"]).partition(".")
    resources = container.get("resources", {})
    raw = resources.get(kind, {}).get(name)
    if raw is None and kind == "limits":
        # An unset limit means "the node's capacity": here, the machine the process runs on.
        amount = (
            float(os.cpu_count() or 1)
            if name == "cpu"
            else float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        )
    else:
        amount = quantity(raw) if raw is not None else 0.0
    divisor = quantity(ref.get("divisor") or "1")
    return str(math.ceil(amount / divisor))


def _source(kind: str, ref: Mapping[str, Any], namespace: str, lookup: Lookup) -> Mapping[str, str]:
    data = lookup(kind, namespace, ref["name"])
    if data is None:
        if ref.get("optional"):
            return {}
        raise EnvError(f"{kind} {namespace}/{ref['name']} not found")
    return data


def _value_from(
    pod: Mapping[str, Any], container: Mapping[str, Any], source: Mapping[str, Any], lookup: Lookup
) -> str | None:
    namespace = pod["metadata"]["namespace"]
    if "fieldRef" in source:
        return _field(pod, source["fieldRef"]["fieldPath"])
    if "resourceFieldRef" in source:
        return _resource(container, source["resourceFieldRef"])
    for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
        if key in source:
            ref = source[key]
            data = _source(kind, ref, namespace, lookup)
            if ref["key"] not in data:
                if ref.get("optional"):
                    return None
                raise EnvError(f"{kind} {namespace}/{ref['name']} has no key {ref['key']!r}")
            return data[ref["key"]]
    raise EnvError(f"unsupported valueFrom {sorted(source)}")


def container_env(
    pod: Mapping[str, Any], container: Mapping[str, Any], lookup: Lookup
) -> dict[str, str]:
    """The variables a container in ``pod`` would see, in the kubelet's order of precedence."""
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in source:
                for name, data in _source(kind, source[key], namespace, lookup).items():
                    env[prefix + name] = data
    for var in container.get("env", []):
        if "valueFrom" in var:
            value = _value_from(pod, container, var["valueFrom"], lookup)
            if value is not None:
                env[var["name"]] = value
        else:
            env[var["name"]] = expand(var.get("value", ""), env)
    return env
