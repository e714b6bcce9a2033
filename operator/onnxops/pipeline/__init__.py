"""The model pipeline: train, validate, export to ONNX, optimize, and the model bundle."""
