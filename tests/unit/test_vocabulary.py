"""One vocabulary (`onnxops/reasons.py`): no other module of the operator spells a condition
type, phase, reason, signal, refusal or result as a string literal, and no word is declared
twice where one would do."""

from __future__ import annotations

import ast
import enum
import inspect
from collections.abc import Iterator
from pathlib import Path

from onnxops import api, reasons

PACKAGE = Path(reasons.__file__).parent
VOCABULARY: list[type[enum.StrEnum]] = [
    v
    for v in vars(reasons).values()
    if inspect.isclass(v) and issubclass(v, enum.StrEnum) and v.__module__ == reasons.__name__
]
WORDS: dict[str, list[str]] = {}
for _enum in VOCABULARY:
    for _member in _enum:
        WORDS.setdefault(_member.value, []).append(f"{_enum.__name__}.{_member.name}")

# Literals that stay, each with why: (module under onnxops/, value) -> reason.
ALLOWED: dict[tuple[str, str], str] = {
    ("crdgen.py", "Ready"): "a printer column's header (`kubectl get mdep`), not a vocabulary word",
}

# The enums whose words are reasons (of a condition, an Event or a remediation record): a
# word there means one thing, so no two of them share a value.
REASON_ENUMS = (
    reasons.Reason,
    reasons.Problem,
    reasons.Refusal,
    reasons.Signal,
    reasons.HealReason,
)


def _modules() -> Iterator[Path]:
    for path in sorted(PACKAGE.rglob("*.py")):
        if path != Path(reasons.__file__):
            yield path


def _dunder_all(tree: ast.Module) -> set[int]:
    """ids of the string constants in `__all__` (names of Python objects, say ApiUnavailable)."""
    out: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            out |= {id(c) for c in ast.walk(node.value) if isinstance(c, ast.Constant)}
    return out


def vocabulary_literals() -> list[tuple[str, int, str]]:
    """(module, line, value) of every string literal that equals a vocabulary word."""
    found = []
    for path in _modules():
        tree = ast.parse(path.read_text(), filename=str(path))
        skip = _dunder_all(tree)
        module = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value in WORDS
                and id(node) not in skip
            ):
                found.append((module, node.lineno, node.value))
    return sorted(found)


def test_the_vocabulary_is_found():
    """The scan sees the enums and the modules (an empty scan would pass anything)."""
    assert {reasons.ConditionType, reasons.Reason, reasons.Refusal} <= set(VOCABULARY)
    assert len(list(_modules())) > 40
    assert "ChildRejected" in WORDS and "Cooldown" in WORDS


def test_no_vocabulary_word_is_a_string_literal_outside_reasons():
    stray = [
        f"{module}:{line}: {value!r} (use {' or '.join(WORDS[value])})"
        for module, line, value in vocabulary_literals()
        if (module, value) not in ALLOWED
    ]
    assert not stray, "vocabulary words spelled as literals:\n" + "\n".join(stray)


def test_every_allowance_is_still_needed():
    seen = {(module, value) for module, _, value in vocabulary_literals()}
    assert set(ALLOWED) <= seen, f"stale allowances: {set(ALLOWED) - seen}"


def test_no_enum_holds_a_value_twice():
    """A second name with the same value would silently be an alias of the first."""
    for e in VOCABULARY:
        assert len(e.__members__) == len(list(e)), e


def test_reasons_mean_one_thing():
    seen: dict[str, str] = {}
    for e in REASON_ENUMS:
        for member in e:
            assert member.value not in seen, f"{e.__name__}.{member.name} is also {seen[member]}"
            seen[member.value] = f"{e.__name__}.{member.name}"


def test_the_crd_enums_are_the_vocabulary():
    assert set(api.PHASES) == set(reasons.Phase)
    assert set(api.FAULT_SIGNALS) == set(reasons.Signal)
    assert set(api.RESULTS) == set(reasons.HealResult)
