"""The `kubectl-onnxops` plugin's pure parts: its arguments, what it writes, how status reads.
Against a real apiserver: tests/cluster/test_kubectl_onnxops.py."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from onnxops import kubectl_plugin
from onnxops.kubectl_plugin import action_patch, action_value, format_status, main, pause_patch

ROOT = Path(__file__).resolve().parents[2]


def test_the_console_script_is_declared() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kubectl-onnxops"] == "onnxops.kubectl_plugin:main"
    assert callable(kubectl_plugin.main)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["rollout"],
        ["rollout", "explode", "iris"],
        ["rollout", "promote"],
        ["rollout", "pause", "iris", "--watch"],  # --watch is status's alone
        ["deploy", "iris"],
    ],
)
def test_a_bad_argument_is_one_line_and_non_zero(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kubectl onnxops")


def test_action_value_is_the_action_and_an_rfc3339_utc_time() -> None:
    at = datetime(2026, 12, 2, 21, 5, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert action_value("promote", at) == "promote/2026-12-02T19:05:09Z"
    assert action_patch("abort/x", "42") == {
        "metadata": {
            "resourceVersion": "42",
            "annotations": {"onnxops.io/rollout-action": "abort/x"},
        }
    }
    assert pause_patch(True, "7") == {
        "metadata": {"resourceVersion": "7"},
        "spec": {"rollout": {"paused": True}},
    }
    assert datetime.fromisoformat(action_value("retry", datetime.now(UTC)).split("/")[1])


def _md(status: dict[str, object] | None, **meta: object) -> dict[str, object]:
    return {
        "metadata": {"name": "iris", "namespace": "ml", **meta},
        "spec": {
            "rollout": {
                "paused": True,
                "steps": [{"shadow": 100, "pauseSeconds": 120}, {"weight": 10, "pauseSeconds": 60}],
            }
        },
        "status": {"rollout": status} if status is not None else {},
    }


def test_status_shows_phase_step_weights_versions_and_measurements() -> None:
    text = format_status(
        _md(
            {
                "phase": "Progressing",
                "step": 1,
                "steps": 2,
                "canaryWeight": 10,
                "shadowPercent": 0,
                "stableVersion": "1",
                "candidateVersion": "2",
                "failures": 0,
                "measurements": [
                    {
                        "signal": "ErrorRate",
                        "stable": 0.001,
                        "candidate": 0.0123456,
                        "threshold": 0.02,
                        "verdict": "Successful",
                        "message": "within",
                    },
                    {"signal": "Accuracy", "verdict": "Inconclusive", "message": "no feedback"},
                ],
                "handledAction": "abort/2026-12-02T19:00:00Z",
            },
            annotations={"onnxops.io/rollout-action": "promote/2026-12-02T19:05:09Z"},
        )
    )
    lines = text.splitlines()
    assert lines[0] == "ModelDeployment ml/iris"
    assert "Phase:      Progressing (paused)" in lines
    assert "Step:       2/2 (weight 10%, pause 60s)" in lines
    assert "Weight:     canary 10%, shadow 0%" in lines
    assert "Versions:   stable 1, candidate 2" in lines
    assert "Requested:  promote/2026-12-02T19:05:09Z (not acted on yet)" in lines
    header = next(i for i, line in enumerate(lines) if line.startswith("  SIGNAL"))
    assert lines[header + 1].split() == [
        "ErrorRate", "0.001", "0.01235", "0.02", "Successful", "within",
    ]  # fmt: skip
    assert lines[header + 2].split()[:5] == ["Accuracy", "-", "-", "-", "Inconclusive"]


def test_status_before_the_operator_wrote_it_says_so() -> None:
    text = format_status(_md(None))
    assert "not started" in text and "Measurements" not in text
    # An action already handled is not shown as pending.
    handled = {"phase": "Aborted", "step": 0, "handledAction": "abort/t"}
    assert "Requested" not in format_status(
        _md(handled, annotations={"onnxops.io/rollout-action": "abort/t"})
    )
