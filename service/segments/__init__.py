"""Model scoring behind the core's ``Scorer`` protocol: ``onnx.py`` (the only onnxruntime import) and a fake."""
