"""The data plane: validate inputs against the model, run it, record quality signals.

Transport-neutral: takes bytes, returns bytes, raises ``errors.ServingError``.
"""

from __future__ import annotations

import itertools
import math
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import __version__, codec
from .batching import Batcher, DirectRunner
from .errors import BadRequest, NotFound
from .metrics import ServingMetrics
from .model import OIP_TO_NUMPY, LoadedModel, TensorSpec
from .quality import DriftMonitor, PredictionCache, QualityWindow
from .settings import ServingSettings

if TYPE_CHECKING:
    from .mirror import Mirror

_DTYPE_TO_OIP = {np.dtype(t): name for name, t in OIP_TO_NUMPY.items()}
Output = tuple[str, str, np.ndarray]  # name, OIP datatype, array
# Up to this many values, NaN and infinity are looked for in a Python list: numpy's
# isfinite(...).all() costs ~2 µs of call overhead whatever the size, tolist ~0.5 µs here.
_SMALL = 64


@dataclass(frozen=True, slots=True)
class _InputCheck:
    spec: TensorSpec
    dtype: np.dtype[Any]
    rank: int
    tail: tuple[int, ...] | None  # None: some non-batch dimension is variable
    floating: bool


def _finite(arr: np.ndarray) -> bool:
    if arr.size <= _SMALL:
        return all(map(math.isfinite, arr.ravel().tolist()))
    return bool(np.isfinite(arr).all())


class DataPlane:
    """Everything a request can ask of the one model this process serves."""

    def __init__(self, model: LoadedModel, settings: ServingSettings, metrics: ServingMetrics):
        self.model = model
        self._max_rows = settings.max_rows
        self._specs = {spec.name: spec for spec in model.inputs}
        self._out_types = {spec.name: spec.datatype for spec in model.outputs}
        self._out_names = [spec.name for spec in model.outputs]
        self._dtypes = {spec.name: np.dtype(OIP_TO_NUMPY[spec.datatype]) for spec in model.inputs}
        # What a request's input is checked against, worked out once per model: dtype, rank,
        # the non-batch dims as a tuple when all are fixed (one tuple compare per request),
        # and whether NaN and infinity must be looked for.
        self._checks = {
            spec.name: _InputCheck(
                spec=spec,
                dtype=self._dtypes[spec.name],
                rank=len(spec.shape),
                tail=None if -1 in spec.shape[1:] else tuple(spec.shape[1:]),
                floating=self._dtypes[spec.name].kind == "f",
            )
            for spec in model.inputs
        }
        self._out_pairs = [(spec.name, spec.datatype) for spec in model.outputs]
        self._all_outputs = frozenset(self._out_names)
        inline = model.inference_ms < settings.inline_threshold_ms
        self._run: DirectRunner | Batcher
        if settings.max_batch_size > 1:
            self._run = Batcher(
                model.run,
                max_rows=settings.max_batch_size,
                max_latency_s=settings.max_batch_latency_ms / 1000,
                inline=inline,
                observe=metrics.observe_inference,
            )
        else:
            self._run = DirectRunner(model.run, inline=inline, observe=metrics.observe_inference)
        self._ids = itertools.count(1)
        # A per-process prefix keeps generated ids unique across replicas and restarts.
        self._id_prefix = secrets.token_hex(4)
        self._cache = PredictionCache(settings.feedback_cache_size)
        task = model.task or (
            "regression" if model.outputs[0].datatype.startswith("FP") else "classification"
        )
        self.quality = QualityWindow(task, settings.quality_window)
        stats = model.feature_stats
        self.drift = (
            DriftMonitor(stats, settings.drift_window, settings.drift_min_rows)
            if stats and len(model.inputs) == 1
            else None
        )
        self._metrics = metrics
        # Shadow mirroring, when configured (``ONNXOPS_MIRROR_CONFIG``); None costs one test.
        self.mirror: Mirror | None = None
        metrics.quality = self.quality.snapshot
        metrics.quality_rows = lambda: self.quality.size
        if self.drift is not None:
            drift = self.drift
            metrics.drift = drift.psi
            metrics.drift_rows = lambda: drift.rows
            metrics.drift_window = settings.drift_window
            metrics.drift_max_series = settings.drift_max_feature_series

    # ---- metadata -------------------------------------------------------------------------

    def check(self, name: str, version: str | None) -> None:
        if name != self.model.name:
            raise NotFound(f"unknown model {name!r}; this server serves {self.model.name!r}")
        if version is not None and version != self.model.version:
            raise NotFound(
                f"model {name!r} has no version {version!r} (serving {self.model.version!r})"
            )

    @staticmethod
    def server_metadata() -> dict[str, Any]:
        return {
            "name": "onnxops-serving",
            "version": __version__,
            "extensions": ["binary_tensor_data", "feedback", "predict"],
        }

    def model_metadata(self) -> dict[str, Any]:
        m = self.model
        params: dict[str, Any] = {"sha256": m.sha256, "task": self.quality.task}
        if m.metadata.get("classes") is not None:
            params["classes"] = m.metadata["classes"]
        if m.feature_names:
            params["feature_names"] = m.feature_names
        return {
            "name": m.name,
            "versions": [m.version],
            "platform": "onnxruntime_onnx",
            "inputs": [s.describe() for s in m.inputs],
            "outputs": [s.describe() for s in m.outputs],
            "parameters": params,
        }

    # ---- inference ------------------------------------------------------------------------

    def _validate(self, inputs: dict[str, np.ndarray]) -> int:
        if inputs.keys() != self._specs.keys():
            unknown = sorted(set(inputs) - set(self._specs))
            what = f"unknown input {unknown[0]!r}" if unknown else "missing inputs"
            raise BadRequest(f"{what}; the model expects inputs {sorted(self._specs)}")
        rows = -1
        for name, arr in inputs.items():
            check = self._checks[name]
            spec = check.spec
            if arr.dtype != check.dtype:
                got = _DTYPE_TO_OIP.get(arr.dtype, str(arr.dtype))
                raise BadRequest(
                    f"input {name!r} has datatype {got}; the model expects {spec.datatype}"
                )
            shape = arr.shape
            tail = check.tail
            if len(shape) != check.rank or (
                shape[1:] != tail
                if tail is not None
                else any(w not in (-1, g) for w, g in zip(spec.shape[1:], shape[1:], strict=True))
            ):
                raise BadRequest(
                    f"input {name!r} has shape {list(shape)}; the model expects {spec.shape}"
                )
            if rows not in (-1, shape[0]):
                raise BadRequest("all inputs must have the same number of rows")
            rows = shape[0]
            if check.floating and not _finite(arr):
                raise BadRequest(f"input {name!r} contains NaN or infinity")
        if rows < 1:
            raise BadRequest("a request needs at least one row")
        if rows > self._max_rows:
            raise BadRequest(f"too many rows: {rows} > {self._max_rows} allowed per request")
        return rows

    async def _infer(
        self, inputs: dict[str, np.ndarray], request_id: str | None
    ) -> tuple[str, list[np.ndarray]]:
        rows = self._validate(inputs)
        outputs = await self._run(inputs, rows)
        rid = request_id or f"{self._id_prefix}-{next(self._ids)}"
        self._cache.put(rid, outputs[0])
        if self.drift is not None:
            self.drift.observe(next(iter(inputs.values())))
        if self.mirror is not None:
            self.mirror.offer(inputs, outputs)
        return rid, outputs

    async def infer_decoded(self, request: codec.InferRequest) -> tuple[str, list[Output]]:
        """Any transport's decoded infer request -> request id and the wanted outputs as
        ``(name, datatype, array)``."""
        wanted = request.outputs
        if wanted:
            for name in wanted:
                if name not in self._out_types:
                    raise BadRequest(f"unknown output {name!r}; the model has {self._out_names}")
        rid, outputs = await self._infer(request.inputs, request.id)
        if not wanted:  # all of them, in the model's order
            return rid, [(n, t, o) for (n, t), o in zip(self._out_pairs, outputs, strict=True)]
        by_name = dict(zip(self._out_names, outputs, strict=True))
        return rid, [(n, self._out_types[n], by_name[n]) for n in wanted]

    async def infer(self, body: bytes, header_length: int | None) -> tuple[bytes, int | None]:
        """OIP v2 infer; returns the body and, for binary outputs, the JSON header length."""
        request = codec.decode_infer(body, header_length)
        rid, outputs = await self.infer_decoded(request)
        binary = self._all_outputs if request.binary_default else request.binary_outputs
        return codec.encode_infer(
            model_name=self.model.name,
            model_version=self.model.version,
            request_id=rid,
            outputs=outputs,
            binary=binary,
        )

    async def predict(self, body: bytes) -> bytes:
        """The simple form: ``{"features": [[...], ...]}`` (or one row) for a one-input model."""
        payload = codec.loads(body)
        if not isinstance(payload, dict) or "features" not in payload:
            raise BadRequest('body must be {"features": [[...], ...]}')
        if len(self._specs) != 1:
            raise BadRequest("/predict serves one-input models; use /v2/models/{m}/infer")
        (name,) = self._specs
        try:
            arr = np.array(payload["features"])
        except (ValueError, TypeError) as exc:
            raise BadRequest(f"features are not a regular array: {exc}") from exc
        if not arr.size:
            raise BadRequest("a request needs at least one row")
        if arr.dtype.kind not in "iuf":
            raise BadRequest("features must be numbers")
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        rid, outputs = await self._infer(
            {name: arr.astype(self._dtypes[name], copy=False)}, codec.request_id(payload.get("id"))
        )
        result: dict[str, Any] = {
            "id": rid,
            "model_name": self.model.name,
            "model_version": self.model.version,
            "predictions": _plain(
                outputs[0].ravel()
                if outputs[0].ndim == 2 and outputs[0].shape[1] == 1
                else outputs[0]
            ),
        }
        for out_name, arr_out in zip(self._out_names[1:], outputs[1:], strict=True):
            result[out_name] = _plain(arr_out)
        return codec.dumps(result)

    # ---- feedback -------------------------------------------------------------------------

    def feedback(self, body: bytes) -> bytes:
        """Ground truth: ``{"id": ..., "labels": [...]}`` or ``{"predictions": [...], "labels": [...]}``."""
        payload = codec.loads(body)
        if not isinstance(payload, dict) or "labels" not in payload:
            raise BadRequest('feedback needs "labels" and either "id" or "predictions"')
        labels = payload["labels"]
        labels = labels if isinstance(labels, list) else [labels]
        if "id" in payload:
            rid = codec.request_id(payload["id"])
            if rid is None:
                raise BadRequest('feedback "id" is empty')
            predictions = self._cache.take(rid)
        elif "predictions" in payload:
            predictions = _predictions(payload["predictions"])
        else:
            raise BadRequest('feedback needs "id" (of an earlier request) or "predictions"')
        accepted = self.quality.add(predictions, labels)
        self._metrics.feedback_rows += accepted
        return codec.dumps(
            {
                "accepted": accepted,
                "window_rows": self.quality.size,
                "metrics": self.quality.snapshot(),
            }
        )


def _predictions(raw: Any) -> np.ndarray:
    """Feedback's own predictions: a scalar or a regular array of numbers or strings."""
    try:
        arr = np.array(raw if isinstance(raw, list) else [raw])
    except ValueError:  # ragged, or nested too deep
        raise BadRequest("feedback 'predictions' must be a regular array") from None
    if arr.dtype.kind not in "biufU":
        raise BadRequest("feedback 'predictions' must hold numbers or strings")
    return arr


def _plain(arr: np.ndarray) -> Any:
    if arr.dtype.kind in "biuf":
        return arr
    return [x.decode() if isinstance(x, bytes) else x for x in arr.tolist()]
