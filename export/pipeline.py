"""Checkpoint directory -> parity-gated ONNX model directory, in one function.

Stages, each reported with its duration on the progress stream:

1. **load**: read the checkpoint's configs (:mod:`export.checkpoint`), load the encoder and
   its fast tokenizer with transformers;
2. **export**: trace encoder + pooling to ONNX (:mod:`export.graph`);
3. **optimise**: fuse with ONNX Runtime's transformer optimizer (:mod:`export.fusion`);
4. **parity**: run the PyTorch reference, the plain and the fused graph on the parity texts;
   keep the fused graph if it is at parity and not slower, else the plain one; fp32 must
   pass its gate or the export fails;
5. **quantise**: build int8 and fp16 (:mod:`export.precision`) and gate each; a variant
   that fails is left out, and the export fails if the caller required it;
6. **write**: tokenizer files and ``manifest.json``, then move the finished directory into
   place with one rename.

Everything is built in a hidden staging directory next to the output, so an interrupted
or failed export leaves nothing behind, and an existing output directory is replaced only
with ``force`` and only once the new one is complete.
"""

from __future__ import annotations

import gc
import importlib.metadata
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import numpy as np
import onnx
import onnxruntime as ort

from export import checkpoint as checkpoints
from export import corpus, fusion, graph, parity, precision
from export.errors import ExportError, ParityError, UsageError
from export.tokenizer import TOKENIZER_JSON, write_tokenizer
from server.manifest import VARIANT_FILES, VARIANTS, Manifest, Target, Variant, sha256_file
from server.manifest import write as write_manifest

DEFAULT_VARIANTS: tuple[str, ...] = ("fp32", "int8")
MIN_OPSET, MAX_OPSET = 14, 21
# The fused graph is kept unless it is slower than the plain one by more than timing noise
# (ORT's own online fusions make the two close on CPU; the fused one also lets int8 use QAttention).
FUSED_SLOWDOWN_TOLERANCE = 1.10
TARGETS: dict[str, Target] = {"fp32": "any", "int8": "cpu", "fp16": "gpu"}


@dataclass(frozen=True)
class ExportOptions:
    """How to export; every field has the CLI's default.

    ``variants`` are attempted; ``required`` ones must pass their gate or the export fails
    (fp32 is always required). ``None`` for ``pooling``, ``max_length`` and ``normalize``
    means "as the checkpoint's configs say".
    """

    variants: tuple[str, ...] = DEFAULT_VARIANTS
    required: frozenset[str] = frozenset({"fp32"})
    pooling: str | None = None
    max_length: int | None = None
    normalize: bool | None = None
    opset: int = 17
    force: bool = False
    name: str | None = None


@dataclass
class Progress:
    """Stage-by-stage progress lines with timings, for a human watching stderr."""

    stream: TextIO = field(default_factory=lambda: sys.stderr)
    timings: dict[str, float] = field(default_factory=dict)

    def say(self, stage: str, message: str) -> None:
        print(f"export {stage:>8}: {message}", file=self.stream, flush=True)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        elapsed = time.perf_counter() - start
        self.timings[name] = self.timings.get(name, 0.0) + elapsed
        self.say(name, f"done in {elapsed:.1f} s")


def _check_options(options: ExportOptions) -> None:
    unknown = [v for v in options.variants if v not in VARIANTS]
    if unknown:
        raise UsageError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if "fp32" not in options.variants:
        raise UsageError("--variants must include fp32: the other variants are gated against it")
    if not MIN_OPSET <= options.opset <= MAX_OPSET:
        raise UsageError(f"--opset must be between {MIN_OPSET} and {MAX_OPSET}, not {options.opset}")


def _check_output(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory; choose another output path")
    if out.exists() and not force:
        raise UsageError(f"{out} already exists; pass --force to replace it")


def _versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for label, dist in (
        ("export", "embedserve"),
        ("torch", "torch"),
        ("transformers", "transformers"),
        ("sentence_transformers", "sentence-transformers"),
        ("onnx", "onnx"),
        ("onnxruntime", "onnxruntime"),
    ):
        try:
            versions[label] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[label] = "not installed"
    return versions


@dataclass
class _Candidate:
    """A built ONNX file and what is known about it so far."""

    path: Path
    verdict: parity.Verdict
    fusions: dict[str, int]
    notes: str


class _Run:
    """State shared by the stages of one export."""

    def __init__(self, checkpoint: checkpoints.Checkpoint, staging: Path, inputs: tuple[str, ...]) -> None:
        self.checkpoint = checkpoint
        self.staging = staging
        self.work = staging / ".work"
        self.work.mkdir()
        self.inputs = inputs
        self.texts = corpus.parity_texts()
        self.retrieval = corpus.retrieval_corpus()
        self.reference: parity.Vectors | None = None
        self.fp32_retrieval: tuple[parity.Vectors, parity.Vectors] | None = None
        self.fp32_recall = 0.0
        self.fused_valid = False
        self.last_retrieval = ""

    def encoder(
        self, model: Path, providers: tuple[str, ...] = ("CPUExecutionProvider",)
    ) -> parity.OnnxEncoder:
        return parity.OnnxEncoder(
            model, self.staging / TOKENIZER_JSON, self.checkpoint.max_length, self.inputs, providers
        )

    def retrieval_vectors(self, encode: parity.OnnxEncoder) -> tuple[parity.Vectors, parity.Vectors]:
        return encode(self.retrieval.queries), encode(self.retrieval.passages)

    def judge(self, variant: str, encode: parity.OnnxEncoder) -> parity.Verdict:
        """Gate a reduced-precision graph: parity texts first, the retrieval corpus only if they pass."""
        assert self.reference is not None and self.fp32_retrieval is not None
        vectors = encode(self.texts)
        # A NaN recall fails no comparison, so only the cosine checks can fail here.
        early = parity.judge(variant, self.reference, vectors, recall=float("nan"))
        if not early.passed:
            return early
        retrieval = self.retrieval_vectors(encode)
        recall = parity.recall_at_k(*retrieval)
        overlap = parity.top_k_overlap(self.fp32_retrieval, retrieval)
        self.last_retrieval = (
            f"recall@10 {recall:.3f} vs fp32 {self.fp32_recall:.3f}, top-10 overlap {overlap:.3f}"
        )
        return parity.judge(variant, self.reference, vectors, recall / max(self.fp32_recall, 1e-9))


def _describe(verdict: parity.Verdict) -> str:
    p = verdict.parity
    recall = "not measured" if np.isnan(p.recall_at_10) else f"{p.recall_at_10:.3f} of fp32"
    figures = f"cos mean {p.cos_mean:.6f} min {p.cos_min:.6f}, max abs diff {p.max_abs_diff:.2e}"
    figures += f", recall@10 {recall}"
    return figures if verdict.passed else f"{figures}; FAILS: {'; '.join(verdict.failures)}"


def _fp32(
    run: _Run, plain: Path, fused: Path | None, fusions: dict[str, int], progress: Progress
) -> _Candidate:
    """Gate the plain and the fused fp32 graphs; return the one to ship."""
    assert run.reference is not None
    plain_encoder = run.encoder(plain)
    plain_verdict = parity.judge("fp32", run.reference, plain_encoder(run.texts), recall=1.0)
    progress.say("parity", f"fp32 plain graph: {_describe(plain_verdict)}")
    chosen = _Candidate(plain, plain_verdict, {}, "plain traced graph")
    if fused is not None:
        try:
            fused_encoder = run.encoder(fused)
            fused_verdict = parity.judge("fp32", run.reference, fused_encoder(run.texts), recall=1.0)
        except ExportError as exc:
            progress.say("parity", f"fp32 fused graph does not run ({exc}); using the plain graph")
        else:
            progress.say("parity", f"fp32 fused graph: {_describe(fused_verdict)}")
            run.fused_valid = fused_verdict.passed
            probe = run.texts[: len(corpus.SHORT_TEXTS) + 8]
            plain_s, fused_s = parity.best_seconds([plain_encoder, fused_encoder], probe)
            progress.say(
                "parity",
                f"speed probe ({len(probe)} texts): plain {plain_s * 1e3:.0f} ms, "
                f"fused {fused_s * 1e3:.0f} ms",
            )
            if not fused_verdict.passed:
                progress.say("parity", "the fused graph fails the fp32 gate; using the plain graph")
            elif fused_s > plain_s * FUSED_SLOWDOWN_TOLERANCE:
                progress.say("parity", "the fused graph is slower than the plain one; using the plain graph")
            else:
                chosen = _Candidate(
                    fused, fused_verdict, fusions, "fused by the ONNX Runtime transformer optimizer"
                )
            del fused_encoder
    if not chosen.verdict.passed:
        raise ParityError(
            "the fp32 ONNX graph does not match the PyTorch reference "
            f"({'; '.join(chosen.verdict.failures)}); "
            "nothing was written. This is a bug in the exporter or an unsupported model variant: report it "
            "with the checkpoint's config.json"
        )
    run.fp32_retrieval = run.retrieval_vectors(run.encoder(chosen.path))
    run.fp32_recall = parity.recall_at_k(*run.fp32_retrieval)
    progress.say(
        "parity",
        f"fp32 retrieval: recall@10 {run.fp32_recall:.3f} on {len(run.retrieval.queries)} queries",
    )
    return chosen


def _int8(run: _Run, fp32: _Candidate, progress: Progress) -> _Candidate | str:
    """The first int8 plan that passes the gate, or why none did."""
    peaks = precision.activation_peaks(
        fp32.path, run.encoder(fp32.path), corpus.calibration_texts(), run.work / "calibration.onnx"
    )
    smoothed = run.work / "smoothed.onnx"
    down = precision.ffn_down_projections(onnx.load(str(fp32.path), load_external_data=False))
    reasons: list[str] = []
    for i, plan in enumerate(precision.int8_plans(fp32.path)):
        target = run.work / f"int8-{i}.onnx"
        tensors = precision.smooth(fp32.path, smoothed, peaks, skip=down)
        precision.quantize_int8(smoothed, target, plan)
        run.last_retrieval = ""
        verdict = run.judge("int8", run.encoder(target))
        progress.say("quantise", f"int8, {plan.label}: {_describe(verdict)} {run.last_retrieval}".rstrip())
        if verdict.passed:
            notes = (
                f"dynamic int8: per-channel 7-bit weights, uint8 activations, {tensors} MatMul inputs "
                f"smoothed (SmoothQuant alpha {precision.SMOOTHING_ALPHA}); {plan.label}; "
                f"{run.last_retrieval}"
            )
            return _Candidate(target, verdict, fp32.fusions, notes)
        reasons.append(f"{plan.label}: {'; '.join(verdict.failures)}")
    return " | ".join(reasons)


def _fp16(
    run: _Run, fused: Path | None, fp32: _Candidate, fusions: dict[str, int], progress: Progress
) -> _Candidate | str:
    """fp16 from the fused graph (what a GPU wants) when it passed fp32 parity, else from the shipped one."""
    use_fused = fused is not None and run.fused_valid
    source, source_fusions = (
        (fused, fusions) if use_fused and fused is not None else (fp32.path, fp32.fusions)
    )
    target = run.work / "fp16.onnx"
    precision.convert_fp16(source, target)
    run.last_retrieval = ""
    device = "the CPU"
    try:
        verdict = run.judge("fp16", run.encoder(target))
    except ExportError as exc:
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return f"the fp16 graph cannot run on the CPU, so it cannot be gated here (no CUDA either): {exc}"
        progress.say("quantise", f"fp16 does not run on the CPU ({exc}); gating it on CUDA")
        device = "CUDA"
        verdict = run.judge("fp16", run.encoder(target, ("CUDAExecutionProvider",)))
    progress.say("quantise", f"fp16: {_describe(verdict)} {run.last_retrieval}".rstrip())
    if not verdict.passed:
        return "; ".join(verdict.failures)
    graph = "fused" if source == fused else "shipped fp32"
    notes = f"float16 weights and compute from the {graph} graph, float32 I/O; gated on {device}; "
    notes += run.last_retrieval
    return _Candidate(target, verdict, source_fusions, notes)


def _variant(name: str, candidate: _Candidate, directory: Path) -> Variant:
    file = VARIANT_FILES[name]
    path = directory / file
    shutil.move(str(candidate.path), str(path))
    return Variant(
        name=name,  # type: ignore[arg-type]
        file=file,
        sha256=sha256_file(path),
        target=TARGETS[name],
        parity=candidate.verdict.parity,
        fusions=candidate.fusions,
        size_bytes=path.stat().st_size,
        notes=candidate.notes,
    )


def _place(staging: Path, out: Path) -> None:
    """Move the finished staging directory to ``out``, replacing an old one only at the last moment."""
    if out.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        retired.rmdir()
        out.rename(retired)
        staging.rename(out)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(out)


def export_model(
    source: Path,
    out: Path,
    options: ExportOptions | None = None,
    progress: Progress | None = None,
) -> Manifest:
    """Export the checkpoint at ``source`` into the model directory ``out``; return its manifest.

    Raises :class:`UsageError` for bad input (before any heavy work where possible),
    :class:`ParityError` when fp32 or a required variant fails its gate, and
    :class:`ExportError` for other failures. On any error nothing is left at ``out``
    (or the previous directory there is untouched).
    """
    options = options or ExportOptions()
    progress = progress or Progress()
    out = out.absolute()
    _check_options(options)
    _check_output(out, options.force)
    started = time.perf_counter()

    with progress.stage("load"):
        checkpoint = checkpoints.inspect(source, options.pooling, options.max_length, options.normalize)
        progress.say(
            "load",
            f"{checkpoint.architecture} ({checkpoint.model_type}), {checkpoint.num_layers} layers, "
            f"{checkpoint.hidden_size} dims; {checkpoint.pooling} pooling ({checkpoint.pooling_source}); "
            f"max_length {checkpoint.max_length} ({checkpoint.max_length_source}); "
            f"normalize {str(checkpoint.normalize).lower()}",
        )
        encoder = graph.load_encoder(checkpoint)
        tokenizer = graph.load_tokenizer(checkpoint)
        with_token_types = graph.uses_token_types(encoder, tokenizer)
        source_sha = checkpoint.content_sha256()

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    # mkdtemp makes the directory private; the model directory is meant to be shared.
    staging.chmod(0o755)
    try:
        write_tokenizer(checkpoint, tokenizer, staging)
        run = _Run(checkpoint, staging, graph.graph_inputs(with_token_types))
        plain = run.work / "plain.onnx"
        with progress.stage("export"):
            graph.export_onnx(encoder, tokenizer, checkpoint.pooling, with_token_types, plain, options.opset)
            progress.say("export", f"opset {options.opset}, inputs {', '.join(run.inputs)}")

        fused: Path | None = run.work / "fused.onnx"
        fusions: dict[str, int] = {}
        with progress.stage("optimise"):
            assert fused is not None
            try:
                fusions = fusion.optimize(plain, fused, checkpoint)
                progress.say(
                    "optimise", "fused " + (", ".join(f"{op} x{n}" for op, n in fusions.items()) or "nothing")
                )
            except ExportError as exc:
                progress.say("optimise", f"{exc}; continuing with the plain graph")
                fused = None

        with progress.stage("parity"):
            reference, description = parity.reference_encoder(
                checkpoint, encoder, tokenizer, with_token_types
            )
            progress.say("parity", f"reference: {description}; {len(run.texts)} texts")
            run.reference = reference(run.texts)
            del reference, encoder
            gc.collect()
            fp32 = _fp32(run, plain, fused, fusions, progress)

        built: dict[str, _Candidate] = {"fp32": fp32}
        skipped: dict[str, str] = {}
        reduced = [v for v in options.variants if v != "fp32"]
        if reduced:
            with progress.stage("quantise"):
                for name in reduced:
                    result = (
                        _int8(run, fp32, progress)
                        if name == "int8"
                        else _fp16(run, fused, fp32, fusions, progress)
                    )
                    if isinstance(result, str):
                        skipped[name] = result
                        progress.say("quantise", f"{name} is NOT written: {result}")
                    else:
                        built[name] = result
        missing = sorted(set(options.required) & set(skipped))
        if missing:
            raise ParityError(
                "required variant(s) failed their gate, nothing was written: "
                + "; ".join(f"{name}: {skipped[name]}" for name in missing)
            )

        with progress.stage("write"):
            dims = int(np.asarray(run.reference).shape[1])
            variants = {name: _variant(name, built[name], staging) for name in VARIANTS if name in built}
            shutil.rmtree(run.work)
            manifest = Manifest(
                name=options.name or out.name,
                dims=dims,
                max_length=checkpoint.max_length,
                pooling=checkpoint.pooling,
                pooling_in_graph=True,
                normalize=checkpoint.normalize,
                inputs=run.inputs,
                output=graph.OUTPUT_NAME,
                variants=variants,
                source={
                    "name": checkpoint.path.name,
                    "sha256": source_sha,
                    "files": checkpoint.hashed_files(),
                    "model_type": checkpoint.model_type,
                    "architecture": checkpoint.architecture,
                    "reference": description,
                },
                prompts=checkpoint.prompts,
                opset=options.opset,
                versions=_versions(),
                created=datetime.now(UTC).isoformat(timespec="seconds"),
            )
            write_manifest(manifest, staging)
            _check_output(out, options.force)
            _place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    progress.say(
        "done",
        f"{out} ({', '.join(manifest.variants)}) in {time.perf_counter() - started:.0f} s"
        + (f"; left out: {', '.join(skipped)}" if skipped else ""),
    )
    return manifest
