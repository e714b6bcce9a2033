"""`onnxops operator`: run the kopf operator in this process."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from onnxops.config import config


def _run(args: argparse.Namespace) -> int:
    import faulthandler
    import signal

    import kopf

    # `kill -USR1 PID` prints every thread's stack to stderr: where a stuck operator is stuck.
    faulthandler.register(signal.SIGUSR1, all_threads=True)

    import onnxops.handlers  # noqa: F401  (registers the handlers)

    cfg = config()
    # kopf's formatter prefixes each line about a resource with [namespace/name]: without it
    # "Handler 'reconcile_model' failed temporarily" does not say which of 200 resources.
    kopf.configure(verbose=args.verbose, log_prefix=True)
    namespaces = [n for n in cfg.namespaces.split(",") if n]
    kopf.run(
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=True if cfg.standalone else None,
        peering_name=None if cfg.standalone else cfg.peering,
        liveness_endpoint=cfg.liveness,
    )
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "operator",
        help="run the operator (settings from ONNXOPS_* environment variables)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.set_defaults(func=_run)


def main(argv: list[str] | None = None) -> int:
    """`python -m onnxops.run`: the operator without loading the other CLI commands (the
    pipeline's imports scikit-learn and ONNX Runtime, ~120 MiB the operator never uses)."""
    import onnxops.cli

    parser = onnxops.cli.OneLineParser(prog="python -m onnxops.run", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return _run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
