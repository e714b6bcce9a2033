"""Plain-text reports of the pipeline's results, for people (machines get `--json`)."""

from __future__ import annotations

from collections.abc import Sequence

from onnxops.pipeline.bundle import (
    ClassificationMetrics,
    Metrics,
    ModelBundle,
    Parity,
    VariantReport,
)
from onnxops.pipeline.train import TrainRecord


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [
        [str(h) for h in headers],
        *[["" if c is None else str(c) for c in row] for row in rows],
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _f(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def train_summary(record: TrainRecord) -> str:
    d = record.data
    lines = [
        f"trained {record.algorithm} ({record.estimator}, {record.task}) on {d.source}",
        f"  rows: {d.rows} ({d.train_rows} train / {d.test_rows} test, seed {d.seed}"
        f"{', stratified' if d.stratified else ''})",
        f"  features: {len(record.feature_names)}, target: {record.target}",
    ]
    if record.classes is not None:
        lines.append(f"  classes: {', '.join(map(str, record.classes))}")
    lines += [f"  note: {n}" for n in record.notes]
    return "\n".join(lines)


def metrics_report(metrics: Metrics) -> str:
    if not isinstance(metrics, ClassificationMetrics):
        return table(
            ["metric", "value"],
            [["r2", _f(metrics.r2)], ["mae", _f(metrics.mae)], ["rmse", _f(metrics.rmse)]],
        )
    head = table(
        ["metric", "value"],
        [
            ["accuracy", _f(metrics.accuracy)],
            ["precision (macro)", _f(metrics.precision_macro)],
            ["recall (macro)", _f(metrics.recall_macro)],
            ["f1 (macro)", _f(metrics.f1_macro)],
        ],
    )
    per_class = table(
        ["class", "precision", "recall", "f1", "support"],
        [[c.label, _f(c.precision), _f(c.recall), _f(c.f1), c.support] for c in metrics.per_class],
    )
    labels = [str(c.label) for c in metrics.per_class]
    confusion = table(
        ["true \\ predicted", *labels],
        [[label, *row] for label, row in zip(labels, metrics.confusion_matrix, strict=True)],
    )
    return (
        f"{head}\n\n{per_class}\n\nconfusion matrix ({metrics.rows} validation rows):\n{confusion}"
    )


def parity_line(p: Parity) -> str:
    agreement = "" if p.label_agreement is None else f"labels agree {p.label_agreement:.2%}, "
    verdict = "passed" if p.passed else "FAILED"
    return (
        f"parity on {p.rows} rows: {agreement}max |Δ| {p.max_abs_diff:.2e}, "
        f"max rel |Δ| {p.max_rel_diff:.2e} (tolerance {p.tolerance:g}): {verdict}"
    )


def variants_report(variants: Sequence[VariantReport]) -> str:
    base = next((v for v in variants if v.name == "default"), None)
    rows = []
    for v in variants:
        ratio = f"{v.bytes / base.bytes:.2f}" if base and base.bytes and v.bytes else ""
        rows.append(
            [
                v.name,
                v.status.replace("_", " "),
                _f(v.value),
                "" if v.drop is None else f"{v.drop:+.4f}",
                v.bytes,
                ratio,
                v.gzip_bytes,
                "" if v.sparsity is None else f"{v.sparsity:.0%}",
                "" if v.latency_us is None else f"{v.latency_us:.1f}",
            ]
        )
    metric = base.metric if base and base.metric else "metric"
    out = table(
        ["variant", "status", metric, "drop", "bytes", "ratio", "gzip", "sparsity", "µs/row"], rows
    )
    notes = [
        f"  {v.name}: {v.technique}" + (f" — {v.reason}" if v.reason else "") for v in variants
    ]
    return out + "\n" + "\n".join(notes)


def _g(value: float) -> str:
    return f"{value:.4g}"


def features_report(bundle: ModelBundle) -> str:
    """The training statistics drift detection compares live inputs against."""
    rows = [
        [s.name, _g(s.mean), _g(s.std), _g(s.min), _g(s.max), len(s.proportions)]
        for s in bundle.feature_stats
    ]
    return "training statistics per feature:\n" + table(
        ["feature", "mean", "std", "min", "max", "bins"], rows
    )


def bundle_report(bundle: ModelBundle) -> str:
    shape = ", ".join("?" if d is None else str(d) for d in bundle.input.shape)
    lines = [
        f"{bundle.name} version {bundle.version}: {bundle.algorithm} ({bundle.estimator}), {bundle.task}",
        f"  input:   {bundle.input.name} {bundle.input.dtype}[{shape}] — {len(bundle.feature_names)} features",
        "  outputs: " + ", ".join(f"{o.name} {o.dtype}" for o in bundle.outputs),
    ]
    if bundle.classes is not None:
        lines.append(f"  classes: {', '.join(map(str, bundle.classes))}")
    lines += [f"  note:    {n}" for n in bundle.notes]
    d = bundle.data
    lines += [
        f"  data:    {d.source}, target {d.target}, {d.train_rows} train / {d.test_rows} test rows, seed {d.seed}",
        f"  created: {bundle.created}; "
        + ", ".join(f"{k} {v}" for k, v in bundle.libraries.items()),
        "",
        features_report(bundle),
        "",
        metrics_report(bundle.metrics),
        "",
        parity_line(bundle.parity),
        "",
        table(
            ["file", "variant", "bytes", "sha256"],
            [[n, e.variant, e.bytes, e.sha256[:16] + "…"] for n, e in bundle.files.items()],
        ),
    ]
    if bundle.variants:
        lines += ["", variants_report(bundle.variants)]
    return "\n".join(lines)
