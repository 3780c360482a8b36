"""Offline training of the segment models (``tailor train``): RFM clusters, churn and value.

Reads a transaction file, splits it by time at a cutoff (features before it, outcomes after it),
fits three scikit-learn pipelines, exports them to ONNX and writes a model card
(``service.core.models.ModelCard``) next to each, plus a report with plots.

Features are computed with ``service.core.models.features_for`` from the card's own inputs,
the very code serving runs, so a model is served the features it was trained on.

Serving never imports this package: it needs the optional ``training`` dependencies
(scikit-learn, skl2onnx, onnx, matplotlib); serving needs only ``onnxruntime``.
"""
