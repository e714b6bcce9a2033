"""What stops a reconcile, judged into something a user can read: a reason in status and one
Warning, with back-off; never an unhandled exception that kopf retries blindly forever.

Three outcomes besides success: `Judged` (status says why; retried with back-off unless
only a spec change can help), `Terminating` (the namespace is going: nothing failed) and
`k8s.ApiUnavailable` (the apiserver is away: nothing can be written, so retry quietly).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from onnxops import k8s, status
from onnxops.api import ModelDeployment
from onnxops.reasons import ConditionType, Phase, Reason


class Judged(Exception):
    """The operator judged the spec unworkable (or itself failed); status already says so.

    `news`: whether status did not say so already; a retry that finds the same failure is no
    news, and posting its Warning again would only repeat the first Event."""

    def __init__(self, failure: status.Failure, news: bool = True) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.news = news


class Terminating(Exception):
    """The ModelDeployment's namespace is being deleted; its children go with it."""


def fail(md: ModelDeployment, failure: status.Failure) -> Judged:
    """Write the failure to status (unless it says so already); the exception to raise."""
    new = status.failed_status(md, failure, now=status.now_iso())
    news = status.differs(md.status.wire(), new)
    if news:
        k8s.patch_status(md.namespace, md.name, new)
    return Judged(failure, news)


def fail_unparsed(body: Mapping[str, Any], failure: status.Failure) -> Judged:
    """As `fail`, for an object the API models cannot read (stored before a schema fix)."""
    meta, old = body.get("metadata") or {}, dict(body.get("status") or {})
    conditions = [c for c in old.get("conditions") or [] if isinstance(c, dict)]
    conditions = status.set_condition(
        conditions,
        type_=ConditionType.READY,
        status=False,
        reason=failure.reason,
        message=failure.message,
        generation=meta.get("generation"),
        now=status.now_iso(),
    )
    conditions = status.kstatus_conditions(
        conditions,
        Phase.FAILED,
        generation=meta.get("generation"),
        now=status.now_iso(),
        retried=not failure.permanent,
    )
    new = {
        "phase": Phase.FAILED,
        "observedGeneration": meta.get("generation"),
        "conditions": conditions,
    }
    news = status.differs(old, new)
    if news:
        k8s.patch_status(meta.get("namespace", "default"), meta.get("name", ""), new)
    return Judged(failure, news)


def invalid_spec(exc: ValidationError) -> status.Failure:
    """The first few schema errors, one line, as a permanent InvalidSpec failure."""
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"spec {where}: {error['msg']}")
    message = "; ".join(parts) + ("; ..." if exc.error_count() > 3 else "")
    return status.Failure(Reason.INVALID_SPEC, message, permanent=True)


def unforeseen(exc: Exception) -> status.Failure:
    """An exception nobody foresaw: a temporary failure (retried with back-off) that names it."""
    text = str(exc).splitlines()[0][:300] if str(exc) else ""
    message = f"operator error {type(exc).__name__}: {text}; retried with back-off"
    return status.Failure(Reason.OPERATOR_ERROR, message, permanent=False)


def judge(body: Mapping[str, Any], exc: Exception) -> Judged:
    """Status for an exception that escaped the reconcile; raises ApiUnavailable when even
    that cannot be written."""
    failure = invalid_spec(exc) if isinstance(exc, ValidationError) else unforeseen(exc)
    try:
        md = ModelDeployment.model_validate(dict(body))
    except ValidationError:
        return fail_unparsed(body, failure)
    return fail(md, failure)
