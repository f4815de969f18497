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
   that fails is left out, and the export fails if the caller required it. Every variant's
   batch invariance is measured and recorded; it is part of the gate of fp32 and of a
   statically quantised int8;
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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import numpy as np
import onnx
import onnxruntime as ort
import torch
from transformers import PreTrainedTokenizerBase

from export import checkpoint as checkpoints
from export import corpus, fusion, graph, parity, precision
from export.errors import ExportError, ParityError, UsageError
from export.tokenizer import TOKENIZER_JSON, write_tokenizer
from server.manifest import VARIANT_FILES, VARIANTS, Manifest, Target, Variant, sha256_file
from server.manifest import write as write_manifest
from server.tokenizer import Tokenizer, TokenizerLoadError

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


@dataclass(frozen=True)
class _Candidate:
    """A built ONNX file, its gate's verdict, how it was built, and its batch variation."""

    path: Path
    verdict: parity.Verdict
    fusions: dict[str, int]
    notes: str
    batch_diff: float


@dataclass(frozen=True)
class _Rejected:
    """A reduced-precision variant that failed its gate (or could not be gated), and why."""

    reason: str


@dataclass(frozen=True)
class _Graphs:
    """The traced fp32 graph and, when the optimizer ran, the fused one and its fusions."""

    plain: Path
    fused: Path | None
    fusions: dict[str, int]


@dataclass(frozen=True)
class _Encoders:
    """Loads graph files as :class:`parity.OnnxEncoder` with the staged tokenizer, the server's way."""

    tokenizer: Tokenizer
    inputs: tuple[str, ...]

    def load(self, model: Path, providers: tuple[str, ...] = ("CPUExecutionProvider",)) -> parity.OnnxEncoder:
        return parity.OnnxEncoder(model, self.tokenizer, self.inputs, providers)


@dataclass(frozen=True)
class _Fp32:
    """The fp32 graph to ship, and whether the fused graph passed the fp32 gate."""

    chosen: _Candidate
    fused_passed: bool


@dataclass(frozen=True)
class _Judged:
    """A reduced-precision graph's verdict, its retrieval figures in words ("" when the
    parity texts already failed it and the retrieval corpus was not run) and its
    :func:`parity.batch_variation` (NaN when not measured)."""

    verdict: parity.Verdict
    retrieval: str
    batch_diff: float


@dataclass(frozen=True)
class _Gate:
    """What a reduced-precision graph is judged against: the reference's vectors of the
    parity texts, and the shipped fp32 graph's vectors and recall@10 on the retrieval corpus."""

    texts: list[str]
    reference: parity.Vectors
    retrieval: corpus.RetrievalCorpus
    fp32_vectors: tuple[parity.Vectors, parity.Vectors]
    fp32_recall: float

    def judge(self, variant: str, encode: parity.OnnxEncoder, invariant: bool) -> _Judged:
        """Parity texts first, then batch invariance (part of the gate when ``invariant``),
        the retrieval corpus only if both pass."""
        vectors = encode(self.texts)
        # A NaN recall fails no comparison, so only the cosine checks can fail here.
        early = parity.judge(variant, self.reference, vectors, recall=float("nan"))
        if not early.passed:
            return _Judged(early, "", float("nan"))
        batch_diff = parity.batch_variation(encode, corpus.invariance_texts())
        gated = batch_diff if invariant else None
        early = parity.judge(variant, self.reference, vectors, recall=float("nan"), batch_diff=gated)
        if not early.passed:
            return _Judged(early, "", batch_diff)
        retrieval = _retrieval_vectors(encode, self.retrieval)
        recall = parity.recall_at_k(*retrieval)
        overlap = parity.top_k_overlap(self.fp32_vectors, retrieval)
        verdict = parity.judge(
            variant, self.reference, vectors, recall / max(self.fp32_recall, 1e-9), batch_diff=gated
        )
        figures = f"recall@10 {recall:.3f} vs fp32 {self.fp32_recall:.3f}, top-10 overlap {overlap:.3f}"
        return _Judged(verdict, figures, batch_diff)


def _retrieval_vectors(
    encode: parity.OnnxEncoder, retrieval: corpus.RetrievalCorpus
) -> tuple[parity.Vectors, parity.Vectors]:
    return encode(retrieval.queries), encode(retrieval.passages)


def _describe(verdict: parity.Verdict, batch_diff: float = float("nan")) -> str:
    p = verdict.parity
    recall = "not measured" if np.isnan(p.recall_at_10) else f"{p.recall_at_10:.3f} of fp32"
    figures = f"cos mean {p.cos_mean:.6f} min {p.cos_min:.6f}, max abs diff {p.max_abs_diff:.2e}"
    figures += f", recall@10 {recall}"
    if not np.isnan(batch_diff):
        figures += f", batch variation {batch_diff:.1e}"
    return figures if verdict.passed else f"{figures}; FAILS: {'; '.join(verdict.failures)}"


def _load(
    source: Path, options: ExportOptions, progress: Progress
) -> tuple[checkpoints.Checkpoint, torch.nn.Module, PreTrainedTokenizerBase]:
    """The checkpoint's description, its encoder and its fast tokenizer."""
    checkpoint = checkpoints.inspect(source, options.pooling, options.max_length, options.normalize)
    progress.say(
        "load",
        f"{checkpoint.architecture} ({checkpoint.model_type}), {checkpoint.num_layers} layers, "
        f"{checkpoint.hidden_size} dims; {checkpoint.pooling} pooling ({checkpoint.pooling_source}); "
        f"max_length {checkpoint.max_length} ({checkpoint.max_length_source}); "
        f"normalize {str(checkpoint.normalize).lower()}",
    )
    return checkpoint, graph.load_encoder(checkpoint), graph.load_tokenizer(checkpoint)


def _staging(out: Path) -> Path:
    """A hidden, empty directory next to ``out`` to build the model directory in."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    # mkdtemp makes the directory private; the model directory is meant to be shared.
    staging.chmod(0o755)
    return staging


def _staged_tokenizer(staging: Path, max_length: int) -> Tokenizer:
    """The server's tokenizer on the ``tokenizer.json`` just written to ``staging``."""
    try:
        return Tokenizer(staging, max_length)
    except TokenizerLoadError as exc:
        raise ExportError(f"the written {TOKENIZER_JSON} cannot be used by the server: {exc}") from exc


def _optimise(plain: Path, checkpoint: checkpoints.Checkpoint, work: Path, progress: Progress) -> _Graphs:
    """Fuse the plain graph; without a fused graph when the optimizer fails."""
    fused = work / "fused.onnx"
    try:
        fusions = fusion.optimize(plain, fused, checkpoint)
    except ExportError as exc:
        progress.say("optimise", f"{exc}; continuing with the plain graph")
        return _Graphs(plain, None, {})
    progress.say("optimise", "fused " + (", ".join(f"{op} x{n}" for op, n in fusions.items()) or "nothing"))
    return _Graphs(plain, fused, fusions)


def _fp32(
    graphs: _Graphs, texts: list[str], reference: parity.Vectors, encoders: _Encoders, progress: Progress
) -> _Fp32:
    """Gate the plain and the fused fp32 graphs (parity and batch invariance); return the one to ship."""
    probes = corpus.invariance_texts()
    plain_encoder = encoders.load(graphs.plain)
    plain_diff = parity.batch_variation(plain_encoder, probes)
    plain_verdict = parity.judge("fp32", reference, plain_encoder(texts), recall=1.0, batch_diff=plain_diff)
    progress.say("parity", f"fp32 plain graph: {_describe(plain_verdict, plain_diff)}")
    chosen = _Candidate(graphs.plain, plain_verdict, {}, "plain traced graph", plain_diff)
    fused_passed = False
    if graphs.fused is not None:
        try:
            fused_encoder = encoders.load(graphs.fused)
            fused_diff = parity.batch_variation(fused_encoder, probes)
            fused_verdict = parity.judge(
                "fp32", reference, fused_encoder(texts), recall=1.0, batch_diff=fused_diff
            )
        except ExportError as exc:
            progress.say("parity", f"fp32 fused graph does not run ({exc}); using the plain graph")
        else:
            progress.say("parity", f"fp32 fused graph: {_describe(fused_verdict, fused_diff)}")
            fused_passed = fused_verdict.passed
            probe = texts[: len(corpus.SHORT_TEXTS) + 8]
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
                    graphs.fused,
                    fused_verdict,
                    graphs.fusions,
                    "fused by the ONNX Runtime transformer optimizer",
                    fused_diff,
                )
            del fused_encoder
    if not chosen.verdict.passed:
        raise ParityError(
            "the fp32 ONNX graph does not match the PyTorch reference "
            f"({'; '.join(chosen.verdict.failures)}); "
            "nothing was written. This is a bug in the exporter or an unsupported model variant: report it "
            "with the checkpoint's config.json"
        )
    return _Fp32(chosen, fused_passed)


def _gate(
    texts: list[str], reference: parity.Vectors, fp32: _Candidate, encoders: _Encoders, progress: Progress
) -> _Gate:
    """The baseline of the reduced-precision gates: the shipped fp32 graph on the retrieval corpus."""
    retrieval = corpus.retrieval_corpus()
    vectors = _retrieval_vectors(encoders.load(fp32.path), retrieval)
    recall = parity.recall_at_k(*vectors)
    progress.say("parity", f"fp32 retrieval: recall@10 {recall:.3f} on {len(retrieval.queries)} queries")
    return _Gate(texts, reference, retrieval, vectors, recall)


def _int8(
    gate: _Gate, fp32: _Candidate, encoders: _Encoders, work: Path, progress: Progress
) -> _Candidate | _Rejected:
    """The first int8 plan that passes the gate (static ones first), or why none did."""
    encoder = encoders.load(fp32.path)
    calibration = corpus.calibration_texts()
    peaks = precision.activation_peaks(fp32.path, encoder, calibration, work / "calibration.onnx")
    smoothed = work / "smoothed.onnx"
    down = precision.ffn_down_projections(onnx.load(str(fp32.path), load_external_data=False))
    tensors = precision.smooth(fp32.path, smoothed, peaks, skip=down)
    smoothing = f"{tensors} MatMul inputs smoothed (SmoothQuant alpha {precision.SMOOTHING_ALPHA})"
    typed = work / "smoothed-typed.onnx"
    ranges: dict[str, Path] = {}
    reasons: list[str] = []
    for i, plan in enumerate(precision.int8_plans(fp32.path)):
        target = work / f"int8-{i}.onnx"
        if plan.calibration is not None:
            if not typed.exists():
                precision.typed_for_quantisation(smoothed, typed)
            if plan.calibration not in ranges:
                cache = work / f"ranges-{plan.calibration}.json"
                feeds = (feed for _, feed in encoder.feeds(calibration, batch_size=1))
                ranges[plan.calibration] = precision.calibrate(typed, feeds, plan.calibration, cache)
            precision.quantize_static_int8(typed, target, plan, ranges[plan.calibration])
            how = (
                f"static int8 (QDQ): per-channel 7-bit weights, uint8 activations with ranges fixed by "
                f"{plan.calibration} calibration on {len(calibration)} held-out texts, {smoothing}"
            )
        else:
            precision.quantize_dynamic_int8(smoothed, target, plan)
            how = f"dynamic int8: per-channel 7-bit weights, uint8 activations scaled per batch, {smoothing}"
        judged = gate.judge("int8", encoders.load(target), invariant=plan.static)
        progress.say(
            "quantise",
            f"int8, {plan.label}: {_describe(judged.verdict, judged.batch_diff)} {judged.retrieval}".rstrip(),
        )
        if judged.verdict.passed:
            if not plan.static:
                progress.say(
                    "quantise",
                    "int8 is dynamically quantised and NOT batch-invariant: "
                    "the server's --variant auto will serve fp32 on CPU",
                )
            notes = f"{how}; {plan.label}; {judged.retrieval}"
            return _Candidate(target, judged.verdict, fp32.fusions, notes, judged.batch_diff)
        reasons.append(f"{plan.label}: {'; '.join(judged.verdict.failures)}")
    return _Rejected(" | ".join(reasons))


def _fp16(
    gate: _Gate, graphs: _Graphs, fp32: _Fp32, encoders: _Encoders, work: Path, progress: Progress
) -> _Candidate | _Rejected:
    """fp16 from the fused graph (what a GPU wants) when it passed fp32 parity, else from the shipped one."""
    if graphs.fused is not None and fp32.fused_passed:
        source, source_fusions, graph_name = graphs.fused, graphs.fusions, "fused"
    else:
        source, source_fusions, graph_name = fp32.chosen.path, fp32.chosen.fusions, "shipped fp32"
    target = work / "fp16.onnx"
    precision.convert_fp16(source, target)
    device = "the CPU"
    try:
        judged = gate.judge("fp16", encoders.load(target), invariant=False)
    except ExportError as exc:
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return _Rejected(
                f"the fp16 graph cannot run on the CPU, so it cannot be gated here (no CUDA either): {exc}"
            )
        progress.say("quantise", f"fp16 does not run on the CPU ({exc}); gating it on CUDA")
        device = "CUDA"
        judged = gate.judge("fp16", encoders.load(target, ("CUDAExecutionProvider",)), invariant=False)
    progress.say(
        "quantise", f"fp16: {_describe(judged.verdict, judged.batch_diff)} {judged.retrieval}".rstrip()
    )
    if not judged.verdict.passed:
        return _Rejected("; ".join(judged.verdict.failures))
    notes = f"float16 weights and compute from the {graph_name} graph, float32 I/O; gated on {device} "
    notes += f"(batch invariance measured there too); {judged.retrieval}"
    return _Candidate(target, judged.verdict, source_fusions, notes, judged.batch_diff)


def _reduced(
    names: Sequence[str],
    gate: _Gate,
    graphs: _Graphs,
    fp32: _Fp32,
    encoders: _Encoders,
    work: Path,
    progress: Progress,
) -> dict[str, _Candidate | _Rejected]:
    """Build and gate each reduced-precision variant of ``names``."""
    outcomes: dict[str, _Candidate | _Rejected] = {}
    for name in names:
        if name == "int8":
            outcome = _int8(gate, fp32.chosen, encoders, work, progress)
        else:
            outcome = _fp16(gate, graphs, fp32, encoders, work, progress)
        if isinstance(outcome, _Rejected):
            progress.say("quantise", f"{name} is NOT written: {outcome.reason}")
        outcomes[name] = outcome
    return outcomes


def _shipped(
    fp32: _Candidate, outcomes: dict[str, _Candidate | _Rejected], required: frozenset[str]
) -> tuple[dict[str, _Candidate], dict[str, str]]:
    """The variants to write and why the others are left out; a ParityError if a required one failed."""
    built = {"fp32": fp32} | {n: o for n, o in outcomes.items() if isinstance(o, _Candidate)}
    skipped = {n: o.reason for n, o in outcomes.items() if isinstance(o, _Rejected)}
    missing = sorted(required & set(skipped))
    if missing:
        raise ParityError(
            "required variant(s) failed their gate, nothing was written: "
            + "; ".join(f"{name}: {skipped[name]}" for name in missing)
        )
    return built, skipped


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
        batch_invariant=parity.batch_invariant(candidate.batch_diff),
        batch_max_abs_diff=candidate.batch_diff,
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


def _manifest(
    name: str,
    checkpoint: checkpoints.Checkpoint,
    dims: int,
    inputs: tuple[str, ...],
    variants: dict[str, Variant],
    reference: str,
    source_sha: str,
    opset: int,
) -> Manifest:
    return Manifest(
        name=name,
        dims=dims,
        max_length=checkpoint.max_length,
        pooling=checkpoint.pooling,
        pooling_in_graph=True,
        normalize=checkpoint.normalize,
        inputs=inputs,
        output=graph.OUTPUT_NAME,
        variants=variants,
        source={
            "name": checkpoint.path.name,
            "sha256": source_sha,
            "files": checkpoint.hashed_files(),
            "model_type": checkpoint.model_type,
            "architecture": checkpoint.architecture,
            "reference": reference,
        },
        prompts=checkpoint.prompts,
        opset=opset,
        versions=_versions(),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )


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
        checkpoint, encoder, tokenizer = _load(source, options, progress)
        with_token_types = graph.uses_token_types(encoder, tokenizer)
        inputs = graph.graph_inputs(with_token_types)
        source_sha = checkpoint.content_sha256()
    staging = _staging(out)
    try:
        write_tokenizer(checkpoint, tokenizer, staging)
        encoders = _Encoders(_staged_tokenizer(staging, checkpoint.max_length), inputs)
        work = staging / ".work"
        work.mkdir()
        with progress.stage("export"):
            plain = work / "plain.onnx"
            graph.export_onnx(encoder, tokenizer, checkpoint.pooling, with_token_types, plain, options.opset)
            progress.say("export", f"opset {options.opset}, inputs {', '.join(inputs)}")
        with progress.stage("optimise"):
            graphs = _optimise(plain, checkpoint, work, progress)
        with progress.stage("parity"):
            texts = corpus.parity_texts()
            encode, description = parity.reference_encoder(checkpoint, encoder, tokenizer, with_token_types)
            progress.say("parity", f"reference: {description}; {len(texts)} texts")
            reference = encode(texts)
            # The PyTorch model is not needed past this point; ORT sessions follow.
            del encode, encoder
            gc.collect()
            fp32 = _fp32(graphs, texts, reference, encoders, progress)
            gate = _gate(texts, reference, fp32.chosen, encoders, progress)
        reduced = [v for v in options.variants if v != "fp32"]
        outcomes: dict[str, _Candidate | _Rejected] = {}
        if reduced:
            with progress.stage("quantise"):
                outcomes = _reduced(reduced, gate, graphs, fp32, encoders, work, progress)
        built, skipped = _shipped(fp32.chosen, outcomes, options.required)
        with progress.stage("write"):
            variants = {name: _variant(name, built[name], staging) for name in VARIANTS if name in built}
            shutil.rmtree(work)
            dims = int(reference.shape[1])
            name = options.name or out.name
            manifest = _manifest(
                name, checkpoint, dims, inputs, variants, description, source_sha, options.opset
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
