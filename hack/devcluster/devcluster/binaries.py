"""Where ``hack/devcluster/build.sh`` put the control-plane binaries (a cache keyed by version)."""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
NAMES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok")
# KWOK's node and pod lifecycle stages, extracted from its module by build.sh.
STAGES = "kwok-stages.yaml"
# The optional autoscaler (`build.sh karpenter`): Karpenter's KWOK provider and its CRDs.
KARPENTER = "karpenter-kwok"
KARPENTER_CRDS = "crds.yaml"


class BinariesMissing(RuntimeError):
    """The Go-built binaries are not in the cache yet."""


def versions(env_file: Path = HERE / "versions.env") -> dict[str, str]:
    """The ``NAME=value`` pairs of versions.env."""
    pairs: dict[str, str] = {}
    for line in env_file.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            pairs[key.strip()] = value.strip()
    return pairs


def bin_dir() -> Path:
    """The cache folder for the current versions; the same rule as build.sh."""
    override = os.environ.get("ONNXOPS_DEVCLUSTER_BIN")
    if override:
        return Path(override)
    cache = Path(os.environ.get("ONNXOPS_CACHE", Path.home() / ".cache" / "onnxops"))
    v = versions()
    key = f"bin-k8s-{v['K8S_VERSION']}-etcd-{v['ETCD_VERSION']}-kwok-{v['KWOK_VERSION']}"
    return cache / "devcluster" / key


def require(directory: Path | None = None) -> Path:
    """The bin folder, or BinariesMissing telling how to build it."""
    directory = directory or bin_dir()
    missing = [n for n in NAMES if not os.access(directory / n, os.X_OK)]
    if not (directory / STAGES).is_file():
        missing.append(STAGES)
    if missing:
        raise BinariesMissing(
            f"devcluster binaries missing in {directory} ({', '.join(missing)}): "
            "run `make cluster-build` (the first build takes about 8 minutes)"
        )
    return directory


def karpenter_dir() -> Path:
    """The cache folder of the Karpenter build for its version in versions.env."""
    override = os.environ.get("ONNXOPS_KARPENTER_BIN")
    if override:
        return Path(override)
    cache = Path(os.environ.get("ONNXOPS_CACHE", Path.home() / ".cache" / "onnxops"))
    return cache / "devcluster" / f"bin-karpenter-{versions()['KARPENTER_VERSION']}"


def require_karpenter(directory: Path | None = None) -> Path:
    """The Karpenter folder, or BinariesMissing telling how to build it."""
    directory = directory or karpenter_dir()
    if not os.access(directory / KARPENTER, os.X_OK) or not (directory / KARPENTER_CRDS).is_file():
        raise BinariesMissing(
            f"Karpenter missing in {directory}: run `make cluster-build AUTOSCALER=karpenter`"
            " (the first build takes about 15 minutes on 2 cores)"
        )
    return directory
