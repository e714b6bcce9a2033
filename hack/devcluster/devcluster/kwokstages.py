"""KWOK's stage configuration for the devcluster: upstream's stages, minus the serving pods.

The pod runner is the kubelet of serving pods (a container ``server`` with an
``onnxops-serving`` image) and writes their whole status; KWOK's pod stages (ready, complete,
delete) must leave those pods alone, or two writers would fight over one pod and KWOK would mark
a pod Ready whose model never loaded. Every Pod stage gets one more selector requirement: the
pod has no such container. Other pods (and all nodes) keep KWOK's behaviour.
"""

from __future__ import annotations

from pathlib import Path

from .servingpod import CONTAINER, IMAGE_MARKER

# A jq query (KWOK evaluates selector keys with gojq): the serving container's name, if any.
NOT_A_SERVING_POD = (
    f'    - key: \'.spec.containers[] | select(.name == "{CONTAINER}" and '
    f'(.image | contains("{IMAGE_MARKER}"))) | .name\'\n'
    "      operator: 'DoesNotExist'\n"
)
_ANCHOR = "  selector:\n    matchExpressions:\n"


def without_serving_pods(stages: str) -> str:
    """``stages`` (multi-document YAML) with every Pod stage excluding serving pods."""
    documents = stages.split("\n---")
    out = []
    for doc in documents:
        if "kind: Pod\n" in doc:
            if _ANCHOR not in doc:
                raise ValueError(
                    "a KWOK Pod stage without selector.matchExpressions: update kwokstages.py"
                )
            doc = doc.replace(_ANCHOR, _ANCHOR + NOT_A_SERVING_POD, 1)
        out.append(doc)
    return "\n---".join(out)


def write(upstream: Path, destination: Path) -> Path:
    destination.write_text(without_serving_pods(upstream.read_text()))
    return destination
