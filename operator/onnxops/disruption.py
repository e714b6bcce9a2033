"""The disruption hints on a model's serving pods (`karpenter.sh/do-not-disrupt: "true"`,
`cluster-autoscaler.kubernetes.io/safe-to-evict: "false"`): one rule, `protected`, for heal and
the rollout cycle, which both write it onto the live pods (`hint`), so neither takes off what
the other put on. Otherwise pods are evictable: the PodDisruptionBudget guards availability.
"""

from __future__ import annotations

from collections.abc import Sequence

from onnxops import k8s, podapi
from onnxops.api import ModelDeployment
from onnxops.monitor.pods import DO_NOT_DISRUPT, SAFE_TO_EVICT, PodFacts
from onnxops.reasons import HealResult
from onnxops.rollout import plan

# A remediation record still in flight (heal's guardrails.IN_FLIGHT; heal is not imported here).
_IN_FLIGHT = (HealResult.PENDING, HealResult.IN_PROGRESS)


def resizing(md: ModelDeployment) -> bool:
    """An in-place resize is in flight (its record Pending or InProgress): a pod evicted now
    would lose the resize and start on the template's resources."""
    return any(r.action == "resize" and r.result in _IN_FLIGHT for r in md.status.remediations)


def analysing(md: ModelDeployment) -> bool:
    """A rollout step is in progress (Progressing, Paused or Inconclusive, before promotion):
    a canary or stable pod evicted now would restart the measurement's pods mid-judgement.
    Not while promoting (nothing is measured; the stable Deployment replaces its pods anyway),
    and not once promoted or aborted."""
    r = md.status.rollout
    return md.spec.rollout is not None and plan.active(r) and r is not None and r.step < r.steps


def protected(md: ModelDeployment) -> bool:
    """Whether the model's serving pods (stable and canary alike) should carry the hints now."""
    return resizing(md) or analysing(md)


def hint(namespace: str, pods: Sequence[PodFacts], *, on: bool) -> list[str]:
    """Ask cluster autoscalers not to disrupt the live pods (`on`), or let them again; only the
    pods whose hint differs are patched (the pods themselves, never the template, which would
    roll them). Returns the pods changed."""
    value: dict[str, str | None] = (
        {DO_NOT_DISRUPT: "true", SAFE_TO_EVICT: "false"}
        if on
        else {DO_NOT_DISRUPT: None, SAFE_TO_EVICT: None}
    )
    changed = []
    for pod in pods:
        if pod.deleting or pod.disruption_hint == on:
            continue
        try:
            podapi.annotate_pod(namespace, pod.name, value)
        except k8s.ApiError as exc:
            if exc.status >= 500:
                raise
            continue  # gone meanwhile: nothing to protect
        changed.append(pod.name)
    return changed
