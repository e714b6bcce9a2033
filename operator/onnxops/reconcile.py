"""One reconciliation of a ModelDeployment: judge, place, apply children, write status.

The decisions are the pure functions of `pools`, `build` and `status`; this module only
wires them to the API calls of `k8s` and reports what happened as events for the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from onnxops import (
    build,
    judgement,
    k8s,
    loadfailure,
    modelsource,
    nodepools,
    override,
    podapi,
    speccheck,
    status,
)
from onnxops.api import ModelDeployment, ModelDeploymentStatus, ModelSource
from onnxops.config import OperatorConfig
from onnxops.pools import (
    PlacementError,
    PoolProfile,
    QuantityError,
    ceiling_violations,
    effective_resources,
    place,
)
from onnxops.reasons import Phase, Reason, RolloutPhase
from onnxops.rollout import machine as rollout_machine
from onnxops.rollout import plan as rollout_plan

Event = tuple[str, str, str]  # (type Normal|Warning, reason, message)
Judged = judgement.Judged
Terminating = judgement.Terminating
_fail = judgement.fail


@dataclass
class Outcome:
    status: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    deployment: dict[str, Any] | None = None


def _check_model(md: ModelDeployment, pool: PoolProfile, cfg: OperatorConfig) -> build.ModelPlan:
    try:
        plan = build.plan_model(md, pool)
    except build.ModelUriError as exc:
        raise _fail(md, status.Failure(Reason.INVALID_MODEL_URI, str(exc), permanent=True)) from exc
    missing = modelsource.model_source_missing(plan.uri, md.namespace)
    if missing is None and cfg.probe_http_models and plan.uri.startswith(("http://", "https://")):
        missing = modelsource.probe_http(plan.uri, cfg.probe_timeout_s)
    if missing:
        # The object or server may appear later: retried with backoff, not given up.
        raise _fail(md, status.Failure(Reason.MODEL_UNREACHABLE, missing, permanent=False))
    return plan


def _settled_pool(md: ModelDeployment, pools: dict[str, PoolProfile]) -> PoolProfile | None:
    """The pool already chosen for this very generation, if it still stands.

    A resync or a child's event then costs no node and pod listing; a spec change (new
    generation), a failure or a pool kept without room re-judges supply."""
    st = md.status
    same_spec = st.observed_generation == md.metadata.get("generation")
    short = status.placed_reason(st) == Reason.CAPACITY_SHORT
    if not same_spec or status.judged_failed(st) or short or st.pool not in pools:
        return None
    target = md.spec.target
    if target.pool not in ("auto", st.pool) and target.fallback_pool != st.pool:
        return None  # remediation moved the model (failover, failback)
    pool = pools[st.pool]
    if ceiling_violations(effective_resources(md.spec, pool), pool):
        return None  # the pool configuration changed under the model
    return pool


@dataclass(frozen=True)
class Placed:
    pool: PoolProfile
    why: str
    reason: str = Reason.POOL_CHOSEN


def _kept(md: ModelDeployment, pools: dict[str, PoolProfile], exc: PlacementError) -> Placed | None:
    """A running model stays on its pool through a lack of room (a node briefly NotReady,
    a scale-up beyond what is free): the new pods wait for room, and status says so,
    instead of failing a model that serves."""
    st = md.status
    running = st.phase != Phase.PENDING and not status.judged_failed(st) and st.pool in pools
    if exc.reason != Reason.NO_CAPACITY or not running:
        return None
    pool = pools[str(st.pool)]
    if ceiling_violations(effective_resources(md.spec, pool), pool):
        return None
    why = f"kept on pool {pool.name}, short of room: {exc.message}; re-judged at each resync"
    return Placed(pool, why, Reason.CAPACITY_SHORT)


def placement(md: ModelDeployment, pools: dict[str, PoolProfile]) -> Placed:
    """The pool for this model, judged from the cluster's current supply."""
    settled = _settled_pool(md, pools)
    if settled is not None:
        # Heal's word (waiting for the autoscaler's node) stands until heal changes it.
        said = status.placed_reason(md.status)
        reason = said if said == Reason.AWAITING_SCALE_UP else Reason.POOL_CHOSEN
        note = status.placement_note(md.status) or f"pool {settled.name}"
        return Placed(settled, note, reason)
    nodes, pods = podapi.nodes_and_pods()
    others = [
        p
        for p in pods
        if not (
            p["metadata"].get("namespace") == md.namespace
            and (p["metadata"].get("labels") or {}).get(build.MD_LABEL) == md.name
        )
    ]
    try:
        chosen = place(
            md.spec,
            pools,
            nodes=nodes,
            other_pods=others,
            current=md.status.pool,
            growable=nodepools.growable,
        )
    except PlacementError as exc:
        kept = _kept(md, pools, exc)
        if kept is not None:
            return kept
        failure = status.Failure(exc.reason, exc.message, permanent=exc.permanent)
        raise _fail(md, failure) from exc
    return Placed(chosen.pool, chosen.message)


def _apply(md: ModelDeployment, obj: dict[str, Any]) -> k8s.Applied:
    """Apply one child; a child the apiserver refuses (say, a nodeSelector key that is not a
    valid label) is the spec's fault and reported as such, not retried blindly."""
    try:
        return k8s.apply(obj)
    except k8s.ApiUnavailable:
        raise
    except k8s.ApiError as exc:
        if exc.namespace_terminating:
            raise Terminating(exc.message) from exc
        if exc.status in (400, 422):
            message = f"{obj['kind']} refused by the apiserver: {exc.message}"
            raise _fail(md, status.Failure(Reason.CHILD_REJECTED, message, permanent=True)) from exc
        if exc.status == 403:
            message = f"not allowed to apply {obj['kind']}: {exc.message}"
            raise _fail(md, status.Failure(Reason.FORBIDDEN, message, permanent=False)) from exc
        raise


def reconcile(
    body: Mapping[str, Any],
    pools: dict[str, PoolProfile],
    cfg: OperatorConfig,
    *,
    drift: bool = False,
    previous_model: Mapping[str, Any] | None = None,
) -> Outcome:
    """Bring the children in line with the spec; raises Judged for operator-judged failures
    (any exception becomes one: an InvalidSpec or OperatorError reason in status), Terminating
    in a namespace being deleted, k8s.ApiUnavailable while the apiserver is away.

    `drift`: called because a child changed behind our back, so changes are restorations.
    `previous_model`: spec.model before this change (kopf's diff base), for a rollout."""
    try:
        read = ModelDeployment.model_validate(dict(body))
        # The rollout's intent first (a new spec.model starts one), written before acting.
        read, started = _rollout_intent(read, previous_model)
        # Remediation's override (status.override) and the rollout applied over the spec: a
        # resize, failover, rollback or the stable model of a rollout is desired state, so
        # drift restoration keeps it instead of undoing it.
        md = override.applied(read)
        try:
            outcome = _reconcile(md, pools, cfg, drift=drift)
            outcome.events[:0] = started
            return outcome
        except QuantityError as exc:  # stored before the schema refused it, or a pool's value
            failure = status.Failure(Reason.INVALID_SPEC, f"resources: {exc}", permanent=True)
            raise _fail(md, failure) from exc
    except (Judged, Terminating, k8s.ApiUnavailable):
        raise
    except k8s.ApiError as exc:
        if exc.namespace_terminating:
            raise Terminating(exc.message) from exc
        raise judgement.judge(body, exc) from exc
    except Exception as exc:
        raise judgement.judge(body, exc) from exc


def _rollout_intent(
    md: ModelDeployment, previous: Mapping[str, Any] | None
) -> tuple[ModelDeployment, list[Event]]:
    """status.rollout after this spec, written first when it changed (the intent).

    Written only over the object as read (its resourceVersion): two reconciles of one change
    (the update handler and a resync, or heal's or the rollout cycle's re-apply) may both hold
    a body from before the other's write, and the second would start the rollout again (a
    second RolloutStarted, the step's clock reset). On a conflict the object is read again and
    judged afresh, at most three times."""
    before = None
    if previous:
        try:
            before = ModelSource.model_validate(dict(previous))
        except ValidationError:
            before = None
    for _ in range(3):
        moved = rollout_machine.begin(md, previous=before, now=datetime.now(UTC))
        if moved.rollout == md.status.rollout:
            return md, []
        wire = (
            None if moved.rollout is None else moved.rollout.model_dump(by_alias=True, mode="json")
        )
        version = md.metadata.get("resourceVersion")
        if version is None:
            k8s.patch_status(md.namespace, md.name, {"rollout": wire})
        elif not k8s.patch_status_at(md.namespace, md.name, {"rollout": wire}, str(version)):
            fresh = k8s.get(md.api_version, md.kind, md.namespace, md.name)
            if fresh is None:
                return md, []  # deleted meanwhile: nothing to start
            md = ModelDeployment.model_validate(fresh)
            continue
        st = md.status.model_copy(update={"rollout": moved.rollout})
        return md.model_copy(update={"status": st}), list(moved.events)
    raise k8s.ApiUnavailable(409, "status.rollout changed under three writes in a row; retried")


def _tracks(
    md: ModelDeployment, replicas: int | None
) -> tuple[build.Track | None, build.Canary | None]:
    """The stable Deployment's track and the canary the rollout wants (spec.rollout only)."""
    if md.spec.rollout is None:
        return None, None
    wanted = build.replica_count(md, replicas)
    shape = override.rollout_shape(md, replicas=wanted)
    stable = build.Track(rollout_plan.STABLE, replicas=shape.stable_replicas)
    canary_md = override.canary(md, shape)
    if canary_md is None:
        return stable, None
    track = build.Track(
        rollout_plan.CANARY, replicas=shape.canary_replicas, serving=shape.canary_serves
    )
    return stable, build.Canary(canary_md, track)


def _serving_only(md: ModelDeployment, canary: build.Canary | None) -> bool:
    """Whether the Service leaves out pods not labelled to serve: while the canary is a shadow,
    and after a rollout aborted in a shadow step — the canary's pods, deleted in this very pass,
    run until the garbage collector and the kubelet end them, and must never answer users."""
    if canary is not None:
        return not canary.track.serving
    r, rollout = md.status.rollout, md.spec.rollout
    if r is None or rollout is None or r.phase != RolloutPhase.ABORTED:
        return False
    return r.step < len(rollout.steps) and rollout.steps[r.step].shadow is not None


def _reconcile(
    md: ModelDeployment, pools: dict[str, PoolProfile], cfg: OperatorConfig, *, drift: bool
) -> Outcome:
    invalid = speccheck.invalid_labels(md)
    if invalid:  # placement would otherwise find no node with such a label: NoCapacity
        raise _fail(md, status.Failure(Reason.CHILD_REJECTED, invalid, permanent=True))
    placed = placement(md, pools)
    pool, why = placed.pool, placed.why
    plan = _check_model(md, pool, cfg)
    events: list[Event] = []
    if placed.reason == Reason.CAPACITY_SHORT:
        if status.placed_reason(md.status) != Reason.CAPACITY_SHORT:  # once, not per resync
            events.append(("Warning", Reason.CAPACITY_SHORT, why))
    elif md.status.pool != pool.name or status.judged_failed(md.status):
        events.append(("Normal", Reason.POOL_CHOSEN, f"{why}; variant {plan.variant}"))
    replicas = None
    if md.spec.autoscaling is not None:  # the HPA's current choice is kept, so read it
        current = k8s.get("apps/v1", "Deployment", md.namespace, md.name)
        replicas = (current or {}).get("spec", {}).get("replicas")
        ignored = status.ignored_replicas(md)
        if ignored:
            events.append(("Warning", Reason.REPLICAS_IGNORED, ignored))
    track, canary = _tracks(md, replicas)
    to_apply, to_remove = build.desired_children(
        md,
        pool,
        image=cfg.serving_image,
        current_replicas=replicas,
        annotations=override.template_annotations(md),
        track=track,
        canary=canary,
        serving_only=_serving_only(md, canary),
    )
    deployment: dict[str, Any] | None = None
    for obj in to_apply:
        applied = _apply(md, obj)
        if applied.kind == "Deployment" and applied.name == md.name:
            deployment = applied.obj
        if applied.outcome != "unchanged":
            reason = Reason.CREATED if applied.outcome == "created" else Reason.UPDATED
            if drift:  # the object existed as we left it before someone changed it
                reason = Reason.DRIFT_RESTORED
            events.append(("Normal", reason, f"{applied.outcome} {applied.kind} {applied.name}"))
    removals = [(a, k, md.name) for a, k in to_remove]
    ended = md.spec.rollout is None and md.status.rollout is not None  # spec.rollout removed
    if canary is None and (md.spec.rollout is not None or ended):  # a canary ends with its rollout
        gone = rollout_plan.canary_name(md.name)
        removals += [("apps/v1", "Deployment", gone), ("v1", "Service", gone)]
    if ended:
        removals.append(("v1", "ConfigMap", rollout_plan.mirror_name(md.name)))
    for api_version, kind, name in removals:
        if k8s.delete(api_version, kind, md.namespace, name):
            events.append(("Normal", Reason.DELETED, f"deleted {kind} {name} (no longer wanted)"))
    if ended:  # the canary is gone: the rollout's state with it
        k8s.patch_status(md.namespace, md.name, {"rollout": None})
    new = status.healthy_status(
        md,
        pool=pool.name,
        variant=plan.variant,
        endpoint=build.endpoint(md, cfg.cluster_domain),
        deployment=deployment,
        placement=why,
        now=status.now_iso(),
        placed_reason=placed.reason,
        load_failure=load_failure(md, deployment),
    )
    if status.differs(md.status.wire(), new):
        k8s.patch_status(md.namespace, md.name, new)
    if deployment is not None and new["phase"] != Phase.READY:
        new, deployment = _catch_up(md, new, deployment)
    events.extend(status.load_failure_events(md.status, new))
    return Outcome(new, events, deployment)


def _catch_up(
    md: ModelDeployment, written: dict[str, Any], applied: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Status again from a fresh read of the Deployment, if it moved on meanwhile.

    The Deployment's watch events refresh status, but a handler that read this resource
    before the status above was written found no pool yet (or an older generation) and left
    it alone: a rollout that finished in between would show Progressing until the next
    resync. Reading the Deployment after writing closes that gap, without a lock."""
    latest = k8s.get("apps/v1", "Deployment", md.namespace, md.name)
    if latest is None or status.rollout(latest) == status.rollout(applied):
        return written, applied
    # Over the status as read: `written` holds only the reconcile's fields, and the others
    # (the remediation override, faults) must stay, or a rollback's condition would go.
    merged = {**md.status.wire(), **written}
    now_md = md.model_copy(update={"status": ModelDeploymentStatus.model_validate(merged)})
    return _refresh(now_md, latest) or written, latest


def refresh(md_body: Mapping[str, Any], deployment: dict[str, Any] | None) -> Outcome | None:
    """Status update (and its Events) after the Deployment or a serving pod changed; None
    when nothing needed writing.

    A Failed judgement of the current generation stands until the spec changes; an object the
    API models cannot read is left to the reconcile, which says why.
    """
    try:
        md = ModelDeployment.model_validate(dict(md_body))
    except ValidationError:
        return None
    try:
        new = _refresh(md, deployment)
    except k8s.ApiUnavailable:
        raise
    except Exception as exc:
        raise judgement.judge(md_body, exc) from exc
    if new is None:
        return None
    return Outcome(new, status.load_failure_events(md.status, new), deployment)


def load_failure(
    md: ModelDeployment, deployment: dict[str, Any] | None
) -> loadfailure.LoadFailure | None:
    """What the serving pods say keeps them from loading the model; read only while the
    Deployment is not rolled out (a rolled-out model loaded), one pod list."""
    if deployment is None or status.rollout(deployment)[2]:
        return None
    return loadfailure.of_pods(podapi.list_pods(md.namespace, build.pod_selector(md)))


def _refresh(md: ModelDeployment, deployment: dict[str, Any] | None) -> dict[str, Any] | None:
    st = md.status
    if st.pool is None or (
        status.judged_failed(st) and st.observed_generation == md.metadata.get("generation")
    ):
        return None
    new = status.healthy_status(
        md,
        pool=st.pool,
        variant=st.variant or "default",
        endpoint=st.endpoint or "",
        deployment=deployment,
        placement=status.placement_note(st),
        now=status.now_iso(),
        placed_reason=status.placed_reason(st),
        load_failure=load_failure(md, deployment),
    )
    # The Deployment event tells us about readiness, not about a new spec generation.
    new["observedGeneration"] = st.observed_generation
    if not status.differs(st.wire(), new):
        return None
    k8s.patch_status(md.namespace, md.name, new)
    return new
