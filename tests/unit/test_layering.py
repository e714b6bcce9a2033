"""The packages' dependency direction: `remediation/` (heal) depends on the core, never the
reverse. Only the kopf wiring of the monitor (`watch.py`) imports heal; heal re-applies
desired state through a callable it is handed, never by importing `reconcile`; and the child
builders take desired state as given, never reading the override themselves."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import onnxops

PACKAGE = Path(onnxops.__file__).parent
HEAL = "onnxops.remediation"
WIRING = {"watch.py"}  # builds the Healer: heal's one door into the running operator
NOT_FROM_HEAL = {"onnxops.reconcile", "onnxops.handlers", "onnxops.watch", "onnxops.startup"}


def modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text(), str(path))


def imported(tree: ast.Module) -> set[str]:
    """Every module a file imports, `from a import b` counted as both `a` and `a.b`."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return out


def _is(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_nothing_outside_heal_imports_it_but_the_wiring() -> None:
    found = {
        rel: sorted(n for n in imported(tree) if _is(n, HEAL))
        for rel, tree in modules()
        if not rel.startswith("remediation/") and rel not in WIRING
    }
    assert {rel: names for rel, names in found.items() if names} == {}


def test_heal_never_imports_the_deploy_path() -> None:
    found = {
        rel: sorted(n for n in imported(tree) for bad in NOT_FROM_HEAL if _is(n, bad))
        for rel, tree in modules()
        if rel.startswith("remediation/")
    }
    assert {rel: names for rel, names in found.items() if names} == {}


def test_the_builders_take_desired_state_and_never_read_the_override() -> None:
    (tree,) = [t for rel, t in modules() if rel == "build.py"]
    assert not [n for n in imported(tree) if _is(n, "onnxops.override") or _is(n, HEAL)]
    reads = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in ("override", "restarted_at")
    ]
    assert reads == []


def test_the_scan_sees_an_import_of_heal() -> None:
    # The scan must be able to fail: both spellings of importing heal are caught.
    tree = ast.parse("from onnxops.remediation import act\nimport onnxops.remediation.hook\n")
    assert {n for n in imported(tree) if _is(n, HEAL)} == {
        "onnxops.remediation",
        "onnxops.remediation.act",
        "onnxops.remediation.hook",
    }
    assert not _is("onnxops.remediationx", HEAL)
