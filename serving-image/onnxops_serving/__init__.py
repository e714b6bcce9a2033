"""onnxops serving runtime: serves one ONNX model over the Open Inference Protocol v2."""

__version__ = "0.1.0"
