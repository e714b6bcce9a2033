"""What a rollout asks of the children: which model the stable Deployment runs, whether a
canary runs and with how many replicas, and whether it serves users or only the mirror. Pure.

A weight is a replica ratio behind the one Service: canary ceil(weight x replicas / 100),
stable the rest, never fewer than one stable pod before promotion (Argo Rollouts' basic
canary). In a shadow step the canary's pods carry `onnxops.io/serving: "false"` and the
Service selects `onnxops.io/serving: "true"`, so they get mirrored requests only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from onnxops.api import ModelDeploymentSpec, ModelSource, RolloutStatus
from onnxops.reasons import RolloutPhase

TRACK_LABEL = "onnxops.io/track"
"""Pod label: `stable` or `canary` (stable pods carry it only when spec.rollout is set)."""
SERVING_LABEL = "onnxops.io/serving"
"""Pod label: "true" on pods that answer users; "false" on a canary in a shadow step."""
STABLE, CANARY = "stable", "canary"
ACTION_ANNOTATION = "onnxops.io/rollout-action"
"""`<promote|abort|retry>/<RFC 3339 time>`: acted on once per distinct value."""
ACTIONS = ("promote", "abort", "retry")
MIRROR_KEY = "mirror.json"
MIRROR_DIR = "/etc/onnxops/mirror"
MIRROR_ENV = "ONNXOPS_MIRROR_CONFIG"

ACTIVE = frozenset({RolloutPhase.PROGRESSING, RolloutPhase.PAUSED, RolloutPhase.INCONCLUSIVE})


def canary_name(name: str) -> str:
    return f"{name}-canary"


def mirror_name(name: str) -> str:
    return f"{name}-mirror"


def same_model(a: ModelSource | None, b: ModelSource | None) -> bool:
    """Whether two model sources name the same model: uri, sha256, version and variants
    (a change of any of them is a new model to roll out; name or storage are not)."""
    if a is None or b is None:
        return a is b
    return (a.uri, a.sha256, a.version, a.variants) == (b.uri, b.sha256, b.version, b.variants)


def active(r: RolloutStatus | None) -> bool:
    """Whether a candidate is being rolled out (a canary Deployment runs)."""
    return r is not None and r.phase in ACTIVE and r.candidate is not None


def split(weight: int, replicas: int) -> tuple[int, int]:
    """(stable, canary) replicas for a weight step over `replicas` serving pods."""
    canary = math.ceil(weight * replicas / 100) if replicas > 0 else 0
    return max(1, replicas - canary), canary


def effective_weight(weight: int, replicas: int) -> int:
    """The percent of serving pods the canary gets in fact (one replica gives 50%)."""
    stable, canary = split(weight, replicas)
    return round(100 * canary / (stable + canary)) if canary else 0


@dataclass(frozen=True)
class Shape:
    """The children a rollout wants; `stable_replicas` None: the usual count (spec, HPA)."""

    stable_model: ModelSource
    canary_model: ModelSource | None = None
    stable_replicas: int | None = None
    canary_replicas: int = 0
    canary_serves: bool = True
    shadow_percent: int = 0
    weight: int = 0

    @property
    def shadowing(self) -> bool:
        return self.canary_model is not None and not self.canary_serves


def shape(
    spec: ModelDeploymentSpec, r: RolloutStatus | None, *, replicas: int, autoscaled: bool
) -> Shape:
    """The children for spec + status.rollout; `replicas`: the serving pods wanted in all
    (spec.replicas, or the HPA's current count, which keeps owning the stable Deployment)."""
    if spec.rollout is None or r is None or r.stable_model is None:
        return Shape(spec.model)
    stable = r.stable_model
    if not active(r) or r.candidate is None or replicas <= 0:
        return Shape(stable)
    steps = spec.rollout.steps
    if r.step >= len(steps):  # promoting: the stable rolls to the candidate, canary kept
        last = next((s.weight for s in reversed(steps) if s.weight is not None), 0)
        _, canary = split(last, replicas) if last else (0, 1)
        return Shape(stable, r.candidate, None, canary, canary_serves=True, weight=last)
    step = steps[r.step]
    if step.shadow is not None:
        canary = max(1, math.ceil(step.shadow * replicas / 100))
        return Shape(
            stable, r.candidate, None, canary, canary_serves=False, shadow_percent=step.shadow
        )
    assert step.weight is not None
    stable_count, canary = split(step.weight, replicas)
    return Shape(
        stable,
        r.candidate,
        None if autoscaled else stable_count,
        canary,
        canary_serves=True,
        weight=effective_weight(step.weight, replicas),
    )
