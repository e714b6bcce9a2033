"""Benchmark peer (b): KServe's python ModelServer with a custom kserve.Model over ONNX Runtime.

Run inside bench/.venvs/kserve:  python kserve_server.py --model_name iris --http_port 8081
  --model_path DIR/model.onnx [--enable_grpc false --workers 1 --enable_latency_logging false]
"""

from __future__ import annotations

import argparse
import logging
import uuid
from typing import Any

import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer

_OIP = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(int64)": "INT64",
    "tensor(int32)": "INT32",
}


class OnnxModel(Model):  # type: ignore[misc]
    """One ONNX Runtime session behind KServe's v2 data plane (same session options as ours)."""

    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.load()

    def load(self) -> bool:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(self.path, opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_specs = [(o.name, _OIP[o.type]) for o in self.session.get_outputs()]
        self.ready = True
        return True

    async def predict(
        self, payload: InferRequest, headers: Any = None, response_headers: Any = None
    ) -> InferResponse:
        x = payload.inputs[0].as_numpy().astype(np.float32, copy=False)
        results = self.session.run(None, {self.input_name: x})
        outputs = []
        for (name, datatype), arr in zip(self.output_specs, results, strict=True):
            out = InferOutput(name=name, shape=list(arr.shape), datatype=datatype)
            out.set_data_from_numpy(arr, binary_data=False)
            outputs.append(out)
        rid = payload.id or str(uuid.uuid4())
        return InferResponse(response_id=rid, model_name=self.name, infer_outputs=outputs)


if __name__ == "__main__":
    # kserve parses its own flags (--http_port, --model_name, ...) from sys.argv at import.
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_path", required=True)
    parser.add_argument("--model_name", default="model")
    own, _ = parser.parse_known_args()
    server = ModelServer(enable_grpc=False, workers=1, enable_latency_logging=False)
    # Fair peer: no per-request log lines (uvicorn access log, kserve latency trace).
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("kserve.trace").disabled = True
    server.start([OnnxModel(own.model_name, own.model_path)])
