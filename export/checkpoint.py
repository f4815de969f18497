"""What a checkpoint directory is: its family, pooling, length limit, prompts and content hash.

A checkpoint is a local Hugging Face model directory (``config.json`` plus weights), usually
a sentence-transformers one (``modules.json``, ``1_Pooling/config.json``,
``sentence_bert_config.json``, ``config_sentence_transformers.json``). This module only
reads JSON and hashes files; it never imports torch, so bad input is rejected in
milliseconds with a :class:`~export.errors.UsageError` that says what to fix.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export.errors import UsageError
from server.manifest import POOLINGS, Pooling, sha256_file


@dataclass(frozen=True)
class Family:
    """An encoder architecture the exporter knows how to export, optimise and quantise.

    ``position_offset`` is how many position embeddings sit before the first token
    (RoBERTa-style models reserve ``padding_idx + 1`` of them), so the longest input is
    ``max_position_embeddings - position_offset`` tokens.
    """

    model_type: str
    position_offset: int
    optimizer_type: str = "bert"


FAMILIES: dict[str, Family] = {
    "bert": Family("bert", position_offset=0),
    "mpnet": Family("mpnet", position_offset=2),
    "xlm-roberta": Family("xlm-roberta", position_offset=2),
    "roberta": Family("roberta", position_offset=2),
}

WEIGHT_PATTERNS = (
    "*.safetensors",
    "pytorch_model*.bin",
    "*.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
)
CONFIG_FILES = (
    "config.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
)
# sentence-transformers modules whose effect the exported graph (plus the server's
# normalisation) reproduces exactly; anything else (Dense, LayerNorm, ...) changes the vector.
SUPPORTED_MODULES = ("Transformer", "Pooling", "Normalize")
# Sentinel tokenizers use for "no limit configured".
UNSET_MODEL_MAX_LENGTH = 1_000_000


@dataclass(frozen=True)
class Checkpoint:
    """Everything the exporter needs to know about one checkpoint directory.

    ``max_length`` counts special tokens: it is what the tokenizer truncates to.
    ``pooling_source`` and ``max_length_source`` say where each value came from, for the
    progress output and the docs.
    """

    path: Path
    family: Family
    architecture: str
    hidden_size: int
    num_heads: int
    num_layers: int
    pooling: Pooling
    pooling_source: str
    normalize: bool
    max_length: int
    max_length_source: str
    position_limit: int
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    sentence_transformers: bool = False
    weight_files: tuple[str, ...] = ()
    tokenizer_files: tuple[str, ...] = ()

    @property
    def model_type(self) -> str:
        return self.family.model_type

    def hashed_files(self) -> list[str]:
        """Relative paths of the weight, config and tokenizer files, sorted."""
        names = set(self.weight_files) | set(self.tokenizer_files)
        for name in (*CONFIG_FILES, "1_Pooling/config.json"):
            if (self.path / name).is_file():
                names.add(name)
        return sorted(names)

    def content_sha256(self) -> str:
        """One SHA-256 over the name and SHA-256 of every hashed file: the checkpoint's identity."""
        digest = hashlib.sha256()
        for name in self.hashed_files():
            digest.update(f"{name}\0{sha256_file(self.path / name)}\n".encode())
        return digest.hexdigest()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path} is not readable JSON ({exc}); repair or remove it") from exc


def _json_object(path: Path) -> dict[str, Any]:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise UsageError(f"{path} must hold a JSON object")
    return data


def _positive_int(config: dict[str, Any], key: str, where: Path) -> int:
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise UsageError(f"{where}: {key!r} must be a positive integer, got {value!r}")
    return value


def _pooling_from_config(config: dict[str, Any], where: Path) -> str:
    """The one pooling mode a sentence-transformers ``Pooling`` config selects."""
    if config.get("include_prompt") is False:
        raise UsageError(
            f"{where}: include_prompt=false (prompt tokens excluded from pooling) is not supported "
            "by the in-graph pooling; export a model that pools over the whole input"
        )
    mode = config.get("pooling_mode")
    if isinstance(mode, str):
        modes = [mode]
    else:
        prefix = "pooling_mode_"
        modes = [k[len(prefix) :] for k, v in config.items() if k.startswith(prefix) and v is True]
        modes = ["mean" if m == "mean_tokens" else "cls" if m == "cls_token" else m for m in modes]
    if len(modes) != 1:
        raise UsageError(
            f"{where}: expected exactly one pooling mode, found {modes or 'none'}; "
            "pass --pooling mean or --pooling cls to choose one"
        )
    return modes[0]


def _modules(path: Path) -> tuple[list[str], str | None]:
    """Module types listed in ``modules.json`` (last dotted component) and the Pooling folder."""
    data = _read_json(path / "modules.json")
    if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
        raise UsageError(f"{path / 'modules.json'} must be a list of module objects")
    kinds: list[str] = []
    pooling_dir: str | None = None
    for module in sorted(data, key=lambda m: int(m.get("idx", 0))):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind not in SUPPORTED_MODULES:
            raise UsageError(
                f"{path / 'modules.json'}: module {module.get('type')!r} is not supported; the exporter "
                f"reproduces only {', '.join(SUPPORTED_MODULES)} (a Dense or other head would change the "
                "vectors)"
            )
        if kind == "Pooling":
            pooling_dir = str(module.get("path", ""))
        kinds.append(kind)
    if "Transformer" not in kinds:
        raise UsageError(f"{path / 'modules.json'} lists no Transformer module")
    return kinds, pooling_dir


def _tokenizer_limit(path: Path) -> int | None:
    config_path = path / "tokenizer_config.json"
    if not config_path.is_file():
        return None
    value = _json_object(config_path).get("model_max_length")
    if isinstance(value, int) and not isinstance(value, bool) and 1 < value < UNSET_MODEL_MAX_LENGTH:
        return value
    return None


def _weight_files(path: Path) -> tuple[str, ...]:
    found: set[str] = set()
    for pattern in WEIGHT_PATTERNS:
        found.update(p.name for p in path.glob(pattern) if p.is_file())
    return tuple(sorted(found))


def inspect(
    path: Path,
    pooling: str | None = None,
    max_length: int | None = None,
    normalize: bool | None = None,
) -> Checkpoint:
    """Read a checkpoint directory; the keyword arguments override what its configs say.

    Raises :class:`UsageError` when ``path`` is not a checkpoint, its architecture is not a
    supported family, its sentence-transformers modules cannot be reproduced, or an override
    is out of range.
    """
    if not path.is_dir():
        raise UsageError(f"{path} is not a directory; pass a Hugging Face checkpoint directory")
    config_path = path / "config.json"
    if not config_path.is_file():
        raise UsageError(
            f"{path} is not a Hugging Face checkpoint: it has no config.json "
            "(save the model with save_pretrained() or SentenceTransformer.save())"
        )
    config = _json_object(config_path)
    model_type = config.get("model_type")
    if model_type not in FAMILIES:
        raise UsageError(
            f"{config_path}: model_type {model_type!r} is not supported; the exporter handles "
            f"{', '.join(sorted(FAMILIES))} encoders"
        )
    family = FAMILIES[model_type]
    weights = _weight_files(path)
    if not weights:
        raise UsageError(f"{path} has no model weights (model.safetensors or pytorch_model.bin)")
    tokenizer_files = tuple(n for n in TOKENIZER_FILES if (path / n).is_file())
    if not any(
        n in tokenizer_files for n in ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model")
    ):
        raise UsageError(
            f"{path} has no tokenizer files (tokenizer.json or a vocabulary); save the tokenizer with it"
        )
    architectures = config.get("architectures")
    architecture = (
        str(architectures[0]) if isinstance(architectures, list) and architectures else str(model_type)
    )

    hidden_size = _positive_int(config, "hidden_size", config_path)
    num_heads = _positive_int(config, "num_attention_heads", config_path)
    num_layers = _positive_int(config, "num_hidden_layers", config_path)
    if hidden_size % num_heads:
        raise UsageError(f"{config_path}: hidden_size {hidden_size} is not a multiple of {num_heads} heads")
    position_limit = _positive_int(config, "max_position_embeddings", config_path) - family.position_offset

    is_st = (path / "modules.json").is_file()
    kinds, pooling_dir = _modules(path) if is_st else ([], None)

    if pooling is not None:
        if pooling not in POOLINGS:
            raise UsageError(f"--pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
        chosen, pooling_source = pooling, "--pooling"
    elif pooling_dir is not None:
        pooling_config = path / pooling_dir / "config.json"
        if not pooling_config.is_file():
            raise UsageError(
                f"{pooling_config} is missing; modules.json names a Pooling module in {pooling_dir!r}"
            )
        chosen = _pooling_from_config(_json_object(pooling_config), pooling_config)
        pooling_source = str(pooling_config.relative_to(path))
        if chosen not in POOLINGS:
            raise UsageError(
                f"{pooling_config}: pooling mode {chosen!r} is not supported (only {', '.join(POOLINGS)}); "
                "pass --pooling to override, knowing the vectors will then differ from the original model"
            )
    else:
        # What sentence-transformers itself does with a plain transformers checkpoint.
        chosen, pooling_source = "mean", "default (no sentence-transformers Pooling module)"

    if max_length is not None:
        if not 2 <= max_length <= position_limit:
            raise UsageError(
                f"--max-length must be between 2 and {position_limit} for this model, not {max_length}"
            )
        length, length_source = max_length, "--max-length"
    else:
        st_config = path / "sentence_bert_config.json"
        st_length = _json_object(st_config).get("max_seq_length") if st_config.is_file() else None
        tokenizer_limit = _tokenizer_limit(path)
        if isinstance(st_length, int) and not isinstance(st_length, bool) and st_length > 1:
            length, length_source = st_length, "sentence_bert_config.json"
        elif tokenizer_limit is not None:
            length, length_source = tokenizer_limit, "tokenizer_config.json"
        else:
            length, length_source = position_limit, "config.json max_position_embeddings"
        if length > position_limit:
            length, length_source = position_limit, "config.json max_position_embeddings"

    prompts: dict[str, str] = {}
    default_prompt: str | None = None
    st_model_config = path / "config_sentence_transformers.json"
    if st_model_config.is_file():
        raw = _json_object(st_model_config).get("prompts") or {}
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            raise UsageError(f"{st_model_config}: 'prompts' must map names to prefix strings")
        prompts = {str(k): v for k, v in raw.items()}
        default_prompt = _json_object(st_model_config).get("default_prompt_name")
        known = isinstance(default_prompt, str) and default_prompt in prompts
        if default_prompt is not None and not known:
            raise UsageError(
                f"{st_model_config}: default_prompt_name {default_prompt!r} is not one of its prompts "
                f"({', '.join(sorted(prompts)) or 'none'})"
            )

    return Checkpoint(
        path=path.resolve(),
        family=family,
        architecture=architecture,
        hidden_size=hidden_size,
        num_heads=num_heads,
        num_layers=num_layers,
        pooling=chosen,  # type: ignore[arg-type]
        pooling_source=pooling_source,
        normalize=("Normalize" in kinds) if normalize is None else normalize,
        max_length=length,
        max_length_source=length_source,
        position_limit=position_limit,
        prompts=prompts,
        default_prompt_name=default_prompt,
        sentence_transformers=is_st,
        weight_files=weights,
        tokenizer_files=tokenizer_files,
    )
