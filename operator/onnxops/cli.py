"""The `onnxops` command line: a thin layer over library functions.

Each command module exposes `register(subparsers)`; its handler returns an exit code.
Errors a user can cause print one line and exit non-zero, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from onnxops.errors import GateFailed, OnnxopsError, UserInputError

# Modules that contribute subcommands; each defines register(subparsers).
COMMAND_MODULES = ("onnxops.pipeline.cli", "onnxops.pipeline.push", "onnxops.crdgen", "onnxops.run")
# Which module defines each command, so that running one imports only its module:
# the pipeline pulls in scikit-learn and ONNX Runtime (~2 s), which `onnxops crd` or
# `onnxops operator` must not pay. A unit test keeps this in step with the modules.
COMMAND_INDEX = {
    **dict.fromkeys(
        ("train", "validate", "export", "optimize", "inspect", "build"), "onnxops.pipeline.cli"
    ),
    "push": "onnxops.pipeline.push",
    "crd": "onnxops.crdgen",
    "operator": "onnxops.run",
}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="onnxops", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    missing: dict[str, str] = {}
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if (exc.name or "").startswith("onnxops"):
                raise
            # An optional extra is not installed (the operator image has no pipeline
            # extra): its commands are simply absent rather than crashing every command.
            missing[name] = exc.name or "?"
            continue
        module.register(sub)
    if missing:
        parser.epilog = "not available here (missing optional packages): " + ", ".join(
            f"{mod.rsplit('.', 1)[0].rsplit('.', 1)[-1]} commands ({pkg})"
            for mod, pkg in missing.items()
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    module = COMMAND_INDEX.get(argv[0]) if argv else None
    parser = build_parser((module,) if module else COMMAND_MODULES)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserInputError as exc:
        print(f"onnxops {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except GateFailed as exc:
        print(f"onnxops {args.command}: FAILED: {exc}", file=sys.stderr)
        return 1
    except OnnxopsError as exc:
        print(f"onnxops {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `onnxops inspect X --json | head`: the reader left; not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
