"""Fine-tune an embedding checkpoint on a domain corpus, and measure whether it retrieves better.

``python -m finetune train`` trains a sentence-transformers checkpoint with in-batch
negatives on (query, passage) pairs (:mod:`finetune.trainer`); ``python -m finetune eval``
compares checkpoints, running servers and exported ONNX variants on held-out pairs
(:mod:`finetune.evaluation`); ``python -m finetune dataset`` builds the built-in dataset from
the Python documentation (:mod:`finetune.dataset`). The output of training is an ordinary
checkpoint directory for ``python -m export``.
"""
