"""The `ModelDeployment` API (onnxops.io/v1alpha1): pydantic models of spec and status.

These models are the single source of truth: `onnxops crd` renders the CRD's openAPIV3Schema
from them (see `crdgen.py`) and the operator parses every object it handles through them.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from onnxops import reasons

GROUP = "onnxops.io"
VERSION = "v1alpha1"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ["mdep"]

# A non-negative Kubernetes quantity, by the grammar resource.Quantity parses (number, then a
# binary-SI, decimal-SI or exponent suffix). The looser regex of the apiserver's OpenAPI
# `quantity` format accepts "1.5.3" or "1Ki1", which no parser reads: the operator then
# looped on them.
QUANTITY_PATTERN = r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
SHA256_PATTERN = r"^[a-f0-9]{64}$"
# Schemes the runtime can fetch from (http/file/s3) or the operator can mount (pvc/configmap);
# a bare absolute path means a file already present in the image.
URI_PATTERN = r"^((https?|file|pvc|configmap)://[^\s]+|s3://[a-z0-9][-a-z0-9.]{1,61}[a-z0-9](/[^\s]*)?|/[^\s]*)$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Label keys and values are free-form strings in the spec; the apiserver validates them
# again on the Deployment, but a selector value must at least be short and printable.
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"

# int-or-string in the CRD; the pattern applies to the string form.
Quantity = Annotated[int, Field(ge=0)] | Annotated[str, Field(pattern=QUANTITY_PATTERN)]


class ApiModel(BaseModel):
    """Base: camelCase on the wire, attribute docstrings become schema descriptions."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        extra="ignore",
    )

    def wire(self) -> dict[str, Any]:
        """The object as it appears in Kubernetes (camelCase, unset fields left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ModelVariant(ApiModel):
    """An alternative file of the same model, e.g. an int8-quantized one for edge nodes."""

    uri: str = Field(pattern=URI_PATTERN, max_length=2048)
    """Where the variant's .onnx file (or bundle directory) is."""
    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    """Expected sha256 of the variant's file; the runtime refuses a mismatch."""


class ModelStorage(ApiModel):
    """How the runtime reaches an `s3://` model (and its variants'). Without `secretName` it
    uses the standard AWS credential chain (a web identity token for IRSA / pod identity,
    instance metadata), so nothing is needed on EKS with a role for the ServiceAccount."""

    secret_name: str | None = Field(default=None, pattern=DNS_LABEL_PATTERN, max_length=253)
    """A Secret in the same namespace with `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    optionally `AWS_SESSION_TOKEN`; the pod reads them from it (never copied anywhere)."""
    endpoint: str | None = Field(
        default=None, pattern=r"^https?://[^\s/]+(/[^\s]*)?$", max_length=512
    )
    """An S3-compatible store's URL (MinIO, SeaweedFS, versitygw, R2...); default: AWS."""
    region: str | None = Field(default=None, pattern=r"^[a-z0-9-]{1,32}$")
    """The bucket's region (default: the runtime's AWS_REGION, else us-east-1)."""
    insecure: bool = False
    """Allow a plain http endpoint (a store on the cluster network)."""
    ca_config_map: str | None = Field(default=None, pattern=DNS_LABEL_PATTERN, max_length=253)
    """A ConfigMap whose key `ca.crt` holds the PEM CA(s) of a store behind a private CA
    (trusted beside the system roots; `kube-root-ca.crt`'s layout)."""


class ModelSource(ApiModel):
    """Which model to serve and how to check it."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.variant in ['auto', 'default'] || self.variant in self.variants",
                    "message": "variant must be auto, default or a key of variants",
                }
            ]
        }
    )

    uri: str = Field(pattern=URI_PATTERN, max_length=2048)
    """https://, http://, s3://BUCKET/KEY (a .onnx key or a bundle prefix), file://,
    pvc://CLAIM/PATH, configmap://NAME/KEY or an absolute path."""
    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    """Expected sha256 of the model file; the runtime refuses to load on mismatch."""
    name: str | None = Field(default=None, pattern=DNS_LABEL_PATTERN, max_length=63)
    """Model name in the inference API (default: from model.json or the file name)."""
    version: str | None = Field(default=None, pattern=LABEL_VALUE_PATTERN, max_length=63)
    """Model version, shown in status and exported with metrics."""
    variants: dict[str, ModelVariant] = Field(default_factory=dict, max_length=8)
    """Alternative files keyed by variant name (e.g. `int8`); pools pick their preferred one."""
    variant: str = Field(default="auto", pattern=r"^(auto|default|[a-z0-9][-a-z0-9]*)$")
    """`auto`: the pool's preferred variant when given; `default`: the main uri; or a name."""
    storage: ModelStorage | None = None
    """Credentials and endpoint for `s3://` URIs."""


class Toleration(ApiModel):
    """A pod toleration, as in core/v1."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.operator != 'Exists' || !has(self.value)",
                    "message": "a toleration with operator Exists takes no value",
                }
            ]
        }
    )

    key: str | None = Field(default=None, max_length=253)
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = Field(default=None, max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, ge=0)


class Target(ApiModel):
    """Where the model runs."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.fallbackPool) || self.fallbackPool != self.pool",
                    "message": "fallbackPool must differ from pool",
                },
                {
                    "rule": "!has(self.fallbackPool) || self.pool != 'auto'",
                    "message": "fallbackPool needs an explicit pool; auto already picks any",
                },
                {
                    "rule": "!has(self.prefer) || self.pool == 'auto'",
                    "message": "prefer is only meaningful with pool: auto",
                },
            ]
        }
    )

    pool: str = Field(default="auto", pattern=DNS_LABEL_PATTERN, max_length=63)
    """A node pool from the operator's pool configuration (`cloud`, `edge`), or `auto`."""
    fallback_pool: str | None = Field(default=None, pattern=DNS_LABEL_PATTERN, max_length=63)
    """Pool to use when the chosen one has no room."""
    prefer: str | None = Field(default=None, pattern=DNS_LABEL_PATTERN, max_length=63)
    """With `pool: auto`: the pool to try first (e.g. `edge`)."""
    node_selector: dict[str, str] = Field(default_factory=dict, max_length=16)
    """Extra node labels, merged over the pool's selector."""
    tolerations: list[Toleration] = Field(default_factory=list, max_length=16)
    """Extra tolerations, added to the pool's."""


class ResourceList(ApiModel):
    """CPU and memory quantities."""

    cpu: Quantity | None = None
    memory: Quantity | None = None


def _not_below(field: str) -> str:
    return (
        "!has(self.limits) || !has(self.requests) || "
        f"!has(self.limits.{field}) || !has(self.requests.{field}) || "
        f"quantity(string(self.limits.{field})).compareTo("
        f"quantity(string(self.requests.{field}))) >= 0"
    )


class ResourceRequirements(ApiModel):
    """Per-replica CPU and memory; unset values come from the pool's defaults."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": _not_below("cpu"), "message": "limits.cpu must be >= requests.cpu"},
                {
                    "rule": _not_below("memory"),
                    "message": "limits.memory must be >= requests.memory",
                },
            ]
        }
    )

    requests: ResourceList = Field(default_factory=ResourceList)
    limits: ResourceList = Field(default_factory=ResourceList)


class Autoscaling(ApiModel):
    """Horizontal autoscaling; the operator owns an HPA with these bounds."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.minReplicas <= self.maxReplicas",
                    "message": "minReplicas must be <= maxReplicas",
                }
            ]
        }
    )

    min_replicas: int = Field(default=1, ge=1, le=100)
    max_replicas: int = Field(ge=1, le=100)
    target_cpu_utilization: int = Field(default=70, ge=1, le=100, alias="targetCPUUtilization")
    """Average CPU utilization (percent of requests) the HPA aims for."""


class Batching(ApiModel):
    """Adaptive batching in the runtime; off unless maxBatchSize > 1."""

    max_batch_size: int = Field(default=1, ge=1, le=1024)
    max_latency_ms: float = Field(default=2.0, ge=0, le=1000)


class Serving(ApiModel):
    """Settings of the serving runtime."""

    threads: int | None = Field(default=None, ge=1, le=64)
    """ONNX Runtime intra-op threads (default: the pool's)."""
    port: int = Field(default=8080, ge=1024, le=65535)
    batching: Batching | None = None
    image: str | None = Field(default=None, max_length=512, pattern=r"^\S+$")
    """Override of the operator's serving image."""


class Thresholds(ApiModel):
    """Limits a healthy deployment stays within (read by the monitor)."""

    error_rate: float = Field(default=0.05, ge=0, le=1)
    latency_p99_ms: float = Field(default=250, gt=0)
    cpu_utilization: float = Field(default=0.9, gt=0, le=1)
    memory_utilization: float = Field(default=0.9, gt=0, le=1)
    min_accuracy: float | None = Field(default=None, ge=0, le=1)
    max_drift: float | None = Field(default=0.25, ge=0)
    """Largest population stability index of any input feature (unset: drift not judged)."""
    cpu_throttling: float = Field(default=0.25, gt=0, le=1)
    """Share of CPU periods in which the container was throttled by its CPU limit."""


class Anomaly(ApiModel):
    """Anomaly detection of p99 latency and error ratio against their recent history."""

    enabled: bool = True
    z_score: float = Field(default=3.0, gt=0)
    """How many deviations from the window's centre count as an anomaly."""
    window: str = Field(default="1h", pattern=r"^[0-9]+[smhd]$")
    """The history a value is compared against (Prometheus duration)."""
    method: Literal["medianMAD", "zScore"] = "medianMAD"
    """`medianMAD`: distance from the median in scaled median absolute deviations (robust to
    earlier spikes in the window); `zScore`: distance from the mean in standard deviations."""
    min_samples: int = Field(default=10, ge=3, le=10000)
    """Silent until the window holds this many samples (a fresh model has no history)."""


class Monitoring(ApiModel):
    """How the operator watches the model through Prometheus."""

    enabled: bool = True
    interval_seconds: int = Field(default=30, ge=5, le=3600)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    anomaly: Anomaly = Field(default_factory=Anomaly)
    failure_threshold: int = Field(default=3, ge=1, le=100)
    """Consecutive bad evaluations before a fault counts."""
    unknown_threshold: int = Field(default=3, ge=1, le=100)
    """Consecutive evaluations without metrics before MonitoringAvailable turns False."""


class Shrink(ApiModel):
    """Right-sizing down, like the VPA's downscaling: after long low use, requests and limits
    are divided by `resize.factor` (never below the peak use seen plus headroom).

    Off by default: a spec's resources are often sized on purpose (a model's load at start,
    a weekly peak the window never saw), and giving headroom back is a cost decision the
    owner takes, where raising after OOM kills is not."""

    enabled: bool = False
    after_seconds: int = Field(default=86400, ge=10, le=30 * 86400)
    """How long use must stay low (the window its peak is read over, and the least time since
    the last resize, up or down)."""
    below: float = Field(default=0.3, gt=0, lt=1)
    """Low means: the peak use of every pod over the window is under this share of the request."""


class Resize(ApiModel):
    """How remediation grows or shrinks resource requests."""

    factor: float = Field(default=1.5, gt=1, le=10)
    max_cpu: Quantity | None = None
    max_memory: Quantity | None = None
    in_place: Literal["auto", "always", "never"] = "auto"
    deferred_seconds: int = Field(default=300, ge=0, le=86400)
    """Seconds an in-place resize may stay `Deferred` (no room on the node) before a rollout."""
    shrink: Shrink = Field(default_factory=Shrink)


class Remediation(ApiModel):
    """What the operator may do on its own when a fault is found."""

    mode: Literal["auto", "dryRun", "off"] = "auto"
    """`auto` acts; `dryRun` only records what it would do (Events, status); `off` ignores faults."""
    cooldown_seconds: int = Field(default=300, ge=0, le=86400)
    """Least time between two actions of the same kind on this model."""
    max_actions_per_hour: int = Field(default=6, ge=0, le=1000)
    """Actions taken in any sliding hour; further ones are refused (and recorded as such)."""
    resize: Resize = Field(default_factory=Resize)
    unschedulable_seconds: int = Field(default=120, ge=0, le=86400)
    """How long pods may stay Unschedulable before failing over to `target.fallbackPool`."""
    scale_up_grace_seconds: int = Field(default=600, ge=0, le=86400)
    """How long pods may stay Unschedulable before a failover while the cluster autoscaler has
    said it adds a node for every one of them (Karpenter's `Nominated`, Cluster Autoscaler's
    `TriggeredScaleUp`); the longer of this and `unschedulableSeconds` applies then."""
    failback_seconds: int = Field(default=600, ge=0, le=86400)
    """Hysteresis: least time on the fallback pool before moving back to the preferred one."""
    rollback_window_seconds: int = Field(default=900, ge=0, le=86400)
    """A model change counts as the cause of a fault this long after it was first served."""


MAX_ROLLOUT_STEPS = 10


class RolloutStep(ApiModel):
    """One step of a rollout: exactly one of `shadow` or `weight`, held for `pauseSeconds`."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.shadow) != has(self.weight)",
                    "message": "a rollout step takes exactly one of shadow or weight",
                }
            ]
        }
    )

    shadow: int | None = Field(default=None, ge=1, le=100)
    """Percent of the stable pods' requests copied to the candidate in the background; the
    candidate's answers are compared and discarded, and it serves no user request."""
    weight: int | None = Field(default=None, ge=1, le=100)
    """Percent of the serving pods that run the candidate (a replica ratio behind the one
    Service: canary ceil(weight x replicas / 100), never fewer than one stable pod)."""
    pause_seconds: int = Field(default=60, ge=0, le=86400)
    """Least time in this step; it passes once this has elapsed and a measurement succeeded."""

    @model_validator(mode="after")
    def _one_kind(self) -> RolloutStep:
        if (self.shadow is None) == (self.weight is None):
            raise ValueError("a rollout step takes exactly one of shadow or weight")
        return self


def _weights_increase(count: int) -> str:
    """CEL: weight steps' weights strictly increase, whatever shadow steps lie between.

    CEL has no index ranges, so every pair (i, j) of the at most `count` positions is spelt
    out; a pair past the list's end or with a shadow step holds trivially."""
    pairs = [
        f"(size(self) <= {j} || !has(self[{i}].weight) || !has(self[{j}].weight)"
        f" || self[{i}].weight < self[{j}].weight)"
        for i in range(count)
        for j in range(i + 1, count)
    ]
    return " && ".join(pairs)


class RolloutAnalysis(ApiModel):
    """How the candidate is judged against the stable version, side by side, every interval.

    A measurement is Successful, Failed, or Inconclusive (too few requests, no feedback,
    Prometheus unreachable): inconclusive never counts as a failure and never promotes."""

    interval_seconds: int = Field(default=10, ge=5, le=3600)
    """Time between two measurements."""
    failure_limit: int = Field(default=1, ge=0, le=100)
    """Failed measurements tolerated; one more aborts the rollout (Argo Rollouts' rule)."""
    min_requests: int = Field(default=50, ge=1, le=1_000_000)
    """Fewer requests answered by the candidate (or mirrored to it) within the step make a
    measurement inconclusive."""
    max_error_rate_increase: float = Field(default=0.02, ge=0, le=1)
    """Largest candidate - stable share of inference requests answered 5xx."""
    max_latency_ratio: float = Field(default=1.5, gt=0, le=1000)
    """Largest candidate p99 / stable p99."""
    max_accuracy_drop: float = Field(default=0.05, ge=0, le=1)
    """Largest stable - candidate online accuracy, judged when both have feedback."""
    min_agreement: float = Field(default=0.95, ge=0, le=1)
    """Shadow steps: least share of mirrored requests both versions answered alike."""
    agreement_tolerance: float = Field(default=0.0, ge=0)
    """Regression outputs: |stable - candidate| <= this counts as agreeing."""
    max_drift: float = Field(default=0.25, ge=0)
    """Largest input PSI the candidate saw."""


class Rollout(ApiModel):
    """Progressive delivery: a change of spec.model goes out through these steps (a shadow,
    then canary weights), judged by `analysis`, then promoted; or aborted."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": _weights_increase(MAX_ROLLOUT_STEPS).replace("self", "self.steps"),
                    "message": "weights must increase strictly from one weight step to the next",
                }
            ]
        }
    )

    paused: bool = False
    """Hold the current step (no analysis, no progress) until set false again."""
    steps: list[RolloutStep] = Field(min_length=1, max_length=MAX_ROLLOUT_STEPS)
    """Run in order; the last one is followed by promotion."""
    analysis: RolloutAnalysis = Field(default_factory=RolloutAnalysis)

    @model_validator(mode="after")
    def _increasing(self) -> Rollout:
        weights = [s.weight for s in self.steps if s.weight is not None]
        if any(a >= b for a, b in itertools.pairwise(weights)):
            raise ValueError("weights must increase strictly from one weight step to the next")
        return self


class ModelDeploymentSpec(ApiModel):
    """Desired state: which model, where, how much."""

    model: ModelSource
    target: Target = Field(default_factory=Target)
    replicas: int = Field(default=1, ge=0, le=100)
    """Replicas without autoscaling (`kubectl scale mdep` sets it); ignored with autoscaling."""
    autoscaling: Autoscaling | None = None
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    serving: Serving = Field(default_factory=Serving)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    remediation: Remediation = Field(default_factory=Remediation)
    rollout: Rollout | None = None
    """Progressive delivery of model changes; absent: a new model rolls every pod at once."""


# The CRD's enums are Literals of the vocabulary's members: the schema renders them as plain
# string enums, and a value read from the API arrives as the member.
Phase = Literal[
    reasons.Phase.PENDING,
    reasons.Phase.PROGRESSING,
    reasons.Phase.READY,
    reasons.Phase.DEGRADED,
    reasons.Phase.REMEDIATING,
    reasons.Phase.FAILED,
]
PHASES: tuple[str, ...] = Phase.__args__  # type: ignore[attr-defined]


class Condition(ApiModel):
    """A condition, following the Kubernetes API conventions."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


FaultSignal = Literal[
    reasons.Signal.ERROR_RATE,
    reasons.Signal.LATENCY_P99,
    reasons.Signal.LATENCY_ANOMALY,
    reasons.Signal.ERROR_RATE_ANOMALY,
    reasons.Signal.CPU_THROTTLING,
    reasons.Signal.CPU_UTILIZATION,
    reasons.Signal.MEMORY_UTILIZATION,
    reasons.Signal.OOM_KILLED,
    reasons.Signal.ACCURACY,
    reasons.Signal.DRIFT,
    reasons.Signal.CRASH_LOOP,
    reasons.Signal.NOT_READY,
    reasons.Signal.UNSCHEDULABLE,
]
FAULT_SIGNALS: tuple[str, ...] = FaultSignal.__args__  # type: ignore[attr-defined]


class Fault(ApiModel):
    """A current finding of the monitor: a signal bad for failureThreshold evaluations."""

    signal: FaultSignal
    value: float | None = None
    """The signal's value at the latest evaluation (ratio, milliseconds, count, ...)."""
    threshold: float | None = None
    """The limit it crossed (for anomalies: the z-score limit)."""
    since: str | None = None
    """When the fault started (RFC3339)."""
    message: str = ""
    pods: list[str] = Field(default_factory=list, max_length=100)
    """The affected pods; empty means the deployment as a whole."""


class LowUse(ApiModel):
    """Long low use of one resource, found by the monitor with `resize.shrink` enabled.

    Not a fault, and so kept out of `status.faults`: nothing is degraded by spare headroom, so
    it must not turn the phase Degraded, the Healthy condition False, fire FaultDetected
    Warnings or count as a fault in the operator's metrics (all of which read `faults`). It is
    an opportunity the heal hook may take (a resize down), under the same guardrails."""

    resource: Literal["cpu", "memory"]
    peak: float
    """The highest use of any pod over the window: cores or bytes."""
    value: float
    """peak / request, the highest of any pod."""
    threshold: float
    """`resize.shrink.below` when it was found."""
    window_seconds: int
    """The window the peak was read over (`resize.shrink.afterSeconds`)."""
    message: str = ""
    pods: list[str] = Field(default_factory=list, max_length=100)


ActionKind = Literal[
    "restart", "rolloutRestart", "resize", "failover", "failback", "rollback", "warn"
]
ACTIONS: tuple[str, ...] = ActionKind.__args__  # type: ignore[attr-defined]
Result = Literal[
    reasons.HealResult.PENDING,
    reasons.HealResult.IN_PROGRESS,
    reasons.HealResult.SUCCEEDED,
    reasons.HealResult.FAILED,
    reasons.HealResult.REFUSED,
    reasons.HealResult.DRY_RUN,
]
RESULTS: tuple[str, ...] = Result.__args__  # type: ignore[attr-defined]


class RemediationRecord(ApiModel):
    """One action the operator took, is taking, refused or would take (dryRun)."""

    id: str = Field(default="", max_length=64)
    """Unique per action; an operator restarted mid-action finds its own Pending record."""
    time: str
    """When the decision was taken (RFC 3339)."""
    action: ActionKind
    reason: str = ""
    """The fault (signal) that called for it."""
    result: Result = reasons.HealResult.PENDING
    """Pending: intent recorded, not yet done; InProgress: waiting for the cluster to confirm."""
    refusal: str | None = None
    """Why a guardrail refused it: Cooldown, HourlyCap, InFlight, FleetLimit, Ceiling, ..."""
    message: str = ""
    pods: list[str] = Field(default_factory=list, max_length=100)
    """The pods acted on (name/uid), empty for the whole deployment."""
    finished: str | None = None
    """When it succeeded or failed."""


class ModelRef(ApiModel):
    """A model file as served: enough to serve it again."""

    uri: str
    sha256: str | None = None
    version: str | None = None


class Override(ApiModel):
    """Desired state chosen by remediation; the child builders apply it over the spec.

    Each part names the spec value it replaces, so a spec change (GitOps) ends it."""

    resources: ResourceRequirements | None = None
    """Requests/limits after a resize."""
    resources_basis: ResourceRequirements | None = None
    """spec.resources when the resize was decided."""
    in_place_generation: int | None = None
    """Pods were resized in place at this spec generation: the Deployment template takes the
    new resources only with the next rollout the spec causes, so the resize restarts nothing."""
    pool: str | None = None
    """The pool failed over to."""
    pool_since: str | None = None
    model: ModelRef | None = None
    """The model rolled back to."""
    model_replaces: ModelRef | None = None
    """The spec's model it stands in for; a new spec model ends the rollback."""
    restarted_at: str | None = None
    """Pod template annotation: changing it rolls every pod (a rollout restart)."""


class ModelMarks(ApiModel):
    """What remediation remembers of model versions, for rollback."""

    current: ModelRef | None = None
    current_since: str | None = None
    """When the spec's current model was first seen."""
    healthy: ModelRef | None = None
    """The last model seen Ready without faults."""


RolloutPhaseName = Literal[
    reasons.RolloutPhase.PROGRESSING,
    reasons.RolloutPhase.PAUSED,
    reasons.RolloutPhase.INCONCLUSIVE,
    reasons.RolloutPhase.PROMOTED,
    reasons.RolloutPhase.ABORTED,
]
ROLLOUT_PHASES: tuple[str, ...] = RolloutPhaseName.__args__  # type: ignore[attr-defined]
VerdictName = Literal[
    reasons.Verdict.SUCCESSFUL, reasons.Verdict.FAILED, reasons.Verdict.INCONCLUSIVE
]
RolloutSignalName = Literal[
    reasons.Signal.ERROR_RATE,
    reasons.Signal.LATENCY_P99,
    reasons.Signal.ACCURACY,
    reasons.Signal.DRIFT,
    reasons.RolloutSignal.AGREEMENT,
]
ROLLOUT_SIGNALS: tuple[str, ...] = RolloutSignalName.__args__  # type: ignore[attr-defined]


class Measurement(ApiModel):
    """The latest reading of one signal in a rollout: candidate beside stable."""

    signal: RolloutSignalName
    stable: float | None = None
    """The stable version's value (unset: unknown, or not compared: drift, agreement)."""
    candidate: float | None = None
    """The candidate's value (unset: unknown)."""
    threshold: float | None = None
    """The limit from spec.rollout.analysis the values were judged against."""
    verdict: VerdictName = reasons.Verdict.INCONCLUSIVE
    message: str = ""
    time: str | None = None
    """When it was measured (RFC 3339)."""


class RolloutStatus(ApiModel):
    """Where the rollout of spec.model stands; the intent is written here before acting, so
    an operator restarted mid-step resumes the same step."""

    phase: RolloutPhaseName = reasons.RolloutPhase.PROMOTED
    step: int = 0
    """The current step's index (0-based); equal to `steps` while promoting."""
    steps: int = 0
    """How many steps spec.rollout has."""
    canary_weight: int = 0
    """Percent of the serving pods that run the candidate now."""
    shadow_percent: int = 0
    """Percent of requests mirrored to the candidate now."""
    stable_version: str | None = None
    candidate_version: str | None = None
    stable_model: ModelSource | None = None
    """The model the stable Deployment runs (it takes the candidate at promotion)."""
    candidate: ModelSource | None = None
    """The model being rolled out (spec.model when the rollout started)."""
    candidate_generation: int | None = None
    """metadata.generation that started this rollout."""
    step_started_at: str | None = None
    """When the current step began (RFC 3339); its pause counts from here."""
    failures: int = 0
    """Failed measurements in this rollout."""
    successes: int = 0
    """Successful measurements in the current step."""
    measurements: list[Measurement] = Field(default_factory=list, max_length=8)
    """The latest measurement per signal."""
    handled_action: str | None = None
    """The last `onnxops.io/rollout-action` annotation value acted on."""
    message: str = ""


class ModelDeploymentStatus(ApiModel):
    """Observed state, written by the operator."""

    phase: Phase = reasons.Phase.PENDING
    observed_generation: int | None = None
    pool: str | None = None
    """The pool the model runs on (resolved from `auto` or after fallback)."""
    variant: str | None = None
    """The model variant served (`default` or a variant name)."""
    model: str | None = None
    """name:version of the served model, for `kubectl get`."""
    endpoint: str | None = None
    replicas: int = 0
    ready_replicas: int = 0
    ready: str = "0/0"
    """readyReplicas/replicas, for `kubectl get`."""
    selector: str | None = None
    """Label selector of the serving pods (scale subresource; `kubectl get pods -l`)."""
    conditions: list[Condition] = Field(default_factory=list)
    faults: list[Fault] = Field(default_factory=list)
    low_use: list[LowUse] = Field(default_factory=list)
    """Resources used far below their requests for a long time (not faults; see LowUse)."""
    remediations: list[RemediationRecord] = Field(default_factory=list, max_length=50)
    """The latest actions, taken or refused, newest last (bounded)."""
    override: Override | None = None
    models: ModelMarks | None = None
    rollout: RolloutStatus | None = None


class ModelDeployment(ApiModel):
    """A model served on a node pool; the CRD's root object."""

    api_version: str = f"{GROUP}/{VERSION}"
    kind: str = KIND
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus = Field(default_factory=ModelDeploymentStatus)

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", "default"))
