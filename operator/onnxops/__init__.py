"""onnxops: build, deploy, watch and heal ONNX models on Kubernetes."""

__version__ = "0.1.0"
