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
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import onnx
import onnxruntime as ort
import torch
from transformers import PreTrainedTokenizerBase

from export import checkpoint as checkpoints
from export import corpus, domains, evalset, fusion, graph, parity, precision
from export.corpus import RetrievalCorpus
from export.errors import ExportError, ParityError
from export.options import DEFAULT_VARIANTS, ExportOptions, check_output, preflight
from export.tokenizer import TOKENIZER_JSON, write_tokenizer
from server.cpu import describe as describe_cpu
from server.manifest import VARIANT_FILES, VARIANTS, DomainParity, Manifest, Target, Variant, sha256_file
from server.manifest import write as write_manifest
from server.tokenizer import Tokenizer, TokenizerLoadError

TARGETS: dict[str, Target] = {"fp32": "any", "int8": "cpu", "fp16": "gpu"}
# An int8 graph's time per token relative to fp32's, for the time estimates only.
INT8_COST = 0.6
__all__ = ["DEFAULT_VARIANTS", "ExportOptions", "Progress", "export_model"]


@dataclass
class Progress:
    """Stage-by-stage progress lines for a human watching stderr (or a CI log): each says
    how long the export has run, stage durations are kept in ``timings``, and
    :meth:`estimate` adds how long is left."""

    stream: TextIO = field(default_factory=lambda: sys.stderr)
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def say(self, stage: str, message: str) -> None:
        elapsed = time.perf_counter() - self.started
        print(f"export {stage:>8} [{elapsed:4.0f} s]: {message}", file=self.stream, flush=True)

    def estimate(self, stage: str, seconds: float, what: str) -> None:
        """Say that ``what`` comes next and should take about ``seconds``."""
        self.say(stage, f"{what}: about {_duration(seconds)} left")

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        elapsed = time.perf_counter() - start
        self.timings[name] = self.timings.get(name, 0.0) + elapsed
        self.say(name, f"done in {elapsed:.1f} s")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


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
    domains: dict[str, DomainParity] = field(default_factory=dict)
    eval: dict[str, dict[str, float]] = field(default_factory=dict)


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
class _Workload:
    """Tokens each part of the gates will run (padded where batches pad), to say how long is
    left from the rate measured on the work already done."""

    parity: int
    invariance: int
    domains: int
    calibration: int

    @classmethod
    def measure(cls, tokenizer: Tokenizer, domain_texts: Sequence[str]) -> _Workload:
        def tokens(texts: Sequence[str]) -> int:
            return sum(len(ids) for ids in tokenizer.encode(list(texts)).ids)

        lengths = [len(ids) for ids in tokenizer.encode(corpus.invariance_texts()).ids]
        # batch_variation: each text alone, then for every rotation a pair and the full set.
        padded = sum(lengths) + len(lengths) * (2 * max(lengths) + len(lengths) * max(lengths))
        return cls(
            tokens(corpus.parity_texts()), padded, tokens(domain_texts), tokens(corpus.calibration_texts())
        )

    def fp32_gate(self) -> int:
        """What the fp32 gate runs after the reference: the fp32 graph's parity, invariance and domains."""
        return self.parity + self.invariance + self.domains

    def int8(self) -> float:
        """The int8 stage in fp32-token equivalents: activation peaks and calibration (about
        three fp32 passes over the calibration texts), a failing plan's parity texts, then one
        passing plan's gate at about 0.6 of fp32's cost."""
        return 3 * self.calibration + INT8_COST * (self.parity + self.fp32_gate())


@dataclass(frozen=True)
class _Fp32:
    """The fp32 graph to ship, and whether the fused graph passed the fp32 gate."""

    chosen: _Candidate
    fused_passed: bool


@dataclass(frozen=True)
class _Judged:
    """A reduced-precision graph's verdict, its figures on each retrieval domain (none when the
    parity texts or batch invariance already failed it) and its :func:`parity.batch_variation`
    (NaN when not measured)."""

    verdict: parity.Verdict
    domains: dict[str, DomainParity]
    batch_diff: float
    eval: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def retrieval(self) -> str:
        """The domain figures in words, for the progress stream and the variant's notes."""
        return "; ".join(
            f"{name} recall@10 {f.recall_at_10 * f.fp32_recall_at_10:.3f} vs fp32 {f.fp32_recall_at_10:.3f}, "
            f"top-10 overlap {f.top10_overlap:.3f} (worst query {f.top10_overlap_min:.1f}), "
            f"cos {f.cos_mean:.4f}"
            for name, f in self.domains.items()
        )


@dataclass(frozen=True)
class _Domains:
    """The retrieval domains of the gate (:mod:`export.domains`), embedded in one pass per graph."""

    corpora: dict[str, RetrievalCorpus]
    texts: tuple[str, ...]

    @classmethod
    def build(cls) -> _Domains:
        corpora = {name: domains.build(name) for name in domains.names()}
        texts = dict.fromkeys(t for c in corpora.values() for t in (*c.queries, *c.passages))
        return cls(corpora, tuple(texts))

    def vectors(self, encode: parity.OnnxEncoder) -> dict[str, tuple[parity.Vectors, parity.Vectors]]:
        """Each domain's (query, passage) vectors; a text shared by domains is embedded once."""
        everything = encode(self.texts)
        row = {text: i for i, text in enumerate(self.texts)}
        return {
            name: (everything[[row[q] for q in c.queries]], everything[[row[p] for p in c.passages]])
            for name, c in self.corpora.items()
        }


@dataclass(frozen=True)
class _UserSet:
    """The user's held-out set, scored by the fp32 graph: what reduced precisions are held to."""

    data: evalset.EvalSet
    dims: int
    margin: float
    fp32: dict[str, dict[str, float]]

    def score(self, encode: parity.OnnxEncoder) -> dict[str, dict[str, float]]:
        qrels = self.data.qrels
        return evalset.score(encode(qrels.queries), encode(qrels.corpus), qrels.relevant, self.dims)

    def describe(self) -> str:
        return ", ".join(
            f"{width} dims nDCG@10 {f['ndcg_at_10']:.4f} recall@10 {f['recall_at_10']:.4f}"
            for width, f in self.fp32.items()
        )


@dataclass(frozen=True)
class _Gate:
    """What a reduced-precision graph is judged against: the reference's vectors of the
    parity texts, and the shipped fp32 graph's vectors on every retrieval domain."""

    texts: list[str]
    reference: parity.Vectors
    domains: _Domains
    fp32_vectors: dict[str, tuple[parity.Vectors, parity.Vectors]]
    fp32_seconds: float
    """How long the fp32 graph took over the domains: the rate the int8 estimate starts from."""
    users: _UserSet | None = None
    """The user's held-out set (``--eval-data``) and fp32's figures on it."""

    def judge(self, variant: str, encode: parity.OnnxEncoder, invariant: bool) -> _Judged:
        """Parity texts first, then batch invariance (part of the gate when ``invariant``),
        the retrieval domains only if both pass; the variant must pass on every domain."""
        vectors = encode(self.texts)
        # A NaN recall fails no comparison, so only the cosine checks can fail here.
        early = parity.judge(variant, self.reference, vectors, recall=float("nan"))
        if not early.passed:
            return _Judged(early, {}, float("nan"))
        batch_diff = parity.batch_variation(encode, corpus.invariance_texts())
        gated = batch_diff if invariant else None
        early = parity.judge(variant, self.reference, vectors, recall=float("nan"), batch_diff=gated)
        if not early.passed:
            return _Judged(early, {}, batch_diff)
        judged = {
            name: parity.judge_domain(name, self.fp32_vectors[name], candidate)
            for name, candidate in self.domains.vectors(encode).items()
        }
        figures = {name: figure for name, (figure, _) in judged.items()}
        worst = min(f.recall_at_10 for f in figures.values())
        failures = early.failures + tuple(failure for _, failures in judged.values() for failure in failures)
        users: dict[str, dict[str, float]] = {}
        if self.users is not None:
            users = self.users.score(encode)
            failures += evalset.judge(self.users.fp32, users, self.users.margin)
        verdict = parity.Verdict(replace(early.parity, recall_at_10=worst), failures)
        return _Judged(verdict, figures, batch_diff, users)


def _describe(verdict: parity.Verdict, batch_diff: float = float("nan")) -> str:
    p = verdict.parity
    recall = "not measured" if np.isnan(p.recall_at_10) else f"{p.recall_at_10:.3f} of fp32"
    figures = f"cos mean {p.cos_mean:.6f} min {p.cos_min:.6f}, max abs diff {p.max_abs_diff:.2e}"
    figures += f", recall@10 {recall}"
    if not np.isnan(batch_diff):
        figures += f", batch variation {batch_diff:.1e}"
    return figures if verdict.passed else f"{figures}; FAILS: {'; '.join(verdict.failures)}"


def _load(
    checkpoint: checkpoints.Checkpoint, progress: Progress
) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """The checkpoint's encoder and its fast tokenizer."""
    progress.say(
        "load",
        f"{checkpoint.architecture} ({checkpoint.model_type}), {checkpoint.num_layers} layers, "
        f"{checkpoint.hidden_size} dims; {checkpoint.pooling} pooling ({checkpoint.pooling_source}); "
        f"max_length {checkpoint.max_length} ({checkpoint.max_length_source}); "
        f"normalize {str(checkpoint.normalize).lower()}",
    )
    return graph.load_encoder(checkpoint), graph.load_tokenizer(checkpoint)


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
    """The fp32 graph to ship: the fused one whenever it passes the fp32 gate (parity and batch
    invariance), else the plain traced one, which must pass.

    The choice depends on the gate only, never on a timing, so the same checkpoint always
    exports the same graph (and the same int8 plan from it).
    """
    probes = corpus.invariance_texts()
    fused_failure = "the optimizer produced no fused graph"
    if graphs.fused is not None:
        try:
            fused_encoder = encoders.load(graphs.fused)
            fused_diff = parity.batch_variation(fused_encoder, probes)
            fused_verdict = parity.judge(
                "fp32", reference, fused_encoder(texts), recall=1.0, batch_diff=fused_diff
            )
        except ExportError as exc:
            fused_failure = f"the fused graph does not run ({exc})"
        else:
            del fused_encoder
            progress.say("parity", f"fp32 fused graph: {_describe(fused_verdict, fused_diff)}")
            if fused_verdict.passed:
                notes = "fused by the ONNX Runtime transformer optimizer"
                if "MultiHeadAttention" in graphs.fusions:
                    notes += " and the MPNet attention pass (export.attention)"
                return _Fp32(_Candidate(graphs.fused, fused_verdict, graphs.fusions, notes, fused_diff), True)
            fused_failure = "the fused graph fails the fp32 gate"
        progress.say("parity", f"{fused_failure}; trying the plain graph")
    plain_encoder = encoders.load(graphs.plain)
    plain_diff = parity.batch_variation(plain_encoder, probes)
    plain_verdict = parity.judge("fp32", reference, plain_encoder(texts), recall=1.0, batch_diff=plain_diff)
    progress.say("parity", f"fp32 plain graph: {_describe(plain_verdict, plain_diff)}")
    if not plain_verdict.passed:
        raise ParityError(
            "the fp32 ONNX graph does not match the PyTorch reference "
            f"({'; '.join(plain_verdict.failures)}); "
            "nothing was written. This is a bug in the exporter or an unsupported model variant: report it "
            "with the checkpoint's config.json"
        )
    notes = f"plain traced graph ({fused_failure})"
    return _Fp32(_Candidate(graphs.plain, plain_verdict, {}, notes, plain_diff), False)


def _gate(
    texts: list[str],
    reference: parity.Vectors,
    fp32: _Candidate,
    encoders: _Encoders,
    options: ExportOptions,
    progress: Progress,
) -> _Gate:
    """The baseline of the reduced-precision gates: the shipped fp32 graph on every retrieval
    domain and on the user's held-out set, if given."""
    corpora = _Domains.build()
    start = time.perf_counter()
    encode = encoders.load(fp32.path)
    vectors = corpora.vectors(encode)
    seconds = time.perf_counter() - start
    users = None
    if options.eval_data is not None:
        data = evalset.load(options.eval_data)
        dims = int(reference.shape[1])
        qrels = data.qrels
        fp32_figures = evalset.score(encode(qrels.queries), encode(qrels.corpus), qrels.relevant, dims)
        users = _UserSet(data, dims, options.eval_margin, fp32_figures)
        progress.say(
            "parity",
            f"fp32 on --eval-data {data.name} ({len(qrels.queries)} queries, {len(qrels.corpus)} passages): "
            + users.describe(),
        )
    recalls = ", ".join(
        f"{name} {parity.recall_at_k(*v):.3f} ({len(v[0])} queries)" for name, v in vectors.items()
    )
    progress.say("parity", f"fp32 retrieval, recall@10: {recalls}")
    return _Gate(texts, reference, corpora, vectors, seconds, users)


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
    progress.say("quantise", f"{smoothing}, activation peaks from {len(calibration)} texts")
    typed = work / "smoothed-typed.onnx"
    ranges: dict[str, Path] = {}
    reasons: list[str] = []
    for i, plan in enumerate(precision.int8_plans(fp32.path, peaks)):
        target = work / f"int8-{i}.onnx"
        if plan.calibration is not None:
            if not typed.exists():
                precision.typed_for_quantisation(smoothed, typed)
            if plan.calibration not in ranges:
                cache = work / f"ranges-{plan.calibration}.json"
                feeds = (feed for _, feed in encoder.feeds(calibration, batch_size=1))
                ranges[plan.calibration] = precision.calibrate(typed, feeds, plan.calibration, cache)
                progress.say("quantise", f"{plan.calibration} calibration ranges measured")
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
            notes = f"{how}; {plan.label}"
            return _Candidate(
                target, judged.verdict, fp32.fusions, notes, judged.batch_diff, judged.domains, judged.eval
            )
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
    notes += "(batch invariance measured there too)"
    return _Candidate(
        target, judged.verdict, source_fusions, notes, judged.batch_diff, judged.domains, judged.eval
    )


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
        domains=candidate.domains,
        eval=candidate.eval,
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
    users: _UserSet | None,
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
        default_prompt_name=checkpoint.default_prompt_name,
        opset=opset,
        versions=_versions(),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        gated_on=_gated_on(),
        eval_data={**users.data.describe(), "margin": users.margin} if users else {},
    )


def _gated_on() -> dict[str, Any]:
    """The machine the gates ran on: int8 and fp16 kernels differ between instruction sets."""
    model, flags = describe_cpu()
    return {"cpu": model, "isa": flags, "onnxruntime": ort.__version__, "machine": platform.machine()}


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
    checkpoint = preflight(source, out, options)
    started = time.perf_counter()
    with progress.stage("load"):
        encoder, tokenizer = _load(checkpoint, progress)
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
            workload = _Workload.measure(encoders.tokenizer, _Domains.build().texts)
            start = time.perf_counter()
            reference = encode(texts)
            rate = workload.parity / max(time.perf_counter() - start, 1e-3)
            later = ""
            if "int8" in options.variants:
                later = f", then about {_duration(workload.int8() / rate)} for int8"
            progress.estimate("parity", workload.fp32_gate() / rate, f"fp32 gate{later}")
            # The PyTorch model is not needed past this point; ORT sessions follow.
            del encode, encoder
            gc.collect()
            fp32 = _fp32(graphs, texts, reference, encoders, progress)
            gate = _gate(texts, reference, fp32.chosen, encoders, options, progress)
            if gate.users is not None:
                fp32 = replace(fp32, chosen=replace(fp32.chosen, eval=gate.users.fp32))
        reduced = [v for v in options.variants if v != "fp32"]
        outcomes: dict[str, _Candidate | _Rejected] = {}
        if reduced:
            with progress.stage("quantise"):
                if "int8" in reduced:
                    rate = workload.domains / max(gate.fp32_seconds, 1e-3)
                    progress.estimate("quantise", workload.int8() / rate, "int8 calibration and gate")
                outcomes = _reduced(reduced, gate, graphs, fp32, encoders, work, progress)
        built, skipped = _shipped(fp32.chosen, outcomes, options.required)
        with progress.stage("write"):
            variants = {name: _variant(name, built[name], staging) for name in VARIANTS if name in built}
            shutil.rmtree(work)
            dims = int(reference.shape[1])
            name = options.name or out.name
            manifest = _manifest(
                name, checkpoint, dims, inputs, variants, description, source_sha, options.opset, gate.users
            )
            write_manifest(manifest, staging)
            check_output(out, options.force)
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
