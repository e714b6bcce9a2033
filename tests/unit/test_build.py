"""Pure builders: ModelDeployment + pool profile -> desired child objects, compared as dicts."""

from __future__ import annotations

from typing import Any

import pytest
from onnxops import build
from onnxops.api import ModelDeployment
from onnxops.pools import default_pools
from support.deployments import model_deployment

IMAGE = "ghcr.io/onnxops/onnxops-serving:0.1.0"
CLOUD, EDGE = default_pools()["cloud"], default_pools()["edge"]
SHA = "a" * 64


def md(**spec: Any) -> ModelDeployment:
    body = model_deployment(
        "iris",
        namespace="ml",
        metadata={"uid": "u-1", "generation": 3},
        **{"model": {"uri": "https://h/iris/model.onnx", "sha256": SHA, "version": "3"}, **spec},
    )
    return ModelDeployment.model_validate(body)


LABELS = {
    "app.kubernetes.io/name": "onnxops-serving",
    "app.kubernetes.io/instance": "iris",
    "app.kubernetes.io/managed-by": "onnxops",
    "onnxops.io/model-deployment": "iris",
    "onnxops.io/pool": "cloud",
}
OWNER = {
    "apiVersion": "onnxops.io/v1alpha1",
    "kind": "ModelDeployment",
    "name": "iris",
    "uid": "u-1",
    "controller": True,
    "blockOwnerDeletion": True,
}
META = {"name": "iris", "namespace": "ml", "labels": LABELS, "ownerReferences": [OWNER]}


def probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def test_deployment_for_the_cloud_pool() -> None:
    expected = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": META,
        "spec": {
            "selector": {"matchLabels": {"onnxops.io/model-deployment": "iris"}},
            "revisionHistoryLimit": 3,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": LABELS,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": "8080",
                        "prometheus.io/path": "/metrics",
                        "onnxops.io/variant": "default",
                    },
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "nodeSelector": {"onnxops.io/pool": "cloud"},
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "server",
                            "image": IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "ports": [
                                {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                                {"name": "grpc", "containerPort": 8081, "protocol": "TCP"},
                            ],
                            "env": [
                                {"name": "ONNXOPS_MODEL_URI", "value": "https://h/iris/model.onnx"},
                                {"name": "ONNXOPS_MODEL_SHA256", "value": SHA},
                                {"name": "ONNXOPS_MODEL_VERSION", "value": "3"},
                                {"name": "ONNXOPS_PORT", "value": "8080"},
                                {"name": "ONNXOPS_THREADS", "value": "2"},
                                {"name": "ONNXOPS_MAX_BATCH_SIZE", "value": "1"},
                                {"name": "ONNXOPS_MODEL_CACHE_DIR", "value": "/var/cache/onnxops"},
                                {
                                    "name": "ONNXOPS_TERMINATION_MESSAGE_PATH",
                                    "value": "/dev/termination-log",
                                },
                                {"name": "ONNXOPS_SHUTDOWN_DELAY_S", "value": "5"},
                            ],
                            "resources": {
                                "requests": {"cpu": "500m", "memory": "512Mi"},
                                "limits": {"memory": "1Gi"},
                            },
                            "readinessProbe": probe("/v2/health/ready", 5, 3),
                            "livenessProbe": probe("/v2/health/live", 10, 3),
                            "startupProbe": probe("/v2/health/live", 2, 60),
                            "securityContext": {
                                "runAsNonRoot": True,
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {"name": "cache", "mountPath": "/var/cache/onnxops"},
                                {"name": "tmp", "mountPath": "/tmp"},
                            ],
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                        }
                    ],
                    "volumes": [
                        {"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                    ],
                },
            },
            "replicas": 1,
        },
    }
    assert build.build_deployment(md(), CLOUD, image=IMAGE) == expected


def test_edge_gets_taint_toleration_and_int8_variant() -> None:
    model = {
        "uri": "https://h/iris/model.onnx",
        "sha256": SHA,
        "variants": {"int8": {"uri": "https://h/iris/model.int8.onnx", "sha256": "b" * 64}},
    }
    dep = build.build_deployment(
        md(model=model, target={"pool": "edge", "nodeSelector": {"zone": "shop-1"}}),
        EDGE,
        image=IMAGE,
    )
    pod = dep["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"onnxops.io/pool": "edge", "zone": "shop-1"}
    assert pod["tolerations"] == [
        {
            "key": "node-role.kubernetes.io/edge",
            "operator": "Equal",
            "value": "true",
            "effect": "NoSchedule",
        }
    ]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["ONNXOPS_MODEL_URI"] == "https://h/iris/model.int8.onnx"
    assert env["ONNXOPS_MODEL_SHA256"] == "b" * 64
    assert env["ONNXOPS_THREADS"] == "1"
    assert dep["spec"]["template"]["metadata"]["annotations"]["onnxops.io/variant"] == "int8"
    # Asking for the default explicitly overrides the pool's preference.
    plan = build.plan_model(md(model={**model, "variant": "default"}), EDGE)
    assert plan.variant == "default" and plan.env_uri == "https://h/iris/model.onnx"
    # Without an int8 variant the edge pool serves the main file.
    assert build.plan_model(md(), EDGE).variant == "default"


@pytest.mark.parametrize(
    ("uri", "volume", "env_uri"),
    [
        (
            "pvc://store/iris/3/model.onnx",
            {"persistentVolumeClaim": {"claimName": "store", "readOnly": True}},
            "/models/iris/3/model.onnx",
        ),
        (
            "configmap://iris-model/model.onnx",
            {"configMap": {"name": "iris-model"}},
            "/models/model.onnx",
        ),
    ],
)
def test_in_cluster_model_sources_are_mounted(
    uri: str, volume: dict[str, Any], env_uri: str
) -> None:
    dep = build.build_deployment(md(model={"uri": uri}), CLOUD, image=IMAGE)
    pod = dep["spec"]["template"]["spec"]
    assert pod["volumes"][-1] == {"name": "model", **volume}
    container = pod["containers"][0]
    assert container["volumeMounts"][-1] == {
        "name": "model",
        "mountPath": "/models",
        "readOnly": True,
    }
    assert {"name": "ONNXOPS_MODEL_URI", "value": env_uri} in container["env"]


@pytest.mark.parametrize(
    "uri",
    ["pvc://store", "configmap://Bad_Name/m.onnx", "pvc://s/../etc/passwd", "https:///m.onnx"],
)
def test_malformed_model_uris_are_refused(uri: str) -> None:
    with pytest.raises(build.ModelUriError):
        build.plan_model(md(model={"uri": uri}), CLOUD)


def test_service() -> None:
    assert build.build_service(md(), CLOUD) == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": META,
        "spec": {
            "type": "ClusterIP",
            "selector": {"onnxops.io/model-deployment": "iris"},
            "ports": [
                {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"},
                {"name": "grpc", "port": 8081, "targetPort": "grpc", "protocol": "TCP"},
            ],
        },
    }


def test_hpa_owns_replicas_and_pdb_follows_replica_count() -> None:
    scaled = md(autoscaling={"minReplicas": 2, "maxReplicas": 6, "targetCPUUtilization": 60})
    children, remove = build.desired_children(scaled, CLOUD, image=IMAGE)
    assert [c["kind"] for c in children] == [
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    ]
    assert remove == []
    # Under an HPA the Deployment starts at minReplicas and keeps the HPA's later choice.
    assert children[0]["spec"]["replicas"] == 2
    assert (
        build.build_deployment(scaled, CLOUD, image=IMAGE, current_replicas=5)["spec"]["replicas"]
        == 5
    )
    assert (
        build.build_deployment(scaled, CLOUD, image=IMAGE, current_replicas=9)["spec"]["replicas"]
        == 6
    )
    assert (
        build.build_deployment(md(replicas=3), CLOUD, image=IMAGE, current_replicas=5)["spec"][
            "replicas"
        ]
        == 3
    )
    assert children[3]["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "iris"},
        "minReplicas": 2,
        "maxReplicas": 6,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 60},
                },
            }
        ],
    }
    assert children[2]["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": {"onnxops.io/model-deployment": "iris"}},
    }
    single, remove = build.desired_children(md(), CLOUD, image=IMAGE)
    assert [c["kind"] for c in single] == ["Deployment", "Service"]
    assert remove == [
        ("policy/v1", "PodDisruptionBudget"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ]
    pair, _ = build.desired_children(md(replicas=2), CLOUD, image=IMAGE)
    assert [c["kind"] for c in pair][-1] == "PodDisruptionBudget"


def test_serving_settings_reach_the_container() -> None:
    dep = build.build_deployment(
        md(
            serving={
                "threads": 4,
                "port": 9000,
                "batching": {"maxBatchSize": 16, "maxLatencyMs": 5},
                "image": "reg/onnxops-serving:dev",
            }
        ),
        CLOUD,
        image=IMAGE,
    )
    container = dep["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert (env["ONNXOPS_THREADS"], env["ONNXOPS_PORT"]) == ("4", "9000")
    assert (env["ONNXOPS_MAX_BATCH_SIZE"], env["ONNXOPS_MAX_BATCH_LATENCY_MS"]) == ("16", "5")
    assert container["image"] == "reg/onnxops-serving:dev"
    assert container["ports"][0]["containerPort"] == 9000
    assert build.endpoint(md(), "cluster.local") == "http://iris.ml.svc.cluster.local:8080"


@pytest.mark.parametrize(
    "uri", ["http://[::1/m.onnx", "https://h:99999/m.onnx", "https://h:port/m.onnx"]
)
def test_uris_the_url_parser_refuses_are_model_uri_errors(uri: str) -> None:
    # They pass the schema's pattern; a bare ValueError here looped the operator.
    with pytest.raises(build.ModelUriError, match=r"m\.onnx"):
        build.plan_model(md(model={"uri": uri}), CLOUD)


def test_s3_storage_reaches_the_pod_as_env_with_credentials_by_reference() -> None:
    model = {
        "uri": "s3://models/iris/3/",
        "variants": {"int8": {"uri": "s3://models/iris/3/int8/"}},
        "storage": {
            "secretName": "store-keys",
            "endpoint": "http://seaweed.store:8333",
            "region": "eu-west-1",
            "insecure": True,
        },
    }
    dep = build.build_deployment(md(model=model), EDGE, image=IMAGE)
    container = dep["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["ONNXOPS_MODEL_URI"]["value"] == "s3://models/iris/3/int8/"  # the edge variant
    assert env["AWS_ENDPOINT_URL"]["value"] == "http://seaweed.store:8333"
    assert (env["AWS_REGION"]["value"], env["AWS_ALLOW_HTTP"]["value"]) == ("eu-west-1", "true")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key] == {
            "name": key,
            "valueFrom": {"secretKeyRef": {"name": "store-keys", "key": key}},
        }
    token = env["AWS_SESSION_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token == {"name": "store-keys", "key": "AWS_SESSION_TOKEN", "optional": True}
    assert "volumes" not in dep["spec"]["template"]["spec"] or all(
        "secret" not in v for v in dep["spec"]["template"]["spec"]["volumes"]
    ), "the Secret is never mounted or copied"
    # Without storage (IRSA / pod identity): no AWS_* variable at all.
    plain = build.build_deployment(md(model={"uri": "s3://models/iris.onnx"}), CLOUD, image=IMAGE)
    names = [e["name"] for e in plain["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert not [n for n in names if n.startswith("AWS_")]


def test_an_s3_uri_without_a_key_is_refused() -> None:
    with pytest.raises(build.ModelUriError, match="s3://BUCKET/KEY"):
        build.plan_model(md(model={"uri": "s3://models/"}), CLOUD)
