"""Factories for checkpoint directories: config-only fakes and tiny random-weight models."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

FakeCheckpoint = Callable[..., Path]
TinyCheckpoint = Callable[..., Path]

BERT_CONFIG: dict[str, Any] = {
    "architectures": ["BertModel"],
    "model_type": "bert",
    "hidden_size": 32,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "vocab_size": 30522,
}


@pytest.fixture
def fake_checkpoint(tmp_path: Path) -> FakeCheckpoint:
    """Write a checkpoint directory of JSON files (weights are an empty placeholder file).

    Keyword arguments: ``config`` (merged over a small BERT config), ``modules`` (the
    modules.json list, or None for a plain transformers checkpoint), ``pooling`` (the
    1_Pooling/config.json object), ``st_config`` (sentence_bert_config.json), ``tokenizer_config``,
    ``prompts``, ``weights`` (file name or None).
    """
    counter = iter(range(1000))

    def make(
        *,
        config: dict[str, Any] | None = None,
        modules: Sequence[str] | None = ("Transformer", "Pooling"),
        pooling: dict[str, Any] | None = None,
        st_config: dict[str, Any] | None = None,
        tokenizer_config: dict[str, Any] | None = None,
        prompts: dict[str, str] | None = None,
        weights: str | None = "model.safetensors",
    ) -> Path:
        path = tmp_path / f"checkpoint-{next(counter)}"
        path.mkdir()
        (path / "config.json").write_text(json.dumps({**BERT_CONFIG, **(config or {})}))
        (path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n")
        if weights:
            (path / weights).write_bytes(b"\0")
        if modules is not None:
            entries = []
            for idx, kind in enumerate(modules):
                folder = {"Pooling": "1_Pooling", "Normalize": "2_Normalize", "Dense": "2_Dense"}.get(
                    kind, ""
                )
                entries.append(
                    {
                        "idx": idx,
                        "name": str(idx),
                        "path": folder,
                        "type": f"sentence_transformers.models.{kind}",
                    }
                )
            (path / "modules.json").write_text(json.dumps(entries))
            if "Pooling" in modules:
                (path / "1_Pooling").mkdir()
                pool = pooling or {"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True}
                (path / "1_Pooling" / "config.json").write_text(json.dumps(pool))
        if st_config is not None:
            (path / "sentence_bert_config.json").write_text(json.dumps(st_config))
        if tokenizer_config is not None:
            (path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
        if prompts is not None:
            (path / "config_sentence_transformers.json").write_text(json.dumps({"prompts": prompts}))
        return path

    return make


@pytest.fixture
def tiny_checkpoint(tmp_path: Path, minilm_checkpoint: Path) -> TinyCheckpoint:
    """Save a 2-layer, 32-dim random-weight model of ``family`` with MiniLM's tokenizer.

    ``family`` is bert, xlm-roberta or mpnet; ``sentence_transformers`` adds modules.json
    with the given ``pooling`` ("mean" or "cls").
    """
    import torch
    from transformers import BertConfig, BertModel, MPNetConfig, MPNetModel, XLMRobertaConfig, XLMRobertaModel

    counter = iter(range(1000))

    def make(family: str = "bert", *, sentence_transformers: bool = False, pooling: str = "mean") -> Path:
        common: dict[str, Any] = {
            "vocab_size": 30522,
            "hidden_size": 32,
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "intermediate_size": 64,
        }
        torch.manual_seed(0)
        if family == "bert":
            model: torch.nn.Module = BertModel(
                BertConfig(**common, max_position_embeddings=512, pad_token_id=0)
            )
        elif family == "xlm-roberta":
            model = XLMRobertaModel(
                XLMRobertaConfig(**common, max_position_embeddings=514, type_vocab_size=1)
            )
        elif family == "mpnet":
            model = MPNetModel(MPNetConfig(**common, max_position_embeddings=514))
        else:
            raise ValueError(family)
        path = tmp_path / f"tiny-{family}-{next(counter)}"
        model.save_pretrained(str(path))  # type: ignore[operator]
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
            shutil.copy(minilm_checkpoint / name, path / name)
        if sentence_transformers:
            modules = [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            ]
            (path / "modules.json").write_text(json.dumps(modules))
            (path / "1_Pooling").mkdir()
            (path / "1_Pooling" / "config.json").write_text(
                json.dumps(
                    {
                        "word_embedding_dimension": 32,
                        "pooling_mode_cls_token": pooling == "cls",
                        "pooling_mode_mean_tokens": pooling == "mean",
                    }
                )
            )
            (path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128}))
        return path

    return make
