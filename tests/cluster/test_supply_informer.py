"""The supply informers (`onnxops.supply`) against the real apiserver: listed, then kept by a
watch — a pod bound or deleted shows in the snapshot without a new list; a cut watch connection
is resumed and misses nothing; without the informers, placement lists for itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from onnxops import k8s, podapi, supply
from onnxops.pools import free_per_node
from support.operator_kit import Kube, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("in_process_client")]


@pytest.fixture
def watched() -> Iterator[supply.Supply]:
    running = supply.start()
    try:
        assert running.wait_synced(30), "the supply informers never listed"
        yield running
    finally:
        supply.stop()


def _pod(kube: Kube, name: str, node: str, cpu: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": kube.namespace, "labels": {"test": "supply"}},
        "spec": {
            "nodeName": node,  # bound directly: no scheduler involved
            "tolerations": [{"operator": "Exists"}],
            "containers": [
                {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}
            ],
        },
    }


def _ours(snapshot: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None, name: str) -> Any:
    if snapshot is None:  # out of sync: callers list for themselves meanwhile
        return None
    return next((p for p in snapshot[1] if p["metadata"]["name"] == name), None)


def _listed() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    nodes = k8s.request("GET", "/api/v1/nodes")["items"]
    pods = k8s.request("GET", "/api/v1/pods", query=[("fieldSelector", supply.BOUND_PODS)])
    return nodes, pods["items"]


def test_the_watched_supply_follows_pods_and_agrees_with_a_listing(
    kube: Kube, watched: supply.Supply
) -> None:
    nodes = supply.snapshot()
    assert nodes is not None
    names = sorted(n["metadata"]["name"] for n in nodes[0])
    assert names == sorted(n["metadata"]["name"] for n in _listed()[0])
    node = names[0]

    kube.apply(_pod(kube, "supply-a", node, "250m"))
    seen = wait_for(lambda: _ours(supply.snapshot(), "supply-a"), "the new pod in the supply")
    assert seen["spec"] == {
        "nodeName": node,
        "containers": [{"resources": {"requests": {"cpu": "250m"}}}],
    }
    # What placement computes from the watched view is what it computes from a fresh list.
    wait_for(
        lambda: (
            free_per_node(*supply.snapshot() or ([], []), {})  # type: ignore[misc]
            == free_per_node(*_listed(), {})
        ),
        "the watched supply equal to a listing",
    )
    assert podapi.nodes_and_pods() == supply.snapshot()  # placement reads the watched view

    kube.run("delete", "pod", "supply-a", "--grace-period=0", "--force", "--wait=false")
    wait_for(lambda: _ours(supply.snapshot(), "supply-a") is None, "the deleted pod gone")


def test_a_cut_watch_connection_is_resumed_and_misses_nothing(
    kube: Kube, watched: supply.Supply
) -> None:
    node = sorted(n["metadata"]["name"] for n in (supply.snapshot() or ([], []))[0])[0]
    # The watch's connection cut for real under the informer (as a proxy or an apiserver
    # restart would); a pod made meanwhile must still reach the snapshot.
    response = wait_for(lambda: watched.pods._response, "the pod watch connected")
    response.shutdown()
    kube.apply(_pod(kube, "supply-b", node, "100m"))
    wait_for(lambda: _ours(supply.snapshot(), "supply-b"), "the pod made meanwhile")
    kube.run("delete", "pod", "supply-b", "--grace-period=0", "--force", "--wait=false")
    wait_for(lambda: _ours(supply.snapshot(), "supply-b") is None, "the deleted pod gone")


def test_without_the_informers_placement_lists_for_itself(kube: Kube) -> None:
    assert supply.snapshot() is None
    nodes, pods = podapi.nodes_and_pods()
    assert sorted(n["metadata"]["name"] for n in nodes) == sorted(
        n["metadata"]["name"] for n in _listed()[0]
    )
    assert all(p["spec"]["nodeName"] for p in pods)
