"""The kustomize base and samples are valid against the real apiserver (server-side dry run),
and the operator's RBAC allows what it does and little else."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.operator_kit import ROOT

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def system_namespace(crds: Any) -> Iterator[Any]:
    """The base's namespace, created for real: a dry run cannot create what it lives in."""
    crds.run_kubectl("apply", "-f", str(ROOT / "manifests" / "namespace.yaml"))
    try:
        yield crds
    finally:
        crds.run_kubectl("delete", "-k", str(ROOT / "manifests"), "--wait=false", check=False)


def test_kustomize_base_passes_server_side_dry_run(system_namespace: Any) -> None:
    crds = system_namespace
    result = crds.run_kubectl("apply", "-k", str(ROOT / "manifests"), "--dry-run=server")
    out = result.stdout
    for expected in (
        "namespace/onnxops-system",
        "serviceaccount/onnxops-operator",
        "clusterrole.rbac.authorization.k8s.io/onnxops-operator",
        "configmap/onnxops-pools-",  # the generator's content-hash suffix follows
        "deployment.apps/onnxops-operator",
        "clusterkopfpeering.kopf.dev/onnxops",
    ):
        assert expected in out, out


def _pools_configmap_names(crds: Any, base: Path) -> tuple[str, str]:
    """(the generated ConfigMap's name, the one the operator Deployment mounts)."""
    docs = list(yaml.safe_load_all(crds.run_kubectl("kustomize", str(base)).stdout))
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap"]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    mounted = next(v["configMap"]["name"] for v in volumes if v["name"] == "pools")
    return configmap["metadata"]["name"], mounted


def test_a_pools_change_rolls_the_operator(crds: Any, tmp_path: Path) -> None:
    """The pools ConfigMap's name carries a hash of its content, and the operator's pod
    template mounts it by that name: editing pools.yaml yields a new pod template, so the
    operator restarts and reads the new profiles (it reads them once, at start)."""
    base = tmp_path / "manifests"
    shutil.copytree(ROOT / "manifests", base)
    name, mounted = _pools_configmap_names(crds, base)
    assert name.startswith("onnxops-pools-") and mounted == name
    pools = base / "pools.yaml"
    pools.write_text(pools.read_text().replace('ceilings: {cpu: "8"', 'ceilings: {cpu: "16"'))
    new_name, new_mounted = _pools_configmap_names(crds, base)
    assert new_name != name and new_mounted == new_name


def test_samples_pass_server_side_dry_run(crds: Any) -> None:
    result = crds.run_kubectl(
        "apply", "-n", "default", "-f", str(ROOT / "manifests" / "samples"), "--dry-run=server"
    )
    assert "iris-cloud" in result.stdout and "iris-edge" in result.stdout


def test_rbac_is_least_privilege(system_namespace: Any) -> None:
    crds = system_namespace
    rendered = crds.run_kubectl("kustomize", str(ROOT / "manifests")).stdout
    assert "'*'" not in rendered and '"*"' not in rendered and "- '*'" not in rendered
    # Impersonate the operator's service account against the real authorizer.
    crds.run_kubectl("apply", "-k", str(ROOT / "manifests"), "--server-side", "--force-conflicts")
    sa = "system:serviceaccount:onnxops-system:onnxops-operator"

    def can(verb: str, resource: str) -> bool:
        resource, _, sub = resource.partition("/")
        extra = [f"--subresource={sub}"] if sub else []
        result = crds.run_kubectl(
            "auth", "can-i", verb, resource, *extra, f"--as={sa}", "-A", check=False
        )
        return result.stdout.strip() == "yes"

    for verb, resource in (
        ("patch", "modeldeployments.onnxops.io"),
        ("patch", "modeldeployments.onnxops.io/status"),
        ("create", "deployments.apps"),
        ("patch", "services"),
        ("delete", "horizontalpodautoscalers.autoscaling"),
        ("list", "nodes"),
        ("watch", "nodes"),  # the supply informer (supply.py)
        ("create", "events"),
        ("create", "pods/eviction"),
        ("patch", "pods/resize"),
        # A rollout: its canary goes when it ends, its mirror follows the canary's addresses.
        ("delete", "deployments.apps"),
        ("patch", "configmaps"),
        ("list", "endpointslices.discovery.k8s.io"),
        ("patch", "pods"),  # the disruption hints (a resize, an analysis step), nothing else
        ("list", "events"),  # what a cluster autoscaler said of unschedulable pods
    ):
        assert can(verb, resource), f"operator cannot {verb} {resource}"
    for verb, resource in (
        ("delete", "replicasets.apps"),
        ("patch", "endpointslices.discovery.k8s.io"),
        ("get", "secrets"),
        ("create", "pods"),
        ("delete", "modeldeployments.onnxops.io"),
        ("patch", "nodes"),
        ("delete", "pods"),  # restarts go through eviction, which honours PDBs
        ("patch", "pods/status"),
    ):
        assert not can(verb, resource), f"operator may {verb} {resource}"
