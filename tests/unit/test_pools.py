"""Pool profiles and the supply-based choice of a pool (pure; nodes and pods as dicts)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from onnxops.api import ModelDeploymentSpec
from onnxops.errors import UserInputError
from onnxops.pools import (
    PlacementError,
    PoolProfile,
    QuantityError,
    ceiling_violations,
    choose_pool,
    default_pools,
    effective_resources,
    free_per_node,
    load_pools,
    place,
    quantity,
    replicas_that_fit,
)

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


def node(
    name: str, pool: str, cpu: str = "2", memory: str = "4Gi", ready: bool = True
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"onnxops.io/pool": pool}},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def pod(node_name: str, cpu: str, memory: str, phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {"name": f"p-{node_name}-{cpu}", "namespace": "x"},
        "spec": {
            "nodeName": node_name,
            "containers": [{"resources": {"requests": {"cpu": cpu, "memory": memory}}}],
        },
        "status": {"phase": phase},
    }


def spec(**fields: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({"model": {"uri": "https://h/m.onnx"}, **fields})


def test_configmap_profiles_match_the_built_in_defaults() -> None:
    # manifests/pools.yaml is the file kustomize's configMapGenerator puts in the ConfigMap.
    assert load_pools(MANIFESTS / "pools.yaml") == default_pools()
    assert load_pools(None) == default_pools()


def test_bad_pool_file_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "pools.yaml"
    path.write_text("pools: []\n")
    with pytest.raises(UserInputError):
        load_pools(path)
    with pytest.raises(UserInputError):
        load_pools(tmp_path / "missing.yaml")


def test_effective_resources_merge_spec_over_pool() -> None:
    edge = default_pools()["edge"]
    assert effective_resources(spec(), edge) == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "256Mi"},
    }
    # A request above the pool's default limit lifts the limit with it.
    got = effective_resources(spec(resources={"requests": {"memory": "512Mi", "cpu": 1}}), edge)
    assert got == {"requests": {"cpu": "1", "memory": "512Mi"}, "limits": {"memory": "512Mi"}}


@pytest.mark.parametrize(
    ("pool", "resources", "expected"),
    [
        # A limit alone: kept, and the request follows it down (Kubernetes' own default),
        # instead of the pool's larger default request lifting the limit.
        (
            "cloud",
            {"limits": {"cpu": "100m"}},
            ({"cpu": "100m", "memory": "512Mi"}, {"cpu": "100m", "memory": "1Gi"}),
        ),
        (
            "cloud",
            {"limits": {"memory": "256Mi"}},
            ({"cpu": "500m", "memory": "256Mi"}, {"memory": "256Mi"}),
        ),
        # Both given: both kept as written (no reformatting, no raising).
        (
            "edge",
            {"requests": {"cpu": "50m"}, "limits": {"cpu": "2", "memory": "64Mi"}},
            ({"cpu": "50m", "memory": "64Mi"}, {"cpu": "2", "memory": "64Mi"}),
        ),
        # Only what is unset comes from the pool; the pool's default limit below the user's
        # request is lifted to it (it is the pool's value, not the user's).
        (
            "edge",
            {"requests": {"memory": "300Mi"}},
            ({"cpu": "100m", "memory": "300Mi"}, {"memory": "300Mi"}),
        ),
    ],
)
def test_effective_resources_keep_every_value_the_user_gave(
    pool: str, resources: dict[str, Any], expected: tuple[dict[str, str], dict[str, str]]
) -> None:
    got = effective_resources(spec(resources=resources), default_pools()[pool])
    assert (got["requests"], got["limits"]) == expected
    for part in ("requests", "limits"):
        for name, value in resources.get(part, {}).items():
            assert got[part][name] == value


@pytest.mark.parametrize("value", ["1.5.3", "1Ki1", "-1", "lots", ""])
def test_quantity_refuses_what_is_no_quantity(value: str) -> None:
    with pytest.raises(QuantityError, match=r"quantity|negative"):
        quantity(value)


def test_ceiling_violations() -> None:
    edge = default_pools()["edge"]
    resources = effective_resources(spec(resources={"requests": {"cpu": "2"}}), edge)
    assert ceiling_violations(resources, edge) == ["requests.cpu 2 exceeds pool edge ceiling 1"]
    assert ceiling_violations(effective_resources(spec(), edge), edge) == []


def test_free_per_node_subtracts_bound_pods_and_skips_unready_nodes() -> None:
    nodes = [node("c1", "cloud"), node("c2", "cloud", ready=False), node("e1", "edge")]
    pods = [pod("c1", "500m", "1Gi"), pod("c1", "1", "1Gi", phase="Succeeded")]
    free = free_per_node(nodes, pods, {"onnxops.io/pool": "cloud"})
    assert free == [{"cpu": Decimal("1.5"), "memory": Decimal(3 * 2**30), "pods": Decimal(109)}]


def test_free_per_node_skips_cordoned_nodes() -> None:
    # `kubectl cordon` (or a drain): Ready still, but the scheduler places nothing there; a
    # failback judged on it would land the model Unschedulable again.
    cordoned = node("e1", "edge")
    cordoned["spec"] = {"unschedulable": True}
    free = free_per_node([cordoned, node("e2", "edge")], [], {"onnxops.io/pool": "edge"})
    assert len(free) == 1


def test_replicas_that_fit_is_per_node() -> None:
    free = [
        {"cpu": Decimal("1.5"), "memory": Decimal(2**30)},
        {"cpu": Decimal("0.4"), "memory": Decimal(2**33)},
    ]
    assert replicas_that_fit(free, {"cpu": "500m", "memory": "256Mi"}) == 3
    assert replicas_that_fit(free, {"cpu": "2"}) == 0
    # Pod slots run out too: a node with room for 10 by cpu but 2 free slots holds 2.
    full = [{"cpu": Decimal(1), "memory": Decimal(2**33), "pods": Decimal(2)}]
    assert replicas_that_fit(full, {"cpu": "100m"}) == 2


def test_choose_pool_prefers_order_and_keeps_current() -> None:
    assert choose_pool(order=["edge", "cloud"], fits={"edge": 1, "cloud": 9}, replicas=2) == "cloud"
    assert choose_pool(order=["edge", "cloud"], fits={"edge": 2, "cloud": 9}, replicas=2) == "edge"
    assert (
        choose_pool(
            order=["edge", "cloud"], fits={"edge": 5, "cloud": 9}, replicas=2, current="cloud"
        )
        == "cloud"
    )
    assert choose_pool(order=["edge"], fits={"edge": 0}, replicas=1) is None


def test_place_auto_prefers_edge_when_asked_and_it_has_room() -> None:
    nodes = [node("c1", "cloud"), node("e1", "edge", cpu="1", memory="1Gi")]
    pools = default_pools()
    got = place(spec(target={"prefer": "edge"}), pools, nodes=nodes, other_pods=[])
    assert got.pool.name == "edge"
    assert "auto" in got.message
    # Without a preference, auto takes pools in name order: cloud first.
    assert place(spec(), pools, nodes=nodes, other_pods=[]).pool.name == "cloud"


def test_place_falls_back_when_the_pool_is_full() -> None:
    nodes = [node("c1", "cloud"), node("e1", "edge", cpu="1", memory="1Gi")]
    busy = [pod("e1", "950m", "100Mi")]
    wanted = spec(target={"pool": "edge", "fallbackPool": "cloud"})
    got = place(wanted, default_pools(), nodes=nodes, other_pods=busy)
    assert got.pool.name == "cloud" and "fallback" in got.message
    with pytest.raises(PlacementError) as err:
        place(spec(target={"pool": "edge"}), default_pools(), nodes=nodes, other_pods=busy)
    assert err.value.reason == "NoCapacity" and not err.value.permanent


def test_place_refuses_unknown_pools_and_requests_above_ceilings() -> None:
    nodes = [node("c1", "cloud")]
    with pytest.raises(PlacementError) as err:
        place(spec(target={"pool": "gpu"}), default_pools(), nodes=nodes, other_pods=[])
    assert err.value.reason == "UnknownPool" and err.value.permanent
    assert "cloud, edge" in err.value.message
    huge = spec(target={"pool": "edge"}, resources={"requests": {"memory": "4Gi"}})
    with pytest.raises(PlacementError) as err:
        place(huge, default_pools(), nodes=nodes, other_pods=[])
    assert err.value.reason == "AboveCeiling" and "ceiling 1Gi" in err.value.message


def test_place_counts_min_replicas_of_autoscaling() -> None:
    pools = {"cloud": PoolProfile(name="cloud", node_selector={"onnxops.io/pool": "cloud"})}
    nodes = [node("c1", "cloud", cpu="1", memory="4Gi")]
    ok = spec(target={"pool": "cloud"}, autoscaling={"minReplicas": 4, "maxReplicas": 8})
    assert place(ok, pools, nodes=nodes, other_pods=[]).pool.name == "cloud"  # 4 x 250m
    too_many = spec(target={"pool": "cloud"}, autoscaling={"minReplicas": 5, "maxReplicas": 8})
    with pytest.raises(PlacementError):
        place(too_many, pools, nodes=nodes, other_pods=[])


def test_a_full_pool_an_autoscaler_can_grow_takes_the_model_and_room_now_wins() -> None:
    """No pool with room: the first the autoscaler can grow (asked only then, with each
    candidate's node selector and one replica's requests); room now wins over headroom; a
    pool marked `autoscaled` in the configuration counts without asking."""
    nodes = [node("c1", "cloud"), node("e1", "edge", cpu="1", memory="1Gi")]
    busy = [pod("e1", "950m", "100Mi")]
    asked: list[dict[str, Any]] = []

    def grows(names: frozenset[str]) -> Any:
        def growable(wanted: dict[str, Any]) -> frozenset[str]:
            asked.append(wanted)
            return names & frozenset(wanted)

        return growable

    only_edge = spec(target={"pool": "edge"})
    got = place(
        only_edge,
        default_pools(),
        nodes=nodes,
        other_pods=busy,
        growable=grows(frozenset({"edge"})),
    )
    assert got.pool.name == "edge" and "autoscaler can add nodes" in got.message
    assert asked[-1]["edge"] == ({"onnxops.io/pool": "edge"}, {"cpu": "100m", "memory": "128Mi"})
    with pytest.raises(PlacementError) as err:  # at its limits: NoCapacity as before
        place(only_edge, default_pools(), nodes=nodes, other_pods=busy, growable=grows(frozenset()))
    assert err.value.reason == "NoCapacity"
    asked.clear()
    with_fallback = spec(target={"pool": "edge", "fallbackPool": "cloud"})
    got = place(
        with_fallback,
        default_pools(),
        nodes=nodes,
        other_pods=busy,
        growable=grows(frozenset({"edge"})),
    )
    assert got.pool.name == "cloud" and asked == []  # cloud has room: never asked
    pools = default_pools()
    pools["edge"] = pools["edge"].model_copy(update={"autoscaled": True})
    asked.clear()
    got = place(only_edge, pools, nodes=nodes, other_pods=busy, growable=grows(frozenset()))
    assert got.pool.name == "edge" and asked == []  # configured: nothing to ask


def test_nodepool_headroom_and_which_pools_it_backs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Karpenter NodePool grows a pool when its template carries the pool's labels and its
    limits leave room for one replica; no limits is unbounded; the list is one API call, and
    Karpenter absent (404) grows none."""
    from onnxops import k8s, nodepools

    def nodepool(
        labels: dict[str, str], limits: dict[str, str] | None, used: dict[str, str]
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "spec": {"template": {"metadata": {"labels": labels}}},
            "status": {"resources": used},
        }
        if limits is not None:
            body["spec"]["limits"] = limits
        return body

    one = {"cpu": "100m", "memory": "128Mi"}
    assert nodepools.has_headroom(
        nodepool({}, {"cpu": "2", "memory": "4Gi"}, {"cpu": "1900m"}), one
    )
    assert not nodepools.has_headroom(nodepool({}, {"cpu": "2"}, {"cpu": "1950m"}), one)
    assert not nodepools.has_headroom(nodepool({}, {"cpu": "0", "memory": "0"}, {}), one)
    assert nodepools.has_headroom(nodepool({}, None, {"cpu": "900"}), one)
    listed = [
        nodepool({"onnxops.io/pool": "edge", "type": "kwok"}, {"cpu": "2"}, {"cpu": "0"}),
        nodepool({"onnxops.io/pool": "cloud"}, {"cpu": "0"}, {}),  # at its limit
    ]
    calls: list[str] = []

    def answer(method: str, path: str, **_: Any) -> dict[str, Any]:
        calls.append(path)
        return {"items": listed}

    monkeypatch.setattr(k8s, "request", answer)
    wanted = {
        "edge": ({"onnxops.io/pool": "edge"}, one),
        "cloud": ({"onnxops.io/pool": "cloud"}, one),
    }
    assert nodepools.growable(wanted) == {"edge"} and calls == [nodepools.PATH]

    def absent(method: str, path: str, **_: Any) -> dict[str, Any]:
        raise k8s.ApiError(404, "the server could not find the requested resource")

    monkeypatch.setattr(k8s, "request", absent)
    assert nodepools.growable(wanted) == frozenset()
