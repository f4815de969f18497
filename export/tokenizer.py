"""The tokenizer files of a model directory.

The server tokenizes with the Rust ``tokenizers`` library, which reads only
``tokenizer.json``; the other files are copied so that transformers can load the directory
too. ``tokenizer.json`` is generated from the fast tokenizer when the checkpoint lacks it,
and its truncation is set to the manifest's ``max_length``: checkpoints often carry stale
settings (all-MiniLM-L6-v2 ships truncation *and fixed padding* to 128 while the model is
used at 256), and a reader that trusts the file must get the right length.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from export.checkpoint import Checkpoint
from export.errors import ExportError

TOKENIZER_JSON = "tokenizer.json"


def _configured(data: dict[str, Any], max_length: int) -> dict[str, Any]:
    """``tokenizer.json`` content truncating to ``max_length`` and padding a batch to its longest row."""
    data["truncation"] = {
        "direction": "Right",
        "max_length": max_length,
        "strategy": "LongestFirst",
        "stride": 0,
    }
    padding = data.get("padding") or {}
    data["padding"] = {
        "strategy": "BatchLongest",
        "direction": "Right",
        "pad_to_multiple_of": None,
        "pad_id": int(padding.get("pad_id", 0)),
        "pad_type_id": int(padding.get("pad_type_id", 0)),
        "pad_token": str(padding.get("pad_token", "[PAD]")),
    }
    return data


def write_tokenizer(
    checkpoint: Checkpoint,
    tokenizer: PreTrainedTokenizerBase,
    directory: Path,
) -> tuple[str, ...]:
    """Copy or generate the tokenizer files into ``directory``; returns the names written."""
    written: list[str] = []
    for name in checkpoint.tokenizer_files:
        if name != TOKENIZER_JSON:
            shutil.copy2(checkpoint.path / name, directory / name)
            written.append(name)
    source = checkpoint.path / TOKENIZER_JSON
    try:
        if source.is_file():
            data = json.loads(source.read_text(encoding="utf-8"))
        else:
            with tempfile.TemporaryDirectory() as scratch:
                tokenizer.save_pretrained(scratch)
                data = json.loads((Path(scratch) / TOKENIZER_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot produce {TOKENIZER_JSON} for {checkpoint.path}: {exc}") from exc
    pad_token = tokenizer.pad_token
    if pad_token is not None and not data.get("padding"):
        data["padding"] = {"pad_id": tokenizer.pad_token_id, "pad_token": pad_token}
    (directory / TOKENIZER_JSON).write_text(
        json.dumps(_configured(data, checkpoint.max_length), ensure_ascii=False, indent=2) + "\n",
        encoding="utf-8",
    )
    written.append(TOKENIZER_JSON)
    return tuple(sorted(written))
