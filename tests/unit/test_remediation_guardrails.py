"""Guardrails: mode, cooldown, hourly cap, one disruptive action in flight, the operator-wide
limit, ceilings, the HPA's ownership of CPU and unknown data, with `now` passed in."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from heal_kit import NOW, ago, md
from onnxops.api import ModelDeployment
from onnxops.pools import default_pools
from onnxops.remediation.action import Action
from onnxops.remediation.guardrails import FleetLimit, Verdict, admit

EDGE = default_pools()["edge"]
CURRENT = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
RESTART = Action("restart", "ErrorRate", "p-b bad", pods=("p-b/u",))
ROLLOUT = Action("rolloutRestart", "LatencyP99", "all slow")
MEMORY = Action(
    "resize",
    "OOMKilled",
    "oom",
    resources={"requests": {"cpu": "100m", "memory": "228Mi"}, "limits": {"memory": "384Mi"}},
)
CPU = Action(
    "resize",
    "CpuThrottling",
    "slow",
    resources={"requests": {"cpu": "150m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
)
WARN = Action("warn", "Drift", "drift")


def record(
    action: str, seconds_ago: float, result: str = "Succeeded", **extra: Any
) -> dict[str, Any]:
    return {
        "id": f"r{seconds_ago}",
        "time": ago(seconds_ago),
        "action": action,
        "result": result,
        **extra,
    }


def model(
    mode: str = "auto", history: list[dict[str, Any]] | None = None, **remediation: Any
) -> ModelDeployment:
    return md(
        spec={"remediation": {"mode": mode, **remediation}},
        status={"remediations": history or []},
    )


def judge(
    m: ModelDeployment, *actions: Action, fleet: FleetLimit | None = None, **kw: Any
) -> list[tuple[str, str | None]]:
    verdicts = admit(
        list(actions), md=m, pool=EDGE, current=CURRENT, now=NOW, fleet=fleet or FleetLimit(), **kw
    )
    return [(v.result, v.refusal) for v in verdicts]


CASES = [
    ("auto acts", model(), [RESTART], [("Pending", None)]),
    ("dryRun records only", model("dryRun"), [RESTART], [("DryRun", None)]),
    ("off refuses", model("off"), [RESTART], [("Refused", "Off")]),
    (
        "cooldown per kind",
        model(history=[record("restart", 100)]),
        [RESTART, MEMORY],
        [("Refused", "Cooldown"), ("Pending", None)],
    ),
    ("cooldown over", model(history=[record("restart", 400)]), [RESTART], [("Pending", None)]),
    (
        "no disruption while the last action settles",
        model(history=[record("rollback", 60, reason="ErrorRate")]),
        [ROLLOUT, MEMORY],
        [("Refused", "Cooldown"), ("Pending", None)],
    ),
    (
        "a refused action starts no cooldown",
        model(history=[record("restart", 10, "Refused")]),
        [RESTART],
        [("Pending", None)],
    ),
    (
        "hourly cap counts every kind in the last hour",
        model(history=[record("resize", 3000), record("rollback", 1000)], maxActionsPerHour=2),
        [RESTART],
        [("Refused", "HourlyCap")],
    ),
    (
        "older actions leave the hour",
        model(history=[record("resize", 4000), record("rollback", 3700)], maxActionsPerHour=2),
        [RESTART],
        [("Pending", None)],
    ),
    (
        "hourly cap within one batch",
        model(maxActionsPerHour=1),
        [MEMORY, RESTART],
        [("Pending", None), ("Refused", "HourlyCap")],
    ),
    (
        "one disruptive action in flight",
        model(history=[record("rollback", 5000, "Pending")]),
        [RESTART, MEMORY],
        [("Refused", "InFlight"), ("Pending", None)],
    ),
    (
        "one disruptive action per batch",
        model(),
        [ROLLOUT, RESTART],
        [("Pending", None), ("Refused", "InFlight")],
    ),
    ("warnings pass every guardrail but unknown data", model("off"), [WARN], [("Succeeded", None)]),
]


@pytest.mark.parametrize(
    ("m", "actions", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_admit(m: ModelDeployment, actions: list[Action], expected: list[Any]) -> None:
    assert judge(m, *actions) == expected


def test_operator_wide_limit_spans_models_and_expires() -> None:
    fleet = FleetLimit(limit=1, window_s=60)
    assert judge(model(), RESTART, fleet=fleet) == [("Pending", None)]
    assert judge(model(), RESTART, fleet=fleet) == [("Refused", "FleetLimit")]
    assert judge(model(), MEMORY, fleet=fleet) == [("Pending", None)]  # not disruptive
    later = admit(
        [RESTART],
        md=model(),
        pool=EDGE,
        current=CURRENT,
        now=NOW + timedelta(seconds=61),
        fleet=fleet,
    )
    assert later[0].result == "Pending"


def test_models_admitted_side_by_side_never_share_the_last_disruption() -> None:
    """The monitor's write pool heals models at once: from the fleet check to the take is one
    step, so another model's admission waits meanwhile, and 16 at once get exactly the limit."""
    fleet = FleetLimit(limit=1, window_s=60)
    got: list[Any] = []
    with fleet.lock:  # another model is being admitted
        waiting = threading.Thread(target=lambda: got.append(judge(model(), RESTART, fleet=fleet)))
        waiting.start()
        waiting.join(0.3)
        assert waiting.is_alive() and got == []
    waiting.join(5)
    assert got == [[("Pending", None)]]

    fleet = FleetLimit(limit=3, window_s=60)
    start = threading.Barrier(16, timeout=10)

    def one() -> list[tuple[str, str | None]]:
        start.wait()
        return judge(model(), RESTART, fleet=fleet)

    with ThreadPoolExecutor(16) as pool:
        verdicts = list(pool.map(lambda _: one(), range(16)))
    assert sorted(v[0][0] for v in verdicts) == ["Pending"] * 3 + ["Refused"] * 13


def test_dry_run_takes_nothing_from_the_fleet() -> None:
    fleet = FleetLimit(limit=1, window_s=60)
    assert judge(model("dryRun"), RESTART, fleet=fleet) == [("DryRun", None)]
    assert fleet.allows(NOW)


def only(m: ModelDeployment, action: Action, **kw: Any) -> Verdict:
    (verdict,) = admit(
        [action], md=m, pool=EDGE, current=CURRENT, now=NOW, fleet=FleetLimit(), **kw
    )
    return verdict


def test_resize_is_capped_at_the_spec_ceiling() -> None:
    verdict = only(model(resize={"maxMemory": "300Mi"}), MEMORY)
    assert verdict.result == "Pending"
    assert verdict.action.resources is not None
    assert verdict.action.resources["limits"]["memory"] == "300Mi"  # one form: Mi
    assert verdict.action.resources["requests"]["memory"] == "228Mi"  # under the cap
    assert "ceiling 300Mi" in verdict.note


def test_resize_is_capped_at_the_pool_ceiling() -> None:
    huge = Action(
        "resize",
        "OOMKilled",
        "oom",
        resources={"requests": {"memory": "4Gi"}, "limits": {"memory": "8Gi"}},
    )
    verdict = only(model(resize={"maxMemory": "16Gi"}), huge)  # edge's own ceiling is 1Gi
    assert verdict.action.resources == {
        "requests": {"memory": "1024Mi"},
        "limits": {"memory": "1024Mi"},
    }


def test_resize_already_at_the_ceiling_is_refused() -> None:
    verdict = only(model(resize={"maxMemory": "256Mi"}), MEMORY)  # the limit is 256Mi already
    assert (verdict.result, verdict.refusal) == ("Refused", "Ceiling")


@pytest.mark.parametrize(
    ("replicas", "expected"), [(2, ("Refused", "HpaOwnsCpu")), (4, ("Pending", None))]
)
def test_cpu_pressure_is_the_hpas_below_max_replicas(
    replicas: int, expected: tuple[str, str | None]
) -> None:
    m = md(spec={"autoscaling": {"minReplicas": 1, "maxReplicas": 4}})
    verdict = only(m, CPU, current_replicas=replicas)
    assert (verdict.result, verdict.refusal) == expected
    assert only(m, MEMORY, current_replicas=replicas).result == "Pending"  # memory is ours


def test_a_repeated_refusal_is_no_news() -> None:
    history = [
        record("restart", 100),
        record("restart", 30, "Refused", reason="ErrorRate", refusal="Cooldown"),
    ]
    verdict = only(model(history=history), RESTART)
    assert (verdict.refusal, verdict.news) == ("Cooldown", False)
    fresh = only(model(history=[record("restart", 100)]), RESTART)
    assert (fresh.refusal, fresh.news) == ("Cooldown", True)


def test_prometheus_unknown_blocks_only_what_prometheus_measures() -> None:
    why = "the monitor could not read Prometheus"
    oom = MEMORY  # OOM kills are read from the pods (the API), not from Prometheus
    got = judge(model(), RESTART, fleet=FleetLimit(), metrics_unknown=why)
    assert got == [("Refused", "UnknownData")]
    assert judge(model(), oom, CPU, metrics_unknown=why) == [
        ("Pending", None),
        ("Refused", "UnknownData"),
    ]


# -- a resize down after long low use ------------------------------------------------------

SHRINK = Action(
    "resize",
    "LowUse",
    "long low use",
    resources={"requests": {"cpu": "67m", "memory": "86Mi"}, "limits": {"memory": "171Mi"}},
)


@pytest.mark.parametrize(
    ("m", "expected"),
    [
        (model(), ("Pending", None)),
        (model("dryRun"), ("DryRun", None)),
        (model("off"), ("Refused", "Off")),
        (model(history=[record("resize", 100, reason="OOMKilled")]), ("Refused", "Cooldown")),
        (model(history=[record("resize", 400, reason="OOMKilled")]), ("Pending", None)),
        (model(history=[record("restart", 100)]), ("Pending", None)),  # not disruptive
        (model(history=[record("rollback", 100)], maxActionsPerHour=1), ("Refused", "HourlyCap")),
    ],
    ids=["auto", "dryRun", "off", "cooldown of a raise", "cooldown over", "other kind", "cap"],
)
def test_a_shrink_goes_through_the_same_guardrails(
    m: ModelDeployment, expected: tuple[str, str | None]
) -> None:
    verdict = only(m, SHRINK)
    assert (verdict.result, verdict.refusal) == expected


def test_a_shrink_is_not_refused_for_not_growing_and_not_capped() -> None:
    verdict = only(model(resize={"maxMemory": "100Mi"}), SHRINK)  # the limit is over the cap
    assert (verdict.result, verdict.action.resources) == ("Pending", SHRINK.resources)


@pytest.mark.parametrize(
    "resources",
    [
        CURRENT,  # nothing lower
        {"requests": {"cpu": "50m", "memory": "300Mi"}, "limits": {"memory": "200Mi"}},  # grows
        {"requests": {"cpu": "50m", "memory": "100Mi"}, "limits": {"memory": "200Mi", "cpu": "1"}},
    ],
    ids=["unchanged", "a request grows", "a new limit"],
)
def test_a_shrink_that_lowers_nothing_or_raises_anything_is_refused(
    resources: dict[str, dict[str, str]],
) -> None:
    verdict = only(model(), Action("resize", "LowUse", "low", resources=resources))
    assert (verdict.result, verdict.refusal) == ("Refused", "Floor")


def test_a_raise_is_still_refused_when_it_does_not_grow() -> None:
    # `_grows` is for raises only; a resize for OOM that lowers would be a bug, not a shrink.
    lower = Action("resize", "OOMKilled", "oom", resources=SHRINK.resources)
    assert only(model(), lower).refusal == "Ceiling"
