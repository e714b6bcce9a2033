"""Desired state: the spec, the pool's defaults, remediation's override (`status.override`)
and the rollout (`status.rollout`: the model the stable Deployment runs, and the canary),
through one door. Every reader of "what the pods should run" comes here: the child builders
(through `reconcile`), status, and heal's policy, failback room and in-place resize.

Remediation never edits a child directly (drift restoration would revert it); it records an
override instead, and this module applies it over the spec. Each part of the override
remembers the spec value it replaced, so a spec change (say, from GitOps) ends that part. Pure.
"""

from __future__ import annotations

from onnxops.api import (
    ModelDeployment,
    ModelDeploymentSpec,
    ModelRef,
    ModelSource,
    Override,
    ResourceRequirements,
)
from onnxops.pools import PoolProfile, Resources, effective_resources
from onnxops.rollout import plan as rollout_plan

RESTARTED_AT = "onnxops.io/restartedAt"
RESTART_REQUESTED = "onnxops.io/restart-requested-at"
"""A ModelDeployment annotation: a new value rolls its pods (manifests/argocd: `restart`)."""


def model_ref(spec: ModelDeploymentSpec) -> ModelRef:
    """The spec's own model (its main file) as a reference."""
    return ModelRef(uri=spec.model.uri, sha256=spec.model.sha256, version=spec.model.version)


def active(md: ModelDeployment) -> Override:
    """The parts of status.override still valid against the current spec."""
    found = md.status.override or Override()
    spec = md.spec
    keep = found.model_copy()
    if found.resources is not None and found.resources_basis != spec.resources:
        keep.resources = keep.resources_basis = None
        keep.in_place_generation = None
    if found.model is not None and found.model_replaces != model_ref(spec):
        keep.model = keep.model_replaces = None
    if found.pool is not None and found.pool not in _allowed_pools(spec):
        keep.pool = keep.pool_since = None
    return keep


def _allowed_pools(spec: ModelDeploymentSpec) -> set[str]:
    target = spec.target
    return {p for p in (target.pool, target.fallback_pool) if p and p != "auto"}


def resized_in_place(md: ModelDeployment) -> bool:
    """Whether resources resized in place stand for this generation (kept off the template)."""
    ov = active(md)
    return ov.resources is not None and ov.in_place_generation == md.metadata.get("generation")


def rolled_back(md: ModelDeployment) -> tuple[ModelRef, ModelRef] | None:
    """(served, replaced) when a rollback stands; also for a spec the override was already
    applied to (`applied`), where the spec names the served model."""
    found = md.status.override
    if found is None or found.model is None or found.model_replaces is None:
        return None
    if model_ref(md.spec) not in (found.model, found.model_replaces):
        return None
    return found.model, found.model_replaces


def desired(md: ModelDeployment, *, serving: bool) -> ModelDeployment:
    """The ModelDeployment with the override applied over its spec: the one door.

    `serving=False`: as the pod template takes it (what the builders see). Resources resized
    in place at this very generation stay out of the template: changing the template would
    roll every pod, undoing the point of resizing in place; the next rollout the spec causes
    (a new generation) carries them. `serving=True`: as the pods serve it now, those
    resources included (what the next resize starts from, and what a failback must fit)."""
    ov = active(md)
    spec = md.spec.model_copy(deep=True)
    stable = _rollout_stable(md)
    if stable is not None:  # a rollout keeps the stable Deployment on its model
        spec.model = stable.model_copy(deep=True)
    if ov.resources is not None and (serving or not resized_in_place(md)):
        spec.resources = ResourceRequirements.model_validate(ov.resources.wire())
    if ov.model is not None:
        # Variants belong to the model being replaced; the rolled-back file is served as is.
        spec.model = spec.model.model_copy(
            update={
                "uri": ov.model.uri,
                "sha256": ov.model.sha256,
                "version": ov.model.version,
                "variant": "default",
                "variants": {},
            }
        )
    if ov.pool is not None:
        spec.target = spec.target.model_copy(update={"pool": ov.pool, "fallback_pool": None})
    return md.model_copy(update={"spec": spec})


def _rollout_stable(md: ModelDeployment) -> ModelSource | None:
    r = md.status.rollout
    if md.spec.rollout is None or r is None or r.stable_model is None:
        return None
    return r.stable_model


def rollout_shape(md: ModelDeployment, *, replicas: int) -> rollout_plan.Shape:
    """What the rollout asks of the children now (`replicas`: the serving pods wanted)."""
    return rollout_plan.shape(
        md.spec, md.status.rollout, replicas=replicas, autoscaled=md.spec.autoscaling is not None
    )


def canary(md: ModelDeployment, shape: rollout_plan.Shape) -> ModelDeployment | None:
    """The canary's desired state: `applied` with the candidate model (same pool, resources
    and restarts as the stable), or None when no canary is wanted."""
    if shape.canary_model is None:
        return None
    stable = applied(md)
    spec = stable.spec.model_copy(update={"model": shape.canary_model.model_copy(deep=True)})
    return stable.model_copy(update={"spec": spec})


def applied(md: ModelDeployment) -> ModelDeployment:
    """`desired` as the pod template takes it: what `reconcile` hands the builders."""
    return desired(md, serving=False)


def serving(md: ModelDeployment) -> ModelDeploymentSpec:
    """The spec as the pods serve it now (`desired` with resources resized in place)."""
    return desired(md, serving=True).spec


def pod_resources(md: ModelDeployment, pool: PoolProfile) -> Resources:
    """The serving container's requests and limits as the pods run them now: spec, pool
    defaults and override. What heal's policy grows or shrinks from, what an in-place
    resize writes to each pod, and what a failback must find room for."""
    return effective_resources(serving(md), pool)


def template_annotations(md: ModelDeployment) -> dict[str, str]:
    """Pod template annotations the override asks for (a rollout restart's timestamp), and a
    restart the user asked for with the ModelDeployment's RESTART_REQUESTED annotation (what
    `kubectl rollout restart` does to a Deployment; the Argo CD `restart` action sets it)."""
    ov = md.status.override
    out = {RESTARTED_AT: ov.restarted_at} if ov is not None and ov.restarted_at else {}
    requested = (md.metadata.get("annotations") or {}).get(RESTART_REQUESTED)
    if requested:
        out[RESTART_REQUESTED] = str(requested)[:64]
    return out
