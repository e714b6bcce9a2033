"""The rollout's intent (status.rollout) against the real apiserver: two reconciles holding
the same body from before a spec change (kopf's update handler and a resync, or a re-apply of
heal's or the rollout cycle's) start the rollout once — one RolloutStarted, the step's clock
not reset — because the intent is written only over the object as read. `reconcile` runs in
this process (no kopf loop), so the two calls are the race, made certain."""

from __future__ import annotations

from typing import Any

import pytest
from onnxops import reconcile
from onnxops.config import OperatorConfig
from onnxops.pools import default_pools
from support.deployments import model_deployment
from support.operator_kit import Kube

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("in_process_client")]

POOLS = default_pools()
CFG = OperatorConfig()
STEPS = {"steps": [{"weight": 50, "pauseSeconds": 600}]}


def _body(version: str) -> dict[str, Any]:
    model = {"uri": f"https://models.example.com/twice/{version}.onnx", "version": version}
    return model_deployment(
        "twice", model=model, target={"pool": "cloud"}, replicas=2, rollout=STEPS
    )


def test_two_reconciles_of_one_spec_change_start_the_rollout_once(kube: Kube) -> None:
    assert kube.apply(_body("1")).returncode == 0
    reconcile.reconcile(kube.get("mdep", "twice") or {}, POOLS, CFG)
    settled = kube.status("twice")["rollout"]
    assert settled["phase"] == "Promoted" and settled["stableVersion"] == "1"
    assert kube.apply(_body("2")).returncode == 0
    stale = kube.get("mdep", "twice") or {}
    before = _body("1")["spec"]["model"]
    first = reconcile.reconcile(stale, POOLS, CFG, previous_model=before)
    started = kube.status("twice")["rollout"]
    assert started["phase"] == "Progressing" and started["candidateVersion"] == "2"
    second = reconcile.reconcile(stale, POOLS, CFG, previous_model=before)
    reasons = [e[1] for e in [*first.events, *second.events]]
    assert reasons.count("RolloutStarted") == 1, reasons
    again = kube.status("twice")["rollout"]
    assert again["stepStartedAt"] == started["stepStartedAt"]
    assert again["candidateVersion"] == "2" and again["step"] == 0
    canary = kube.get("deployment", "twice-canary")
    assert canary is not None and canary["spec"]["replicas"] == 1
