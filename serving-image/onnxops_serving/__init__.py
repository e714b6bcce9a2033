"""onnxops serving runtime: serves one ONNX model over the Open Inference Protocol v2."""

import os

# Importing onnxruntime writes a telemetry device id under ~/.cache: on a read-only root
# filesystem that fails with a warning at every start, and a server has no use for it.
# An explicit setting in the environment wins.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
