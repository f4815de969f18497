"""The PyTorch side: load a checkpoint, wrap it with in-graph pooling, trace it to ONNX.

The exported graph takes int64 ``input_ids``, ``attention_mask`` (and ``token_type_ids``
for models that use segment embeddings) with dynamic ``batch`` and ``sequence`` axes, and
outputs float32 ``sentence_embedding [batch, dims]``: the pooled vector, *not* normalised,
so that the server can truncate to ``dimensions`` before it normalises.
"""

from __future__ import annotations

import inspect as pyinspect
import warnings
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from export.checkpoint import Checkpoint
from export.errors import ExportError, UsageError

OUTPUT_NAME = "sentence_embedding"
# ST's Pooling clamps the token count the same way, so all-padding rows stay finite.
MEAN_POOLING_EPS = 1e-9


class PooledEncoder(torch.nn.Module):
    """A transformer encoder followed by mean or CLS pooling over its last hidden state."""

    def __init__(self, encoder: torch.nn.Module, pooling: str, with_token_types: bool) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.with_token_types = with_token_types

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        kwargs: dict[str, torch.Tensor] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.with_token_types and token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        hidden: torch.Tensor = self.encoder(**kwargs).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * mask).sum(dim=1)
        counts = mask.sum(dim=1).clamp(min=MEAN_POOLING_EPS)
        return summed / counts


def load_encoder(checkpoint: Checkpoint) -> torch.nn.Module:
    """The checkpoint's base encoder in eval mode, float32, with eager attention.

    Eager attention traces to the MatMul/Softmax pattern ONNX Runtime's optimizer fuses
    into one ``Attention`` node; SDPA traces to a form it does not recognise.
    """
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        model = AutoModel.from_pretrained(
            str(checkpoint.path),
            attn_implementation="eager",
            local_files_only=True,
            dtype=torch.float32,
        )
    except Exception as exc:
        # Corrupt weights surface as safetensors, pickle, OS or value errors, among others.
        raise UsageError(f"{checkpoint.path}: transformers could not load the model: {exc}") from exc
    model.eval()
    return model  # type: ignore[no-any-return]


def load_tokenizer(checkpoint: Checkpoint) -> PreTrainedTokenizerBase:
    """The checkpoint's fast (Rust-backed) tokenizer; a slow-only tokenizer is converted."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(checkpoint.path), use_fast=True, local_files_only=True)
    except Exception as exc:
        raise UsageError(f"{checkpoint.path}: transformers could not load the tokenizer: {exc}") from exc
    if not tokenizer.is_fast:
        raise UsageError(
            f"{checkpoint.path}: only a slow tokenizer is available and it cannot be converted to "
            "tokenizer.json, which the server needs; install `tokenizers`/`sentencepiece` and retry"
        )
    return tokenizer


def uses_token_types(encoder: torch.nn.Module, tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the graph needs ``token_type_ids``: the model takes them and they can vary.

    A model with a single token type (XLM-R, RoBERTa) adds the same embedding to every
    token whatever the input says, so the input would only be dead weight.
    """
    accepts = "token_type_ids" in pyinspect.signature(encoder.forward).parameters
    type_vocab = int(getattr(encoder.config, "type_vocab_size", 0) or 0)
    return accepts and type_vocab > 1 and "token_type_ids" in tokenizer.model_input_names


def graph_inputs(with_token_types: bool) -> tuple[str, ...]:
    return (
        ("input_ids", "attention_mask", "token_type_ids")
        if with_token_types
        else ("input_ids", "attention_mask")
    )


def _sample_inputs(tokenizer: PreTrainedTokenizerBase, names: tuple[str, ...]) -> tuple[torch.Tensor, ...]:
    # Two rows of different length, so the traced graph sees real padding and a mask.
    batch = tokenizer(
        ["An example sentence to trace the encoder with.", "A short one."],
        padding=True,
        return_tensors="pt",
        return_token_type_ids=True,
    )
    return tuple(batch[name].to(torch.int64) for name in names)


def export_onnx(
    encoder: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    pooling: str,
    with_token_types: bool,
    path: Path,
    opset: int,
) -> tuple[str, ...]:
    """Trace ``encoder`` with pooling to an ONNX file at ``path``; returns its input names."""
    names = graph_inputs(with_token_types)
    wrapper = PooledEncoder(encoder, pooling, with_token_types).eval()
    axes: dict[str, Any] = {name: {0: "batch", 1: "sequence"} for name in names}
    axes[OUTPUT_NAME] = {0: "batch"}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript tracer warns about Python control flow in the masking code; those
            # branches do not depend on the traced shapes here, and parity re-checks the result.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                _sample_inputs(tokenizer, names),
                str(path),
                input_names=list(names),
                output_names=[OUTPUT_NAME],
                dynamic_axes=axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as exc:
        raise ExportError(f"torch.onnx.export failed for {type(encoder).__name__}: {exc}") from exc
    return names
