"""Pure builders: a ModelDeployment plus its pool profile -> the desired child objects (dicts).

No I/O here; `k8s.py` applies what these return, and the unit tests compare them as dicts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from onnxops.api import DNS_LABEL_PATTERN, ModelDeployment
from onnxops.pools import PoolProfile, effective_resources
from onnxops.rollout import plan as rollout_plan

MANAGED_BY = "onnxops"
MD_LABEL = "onnxops.io/model-deployment"
POOL_LABEL = "onnxops.io/pool"
CONTAINER = "server"
MODEL_DIR = "/models"
CACHE_DIR = "/var/cache/onnxops"
S3_SECRET_KEYS = (
    ("AWS_ACCESS_KEY_ID", False),
    ("AWS_SECRET_ACCESS_KEY", False),
    ("AWS_SESSION_TOKEN", True),
)
"""The keys of spec.model.storage.secretName the pod reads (name, optional)."""
CA_DIR, CA_KEY = "/etc/onnxops/storage-ca", "ca.crt"  # spec.model.storage.caConfigMap
TERMINATION_LOG = "/dev/termination-log"
"""The kubelet's default terminationMessagePath: the runtime writes why it could not start
there, the kubelet copies it into the pod's status, and the operator reads the cause back."""
# The serving image's OIP v2 gRPC port (its ONNXOPS_GRPC_PORT); REST is spec.serving.port.
GRPC_PORT = 8081
RUN_AS = 10001  # the serving image's USER (serving-image/Dockerfile)


@dataclass(frozen=True)
class Track:
    """One of a rollout's two Deployments (only when spec.rollout is set; None otherwise, so
    a model without a rollout sees no change of its pod template)."""

    name: str = rollout_plan.STABLE
    """`stable` (the Deployment NAME) or `canary` (NAME-canary)."""
    replicas: int | None = None
    """The rollout's count for it; None: the usual one (spec.replicas, or the HPA's)."""
    serving: bool = True
    """False: pods the Service does not select (a canary in a shadow step)."""

    @property
    def canary(self) -> bool:
        return self.name == rollout_plan.CANARY


@dataclass(frozen=True)
class Canary:
    """The canary the rollout wants: its desired state (the candidate model) and track."""

    md: ModelDeployment
    track: Track


class ModelUriError(ValueError):
    """The model URI passes the schema but cannot be turned into a pod's model source."""


@dataclass(frozen=True)
class ModelPlan:
    """What the serving container is told about its model, and what must be mounted."""

    variant: str
    uri: str
    sha256: str | None
    env_uri: str
    volume: dict[str, Any] | None = None


def _dns_label(value: str) -> bool:
    return len(value) <= 63 and re.fullmatch(DNS_LABEL_PATTERN, value) is not None


def plan_model(md: ModelDeployment, pool: PoolProfile) -> ModelPlan:
    """Pick the variant for this pool and translate its URI for the pod (mounts for pvc/cm)."""
    model = md.spec.model
    variant = model.variant
    if variant == "auto":
        preferred = pool.preferred_variant
        variant = preferred if preferred and preferred in model.variants else "default"
    if variant == "default":
        uri, sha = model.uri, model.sha256
    elif variant in model.variants:
        uri, sha = model.variants[variant].uri, model.variants[variant].sha256
    else:
        raise ModelUriError(f"variant {variant!r} is not among spec.model.variants")
    try:
        parts = urlsplit(uri)
        _ = parts.port  # parsed lazily: "http://h:99999/m" fails only here
    except ValueError as exc:  # the schema's pattern cannot check brackets and ports
        raise ModelUriError(f"{uri}: {exc}") from exc
    if parts.scheme in ("pvc", "configmap"):
        source, path = parts.netloc, parts.path.lstrip("/")
        if not _dns_label(source) or not path or ".." in path.split("/"):
            raise ModelUriError(f"{uri}: expected {parts.scheme}://NAME/PATH with a DNS-label NAME")
        if parts.scheme == "pvc":
            volume = {
                "name": "model",
                "persistentVolumeClaim": {"claimName": source, "readOnly": True},
            }
        else:
            volume = {"name": "model", "configMap": {"name": source}}
        return ModelPlan(variant, uri, sha, f"{MODEL_DIR}/{path}", volume)
    if parts.scheme == "s3" and not parts.path.strip("/"):
        raise ModelUriError(f"{uri}: expected s3://BUCKET/KEY or s3://BUCKET/PREFIX/")
    if parts.scheme in ("http", "https") and not parts.hostname:
        raise ModelUriError(f"{uri}: no host")
    if parts.scheme == "file" and not parts.path:
        raise ModelUriError(f"{uri}: no path")
    return ModelPlan(variant, uri, sha, uri)


def labels(md: ModelDeployment, pool: str) -> dict[str, str]:
    """Labels every child carries; pods are selected by the model-deployment label only."""
    return {
        "app.kubernetes.io/name": "onnxops-serving",
        "app.kubernetes.io/instance": md.name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        MD_LABEL: md.name,
        POOL_LABEL: pool,
    }


def pod_selector(md: ModelDeployment) -> str:
    """The serving pods' label selector as a string (status.selector, the scale subresource)."""
    return f"{MD_LABEL}={md.name}"


def owner_reference(md: ModelDeployment) -> dict[str, Any]:
    """Makes the child garbage-collected with its ModelDeployment."""
    return {
        "apiVersion": md.api_version,
        "kind": md.kind,
        "name": md.name,
        "uid": md.metadata.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _meta(md: ModelDeployment, pool: str) -> dict[str, Any]:
    return {
        "name": md.name,
        "namespace": md.namespace,
        "labels": labels(md, pool),
        "ownerReferences": [owner_reference(md)],
    }


def _env(md: ModelDeployment, pool: PoolProfile, plan: ModelPlan) -> list[dict[str, Any]]:
    spec = md.spec
    batching = spec.serving.batching
    values: dict[str, str | None] = {
        "ONNXOPS_MODEL_URI": plan.env_uri,
        "ONNXOPS_MODEL_SHA256": plan.sha256,
        "ONNXOPS_MODEL_NAME": spec.model.name,
        "ONNXOPS_MODEL_VERSION": spec.model.version,
        "ONNXOPS_PORT": str(spec.serving.port),
        "ONNXOPS_THREADS": str(spec.serving.threads or pool.threads),
        "ONNXOPS_MAX_BATCH_SIZE": str(batching.max_batch_size if batching else 1),
        "ONNXOPS_MODEL_CACHE_DIR": CACHE_DIR,
        "ONNXOPS_TERMINATION_MESSAGE_PATH": TERMINATION_LOG,
        # After SIGTERM, Services and kube-proxy still route here for a few seconds:
        # keep serving (not ready) for that long, then drain; 5 s + 10 s drain fit the
        # default 30 s terminationGracePeriodSeconds.
        "ONNXOPS_SHUTDOWN_DELAY_S": "5",
    }
    if batching:
        values["ONNXOPS_MAX_BATCH_LATENCY_MS"] = f"{batching.max_latency_ms:g}"
    env: list[dict[str, Any]] = [
        {"name": k, "value": v} for k, v in values.items() if v is not None
    ]
    return env + _storage_env(md)


def _storage_env(md: ModelDeployment) -> list[dict[str, Any]]:
    """The AWS_* variables of spec.model.storage, for s3:// models: endpoint and region as
    values, credentials as references to the user's Secret (never copied into the
    Deployment), so the runtime's standard credential chain reads them."""
    storage = md.spec.model.storage
    if storage is None:
        return []
    env: list[dict[str, Any]] = []
    if storage.endpoint:
        env.append({"name": "AWS_ENDPOINT_URL", "value": storage.endpoint})
    if storage.region:
        env.append({"name": "AWS_REGION", "value": storage.region})
    if storage.insecure:
        env.append({"name": "AWS_ALLOW_HTTP", "value": "true"})
    if storage.ca_config_map:
        env.append({"name": "AWS_CA_BUNDLE", "value": f"{CA_DIR}/{CA_KEY}"})
    if storage.secret_name:
        for key, optional in S3_SECRET_KEYS:
            ref: dict[str, Any] = {"name": storage.secret_name, "key": key}
            if optional:
                ref["optional"] = True
            env.append({"name": key, "valueFrom": {"secretKeyRef": ref}})
    return env


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def replica_count(md: ModelDeployment, current: int | None) -> int:
    """spec.replicas; with autoscaling the HPA's current choice, clamped to its bounds.

    Stating a count even under an HPA starts a new Deployment at minReplicas at once, and
    echoing the current count keeps our apply from undoing the HPA's scaling."""
    scaling = md.spec.autoscaling
    if scaling is None:
        return md.spec.replicas
    wanted = current if current is not None else scaling.min_replicas
    return max(scaling.min_replicas, min(wanted, scaling.max_replicas))


def build_deployment(
    md: ModelDeployment,
    pool: PoolProfile,
    *,
    image: str,
    current_replicas: int | None = None,
    annotations: Mapping[str, str] | None = None,
    track: Track | None = None,
) -> dict[str, Any]:
    """The Deployment running the serving runtime on the pool's nodes. `md` is the desired
    state (`override.applied`); `annotations` go on the pod template (a restart's stamp);
    `track`: which of a rollout's Deployments (labels, name, count, the mirror's mount)."""
    spec = md.spec
    plan = plan_model(md, pool)
    port = spec.serving.port
    mounts: list[dict[str, Any]] = [
        {"name": "cache", "mountPath": CACHE_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]
    if plan.volume:
        mounts.append({"name": "model", "mountPath": MODEL_DIR, "readOnly": True})
        volumes.append(plan.volume)
    storage = spec.model.storage
    if storage is not None and storage.ca_config_map:
        mounts.append({"name": "storage-ca", "mountPath": CA_DIR, "readOnly": True})
        volumes.append({"name": "storage-ca", "configMap": {"name": storage.ca_config_map}})
    env = _env(md, pool, plan)
    if track is not None and not track.canary:
        # The stable pods mirror to the canary as the ConfigMap says; optional, so the pods
        # start before the rollout first writes it, and the runtime re-reads it when it changes.
        mounts.append({"name": "mirror", "mountPath": rollout_plan.MIRROR_DIR, "readOnly": True})
        volumes.append(
            {
                "name": "mirror",
                "configMap": {"name": rollout_plan.mirror_name(md.name), "optional": True},
            }
        )
        env.append(
            {
                "name": rollout_plan.MIRROR_ENV,
                "value": f"{rollout_plan.MIRROR_DIR}/{rollout_plan.MIRROR_KEY}",
            }
        )
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.serving.image or image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [
            {"name": "http", "containerPort": port, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
        ],
        "env": env,
        "resources": effective_resources(spec, pool),
        "readinessProbe": _probe("/v2/health/ready", 5, 3),
        "livenessProbe": _probe("/v2/health/live", 10, 3),
        # Downloading a model can take a while; liveness only counts once it started.
        "startupProbe": _probe("/v2/health/live", 2, 60),
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
        "terminationMessagePath": TERMINATION_LOG,
        # A crash the runtime could not explain (say, killed while loading) shows its log's tail.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    tolerations = [t.wire() for t in [*pool.tolerations, *spec.target.tolerations]]
    pod_labels = {**labels(md, pool.name), **track_labels(track)}
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,  # the runtime never talks to the API
        "enableServiceLinks": False,
        "nodeSelector": {**pool.node_selector, **spec.target.node_selector},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    if tolerations:
        pod_spec["tolerations"] = tolerations
    selector = {MD_LABEL: md.name}
    if track is not None and track.canary:  # the stable's selector is immutable: as before
        selector[rollout_plan.TRACK_LABEL] = rollout_plan.CANARY
    dep_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector},
        "revisionHistoryLimit": 3,
        # Never drop below the wanted count while rolling a new model out.
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        },
        "template": {
            "metadata": {
                "labels": pod_labels,
                "annotations": {
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(port),
                    "prometheus.io/path": "/metrics",
                    "onnxops.io/variant": plan.variant,
                    **(annotations or {}),
                },
            },
            "spec": pod_spec,
        },
    }
    dep_spec["replicas"] = replica_count(md, current_replicas)
    meta = _meta(md, pool.name)
    if track is not None:
        if track.replicas is not None:
            dep_spec["replicas"] = track.replicas
        meta["labels"] = {**meta["labels"], rollout_plan.TRACK_LABEL: track.name}
        if track.canary:
            meta["name"] = rollout_plan.canary_name(md.name)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": dep_spec}


def track_labels(track: Track | None) -> dict[str, str]:
    """The pod labels of a rollout's track; none without spec.rollout."""
    if track is None:
        return {}
    return {
        rollout_plan.TRACK_LABEL: track.name,
        rollout_plan.SERVING_LABEL: "true" if track.serving else "false",
    }


def build_canary_service(md: ModelDeployment, pool: PoolProfile) -> dict[str, Any]:
    """A headless Service of the canary's pods alone: its EndpointSlices are the addresses
    the stable pods mirror to (the main Service leaves the canary out in a shadow step)."""
    service = build_service(md, pool)
    service["metadata"]["name"] = rollout_plan.canary_name(md.name)
    service["metadata"]["labels"][rollout_plan.TRACK_LABEL] = rollout_plan.CANARY
    service["spec"]["clusterIP"] = "None"
    service["spec"]["selector"] = {
        MD_LABEL: md.name,
        rollout_plan.TRACK_LABEL: rollout_plan.CANARY,
    }
    return service


def build_service(
    md: ModelDeployment, pool: PoolProfile, *, serving_only: bool = False
) -> dict[str, Any]:
    """A ClusterIP Service in front of the serving pods; `serving_only`: only the pods
    labelled `onnxops.io/serving: "true"` (a shadow step keeps the canary's out)."""
    selector = {MD_LABEL: md.name}
    if serving_only:
        selector[rollout_plan.SERVING_LABEL] = "true"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(md, pool.name),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [
                {
                    "name": "http",
                    "port": md.spec.serving.port,
                    "targetPort": "http",
                    "protocol": "TCP",
                },
                {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP"},
            ],
        },
    }


def wants_pdb(md: ModelDeployment) -> bool:
    """A disruption budget only makes sense when more than one replica can exist."""
    scaling = md.spec.autoscaling
    return (scaling.max_replicas if scaling else md.spec.replicas) > 1


def build_pdb(md: ModelDeployment, pool: PoolProfile) -> dict[str, Any]:
    """Voluntary disruptions (drains) take at most one serving pod at a time."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(md, pool.name),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {MD_LABEL: md.name}}},
    }


def build_hpa(md: ModelDeployment, pool: PoolProfile) -> dict[str, Any]:
    """The HorizontalPodAutoscaler for spec.autoscaling (the hook for autoscaling policies)."""
    scaling = md.spec.autoscaling
    assert scaling is not None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(md, pool.name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": md.name},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": scaling.target_cpu_utilization,
                        },
                    },
                }
            ],
        },
    }


def desired_children(
    md: ModelDeployment,
    pool: PoolProfile,
    *,
    image: str,
    current_replicas: int | None = None,
    annotations: Mapping[str, str] | None = None,
    track: Track | None = None,
    canary: Canary | None = None,
    serving_only: bool | None = None,
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Objects to apply, and (apiVersion, kind) of optional children to delete if present.

    With spec.rollout, `track` is the stable Deployment's and `canary` the canary the rollout
    wants now (its Deployment and headless Service come after the stable's children).
    `serving_only`: the Service selects only `onnxops.io/serving: "true"` pods (default: while
    the canary is a shadow; the caller keeps it so while a shadow canary's pods go away)."""
    deployment = build_deployment(
        md,
        pool,
        image=image,
        current_replicas=current_replicas,
        annotations=annotations,
        track=track,
    )
    if serving_only is None:
        serving_only = canary is not None and not canary.track.serving
    apply = [deployment, build_service(md, pool, serving_only=serving_only)]
    remove = []
    for wanted, builder, api_kind in (
        (wants_pdb(md), build_pdb, ("policy/v1", "PodDisruptionBudget")),
        (md.spec.autoscaling is not None, build_hpa, ("autoscaling/v2", "HorizontalPodAutoscaler")),
    ):
        if wanted:
            apply.append(builder(md, pool))
        else:
            remove.append(api_kind)
    if canary is not None:
        apply.append(
            build_deployment(
                canary.md, pool, image=image, annotations=annotations, track=canary.track
            )
        )
        apply.append(build_canary_service(canary.md, pool))
    return apply, remove


def endpoint(md: ModelDeployment, domain: str) -> str:
    """Where clients inside the cluster reach the model."""
    return f"http://{md.name}.{md.namespace}.svc.{domain}:{md.spec.serving.port}"
