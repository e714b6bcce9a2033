"""kopf handlers: thin wrappers that call `reconcile` and post Events.

Run with `python -m onnxops.run` or `onnxops operator` (settings: `config.py`); plain
`kopf run -m onnxops.handlers --all-namespaces` works too.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from onnxops import build, k8s, reconcile, startup, watch
from onnxops.api import GROUP, PLURAL, VERSION
from onnxops.config import config

__all__ = ["startup", "watch"]  # importing them registers their handlers

_cfg = config()
_MANAGED = {"app.kubernetes.io/managed-by": build.MANAGED_BY}
# generation of each Deployment as the operator last left it; a higher one is someone else's edit
_applied_generation: dict[tuple[str, str], int] = {}


def _post(body: Any, events: list[reconcile.Event]) -> None:
    for type_, reason, message in events:
        kopf.event(body, type=type_, reason=reason, message=message)


def _backoff(retry: int) -> float:
    return float(min(_cfg.retry_base_s * 2**retry, _cfg.retry_max_s))


def _run(body: kopf.Body, memo: kopf.Memo, retry: int, drift: bool = False) -> None:
    try:
        outcome = reconcile.reconcile(body, memo.pools, _cfg, drift=drift)
    except reconcile.Judged as judged:
        failure = judged.failure
        if judged.news:  # one Warning per failure, not one per retry
            kopf.warn(body, reason=failure.reason, message=failure.message)
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


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
def reconcile_model(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
    _run(body, memo, retry)


def _retry_pending(body: kopf.Body) -> bool:
    """Whether kopf holds reconcile_model back for a retry delay (its progress annotation)."""
    raw = body.meta.annotations.get(f"{GROUP}/reconcile_model")
    try:
        delayed = json.loads(raw or "{}").get("delayed")
        return bool(delayed) and datetime.fromisoformat(delayed) > datetime.now(UTC)
    except (ValueError, AttributeError):
        return False


@kopf.on.event(GROUP, VERSION, PLURAL)
def spec_changed_while_retrying(
    type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any
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
        _run(body, memo, retry=0)


@kopf.timer(GROUP, VERSION, PLURAL, interval=_cfg.resync_s, idle=_cfg.resync_idle_s)
def resync_model(body: kopf.Body, memo: kopf.Memo, status: kopf.Status, **_: Any) -> None:
    """Re-apply periodically: restores children whose edits or deletions no watch reported.

    The finalizer `onnxops.io/finalizer` exists only because of this timer: kopf always adds
    one to resources with a timer, so it can stop the timer before the object goes (no
    cleanup of ours needs it; children go by their owner references). While no operator
    runs, `kubectl delete mdep NAME` therefore waits; remove the finalizer to let it go:
    `kubectl patch mdep NAME --type=json -p '[{"op":"remove","path":"/metadata/finalizers"}]'`.
    """
    settled = status.get("observedGeneration") == body.meta.get("generation")
    if settled and status.get("phase") == "Failed":
        return  # the create/update handler's own retries own a failed generation
    # Resume and update handlers apply spec changes; what a resync finds to change in a
    # generation already reconciled was changed behind our back (the resync may beat a
    # deleted child's watch event to it). A newer generation is the user's change.
    _run(body, memo, retry=0, drift=settled)


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
        return
    key = (body.meta.namespace or "", body.meta.name or "")
    generation = int(body.meta.get("generation", 0))
    if type == "DELETED" or generation > _applied_generation.get(key, generation):
        # A new generation is someone's edit (or the HPA scaling): re-applying is a no-op
        # unless a field we own was changed, and then it is the restoration.
        logger.debug("Deployment %s/%s %s at generation %s; re-applying", *key, type, generation)
        _run(owner, memo, retry=0, drift=True)
        return
    _applied_generation[key] = generation
    reconcile.refresh(owner, dict(body))


@kopf.on.event("", "v1", "services", labels=_MANAGED)
def service_changed(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A deleted Service is recreated at once (edits are undone by the resync timer)."""
    if type != "DELETED":
        return
    owner = _owner(body)
    if owner is None:
        k8s.forget("Service", body.meta.namespace or "", body.meta.name or "")
        return
    _run(owner, memo, retry=0, drift=True)
