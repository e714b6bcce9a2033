"""The `onnxops` dispatcher: one-line errors, and commands of a missing extra are absent."""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap

import pytest
from onnxops.cli import COMMAND_INDEX, build_parser, main


def test_bad_argument_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["no-such-command"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice" in err


def test_missing_pipeline_extra_leaves_operator_commands_working() -> None:
    # The operator image installs only the operator extra: simulate scikit-learn being
    # absent (the one fault we cannot produce without a second environment) by blocking it.
    script = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "sklearn" or name.startswith("sklearn."):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None
        sys.meta_path.insert(0, Block())
        from onnxops.cli import build_parser, main
        help_text = build_parser().format_help()
        assert " train " not in help_text, help_text
        assert "pipeline commands (sklearn)" in help_text, help_text
        sys.exit(main(["crd"]))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "kind: CustomResourceDefinition" in done.stdout


def test_command_index_matches_the_registered_commands() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(COMMAND_INDEX)
    for command, module in COMMAND_INDEX.items():
        only = build_parser((module,))
        only_sub = next(a for a in only._actions if isinstance(a, argparse._SubParsersAction))
        assert command in only_sub.choices


def test_crd_command_does_not_import_the_pipeline() -> None:
    script = (
        "import sys, io, contextlib\n"
        "from onnxops.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    rc = main(['crd'])\n"
        "assert rc == 0\n"
        "assert 'sklearn' not in sys.modules and 'onnxruntime' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
