"""One vocabulary of condition types and reasons, for deploy, watch and heal alike.

Status conditions and Events use these names; a test or a dashboard that matches on a reason
reads it from here, so a typo is an AttributeError instead of a condition nobody matches.
`StrEnum` members are plain strings on the wire (`json.dumps`, f-strings, comparisons).
"""

from __future__ import annotations

from enum import StrEnum


class ConditionType(StrEnum):
    """Conditions of a ModelDeployment's status (Kubernetes API conventions)."""

    READY = "Ready"
    PLACED = "Placed"
    MODEL_AVAILABLE = "ModelAvailable"
    # Written by the monitor and remediation (issues 10, 11); named here so all share one list.
    HEALTHY = "Healthy"
    MONITORING_AVAILABLE = "MonitoringAvailable"
    REMEDIATING = "Remediating"
    # kstatus' abnormal-true pair (Flux, kpt, cli-utils): present only while True.
    RECONCILING = "Reconciling"
    """The operator is bringing the pods to this generation (phase Progressing)."""
    STALLED = "Stalled"
    """Progress needs the user: a spec judged unworkable, or pods that cannot load the model."""


class Reason(StrEnum):
    """Reasons of conditions and Events."""

    # Placement and rollout.
    POOL_CHOSEN = "PoolChosen"
    ROLLOUT_COMPLETE = "RolloutComplete"
    ROLLING_OUT = "RollingOut"
    MODEL_LOADED = "ModelLoaded"
    MODEL_LOADING = "ModelLoading"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    # Children.
    CREATED = "Created"
    UPDATED = "Updated"
    DELETED = "Deleted"
    DRIFT_RESTORED = "DriftRestored"
    REPLICAS_IGNORED = "ReplicasIgnored"
    RESOURCES_ADJUSTED = "ResourcesAdjusted"
    """The operator had to change a resource value the user gave (said, never silent)."""
    # Judged failures of a spec (phase Failed).
    UNKNOWN_POOL = "UnknownPool"
    ABOVE_CEILING = "AboveCeiling"
    NO_CAPACITY = "NoCapacity"
    INVALID_MODEL_URI = "InvalidModelURI"
    INVALID_SPEC = "InvalidSpec"
    """The spec passed the schema but the operator cannot read it (say, a quantity)."""
    MODEL_UNREACHABLE = "ModelUnreachable"
    CHILD_REJECTED = "ChildRejected"
    FORBIDDEN = "Forbidden"
    # The operator itself.
    OPERATOR_ERROR = "OperatorError"
    """An exception the operator did not foresee; retried with back-off, reported once."""
    API_UNAVAILABLE = "ApiUnavailable"
    BOOKKEEPING_RESET = "BookkeepingReset"
    """kopf's bookkeeping annotation on the object was unreadable and was treated as absent."""
    CAPACITY_SHORT = "CapacityShort"
    """A running model's pool lacks room for now: kept there, retried, not Failed."""
    # Why serving pods cannot load the model: the runtime's termination message names the
    # cause (serving-image errors.LoadFailure; the same strings), ModelAvailable shows it.
    MODEL_LOAD_FAILED = "ModelLoadFailed"
    """Ready=False: no pod (or not every pod) can load the model; ModelAvailable has the cause."""
    MODEL_FETCH_FAILED = "ModelFetchFailed"
    MODEL_NOT_FOUND = "ModelNotFound"
    MODEL_ACCESS_DENIED = "ModelAccessDenied"
    MODEL_DIGEST_MISMATCH = "ModelDigestMismatch"
    INVALID_MODEL = "InvalidModel"
    INPUT_SCHEMA_MISMATCH = "InputSchemaMismatch"
    MODEL_STORAGE_FAILED = "ModelStorageFailed"
    SERVER_FAILED = "ServerFailed"


PLACEMENT_REASONS = frozenset({Reason.UNKNOWN_POOL, Reason.ABOVE_CEILING, Reason.NO_CAPACITY})
MODEL_REASONS = frozenset({Reason.INVALID_MODEL_URI, Reason.MODEL_UNREACHABLE})
LOAD_FAILURE_REASONS = frozenset(
    {
        Reason.MODEL_FETCH_FAILED,
        Reason.MODEL_NOT_FOUND,
        Reason.MODEL_ACCESS_DENIED,
        Reason.MODEL_DIGEST_MISMATCH,
        Reason.INVALID_MODEL,
        Reason.INPUT_SCHEMA_MISMATCH,
        Reason.MODEL_STORAGE_FAILED,
        Reason.SERVER_FAILED,
    }
)
"""Causes a serving pod reports in its termination message (a failed load, phase Failed or
Degraded). The runtime's own InvalidModelURI (no URI, an unknown scheme) is not one: the
operator judges URIs before any pod starts."""
