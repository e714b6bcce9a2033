"""The operator's fleet series per namespace of the models they count (`model_namespace`), so
the fleet dashboard's $namespace filters them: every phase, rollout phase and fault signal has
a series in each namespace with a watched model, and a namespace left with none loses them."""

from __future__ import annotations

from onnxops.monitor.metrics import OperatorMetrics


def _value(m: OperatorMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_phases_rollouts_and_faults_are_counted_per_namespace() -> None:
    m = OperatorMetrics()
    m.record_phases(
        [("team-a", "Ready", None), ("team-a", "Ready", "Progressing"), ("team-b", "Failed", None)]
    )
    by_phase = "onnxops_operator_model_deployments_by_phase"
    assert _value(m, by_phase, phase="Ready", model_namespace="team-a") == 2
    assert _value(m, by_phase, phase="Failed", model_namespace="team-a") == 0  # zero, not absent
    assert _value(m, by_phase, phase="Failed", model_namespace="team-b") == 1
    rollouts = "onnxops_operator_rollouts"
    assert _value(m, rollouts, phase="Progressing", model_namespace="team-a") == 1
    assert _value(m, rollouts, phase="Aborted", model_namespace="team-b") == 0
    assert _value(m, "onnxops_operator_faults", signal="ErrorRate", model_namespace="team-b") == 0
    m.record_faults(("team-a", "iris"), ["ErrorRate", "LatencyP99"])
    m.record_faults(("team-a", "mlp"), ["ErrorRate"])
    faults = "onnxops_operator_faults"
    assert _value(m, faults, signal="ErrorRate", model_namespace="team-a") == 2
    assert _value(m, faults, signal="ErrorRate", model_namespace="team-b") == 0
    m.forget([("team-a", "iris"), ("team-b", "x")])  # mlp deleted
    assert _value(m, faults, signal="ErrorRate", model_namespace="team-a") == 1
    # team-b's last model went: its series go with it; team-a's stay.
    m.record_phases([("team-a", "Ready", None)])
    assert _value(m, by_phase, phase="Failed", model_namespace="team-b") is None
    assert _value(m, faults, signal="ErrorRate", model_namespace="team-b") is None
    assert _value(m, rollouts, phase="Progressing", model_namespace="team-a") == 0
    assert _value(m, by_phase, phase="Ready", model_namespace="team-a") == 1
