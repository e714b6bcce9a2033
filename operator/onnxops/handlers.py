"""kopf handlers: thin wrappers that call `reconcile` and post Events.

Run with `python -m onnxops.run` or `onnxops operator` (settings: `config.py`); plain
`kopf run -m onnxops.handlers --all-namespaces` works too.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from onnxops import build, k8s, loadfailure, reconcile, startup, watch
from onnxops.api import GROUP, PLURAL, VERSION
from onnxops.config import config
from onnxops.reasons import LOAD_FAILURE_REASONS, ConditionType, Phase, Reason
from onnxops.rollout import plan as rollout_plan
from onnxops.status import load_failed

__all__ = ["startup", "watch"]  # importing them registers their handlers

_cfg = config()
_MANAGED = {"app.kubernetes.io/managed-by": build.MANAGED_BY}
# generation of each Deployment as the operator last left it; a higher one is someone else's edit
_applied_generation: dict[tuple[str, str], int] = {}


# (namespace, name, reason) -> generation of the last such Warning posted. Two reconciles
# of one resource can overlap (the handler, and a child's event it caused) and both read
# the status that made a Warning news: this keeps such a Warning once per generation.
_warned: dict[tuple[str, str, str], int] = {}
# (namespace, name) whose model was said to load again (ModelLoaded) since its last failed
# load: two overlapping handlers that both read the failed status would each say it.
_recovered: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def _post(body: Any, events: list[reconcile.Event]) -> None:
    key = (body.meta.namespace or "", body.meta.name or "")
    generation = int(body.meta.get("generation", 0))
    for type_, reason, message in events:
        with _warned_lock:
            if reason == Reason.MODEL_LOADED:
                if key in _recovered:
                    continue
                _recovered.add(key)
                # A failed load after this one is news again, whatever its cause.
                for failed in LOAD_FAILURE_REASONS:
                    _warned.pop((*key, failed), None)
            elif type_ == "Warning":
                if _warned.get((*key, reason)) == generation:
                    continue
                _warned[(*key, reason)] = generation
                if reason in LOAD_FAILURE_REASONS:
                    _recovered.discard(key)
        kopf.event(body, type=type_, reason=reason, message=message)


def _backoff(retry: int) -> float:
    return float(min(_cfg.retry_base_s * 2**retry, _cfg.retry_max_s))


def _run(
    body: kopf.Body,
    memo: kopf.Memo,
    retry: int,
    logger: kopf.Logger,
    drift: bool = False,
    old: Any = None,
) -> None:
    previous = ((old or {}).get("spec") or {}).get("model")
    try:
        outcome = reconcile.reconcile(body, memo.pools, _cfg, drift=drift, previous_model=previous)
    except reconcile.Terminating:
        logger.info("namespace is being deleted; nothing to reconcile")
        return
    except k8s.ApiUnavailable as exc:  # logged once by k8s; one line per retry here
        raise kopf.TemporaryError(
            f"{Reason.API_UNAVAILABLE}: {exc}", delay=_backoff(retry)
        ) from exc
    except reconcile.Judged as judged:
        failure = judged.failure
        _report(body, judged, logger)
        if failure.permanent:
            raise kopf.PermanentError(f"{failure.reason}: {failure.message}") from judged
        raise kopf.TemporaryError(
            f"{failure.reason}: {failure.message}", delay=_backoff(retry)
        ) from judged
    _post(body, outcome.events)
    dep = outcome.deployment
    if dep is not None:
        _applied_generation[(dep["metadata"]["namespace"], dep["metadata"]["name"])] = int(
            dep["metadata"].get("generation", 0)
        )


def _report(body: kopf.Body, judged: reconcile.Judged, logger: kopf.Logger) -> None:
    """One Warning per failure, not one per retry; an unforeseen one's traceback, once."""
    failure = judged.failure
    if judged.news:
        kopf.warn(body, reason=failure.reason, message=failure.message)
        if failure.reason == Reason.OPERATOR_ERROR:  # for a bug report
            logger.error("%s", failure.message, exc_info=judged.__cause__)


def _once(handler: Callable[..., None]) -> Callable[..., None]:
    """For event handlers, which kopf never retries: a failure is one log line (status and
    the resync timer carry it), not a traceback per event."""

    @functools.wraps(handler)
    def wrapper(*args: Any, logger: kopf.Logger, **kwargs: Any) -> None:
        try:
            handler(*args, logger=logger, **kwargs)
        except k8s.ApiUnavailable:
            pass  # k8s logs the outage once, and its end
        except (kopf.TemporaryError, kopf.PermanentError) as exc:
            logger.warning("%s (the resync retries)", exc)

    return wrapper


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
def reconcile_model(
    body: kopf.Body, memo: kopf.Memo, retry: int, logger: kopf.Logger, old: Any = None, **_: Any
) -> None:
    # `old` (update only): the spec before this change, so a rollout knows the stable model.
    _run(body, memo, retry, logger, old=old)


def _retry_pending(body: kopf.Body) -> bool:
    """Whether kopf holds reconcile_model back for a retry delay (its progress annotation)."""
    raw = body.meta.annotations.get(f"{GROUP}/reconcile_model")
    try:
        delayed = json.loads(raw or "{}").get("delayed")
        return bool(delayed) and datetime.fromisoformat(delayed) > datetime.now(UTC)
    except (ValueError, AttributeError):
        return False


@kopf.on.event(GROUP, VERSION, PLURAL)
@_once
def spec_changed_while_retrying(
    type: str | None, body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """A spec change is reconciled at once, even while kopf waits to retry a failure.

    kopf keeps a failing create/update handler's retry delay (up to retry_max_s) when the
    spec changes meanwhile, and handles no newer change before that retry: a fix would wait
    out the back-off. Each run, failed or not, records the generation in status, which ends
    this path for that generation (no loop)."""
    if type in (None, "DELETED") or body.meta.get("deletionTimestamp"):
        return
    if body.status.get("observedGeneration") == body.meta.get("generation"):
        return
    if not _retry_pending(body):  # kopf runs the handler itself now
        return
    # A new failure is in status and a Warning; kopf's own retry stays scheduled.
    with contextlib.suppress(kopf.TemporaryError, kopf.PermanentError):
        _run(body, memo, 0, logger)


@kopf.timer(GROUP, VERSION, PLURAL, interval=_cfg.resync_s, idle=_cfg.resync_idle_s)
def resync_model(
    body: kopf.Body, memo: kopf.Memo, status: kopf.Status, logger: kopf.Logger, **_: Any
) -> None:
    """Re-apply periodically: restores children whose edits or deletions no watch reported.

    The finalizer `onnxops.io/finalizer` exists only because of this timer: kopf always adds
    one to resources with a timer, so it can stop the timer before the object goes (no
    cleanup of ours needs it; children go by their owner references). While no operator
    runs, `kubectl delete mdep NAME` therefore waits; remove the finalizer to let it go:
    `kubectl patch mdep NAME --type=json -p '[{"op":"remove","path":"/metadata/finalizers"}]'`.
    """
    settled = status.get("observedGeneration") == body.meta.get("generation")
    if (
        settled
        and status.get("phase") == Phase.FAILED
        and not load_failed(status.get("conditions"))
    ):
        return  # the create/update handler's own retries own a failed generation
    # Resume and update handlers apply spec changes; what a resync finds to change in a
    # generation already reconciled was changed behind our back (the resync may beat a
    # deleted child's watch event to it). A newer generation is the user's change.
    _run(body, memo, 0, logger, drift=settled)


def _owner(child: kopf.Body) -> kopf.Body | None:
    """The ModelDeployment a child belongs to, unless it is gone or going."""
    name = (child.meta.labels or {}).get(build.MD_LABEL)
    if not name:
        return None
    raw = k8s.get(f"{GROUP}/{VERSION}", "ModelDeployment", child.meta.namespace or "", name)
    if raw is None or raw["metadata"].get("deletionTimestamp"):
        return None
    return kopf.Body(cast(kopf.RawBody, raw))


@kopf.on.event("apps", "v1", "deployments", labels=_MANAGED)
@_once
def deployment_changed(
    type: str | None, body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """Status follows the Deployment's readiness; deletions and foreign edits are undone."""
    if type is None:  # the initial listing; resume handlers cover it
        return
    owner = _owner(body)
    if owner is None:
        if type == "DELETED":  # cascaded with its owner: nothing to restore, nothing to recall
            k8s.forget("Deployment", body.meta.namespace or "", body.meta.name or "")
            _applied_generation.pop((body.meta.namespace or "", body.meta.name or ""), None)
            with _warned_lock:
                gone = (body.meta.namespace, body.meta.name)
                for warned in [k for k in _warned if k[:2] == gone]:
                    del _warned[warned]
                _recovered.discard((gone[0] or "", gone[1] or ""))
        return
    key = (body.meta.namespace or "", body.meta.name or "")
    generation = int(body.meta.get("generation", 0))
    if (body.meta.labels or {}).get(rollout_plan.TRACK_LABEL) == rollout_plan.CANARY:
        # A rollout's canary: status follows the stable Deployment, and the rollout cycle
        # reads the canary's readiness itself; a deleted one is put back if still wanted.
        if type == "DELETED":
            _run(owner, memo, 0, logger, drift=True)
        return
    if type == "DELETED" or generation > _applied_generation.get(key, generation):
        # A new generation is someone's edit (or the HPA scaling): re-applying is a no-op
        # unless a field we own was changed, and then it is the restoration.
        logger.debug("Deployment %s/%s %s at generation %s; re-applying", *key, type, generation)
        _run(owner, memo, 0, logger, drift=True)
        return
    _applied_generation[key] = generation
    _refresh(owner, dict(body), logger)


def _refresh(owner: kopf.Body, deployment: dict[str, Any] | None, logger: kopf.Logger) -> None:
    try:
        outcome = reconcile.refresh(owner, deployment)
    except reconcile.Judged as judged:
        _report(owner, judged, logger)
        return
    if outcome is not None:
        _post(owner, outcome.events)


@kopf.on.event("", "v1", "pods", labels={**_MANAGED, build.MD_LABEL: kopf.PRESENT})
@_once
def serving_pod_changed(type: str | None, body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """A serving pod that says why it cannot load its model makes status say so now.

    A crash loop changes no field of the Deployment (0 ready before and after), so no
    Deployment event would report it; the pod's termination message names the cause. Pods
    without one cost no API call; clearing follows the Deployment's readiness."""
    if type in (None, "DELETED"):
        return
    failure = loadfailure.of_pod(body)
    if failure is None:
        return
    owner = _owner(body)
    if owner is None:
        return
    shown: dict[str, Any] = next(
        (
            c
            for c in owner.status.get("conditions") or []
            if c.get("type") == ConditionType.MODEL_AVAILABLE
        ),
        {},
    )
    if shown.get("status") == "False" and shown.get("reason") == failure.reason:
        return  # already said
    namespace, name = owner.meta.namespace or "", owner.meta.name or ""
    _refresh(owner, k8s.get("apps/v1", "Deployment", namespace, name), logger)


@kopf.on.event("", "v1", "services", labels=_MANAGED)
@_once
def service_changed(
    type: str | None, body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """A deleted Service is recreated at once (edits are undone by the resync timer)."""
    if type != "DELETED":
        return
    owner = _owner(body)
    if owner is None:
        k8s.forget("Service", body.meta.namespace or "", body.meta.name or "")
        return
    _run(owner, memo, 0, logger, drift=True)
