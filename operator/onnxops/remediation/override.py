"""The remediation override: desired state that remediation chose, kept in
`status.override` and applied over the spec before the child builders run.

Remediation never edits a child directly (drift restoration would revert it); it changes the
desired state instead. Each part of the override remembers the spec value it replaced, so a
spec change (say, from GitOps) ends that part. Pure.
"""

from __future__ import annotations

from onnxops.api import (
    ModelDeployment,
    ModelDeploymentSpec,
    ModelRef,
    Override,
    ResourceRequirements,
)

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


def rolled_back(md: ModelDeployment) -> tuple[ModelRef, ModelRef] | None:
    """(served, replaced) when a rollback stands; also for a spec the override was already
    applied to (`applied`), where the spec names the served model."""
    found = md.status.override
    if found is None or found.model is None or found.model_replaces is None:
        return None
    if model_ref(md.spec) not in (found.model, found.model_replaces):
        return None
    return found.model, found.model_replaces


def applied(md: ModelDeployment) -> ModelDeployment:
    """The ModelDeployment as the builders should see it: the spec with the override applied.

    Resources resized in place at this very generation stay out of the template: changing
    the template would roll every pod, undoing the point of resizing in place. The next
    rollout the spec causes (a new generation) carries them."""
    ov = active(md)
    spec = md.spec.model_copy(deep=True)
    if ov.resources is not None and ov.in_place_generation != md.metadata.get("generation"):
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


def serving(md: ModelDeployment) -> ModelDeploymentSpec:
    """The spec as the pods serve it now: `applied`, with resources resized in place too (the
    template takes them only at the next rollout, but the pods hold them already). What the
    next resize starts from: from the template's values, a second resize in place would only
    repeat the first."""
    spec = applied(md).spec
    ov = active(md)
    if ov.resources is not None:
        spec.resources = ResourceRequirements.model_validate(ov.resources.wire())
    return spec


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
