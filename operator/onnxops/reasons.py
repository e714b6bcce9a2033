"""One vocabulary of condition types and reasons, for deploy, watch and heal alike.

Status conditions and Events use these names; a test or a dashboard that matches on a reason
reads it from here, so a typo is an AttributeError instead of a condition nobody matches.
`StrEnum` members are plain strings on the wire (`json.dumps`, f-strings, comparisons).
"""

from __future__ import annotations

from enum import StrEnum, unique


@unique
class ConditionType(StrEnum):
    """Conditions of a ModelDeployment's status (Kubernetes API conventions)."""

    READY = "Ready"
    PLACED = "Placed"
    MODEL_AVAILABLE = "ModelAvailable"
    # Written by the monitor and remediation (issues 10, 11); named here so all share one list.
    HEALTHY = "Healthy"
    MONITORING_AVAILABLE = "MonitoringAvailable"
    REMEDIATING = "Remediating"
    ROLLED_BACK = "RolledBack"
    """Remediation serves an earlier model than the spec's (phase Degraded) until it changes."""
    # kstatus' abnormal-true pair (Flux, kpt, cli-utils): present only while True.
    RECONCILING = "Reconciling"
    """The operator is bringing the pods to this generation (phase Progressing)."""
    STALLED = "Stalled"
    """Progress needs the user: a spec judged unworkable, or pods that cannot load the model."""
    ROLLOUT_ABORTED = "RolloutAborted"
    """A candidate model failed its analysis (reason: the signal); stands until the spec's
    model changes or the user retries."""


@unique
class Phase(StrEnum):
    """status.phase of a ModelDeployment (the CRD's enum)."""

    PENDING = "Pending"
    PROGRESSING = "Progressing"
    READY = "Ready"
    DEGRADED = "Degraded"
    REMEDIATING = "Remediating"
    FAILED = "Failed"


@unique
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
    # The monitor (watch): MonitoringAvailable and Healthy, and the Events of faults.
    METRICS_READ = "MetricsRead"
    EVALUATING = "Evaluating"
    """MonitoringAvailable=Unknown: the first reads of the metrics failed."""
    FAULTS_FOUND = "FaultsFound"
    NO_FAULTS = "NoFaults"
    METRICS_UNAVAILABLE = "MetricsUnavailable"
    FAULT_DETECTED = "FaultDetected"
    FAULT_CLEARED = "FaultCleared"
    # Remediation (heal): Remediating, RolledBack and the Events of an in-place resize. The
    # Event of a record is `<Action><Result>` (history.event), built from the record.
    ACTION_IN_FLIGHT = "ActionInFlight"
    IDLE = "Idle"
    MODEL_ROLLED_BACK = "ModelRolledBack"
    RESIZE_APPLIED = "ResizeApplied"
    RESIZE_REFUSED = "ResizeRefused"
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
    AWAITING_SCALE_UP = "AwaitingScaleUp"
    """Placed: pods unschedulable, and the cluster autoscaler adds a node for them (heal's)."""
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

    # Progressive delivery (`rollout/`): Events per step and the RolloutAborted condition.
    ROLLOUT_STARTED = "RolloutStarted"
    ROLLOUT_STEP = "RolloutStep"
    ROLLOUT_PAUSED = "RolloutPaused"
    ROLLOUT_RESUMED = "RolloutResumed"
    ROLLOUT_INCONCLUSIVE = "RolloutInconclusive"
    ROLLOUT_MEASURED = "RolloutMeasured"
    ROLLOUT_PROMOTING = "RolloutPromoting"
    ROLLOUT_PROMOTED = "RolloutPromoted"
    ROLLOUT_ABORTED = "RolloutAborted"
    ROLLOUT_RETRIED = "RolloutRetried"
    ROLLOUT_IN_PROGRESS = "RolloutInProgress"
    """Reconciling=True while a rollout runs (kstatus InProgress until it is promoted)."""
    ROLLOUT_UNMEETABLE = "RolloutUnmeetable"
    """Warning: steps that cannot be met as written (replicas 0, weights on one replica)."""
    USER_ABORTED = "UserAborted"
    """RolloutAborted's reason when the user aborted (not a signal)."""


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


@unique
class Problem(StrEnum):
    """Why the monitor cannot read a deployment's metrics (MonitoringAvailable=False)."""

    NOT_CONFIGURED = "NotConfigured"
    """The operator has no Prometheus URL."""
    DISABLED = "Disabled"
    """spec.monitoring.enabled is false."""
    PROMETHEUS_UNAVAILABLE = "PrometheusUnavailable"
    NO_METRICS = "NoMetrics"


SETTLED_PROBLEMS = frozenset({Problem.NOT_CONFIGURED, Problem.DISABLED})
"""Problems that need no streak of failed reads: they hold until the configuration changes."""


@unique
class Signal(StrEnum):
    """What the monitor finds (a fault's `signal`); the reason remediation acts on it."""

    ERROR_RATE = "ErrorRate"
    LATENCY_P99 = "LatencyP99"
    LATENCY_ANOMALY = "LatencyAnomaly"
    ERROR_RATE_ANOMALY = "ErrorRateAnomaly"
    CPU_THROTTLING = "CpuThrottling"
    CPU_UTILIZATION = "CpuUtilization"
    MEMORY_UTILIZATION = "MemoryUtilization"
    OOM_KILLED = "OOMKilled"
    ACCURACY = "Accuracy"
    DRIFT = "Drift"
    CRASH_LOOP = "CrashLoop"
    NOT_READY = "NotReady"
    UNSCHEDULABLE = "Unschedulable"


@unique
class RolloutPhase(StrEnum):
    """status.rollout.phase."""

    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    INCONCLUSIVE = "Inconclusive"
    """Progressing, but the last measurement could not judge (too few requests, no data)."""
    PROMOTED = "Promoted"
    """The stable Deployment serves the spec's model; no canary runs."""
    ABORTED = "Aborted"


@unique
class Verdict(StrEnum):
    """A rollout measurement's outcome (Argo Rollouts' words)."""

    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"


@unique
class RolloutSignal(StrEnum):
    """Rollout signals that are not monitor faults (the others reuse `Signal`)."""

    AGREEMENT = "Agreement"
    """Share of mirrored requests both versions answered alike (shadow steps)."""


@unique
class HealReason(StrEnum):
    """Why remediation acts where no fault names it (a record's reason; else a Signal)."""

    POOL_HAS_ROOM = "PoolHasRoom"
    """Failback: the preferred pool has room again."""
    LOW_USE = "LowUse"
    """Resize down after long low use (`status.lowUse`)."""


@unique
class HealResult(StrEnum):
    """The result of a remediation record."""

    PENDING = "Pending"
    """Intent recorded, not yet done."""
    IN_PROGRESS = "InProgress"
    """Done; waiting for the cluster to confirm."""
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    REFUSED = "Refused"
    DRY_RUN = "DryRun"


@unique
class Refusal(StrEnum):
    """Why a guardrail refused an action (a record's `refusal`)."""

    UNKNOWN_DATA = "UnknownData"
    OFF = "Off"
    HPA_OWNS_CPU = "HpaOwnsCpu"
    FLOOR = "Floor"
    CEILING = "Ceiling"
    IN_FLIGHT = "InFlight"
    COOLDOWN = "Cooldown"
    HOURLY_CAP = "HourlyCap"
    FLEET_LIMIT = "FleetLimit"


# Kubernetes' own words, as the operator reads them from pods and Deployments. Some equal
# words of the operator's ("Ready", "Failed", "OOMKilled"); naming them apart says whose is meant.


@unique
class PodPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@unique
class KubeCondition(StrEnum):
    """Condition types of pods, nodes and Deployments."""

    READY = "Ready"
    POD_SCHEDULED = "PodScheduled"
    POD_RESIZE_PENDING = "PodResizePending"
    POD_RESIZE_IN_PROGRESS = "PodResizeInProgress"
    PROGRESSING = "Progressing"
    """Of a Deployment."""


@unique
class KubeReason(StrEnum):
    """Reasons Kubernetes gives: of a condition, a container's state, a pod resize."""

    UNSCHEDULABLE = "Unschedulable"
    """PodScheduled=False."""
    OOM_KILLED = "OOMKilled"
    """A container's last termination."""
    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
    """A container waiting to restart."""
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    """A Deployment's Progressing=False."""
    RESIZE_IN_PROGRESS = "InProgress"
    RESIZE_DEFERRED = "Deferred"
    RESIZE_INFEASIBLE = "Infeasible"
    RESIZE_ERROR = "Error"
