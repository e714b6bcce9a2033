"""The onnxops devcluster: a real Kubernetes control plane with KWOK nodes, run as local processes.

Used by ``make cluster-up|cluster-down|cluster-status`` (``python -m devcluster``) and by the
pytest session fixtures in ``tests/conftest.py``.
"""

from .binaries import BinariesMissing, bin_dir, require
from .cluster import Cluster, ClusterError, load
from .controlplane import start
from .nodes import NodePool, default_pools

__all__ = [
    "BinariesMissing",
    "Cluster",
    "ClusterError",
    "NodePool",
    "bin_dir",
    "default_pools",
    "load",
    "require",
    "start",
]
