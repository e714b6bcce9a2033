"""Which pods are the pod runner's (a ``server`` container with an ``onnxops-serving`` image),
and a serving pod's identity: its addresses and its scrape-target labels. Pure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from .prometheus import label_name

CONTAINER = "server"
IMAGE_MARKER = "onnxops-serving"


def serving_container(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """The pod's onnxops serving container, if it has one."""
    for container in pod.get("spec", {}).get("containers", []):
        if container.get("name") == CONTAINER and IMAGE_MARKER in container.get("image", ""):
            return dict(container)
    return None


def wants_process(pod: Mapping[str, Any]) -> bool:
    """Is this a serving pod bound to a node and not being deleted (the runner's to run)?"""
    return (
        bool(pod.get("spec", {}).get("nodeName"))
        and not pod["metadata"].get("deletionTimestamp")
        and serving_container(pod) is not None
    )


def target_labels(pod: Mapping[str, Any]) -> dict[str, str]:
    """Scrape-target labels: pod labels (sanitized like ``labelmap``) + namespace/pod/container."""
    labels = {label_name(k): str(v) for k, v in pod["metadata"].get("labels", {}).items()}
    labels.update(
        namespace=pod["metadata"]["namespace"],
        pod=pod["metadata"]["name"],
        container=CONTAINER,
        node=pod["spec"].get("nodeName", ""),
    )
    return labels


def pod_ip(uid: str) -> str:
    """A stable address per pod outside KWOK's pod CIDR; EndpointSlices refuse loopback ones."""
    digest = hashlib.sha256(uid.encode()).digest()
    return f"10.{128 + digest[0] % 64}.{digest[1]}.{1 + digest[2] % 254}"


# `loopback_of` as the serving runtime's prefix rewrite (ONNXOPS_MIRROR_ADDRESS_REWRITE): a
# process mirroring to another pod's IP (from its EndpointSlice) reaches it where it listens.
# The local cluster's stand-in for pod routing; a real cluster routes pod IPs itself.
POD_ADDRESS_REWRITE = "10.=127."


def loopback_of(pod_ip: str) -> str:
    """The loopback address a pod's processes listen on: its pod IP moved into 127.0.0.0/8
    (all of it is local). Every pod has an address of its own, so its container ports are
    its own as in a pod's network namespace: no two pods can ever want the same socket, and
    no port is picked free and then taken by someone else before the process binds it."""
    return "127." + pod_ip.split(".", 1)[1]
