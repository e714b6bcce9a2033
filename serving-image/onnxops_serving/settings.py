"""Runtime settings: environment variables with the ``ONNXOPS_`` prefix, overridable by flags."""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServingSettings(BaseSettings):
    """Everything the serving process can be told; one field per ``ONNXOPS_*`` variable."""

    model_config = SettingsConfigDict(
        env_prefix="ONNXOPS_", extra="ignore", use_attribute_docstrings=True
    )

    model_uri: str = ""
    """Where the model is: a path (file or bundle dir), ``file://``, an ``http(s)://`` URL, or
    ``s3://BUCKET/KEY`` (a .onnx key or a bundle prefix; credentials from the AWS_* env)."""

    model_sha256: str = ""
    """Expected sha256 of the ONNX file; empty means "take it from model.json, if any"."""

    model_name: str = ""
    """Name served under ``/v2/models/{name}``; default: model.json ``name`` or the file stem."""

    model_version: str = ""
    """Version reported by the model endpoints; default: model.json ``version`` or "1"."""

    model_cache_dir: str = "/tmp/onnxops-models"
    """Writable directory for downloaded models (the root filesystem may be read-only)."""

    host: str = "0.0.0.0"
    """Address to listen on."""

    port: int = Field(default=8080, ge=0, le=65535)
    """Port to listen on (REST)."""

    grpc_port: int = Field(default=0, ge=0, le=65535)
    """Port of the OIP v2 gRPC service and the gRPC health checks; 0 (the default of a bare
    process, so several can share a host) turns gRPC off. The image sets 8081."""

    threads: int = Field(default=1, ge=0)
    """ONNX Runtime intra-op threads (0 = one per core)."""

    max_batch_size: int = Field(default=1, ge=1)
    """Adaptive batching: most requests merged into one inference; 1 turns batching off."""

    max_batch_latency_ms: float = Field(default=2.0, ge=0)
    """Adaptive batching: longest a request waits for others to join its batch."""

    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    """Largest request body accepted; larger ones get 413."""

    request_timeout_s: float = Field(default=30.0, gt=0)
    """A request must arrive in full (head and body) within this many seconds, else 408."""

    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    """Largest request head (request line and headers) accepted; larger ones get 431."""

    idle_timeout_s: float = Field(default=10.0, gt=0)
    """A new connection that sends nothing for this long is closed."""

    keepalive_timeout_s: float = Field(default=5.0, gt=0)
    """A kept-alive connection with no new request for this long is closed."""

    max_connections: int = Field(default=1000, ge=1)
    """Open HTTP connections beyond this get 503 and are closed at once (bounded by the
    process's file limit, which the server raises to its hard limit at start)."""

    max_rows: int = Field(default=4096, ge=1)
    """Most rows (first dimension) one request may carry."""

    inline_threshold_ms: float = Field(default=1.0, ge=0)
    """Models whose warm-up inference is faster than this run on the event loop itself;
    slower ones run in a worker thread so health checks stay responsive. 0 = always a thread."""

    feedback_cache_size: int = Field(default=10_000, ge=1)
    """How many rows of recent predictions are kept, by request id, for feedback to refer to
    (oldest requests evicted first)."""

    quality_window: int = Field(default=1000, ge=1)
    """Online accuracy/F1 (or MAE/RMSE) are computed over this many latest labelled rows."""

    drift_window: int = Field(default=1000, ge=10)
    """Input drift (PSI) is computed over this many latest input rows."""

    drift_min_rows: int = Field(default=100, ge=1)
    """No drift figure is exported until this many rows were seen (PSI is noisy below)."""

    drift_max_feature_series: int = Field(default=100, ge=0)
    """Models with more input features export only ``onnxops_drift_psi_max``, not one PSI
    series per feature (bounds the metrics' cardinality)."""

    drain_seconds: float = Field(default=10.0, ge=0)
    """On SIGTERM: how long in-flight requests may take to finish before the process exits."""

    shutdown_delay_s: float = Field(default=0.0, ge=0)
    """On SIGTERM: keep accepting new requests (readiness already false) this long before the
    drain starts, while Kubernetes removes the pod from the Service endpoints."""

    fetch_retries: int = Field(default=4, ge=0)
    """Retries on transient HTTP errors (5xx, 429, connection errors) when downloading."""

    fetch_timeout_s: float = Field(default=30.0, gt=0)
    """Timeout of one download attempt."""

    mirror_config: str = ""
    """Shadow mirroring: a JSON file (a mounted ConfigMap's ``mirror.json``) naming the share
    of requests to copy and the candidate's addresses; re-read when it changes (checked once
    a second). Empty: no mirroring, and nothing on the request path."""

    mirror_address_rewrite: str = ""
    """Prefix rewrites of mirror target hosts, ``OLD=NEW[,OLD=NEW]`` (the local cluster's
    ``10.=127.``: pod IPs are served on loopback). Applied to mirror targets only."""

    mirror_queue_size: int = Field(default=256, ge=1)
    """Mirrored requests waiting to be sent; more are dropped (and counted), never waited on."""

    mirror_concurrency: int = Field(default=4, ge=1)
    """Mirrored requests in flight at once."""

    mirror_timeout_s: float = Field(default=2.0, gt=0)
    """A candidate's answer slower than this counts as an error."""

    log_level: str = "info"
    """Log level of the serving process."""

    termination_message_path: str = ""
    """Where to write why the process could not start (``Reason: message``), for the pod's
    ``lastState.terminated.message``; the operator sets the container's
    ``terminationMessagePath`` here. Empty: not written."""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def parse_settings(argv: list[str] | None = None) -> ServingSettings:
    """Read settings from the environment, then apply any command-line flags over them."""
    parser = argparse.ArgumentParser(
        prog="onnxops-serve",
        description="Serve one ONNX model over the Open Inference Protocol v2 (REST).",
    )
    for name, field in ServingSettings.model_fields.items():
        kind: Any = field.annotation if field.annotation in (int, float) else str
        doc = (field.description or "").split("\n")[0]
        parser.add_argument(
            _flag(name), dest=name, type=kind, default=None, help=f"{doc} [ONNXOPS_{name.upper()}]"
        )
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    return ServingSettings(**overrides)
