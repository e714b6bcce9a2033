"""The model bundle: `model.onnx` (+ variants) and `model.json`, read by the serving runtime.

The pydantic models here are the single source of truth of `model.json`; the JSON schema in
`onnxops/schemas/model-bundle.schema.json` is generated from them
(`python -m onnxops.pipeline.bundle > operator/onnxops/schemas/model-bundle.schema.json`).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from onnxops.errors import OnnxopsError, UserInputError

FORMAT_VERSION: Literal[1] = 1
MANIFEST = "model.json"
DEFAULT_FILE = "model.onnx"
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "model-bundle.schema.json"

Task = Literal["classification", "regression"]


class _Model(BaseModel):
    # Readers ignore keys they do not know, so the format can grow without breaking them.
    model_config = ConfigDict(extra="ignore")


class TensorSpec(_Model):
    """One graph input or output."""

    name: str
    dtype: str = Field(description="numpy-style element type: float32, int64, string, ...")
    shape: list[int | None] = Field(description="null marks a variable (batch) dimension")


class FileEntry(_Model):
    """One file of the bundle, for integrity checks."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)
    variant: str = Field(description="'default' for model.onnx, else the variant name")


class FeatureStats(_Model):
    """Training distribution of one input feature, for drift detection (PSI)."""

    name: str
    mean: float
    std: float
    min: float
    max: float
    bin_edges: list[float] = Field(
        description="k-1 interior cut points of k quantile bins; "
        "bin of x = numpy.searchsorted(bin_edges, x, side='right')"
    )
    proportions: list[float] = Field(description="k training proportions, summing to 1")


class ClassMetrics(_Model):
    label: int | str
    precision: float
    recall: float
    f1: float
    support: int


class ClassificationMetrics(_Model):
    kind: Literal["classification"] = "classification"
    rows: int
    accuracy: float
    precision_macro: float
    recall_macro: float
    f1_macro: float
    per_class: list[ClassMetrics]
    confusion_matrix: list[list[int]] = Field(description="rows: true class, columns: predicted")


class RegressionMetrics(_Model):
    kind: Literal["regression"] = "regression"
    rows: int
    r2: float
    mae: float
    rmse: float


Metrics = ClassificationMetrics | RegressionMetrics


class Parity(_Model):
    """ONNX Runtime against scikit-learn on the validation rows, both fed float32 inputs."""

    rows: int
    label_agreement: float | None = Field(default=None, description="classification only")
    max_abs_diff: float = Field(description="of probabilities (classification) or values")
    max_rel_diff: float = Field(description="|d| / max(1, |sklearn value|)")
    tolerance: float
    min_label_agreement: float
    passed: bool


class DataInfo(_Model):
    source: str = Field(description="'sklearn:iris' or the CSV path as given")
    target: str
    rows: int
    train_rows: int
    test_rows: int
    test_size: float
    seed: int
    stratified: bool


class VariantReport(_Model):
    """One optimization attempt; kept, rejected, not applicable or failed, said plainly."""

    name: str
    technique: str
    status: Literal["kept", "rejected", "not_applicable", "failed"]
    reason: str = ""
    file: str | None = None
    metric: str | None = Field(
        default=None, description="accuracy (classification) or r2 (regression)"
    )
    value: float | None = None
    drop: float | None = Field(default=None, description="default model's metric minus this one's")
    label_agreement: float | None = Field(default=None, description="with the default model")
    bytes: int | None = None
    gzip_bytes: int | None = None
    sparsity: float | None = Field(default=None, description="share of zero weights in MatMul/Gemm")
    latency_us: float | None = Field(
        default=None, description="batch-1 median, measured once; a hint"
    )


class ModelBundle(_Model):
    """`model.json`: everything a runtime or a person needs to know about the model."""

    format_version: Literal[1] = FORMAT_VERSION
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    version: str
    task: Task
    algorithm: str
    estimator: str = Field(description="scikit-learn class of the final estimator")
    input: TensorSpec
    feature_names: list[str]
    outputs: list[TensorSpec] = Field(description="outputs[0] is always the prediction")
    classes: list[int] | list[str] | None = None
    files: dict[str, FileEntry]
    feature_stats: list[FeatureStats]
    metrics: Metrics = Field(discriminator="kind")
    parity: Parity
    data: DataInfo
    variants: list[VariantReport] = []
    hyperparameters: dict[str, Any] = {}
    notes: list[str] = Field(
        default=[], description="warnings from training, e.g. the optimizer did not converge"
    )
    libraries: dict[str, str] = {}
    created: str = Field(description="ISO 8601 UTC time the bundle was exported")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_entry(path: Path, variant: str) -> FileEntry:
    return FileEntry(sha256=sha256_file(path), bytes=path.stat().st_size, variant=variant)


def write_manifest(bundle_dir: Path, bundle: ModelBundle) -> None:
    try:
        # Strict JSON: readers such as orjson and Go's encoding/json reject NaN and Infinity.
        text = json.dumps(bundle.model_dump(mode="json"), indent=2, allow_nan=False)
    except ValueError:
        raise OnnxopsError(
            f"{MANIFEST} would hold NaN or infinity (a metric or statistic overflowed); not written"
        ) from None
    (bundle_dir / MANIFEST).write_text(text + "\n", encoding="utf-8")


def read_bundle(path: Path) -> ModelBundle:
    """Read and check `model.json` of a bundle dir (or of the dir holding a given model.onnx)."""
    bundle_dir = path.parent if path.suffix == ".onnx" else path
    manifest = bundle_dir / MANIFEST
    if not manifest.is_file():
        raise UserInputError(f"{path} is not a model bundle (no {MANIFEST})")
    try:
        return ModelBundle.model_validate_json(manifest.read_text(encoding="utf-8"))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "top level"
        raise UserInputError(f"{manifest}: invalid at {where}: {first['msg']}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"cannot read {manifest}: {exc}") from None


def verify_files(bundle_dir: Path, bundle: ModelBundle) -> list[str]:
    """Return one line per file whose size or sha256 differs from model.json."""
    problems = []
    for name, entry in bundle.files.items():
        path = bundle_dir / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif sha256_file(path) != entry.sha256:
            problems.append(f"{name}: sha256 differs from {MANIFEST}")
    return problems


def json_schema() -> dict[str, Any]:
    schema = ModelBundle.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://onnxops.io/schemas/model-bundle.schema.json"
    return schema


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(schema_text())
