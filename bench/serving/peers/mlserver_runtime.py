"""Benchmark peer (c): an MLServer custom runtime serving an ONNX model with ONNX Runtime.

Copied next to model-settings.json by bench/serving/run.py; implementation "mlserver_runtime.OnnxRuntimeModel".
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxRuntimeModel(MLModel):  # type: ignore[misc]
    """One ONNX Runtime session (same session options as ours); MLServer does the batching."""

    async def load(self) -> bool:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        uri = self.settings.parameters.uri
        self.session = ort.InferenceSession(uri, opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32, copy=False)
        results = self.session.run(None, {self.input_name: x})
        outputs = [
            NumpyCodec.encode_output(name, arr)
            for name, arr in zip(self.output_names, results, strict=True)
        ]
        return InferenceResponse(model_name=self.name, id=payload.id, outputs=outputs)
