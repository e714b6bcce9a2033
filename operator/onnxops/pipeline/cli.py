"""`onnxops train|validate|export|optimize|inspect|build`: the pipeline's command line.

Steps share a work dir: `train` writes it, `validate`, `export` and `optimize` read it.
`build` runs them all in one go. Reports go to stdout (`--json` for machines), progress to
stderr.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from onnxops.errors import GateFailed, UserInputError
from onnxops.pipeline import (
    algorithms,
    bundle,
    export,
    optimize,
    options,
    push,
    report,
    train,
    validate,
)
from onnxops.pipeline.bundle import Metrics
from onnxops.pipeline.staging import check_target

BUNDLE_DIR = "bundle"  # default bundle location inside a work dir


def _progress(args: argparse.Namespace) -> Callable[[str], None]:
    def say(message: str) -> None:
        if not getattr(args, "quiet", False):
            print(f"==> {message}", file=sys.stderr, flush=True)

    return say


def _emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        print(text)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = options.parser(sub, "train", "train a model into a work dir")
    options.data_args(p)
    p.add_argument("--work", type=Path, required=True, metavar="DIR", help="work dir to write")
    options.common(p)
    p.set_defaults(func=options.guarded(cmd_train))

    p = options.parser(sub, "validate", "metrics on the held-out rows, with gates")
    p.add_argument("work", type=Path, metavar="WORK", help="work dir written by `onnxops train`")
    options.gate_args(p)
    options.common(p)
    p.set_defaults(func=options.guarded(cmd_validate))

    p = options.parser(sub, "export", "export to ONNX with a parity check; writes a bundle")
    p.add_argument("work", type=Path, metavar="WORK", help="work dir written by `onnxops train`")
    p.add_argument("--out", type=Path, metavar="BUNDLE", help="bundle dir (default WORK/bundle)")
    p.add_argument("--name", help="model name (default: from training)")
    p.add_argument(
        "--standard-ops", action="store_true", help="MatMul form instead of ai.onnx.ml operators"
    )
    options.export_args(p)
    options.common(p)
    p.set_defaults(func=options.guarded(cmd_export))

    p = options.parser(sub, "optimize", "quantize, prune, convert; keep variants within budget")
    p.add_argument("work", type=Path, metavar="WORK", help="work dir written by `onnxops train`")
    p.add_argument("--bundle", type=Path, help="bundle dir (default WORK/bundle)")
    options.optimize_args(p)
    options.common(p)
    p.set_defaults(func=options.guarded(cmd_optimize))

    p = options.parser(sub, "inspect", "show a model bundle")
    p.add_argument("bundle", type=Path, metavar="BUNDLE", help="bundle dir, or its model.onnx")
    p.add_argument("--json", action="store_true", help="print model.json")
    p.set_defaults(func=options.guarded(cmd_inspect))

    p = options.parser(sub, "build", "train, validate, export (and optimize) in one go")
    options.data_args(p)
    p.add_argument("--out", type=Path, required=True, metavar="BUNDLE", help="bundle dir to write")
    p.add_argument(
        "--work", type=Path, metavar="DIR", help="keep the work dir here (default: temporary)"
    )
    p.add_argument(
        "--optimize", action="store_true", help="also optimize (exports linear models as MatMul)"
    )
    p.add_argument(
        "--push", metavar="s3://BUCKET/PREFIX/", help="then upload it there (see `onnxops push`)"
    )
    push.storage_args(p)
    options.gate_args(p)
    options.export_args(p)
    options.optimize_args(p)
    options.common(p)
    p.set_defaults(func=options.guarded(cmd_build))


def _train(args: argparse.Namespace, work: Path) -> train.TrainRun:
    # Where results go is checked first: a refusal after minutes of training helps no one.
    check_target(work, train.RECORD)
    if getattr(args, "out", None):
        check_target(args.out, bundle.MANIFEST)
    if args.name:
        export.check_name(args.name)
    if getattr(args, "version", None) is not None:  # build: refused before training
        export.check_name(args.version, "--version")
    ds = train.load_data(args.dataset, args.csv, args.target)
    if hasattr(args, "min_accuracy"):  # build: a gate for the wrong task fails before training
        _, task = train.plan(ds, args.algorithm, args.task)
        validate.check_gates_fit(task, _gates(args))
    run = train.train(
        ds,
        args.algorithm,
        task=args.task,
        seed=args.seed,
        test_size=args.test_size,
        params=algorithms.parse_params(args.param),
        name=args.name,
        progress=_progress(args),
    )
    train.save(run, work)
    return run


def cmd_train(args: argparse.Namespace) -> int:
    run = _train(args, args.work)
    _emit(
        args,
        {"work": str(args.work), **run.record.model_dump(mode="json")},
        report.train_summary(run.record) + f"\nwork dir: {args.work}",
    )
    return 0


def _gates(args: argparse.Namespace) -> validate.Gates:
    return validate.Gates(args.min_accuracy, args.min_f1, args.min_r2, args.max_rmse)


def _check_gates(args: argparse.Namespace, metrics: Metrics) -> None:
    missed = validate.gate_failures(metrics, _gates(args))
    if missed:
        if args.json:  # a CI step parsing stdout gets the figures, not an empty document
            payload = {"metrics": metrics.model_dump(mode="json"), "gates_missed": missed}
            print(json.dumps(payload, indent=2))
        raise GateFailed("quality gate missed: " + "; ".join(missed))


def cmd_validate(args: argparse.Namespace) -> int:
    run = train.load(args.work)
    metrics = validate.validate(run)
    validate.save(metrics, args.work)
    missed = validate.gate_failures(metrics, _gates(args))
    _emit(
        args,
        {"metrics": metrics.model_dump(mode="json"), "gates_missed": missed},
        report.metrics_report(metrics),
    )
    if missed:
        raise GateFailed("quality gate missed: " + "; ".join(missed))
    return 0


def _metrics(run: train.TrainRun, work: Path) -> Metrics:
    """The metrics `validate` saved, or fresh ones when it was skipped."""
    saved = work / validate.REPORT
    if saved.is_file():
        return TypeAdapter(Metrics).validate_json(saved.read_text(encoding="utf-8"))
    return validate.validate(run)


def _export(
    args: argparse.Namespace, run: train.TrainRun, metrics: Metrics, out: Path, form: export.Form
) -> bundle.ModelBundle:
    _progress(args)(f"exporting to ONNX ({form} form) and checking parity")
    try:
        return export.export(
            run,
            out,
            metrics,
            form=form,
            name=args.name,
            version=args.version,
            tolerance=args.parity_tolerance,
            min_agreement=args.min_label_agreement,
        )
    except export.ParityFailed as exc:
        if args.json:  # the figures for a CI step parsing stdout
            print(json.dumps({"parity": exc.parity.model_dump(mode="json")}, indent=2))
        raise


def cmd_export(args: argparse.Namespace) -> int:
    run = train.load(args.work)
    out = args.out or args.work / BUNDLE_DIR
    result = _export(
        args, run, _metrics(run, args.work), out, "standard" if args.standard_ops else "ml"
    )
    _emit(
        args,
        result.model_dump(mode="json"),
        report.parity_line(result.parity) + f"\nbundle written: {out}",
    )
    return 0


def _techniques(args: argparse.Namespace) -> tuple[str, ...]:
    if not args.only:
        return optimize.TECHNIQUES
    chosen = tuple(t.strip() for t in args.only.split(",") if t.strip())
    unknown = [t for t in chosen if t not in optimize.TECHNIQUES]
    if unknown:
        raise UserInputError(
            f"unknown technique(s) {', '.join(unknown)} (known: {', '.join(optimize.TECHNIQUES)})"
        )
    return chosen


def _optimize(
    args: argparse.Namespace, run: train.TrainRun, bundle_dir: Path
) -> bundle.ModelBundle:
    return optimize.optimize(
        run,
        bundle_dir,
        max_metric_drop=args.max_metric_drop,
        target_sparsity=args.sparsity,
        techniques=_techniques(args),
        progress=_progress(args),
    )


def cmd_optimize(args: argparse.Namespace) -> int:
    run = train.load(args.work)
    result = _optimize(args, run, args.bundle or args.work / BUNDLE_DIR)
    _emit(args, result.model_dump(mode="json"), report.variants_report(result.variants))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    b = bundle.read_bundle(args.bundle)
    problems = bundle.verify_files(args.bundle if args.bundle.is_dir() else args.bundle.parent, b)
    _emit(args, b.model_dump(mode="json"), report.bundle_report(b))
    if problems:
        raise GateFailed("bundle files do not match model.json: " + "; ".join(problems))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    # Option mistakes fail before minutes of work, and before a bundle exists.
    _techniques(args)
    if args.only and not args.optimize:
        raise UserInputError("--only chooses optimization techniques; add --optimize")
    if args.optimize and not 0.0 < args.sparsity < 1.0:
        raise UserInputError(f"--sparsity must be between 0 and 1, got {args.sparsity}")
    if args.work and args.out.resolve() in (args.work.resolve(), *args.work.resolve().parents):
        # Writing the bundle would replace the work dir it is built from.
        raise UserInputError("--work must be outside the --out bundle dir")
    target = (
        push.destination(
            args.push,
            endpoint=args.endpoint,
            region=args.region,
            insecure=args.insecure,
            part_size=args.part_size,
        )
        if args.push
        else None
    )
    tmp = None if args.work else Path(tempfile.mkdtemp(prefix="onnxops-work-"))
    work = args.work or (tmp / "work")  # type: ignore[operator]
    try:
        run = _train(args, work)
        metrics = validate.validate(run)
        validate.save(metrics, work)
        _check_gates(args, metrics)
        # Optimizing wants MatMul form for linear models; export that way from the start.
        form: export.Form = (
            "standard" if args.optimize and optimize.pruning_form_standard(run) else "ml"
        )
        result = _export(args, run, metrics, args.out, form)
        if args.optimize:
            result = _optimize(args, run, args.out)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    _emit(
        args,
        result.model_dump(mode="json"),
        report.bundle_report(result) + f"\n\nbundle written: {args.out}",
    )
    if target is not None:
        push.print_block(push.push(args.out, target), as_json=bool(getattr(args, "json", False)))
    return 0
