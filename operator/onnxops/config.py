"""The operator's own settings, from `ONNXOPS_*` environment variables (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorConfig(BaseSettings):
    """How this operator process behaves; the Deployment in manifests/ sets these."""

    model_config = SettingsConfigDict(env_prefix="ONNXOPS_", extra="ignore")

    serving_image: str = "ghcr.io/onnxops/onnxops-serving:0.1.0"
    """Image of the serving runtime the operator deploys."""
    pools_file: str | None = None
    """YAML with the pool profiles (mounted from a ConfigMap); built-in profiles when unset."""
    cluster_domain: str = "cluster.local"
    """DNS suffix used in status.endpoint."""
    probe_http_models: bool = False
    """HEAD-check http(s) model URIs from the operator. Off by default: the pods' network view
    (an in-cluster model store) often differs from the operator's."""
    probe_timeout_s: float = 3.0
    """Timeout of that HEAD check."""
    retry_base_s: float = 15.0
    """First retry delay after a failure that may heal (no capacity, model unreachable)."""
    retry_max_s: float = 300.0
    """Upper bound of the doubling retry delay, so a stuck spec never hot-loops."""
    resync_s: float = 120.0
    """Timer period that re-applies children and refreshes status (drift the watches miss)."""
    resync_idle_s: float = 10.0
    """The timer only fires after the resource has been left alone this long."""
    watch_timeout_s: int = 300
    """Server-side watch timeout: watches are re-established before proxies drop them."""
    peering: str = "onnxops"
    """Name of the kopf peering object shared by the operator's replicas."""
    peering_priority: int | None = None
    """This replica's peering priority; random when unset, because kopf pauses *every*
    operator when two of the same priority meet, and Deployment replicas share one env."""
    peering_lifetime_s: int = 60
    """How long a silent peer counts as alive; a standby takes over after at most this."""
    standalone: bool = False
    """Run without peering (tests, a single local process)."""
    liveness: str | None = None
    """kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz."""
    namespaces: str = ""
    """Comma-separated namespaces to watch; empty means cluster-wide."""
    prometheus_url: str | None = None
    """Prometheus (or a Thanos/Mimir querier) the monitor reads; unset: monitoring is off and
    every ModelDeployment says so in its MonitoringAvailable condition."""
    prometheus_bearer_token_file: str | None = None
    """File with a bearer token for Prometheus; read at each cycle, so a rotated token works."""
    prometheus_ca_file: str | None = None
    """CA bundle that signed Prometheus' serving certificate (https URLs)."""
    prometheus_timeout_s: float = 10.0
    """Timeout of one Prometheus query; a slow Prometheus makes the signal unknown, not bad."""
    prometheus_model_label: str = "onnxops_io_model_deployment"
    """Label that names the ModelDeployment on the runtime's onnxops_* series: the pod label
    onnxops.io/model-deployment mapped the way Prometheus' `labelmap` relabelling maps it."""
    monitor_rate_window: str = "2m"
    """Range of rate() over counters and histograms; at least four scrape intervals."""
    monitor_history_step_s: float = 30.0
    """Resolution of the history read for anomaly detection (one range query per signal)."""
    monitor_tick_s: float = 1.0
    """How often the monitor loop looks for ModelDeployments due for evaluation."""
    monitor_write_concurrency: int = Field(default=16, ge=1)
    """How many ModelDeployments' status writes, Events and heal actions a monitor cycle runs
    at once (detection stays one after another); 1: one after another. Each write waits on an
    apiserver round trip, which several in flight overlap (bench/watch/RESULTS.md)."""
    metrics_port: int | None = None
    """Port of the operator's own /metrics (Prometheus format); unset: not served."""
    fleet_disruptions: int = 5
    """Operator-wide: most disruptive remediations (restarts, rollouts, failovers, rollbacks)
    in any `fleet_window_s`, across all models, so a glitch can never restart the fleet."""
    fleet_window_s: float = 60.0
    """The window of `fleet_disruptions`."""


@lru_cache(maxsize=1)
def config() -> OperatorConfig:
    """The process-wide settings, read once."""
    return OperatorConfig()
