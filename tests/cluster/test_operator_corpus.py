"""A corpus of bad and odd ModelDeployments (tests/cluster/corpus/), applied with kubectl as a
user applies them. Each file's first line says what must happen:

    # expect: rejected | PHRASE            kubectl apply fails, its message names PHRASE
    # expect: Failed/REASON | PHRASE       accepted; phase Failed, Ready False/REASON, one
                                           Warning REASON naming PHRASE, nothing half-built
    # expect: Ready | requests R N, limits L M    Ready, and the Deployment asks exactly that

Whatever the operator judges, it judges once: no hot loop, no unhandled exception.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.operator_kit import Kube, Operator, wait_for

pytestmark = pytest.mark.cluster

CORPUS = Path(__file__).parent / "corpus"


def cases() -> list[tuple[Path, str, str]]:
    found = []
    for path in sorted(CORPUS.glob("*.yaml")):
        first = path.read_text().splitlines()[0]
        match = re.fullmatch(r"# expect: (\S+) \| (.+)", first)
        assert match, f"{path.name}: first line must be '# expect: OUTCOME | PHRASE'"
        found.append((path, match.group(1), match.group(2)))
    return found


CASES = cases()
JUDGED = [c for c in CASES if c[1].startswith("Failed/")]


def apply(kube: Kube, path: Path) -> Any:
    return kube.run("apply", "-f", str(path), check=False)


@pytest.mark.parametrize(
    ("path", "phrase"),
    [(p, ph) for p, outcome, ph in CASES if outcome == "rejected"],
    ids=lambda v: v.stem if isinstance(v, Path) else "",
)
def test_schema_rejects_with_a_readable_message(kube: Kube, path: Path, phrase: str) -> None:
    result = apply(kube, path)
    assert result.returncode != 0, f"{path.name} was accepted"
    assert phrase in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) <= 6, "one readable message, not a dump"
    name = yaml.safe_load(path.read_text())["metadata"]["name"]
    assert kube.get("mdep", name) is None


def failed(kube: Kube, name: str, reason: str) -> dict[str, Any] | None:
    status = kube.status(name)
    ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})
    ok = status.get("phase") == "Failed" and ready.get("reason") == reason
    return status if ok and ready.get("status") == "False" else None


@pytest.mark.parametrize(("path", "outcome", "phrase"), JUDGED, ids=[p.stem for p, _, _ in JUDGED])
def test_operator_judges(
    kube: Kube, operator: Operator, path: Path, outcome: str, phrase: str
) -> None:
    reason = outcome.removeprefix("Failed/")
    assert apply(kube, path).returncode == 0
    status = wait_for(lambda: failed(kube, path.stem, reason), f"{path.stem} Failed/{reason}")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert phrase in ready["message"]
    warnings = wait_for(
        lambda: [e for e in kube.events(path.stem) if e["type"] == "Warning"], "a Warning"
    )
    assert [e["reason"] for e in warnings] == [reason] and phrase in warnings[0]["message"]
    assert kube.get("deployment", path.stem) is None  # nothing half-built


def test_judged_specs_do_not_loop(kube: Kube, operator: Operator) -> None:
    for path, _, _ in JUDGED:  # already there when the module runs in order
        assert apply(kube, path).returncode == 0
    for path, outcome, _ in JUDGED:
        wait_for(lambda p=path, o=outcome: failed(kube, p.stem, o[7:]), f"{path.stem} judged")

    def mentions() -> int:
        text = operator.log_path.read_text()
        return sum(text.count(f"[{kube.namespace}/{p.stem}]") for p, _, _ in JUDGED)

    before, events = mentions(), len(kube.items("events"))
    time.sleep(10)  # the window in which a loop would show: ~60 writes a minute per object
    # Permanent failures are not retried; temporary ones back off (2 s doubling here). What
    # still logs per object in 10 s: the resync timer (every 5 s here: 2 or 3 runs, by phase)
    # and the event handler when an event arrives; a loop would be ~10 per object.
    assert mentions() - before <= 3 * len(JUDGED)
    assert len(kube.items("events")) == events
    log = operator.log_path.read_text()
    assert "failed with an exception" not in log  # every exception became a judgement
    assert "Traceback" not in log


@pytest.mark.parametrize(
    ("path", "phrase"),
    [(p, ph) for p, outcome, ph in CASES if outcome == "Ready"],
    ids=lambda v: v.stem if isinstance(v, Path) else "",
)
def test_user_resources_are_kept(kube: Kube, operator: Operator, path: Path, phrase: str) -> None:
    assert apply(kube, path).returncode == 0
    wait_for(lambda: kube.status(path.stem).get("phase") == "Ready", f"{path.stem} Ready", 60)
    dep = kube.get("deployment", path.stem)
    assert dep is not None
    resources = dep["spec"]["template"]["spec"]["containers"][0]["resources"]
    for part in phrase.split(", "):  # "requests cpu 100m"
        kind, name, value = part.split()
        assert resources[kind][name] == value, resources
