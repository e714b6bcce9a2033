"""manifests/monitoring: the alerting rules pass `promtool check rules` and their promtool unit
tests, the PrometheusRule carries the very same groups, and each rule uses the PromQL the
operator's monitor reads (monitor/queries.py), so alerts and status faults cannot drift apart."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from onnxops.monitor import queries

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "manifests" / "monitoring" / "rules.yaml"
RULE_TESTS = Path(__file__).with_name("alerts") / "rules_test.yaml"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:  # fail, not skip: `make test` installs it (hack/system-deps.sh)
        pytest.fail("promtool not found: run `make system-deps` (Debian prometheus)", pytrace=False)
    return found


def _test_rules(rules: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    spec = RULE_TESTS.read_text().replace("[RULES]", f"[{rules}]")
    (tmp_path / "rules_test.yaml").write_text(spec)
    return subprocess.run(
        [_promtool(), "test", "rules", str(tmp_path / "rules_test.yaml")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_rules_are_valid() -> None:
    result = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout


def test_rules_unit_tests_pass(tmp_path: Path) -> None:
    result = _test_rules(RULES, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_unit_tests_catch_a_weakened_rule(tmp_path: Path) -> None:
    weakened = tmp_path / "rules.yaml"
    weakened.write_text(RULES.read_text().replace("> 0.05", "> 0.5"))
    result = _test_rules(weakened, tmp_path)
    assert result.returncode != 0
    assert "OnnxopsHighErrorRate" in result.stdout + result.stderr


def test_rules_unit_tests_catch_a_rule_that_counts_the_canary(tmp_path: Path) -> None:
    # Without the track filter the canary's 5xx page for the model, its accuracy and drift too.
    counting = tmp_path / "rules.yaml"
    counting.write_text(
        RULES.read_text().replace(f",{queries.SERVED}", "").replace(f"{{{queries.SERVED}}}", "")
    )
    groups = yaml.safe_load(counting.read_text())["groups"]
    assert not [r for g in groups for r in g["rules"] if queries.SERVED in r["expr"]]
    result = _test_rules(counting, tmp_path)
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "OnnxopsHighErrorRate" in out and "OnnxopsLowAccuracy" in out, out


def test_prometheusrule_has_the_same_groups() -> None:
    plain = yaml.safe_load(RULES.read_text())["groups"]
    wrapped = yaml.safe_load((RULES.parent / "prometheusrule.yaml").read_text())
    assert wrapped["kind"] == "PrometheusRule"
    assert wrapped["spec"]["groups"] == plain


def test_rules_use_the_monitors_queries() -> None:
    exprs = [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    label = "onnxops_io_model_deployment"
    for query in [
        queries.error_ratio(label, "5m"),
        queries.latency_p99(label, "5m"),
        queries.accuracy(label),
        queries.drift(label),
        queries.cpu_throttling("5m"),
        queries.oom_events("5m"),
    ]:
        assert any(query.promql in e for e in exprs), query.name


def test_the_shipped_alertmanager_config_passes_amtool(tmp_path: Path) -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.fail("amtool not found: run `make system-deps` (prometheus-alertmanager)")
    config = RULES.with_name("alertmanager.yaml")
    done = subprocess.run(
        [amtool, "check-config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        config.read_text().replace(
            "receiver: onnxops-webhook\n  group_by", "receiver: nobody\n  group_by"
        )
    )
    refused = subprocess.run([amtool, "check-config", str(broken)], capture_output=True, text=True)
    assert refused.returncode != 0, "amtool must refuse a route to an undefined receiver"
