"""The model directory manifest: what `python -m export` writes and the server trusts.

A model directory holds one or more ONNX variants of the same checkpoint
(``model.onnx`` fp32, ``model.int8.onnx``, ``model.fp16.onnx``), the tokenizer files
and ``manifest.json``. The manifest is the single description of how to run them:

- ``dims``: width of the vector the graph outputs (before any ``dimensions`` truncation);
- ``max_length``: the longest input in tokens, special tokens included;
- ``pooling``: ``mean`` or ``cls``; ``pooling_in_graph`` says whether the graph already
  pools (output ``[batch, dims]``) or returns token states (``[batch, seq, dims]``);
- ``normalize``: whether the model's vectors are meant to be unit length (the default of
  the API's ``normalize`` flag); normalisation is never baked into the graph so that
  ``dimensions`` truncation can happen before it;
- ``inputs`` / ``output``: the graph's input names (``input_ids``, ``attention_mask`` and
  optionally ``token_type_ids``) and the name of the output to read;
- ``variants``: per precision, the file, its SHA-256, the execution target it was built
  for, the parity figures that let it ship, and whether it is batch-invariant (a text's
  vector is the same alone and in any batch; ``batch_invariant``, measured at export);
- ``prompts`` / ``default_prompt_name``: the checkpoint's named prompt prefixes and the one
  applied when a request names none (sentence-transformers' ``default_prompt_name``);
- ``gated_on``: the CPU (model name and instruction-set extensions) and ONNX Runtime
  version the parity gates ran on: int8 kernels differ between AVX2, VNNI and AMX;
- ``eval_data``: with ``--eval-data``, the user's held-out set the variants were scored and
  gated on (name, SHA-256, counts, margin); each variant's figures are in its ``eval``;
- ``source``: the checkpoint's identity (directory base ``name``, content ``sha256``, file
  names, architecture), never a machine path: ``/info`` shows it to clients.

Readers get a :class:`ManifestError` whose message says what is wrong and how to fix it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any, Literal, get_args

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"

Pooling = Literal["mean", "cls"]
VariantName = Literal["fp32", "int8", "fp16"]
Target = Literal["cpu", "gpu", "any"]

POOLINGS: tuple[str, ...] = get_args(Pooling)
VARIANTS: tuple[str, ...] = get_args(VariantName)
VARIANT_FILES: dict[str, str] = {
    "fp32": "model.onnx",
    "int8": "model.int8.onnx",
    "fp16": "model.fp16.onnx",
}
ALLOWED_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class ManifestError(ValueError):
    """A model directory or its manifest is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class Parity:
    """Agreement of a variant with the PyTorch reference on the parity text set.

    Cosines are between the variant's and the reference's pooled vectors;
    ``recall_at_10`` is the variant's recall@10 on the exporter's built-in retrieval
    corpus divided by the fp32 graph's (1.0 for fp32 itself; may exceed 1).
    """

    cos_mean: float
    cos_min: float
    max_abs_diff: float
    recall_at_10: float
    texts: int


@dataclass(frozen=True)
class DomainParity:
    """A reduced-precision variant against the fp32 graph on one retrieval domain of the export's gate.

    ``cos_mean`` / ``cos_min`` over the domain's queries and passages; ``recall_at_10`` the
    variant's recall@10 divided by fp32's (``fp32_recall_at_10``, absolute);
    ``top10_overlap`` the mean share of fp32's top 10 per query that the variant also ranks
    in its top 10, and ``top10_overlap_min`` the worst query's.
    """

    cos_mean: float
    cos_min: float
    recall_at_10: float
    fp32_recall_at_10: float
    top10_overlap: float
    top10_overlap_min: float
    queries: int
    passed: bool = True


@dataclass(frozen=True)
class Variant:
    """One ONNX file of the model at one precision; ``notes`` says how it was built.

    ``batch_invariant``: whether a text's vector is the same alone and in any batch (its
    largest element difference over rotated batch mates and padded lengths,
    ``batch_max_abs_diff``, at most 1e-5 when exported); ``None`` when not measured.
    ``domains``: a reduced-precision variant's agreement with fp32 on each retrieval domain
    of the export's gate (:class:`DomainParity`); empty for fp32 and for older exports.
    ``eval``: with ``python -m export --eval-data``, the variant's ``ndcg_at_10`` and
    ``recall_at_10`` on the user's held-out set, per width (``"768"``, ``"512"``, ...).
    Manifests written before the exporter measured it have none: their int8 was dynamically
    quantised (activation scales computed per batch), so it reads as ``False``.
    """

    name: VariantName
    file: str
    sha256: str
    target: Target
    parity: Parity
    fusions: dict[str, int] = field(default_factory=dict)
    size_bytes: int = 0
    notes: str = ""
    batch_invariant: bool | None = None
    batch_max_abs_diff: float | None = None
    domains: dict[str, DomainParity] = field(default_factory=dict)
    eval: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    """Everything the server needs to know to run a model directory."""

    name: str
    dims: int
    max_length: int
    pooling: Pooling
    pooling_in_graph: bool
    normalize: bool
    inputs: tuple[str, ...]
    output: str
    variants: dict[str, Variant]
    source: dict[str, Any] = field(default_factory=dict)
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    opset: int = 17
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    gated_on: dict[str, Any] = field(default_factory=dict)
    eval_data: dict[str, Any] = field(default_factory=dict)
    format: int = FORMAT_VERSION

    @property
    def revision(self) -> str:
        """A short content id of the served files: changes whenever any variant changes."""
        joined = "".join(v.sha256 for _, v in sorted(self.variants.items()))
        return hashlib.sha256(joined.encode()).hexdigest()[:12]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["inputs"] = list(self.inputs)
        return data


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write(manifest: Manifest, directory: Path) -> Path:
    """Write ``manifest.json`` into ``directory`` (sorted keys, trailing newline)."""
    path = directory / MANIFEST_FILE
    path.write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n")
    return path


def _require(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise ManifestError(f"{where}: missing field {key!r}; re-export the model with `python -m export`")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ManifestError(f"{where}: field {key!r} has the wrong type ({type(value).__name__})")
    return value


def _parse_variant(name: str, data: Any, where: str) -> Variant:
    if name not in VARIANTS:
        raise ManifestError(f"{where}: unknown variant {name!r}; expected one of {', '.join(VARIANTS)}")
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: variant {name!r} must be an object")
    vwhere = f"{where} variants.{name}"
    parity_data = _require(data, "parity", dict, vwhere)
    try:
        parity = Parity(
            cos_mean=float(parity_data["cos_mean"]),
            cos_min=float(parity_data["cos_min"]),
            max_abs_diff=float(parity_data["max_abs_diff"]),
            recall_at_10=float(parity_data["recall_at_10"]),
            texts=int(parity_data["texts"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"{vwhere}.parity is incomplete or malformed: {exc}") from exc
    target = _require(data, "target", str, vwhere)
    if target not in get_args(Target):
        raise ManifestError(f"{vwhere}: target must be cpu, gpu or any, not {target!r}")
    fusions = data.get("fusions", {})
    if not isinstance(fusions, dict):
        raise ManifestError(f"{vwhere}: fusions must be an object")
    # Every int8 exported before invariance was measured used per-batch activation scales.
    invariant = data.get("batch_invariant", False if name == "int8" else None)
    if invariant is not None and not isinstance(invariant, bool):
        raise ManifestError(f"{vwhere}: batch_invariant must be true, false or null")
    batch_diff = data.get("batch_max_abs_diff")
    if batch_diff is not None and (isinstance(batch_diff, bool) or not isinstance(batch_diff, int | float)):
        raise ManifestError(f"{vwhere}: batch_max_abs_diff must be a number or null")
    domains = data.get("domains", {})
    if not isinstance(domains, dict) or not all(isinstance(v, dict) for v in domains.values()):
        raise ManifestError(f"{vwhere}: domains must map domain names to objects")
    try:
        parsed_domains = {str(k): DomainParity(**v) for k, v in domains.items()}
    except TypeError as exc:
        raise ManifestError(f"{vwhere}.domains is malformed: {exc}") from exc
    figures = data.get("eval", {})
    if not isinstance(figures, dict) or not all(
        isinstance(v, dict)
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v.values())
        for v in figures.values()
    ):
        raise ManifestError(f"{vwhere}: eval must map widths to objects of numbers")
    return Variant(
        name=name,  # type: ignore[arg-type]
        file=_require(data, "file", str, vwhere),
        sha256=_require(data, "sha256", str, vwhere),
        target=target,
        parity=parity,
        fusions={str(k): int(v) for k, v in fusions.items()},
        size_bytes=int(data.get("size_bytes", 0)),
        notes=str(data.get("notes", "")),
        batch_invariant=invariant,
        batch_max_abs_diff=None if batch_diff is None else float(batch_diff),
        domains=parsed_domains,
        eval={str(k): {str(m): float(x) for m, x in v.items()} for k, v in figures.items()},
    )


def _path_free(source: Any) -> dict[str, Any]:
    """``source`` without the checkpoint's filesystem ``path`` that older exports recorded:
    only its base name is kept, as ``name``."""
    data = dict(source) if isinstance(source, dict) else {}
    path = data.pop("path", None)
    if isinstance(path, str) and "name" not in data:
        # PureWindowsPath splits on both separators, so a path written on either OS is cut.
        data["name"] = PureWindowsPath(path).name
    return data


def parse(data: Any, where: str = MANIFEST_FILE) -> Manifest:
    """Validate a decoded manifest and build a :class:`Manifest`."""
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected a JSON object")
    fmt = data.get("format", FORMAT_VERSION)
    if fmt != FORMAT_VERSION:
        raise ManifestError(f"{where}: format {fmt} is not supported (this server reads {FORMAT_VERSION})")
    dims = _require(data, "dims", int, where)
    max_length = _require(data, "max_length", int, where)
    if dims <= 0 or max_length <= 1:
        raise ManifestError(f"{where}: dims and max_length must be positive")
    pooling = _require(data, "pooling", str, where)
    if pooling not in POOLINGS:
        raise ManifestError(f"{where}: pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    inputs = tuple(_require(data, "inputs", list, where))
    if "input_ids" not in inputs or any(i not in ALLOWED_INPUTS for i in inputs):
        raise ManifestError(
            f"{where}: inputs must include input_ids and only use {', '.join(ALLOWED_INPUTS)}"
        )
    variants_data = _require(data, "variants", dict, where)
    if not variants_data:
        raise ManifestError(f"{where}: no variants listed; the export wrote no model")
    prompts = data.get("prompts", {})
    if not isinstance(prompts, dict) or not all(isinstance(v, str) for v in prompts.values()):
        raise ManifestError(f"{where}: prompts must map names to prefix strings")
    default_prompt = data.get("default_prompt_name")
    if default_prompt is not None and (not isinstance(default_prompt, str) or default_prompt not in prompts):
        raise ManifestError(f"{where}: default_prompt_name {default_prompt!r} is not one of the prompts")
    gated_on = data.get("gated_on", {})
    if not isinstance(gated_on, dict):
        raise ManifestError(f"{where}: gated_on must be an object")
    eval_data = data.get("eval_data", {})
    if not isinstance(eval_data, dict):
        raise ManifestError(f"{where}: eval_data must be an object")
    return Manifest(
        name=_require(data, "name", str, where),
        dims=dims,
        max_length=max_length,
        pooling=pooling,
        pooling_in_graph=_require(data, "pooling_in_graph", bool, where),
        normalize=_require(data, "normalize", bool, where),
        inputs=inputs,
        output=_require(data, "output", str, where),
        variants={k: _parse_variant(k, v, where) for k, v in variants_data.items()},
        source=_path_free(data.get("source", {})),
        prompts=dict(prompts),
        default_prompt_name=default_prompt,
        opset=int(data.get("opset", 17)),
        versions={str(k): str(v) for k, v in data.get("versions", {}).items()},
        created=str(data.get("created", "")),
        gated_on=dict(gated_on),
        eval_data=dict(eval_data),
    )


def load(directory: Path, verify_hashes: bool = False) -> Manifest:
    """Read and validate ``directory/manifest.json``; check every variant file exists.

    With ``verify_hashes`` each variant file's SHA-256 is recomputed and compared.
    """
    if not directory.is_dir():
        raise ManifestError(f"model directory {directory} does not exist; build one with `python -m export`")
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError(
            f"{directory} has no {MANIFEST_FILE}; it is not an exported model directory "
            "(run `python -m export CHECKPOINT_DIR OUT_DIR`)"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path} is not valid JSON: {exc}") from exc
    manifest = parse(data, str(path))
    for variant in manifest.variants.values():
        file = directory / variant.file
        if not file.is_file():
            raise ManifestError(f"{path}: variant {variant.name} file {variant.file} is missing")
        if verify_hashes and sha256_file(file) != variant.sha256:
            raise ManifestError(
                f"{file} does not match the SHA-256 in the manifest; the file is corrupt or was replaced"
            )
    return manifest
