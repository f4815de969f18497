"""One bench run: corpus, roofline, systems side by side, HTTP load profiles, targets.

:func:`run` calls the steps in this order; each is a function of what the earlier steps
returned (typed values, not shared state) and logs to stderr:

1. :func:`load_workload`: corpus and token counts with the model's tokenizer;
   :func:`describe_machine`, :func:`choose_variants`;
2. :func:`measure_roofline`: FLOPs per token from the checkpoint's config, fp32 GEMM rate
   in a child;
3. :func:`start_systems`: ours per variant as subprocesses (or ``--url``), infinity-emb if
   asked and installed; then :func:`agreement`: every system embeds a sample to check
   agreement with the reference;
4. :func:`measure_throughput`: every system embeds the same passages, in ``rounds``
   interleaved rounds (the order rotates each round) so that drift in a shared machine hits
   all alike; :func:`throughput_table` takes ratios to the reference within each round,
   then the median;
5. :func:`batch_sweep` (full suite): bare loop, engine and plain ORT by batch size;
6. :func:`http_profiles` on the server as it is deployed (``--variant auto``): ingest
   throughput vs concurrency, vs input length, query latency closed and open loop, and the
   real callers alone and together (:mod:`bench.callers`);
7. :func:`targets`: the figures the project aims at, met or not.

The result is one JSON-ready dict; :mod:`bench.report` renders it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson

from bench import callers, machine
from bench import corpus as corpus_mod
from bench.client import Endpoint, HttpError, Pool
from bench.loadgen import (
    Body,
    Request,
    Target,
    closed_loop,
    open_loop,
    prepare,
    run_phase,
)
from bench.model import ModelDir
from bench.progress import Progress
from bench.roofline import RooflineError, Shape, gemm_rate
from bench.schedule import poisson_arrivals
from bench.server_process import ManagedServer, free_port, our_server_argv
from bench.settings import BenchSettings, child_env, offline_hub
from bench.stats import LengthStats, median, ratio
from bench.systems import System, cosines
from bench.systems.http import HttpServer
from bench.systems.onnx import BareLoop, PlainOrt

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
QUALITY_TEXTS = 64
WARM_TEXTS = 16
PASS_TIMEOUT = "600"  # seconds, the most a client may ask of our server
Json = dict[str, Any]
Servers = dict[str, tuple[Endpoint, Json]]


class BenchError(RuntimeError):
    """The run cannot go on; the message says what to fix."""


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a load phase on uvloop when it is installed (a cheaper client), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


class Log:
    """Progress lines, and the run's notes: what a reader of the results must know."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.notes: list[str] = []

    def info(self, message: str) -> None:
        self.progress.log(message)

    def note(self, message: str) -> None:
        self.notes.append(message)
        self.progress.log(f"note: {message}")


# ---- 1. model, machine, workload ---------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """The run's texts and their token counts as the server counts them."""

    corpus: corpus_mod.Corpus
    passages: list[str]
    """The throughput set: the corpus's first ``preset.passages`` passages."""
    tokens: dict[str, int]

    def lengths(self, texts: Sequence[str]) -> list[int]:
        return [self.tokens[t] for t in texts]

    def total(self, texts: Sequence[str]) -> int:
        return sum(self.tokens[t] for t in texts)

    def to_json(self) -> Json:
        queries = self.corpus.queries
        return {
            "source": self.corpus.source,
            "digest": self.corpus.digest(),
            "passages": len(self.passages),
            "passage_tokens": asdict(LengthStats.of(self.lengths(self.passages))),
            "queries": len(queries),
            "query_tokens": asdict(LengthStats.of(self.lengths(queries))),
        }


def describe_machine(threads: int, log: Log) -> Json:
    """The machine's description; a note when it was already busy."""
    m = machine.describe(ROOT)
    log.info(f"machine: {m['cpu']}, {m['cores']} cores, load average {m['load_average']}, threads {threads}")
    if m["load_average"][0] > (m["cores"] or 1):
        log.note(
            f"the machine was busy when the run started (1-min load {m['load_average'][0]:.2f} on "
            f"{m['cores']} cores); absolute figures are low, ratios within a round stay fair"
        )
    return m


def load_workload(settings: BenchSettings, model: ModelDir, log: Log) -> Workload:
    """The corpus (``--corpus`` or the standard library's docstrings) and its token counts."""
    preset = settings.preset
    if settings.corpus is not None:
        corpus = corpus_mod.from_jsonl(settings.corpus, None, preset.queries)
    else:
        corpus = corpus_mod.from_stdlib(max(2000, preset.passages), preset.queries, seed=settings.seed)
    texts = list(corpus.passages) + list(corpus.queries)
    tokens = dict(zip(texts, model.count_tokens(texts), strict=True))
    workload = Workload(corpus, list(corpus.passages[: preset.passages]), tokens)
    log.info(
        f"corpus: {corpus.source}, {len(workload.passages)} passages in the throughput set, "
        f"{len(corpus.queries)} queries"
    )
    return workload


def model_json(model: ModelDir) -> Json:
    return {
        "name": model.name,
        "dir": str(model.path),
        "dims": model.manifest.dims,
        "max_length": model.max_length,
        "pooling": model.manifest.pooling,
        "variants": model.variants,
        "checkpoint": str(model.checkpoint) if model.checkpoint else None,
    }


def choose_variants(wanted: Sequence[str], model: ModelDir, machine_info: Json, log: Log) -> list[str]:
    """The variants to measure: those asked for (default fp32 and int8) that the model has and
    this machine can run."""
    wanted = wanted or ("fp32", "int8")
    present = [v for v in wanted if v in model.variants]
    if "fp16" in present and "CUDAExecutionProvider" not in machine_info["ort_providers"]:
        present.remove("fp16")
        log.note("fp16 needs a GPU; skipped on this CPU-only machine")
    missing = [v for v in wanted if v not in model.variants]
    if missing:
        log.note(f"{model.path} has no {', '.join(missing)} variant; not measured")
    if not present:
        raise BenchError(f"none of the variants {', '.join(wanted)} is in {model.path}")
    return present


# ---- 2. roofline -------------------------------------------------------------------------


@dataclass(frozen=True)
class Roofline:
    """The compute bound of the throughput set: its FLOPs and the best GEMM rate measured
    (a busy moment only lowers a measurement, so the best one is the bound)."""

    shape: Shape
    useful_flops: float
    """FLOPs of one pass over the throughput set."""
    tokens: int
    threads: int
    gemm_runs: tuple[dict[str, float], ...] = ()

    @property
    def flops_per_token(self) -> float:
        return self.useful_flops / self.tokens

    @property
    def best(self) -> dict[str, float]:
        return max(self.gemm_runs, key=lambda g: max(g["square_gflops"], g["model_gflops"]))

    @property
    def peak_flops(self) -> float:
        return max(self.best["square_gflops"], self.best["model_gflops"]) * 1e9

    def with_gemm(self, gemm: dict[str, float], log: Log) -> Roofline:
        """This roofline with one more GEMM measurement (logged)."""
        roof = replace(self, gemm_runs=(*self.gemm_runs, gemm))
        log.info(
            f"roofline: {roof.flops_per_token / 1e6:.1f} MFLOP/token on this corpus, GEMM "
            f"{gemm['square_gflops']:.0f} GFLOP/s now, best {roof.peak_flops / 1e9:.0f} "
            f"-> bound {roof.peak_flops / roof.flops_per_token:,.0f} tokens/s"
        )
        return roof

    def share(self, tokens_per_s: float) -> float:
        """The share of the bound that ``tokens_per_s`` on the throughput set reaches."""
        return self.useful_flops * tokens_per_s / self.tokens / self.peak_flops

    def to_json(self) -> Json:
        return {
            **asdict(self.shape),
            "linear_flops_per_token": self.shape.linear_flops_per_token,
            "flops_per_token_corpus": self.flops_per_token,
            "threads": self.threads,
            "gemm_runs": list(self.gemm_runs),
            "gemm": self.best,
            "peak_gflops": self.peak_flops / 1e9,
            "bound_tokens_per_s": self.peak_flops / self.flops_per_token,
        }


def measure_roofline(model: ModelDir, workload: Workload, threads: int, log: Log) -> Roofline | None:
    """The roofline from the checkpoint's config and one GEMM measurement; None without them."""
    if not model.config:
        log.note("no checkpoint config.json (pass --checkpoint): roofline not computed")
        return None
    try:
        shape = Shape.from_config(model.config)
        log.info("measuring the fp32 GEMM rate (numpy) ...")
        gemm = gemm_rate(shape, child_env(threads))
    except RooflineError as exc:
        log.note(f"roofline not computed: {exc}")
        return None
    lengths = workload.lengths(workload.passages)
    return Roofline(shape, shape.corpus_flops(lengths), sum(lengths), threads).with_gemm(gemm, log)


def remeasure(roof: Roofline, log: Log) -> Roofline:
    """``roof`` with one more GEMM measurement, if one succeeds."""
    try:
        return roof.with_gemm(gemm_rate(roof.shape, child_env(roof.threads)), log)
    except RooflineError:
        return roof


# ---- 3. systems --------------------------------------------------------------------------


@dataclass(frozen=True)
class Systems:
    """The systems of the run, in the order they are measured, and our servers."""

    all: list[System]
    reference: System | None
    bare: dict[str, BareLoop]
    """The bare engine loop of each variant."""
    servers: Servers
    """Our server per variant (subprocesses), or ``"url"``: the one ``--url`` names."""
    batch_tokens: int
    batch_size: int

    def deployed(self) -> tuple[str, Endpoint, Json]:
        """The server as `make run` serves it: int8 if the model has it (``auto``), else fp32."""
        if "url" in self.servers:
            endpoint, info = self.servers["url"]
            return str(info.get("variant")), endpoint, info
        variant = "int8" if "int8" in self.servers else next(iter(self.servers))
        endpoint, info = self.servers[variant]
        return variant, endpoint, info


def _auth(settings: BenchSettings) -> dict[str, str]:
    key = settings.api_key
    return {"Authorization": f"Bearer {key}"} if key else {}


def _info(endpoint: Endpoint, auth: dict[str, str]) -> Json:
    async def get() -> Json:
        pool = Pool(endpoint, limit=1)
        try:
            reply = await pool.request("GET", "/info", headers=auth)
        finally:
            await pool.close()
        if reply.status != 200:
            raise BenchError(f"{endpoint.url}/info answered {reply.status}; is it our server?")
        data: Json = orjson.loads(reply.body)
        return data

    try:
        return run_async(get())
    except HttpError as exc:
        raise BenchError(f"cannot reach {endpoint.url}: {exc}") from exc


def _our_server(
    settings: BenchSettings, model: ModelDir, variant: str, stack: contextlib.ExitStack, log: Log
) -> tuple[Endpoint, Json]:
    port = free_port()
    argv = our_server_argv(model.path, port, variant, settings.threads, settings.server_args)
    server = ManagedServer(
        f"our server ({variant})",
        argv,
        port,
        settings.out / f"server-{variant}.log",
        env=child_env(settings.threads),
    )
    log.info(f"starting our server ({variant}) on port {port} ...")
    stack.callback(server.stop)
    server.start()
    log.info(f"our server ({variant}) ready in {server.startup_s:.1f}s")
    return server.endpoint, _info(server.endpoint, _auth(settings))


def _ours_http(settings: BenchSettings, endpoint: Endpoint, info: Json) -> HttpServer:
    preset = settings.preset
    variant = str(info.get("variant", "?"))
    return HttpServer(
        key=f"server-{variant}",
        label=f"our server {variant} over HTTP (/embed, {preset.per_request} texts/request, "
        f"{preset.ingest_concurrency} clients)",
        role="ours",
        variant=variant,
        endpoint=endpoint,
        # The pass measures throughput; the deadline policy is measured by the HTTP profiles.
        target=Target("tei", "/embed", headers={**_auth(settings), "x-request-timeout": PASS_TIMEOUT}),
        concurrency=preset.ingest_concurrency,
        per_request=preset.per_request,
    )


def _infinity(
    settings: BenchSettings, model: ModelDir, stack: contextlib.ExitStack, log: Log
) -> HttpServer | None:
    preset = settings.preset
    binary = settings.infinity_bin
    if not binary.is_file():
        log.note(
            f"infinity-emb is not installed at {binary}; install it in its own venv: "
            "python3 -m venv build/peer-venvs/infinity && build/peer-venvs/infinity/bin/pip install "
            "torch==2.13.0 'infinity-emb[server,torch]' -c <(echo torch==2.13.0)"
        )
        return None
    if model.checkpoint is None:
        log.note("infinity-emb needs the checkpoint directory (--checkpoint); skipped")
        return None
    version = _dist_version(binary, "infinity_emb")
    port = free_port()
    argv = [
        str(binary), "v2", "--model-id", str(model.checkpoint),
        "--served-model-name", model.name,
        "--engine", "torch", "--device", "cpu", "--batch-size", "32", "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning", "--url-prefix", "",
    ]  # fmt: skip
    server = ManagedServer(
        "infinity-emb",
        argv,
        port,
        settings.out / "infinity.log",
        ready_path="/health",
        env=child_env(settings.threads),
    )
    log.info(f"starting infinity-emb {version} on port {port} ...")
    stack.callback(server.stop)
    server.start()
    log.info(f"infinity-emb ready in {server.startup_s:.1f}s")
    return HttpServer(
        key="infinity",
        label=f"infinity-emb {version} (torch fp32, batch 32) over HTTP (/embeddings, "
        f"{preset.per_request} texts/request, {preset.ingest_concurrency} clients)",
        role="peer",
        variant="fp32",
        endpoint=server.endpoint,
        target=Target("openai", "/embeddings", model=model.name),
        concurrency=preset.ingest_concurrency,
        per_request=preset.per_request,
        ours=False,
    )


def _openvino(
    model: ModelDir, variants: Sequence[str], threads: int, batch_tokens: int, batch_size: int, log: Log
) -> list[System]:
    """OpenVINO's bare loop in each mode the variants and the CPU allow; none, with a note,
    when openvino is not installed."""
    from bench.systems import openvino

    version = openvino.available()
    if version is None:
        log.note("openvino is not installed: its peer is skipped (pip install -e '.[openvino]')")
        return []
    chosen = openvino.modes(variants, bf16=openvino.native_bf16())
    log.info(f"loading OpenVINO {version} ({', '.join(m.name for m in chosen) or 'no mode'}) ...")
    return [openvino.OpenVinoLoop(model, m, threads, batch_tokens, batch_size) for m in chosen]


def _reference(settings: BenchSettings, model: ModelDir, workload: Workload, log: Log) -> System | None:
    """sentence-transformers on the checkpoint, when it is asked for and given."""
    if "st" not in settings.preset.peers:
        return None
    if model.checkpoint is None:
        log.note("sentence-transformers needs the checkpoint (--checkpoint): no reference, no ratios")
        return None
    from bench.systems.torch_st import SentenceTransformers

    offline_hub()
    log.info("loading sentence-transformers ...")
    return SentenceTransformers(model.checkpoint, settings.threads, model.max_length, workload.tokens)


def start_systems(
    settings: BenchSettings,
    model: ModelDir,
    workload: Workload,
    variants: Sequence[str],
    stack: contextlib.ExitStack,
    log: Log,
) -> Systems:
    """Load or start every system of the run; what must be stopped is pushed on ``stack``."""
    from bench.systems.engine import InProcessEngine

    threads = settings.threads
    systems: list[System] = []
    reference = _reference(settings, model, workload, log)
    if reference is not None:
        systems.append(reference)
    if "ort" in settings.preset.peers and "fp32" in model.variants:
        systems.append(PlainOrt(model, threads, 32))
    servers: Servers
    if settings.url:
        endpoint = Endpoint.parse(settings.url)
        servers = {"url": (endpoint, _info(endpoint, _auth(settings)))}
    else:
        servers = {v: _our_server(settings, model, v, stack, log) for v in variants}
    any_info = next(iter(servers.values()))[1]
    batch_tokens = int(any_info.get("max_batch_tokens", 2048))
    batch_size = int(any_info.get("max_batch_requests", 64))
    bare: dict[str, BareLoop] = {}
    for variant in variants:
        log.info(f"loading the bare loop and the in-process engine ({variant}) ...")
        bare[variant] = BareLoop(model, variant, threads, batch_tokens, batch_size)
        systems.append(bare[variant])
        engine = InProcessEngine(model, variant, threads, settings.preset.per_request)
        stack.callback(engine.close)
        systems.append(engine)
        if not settings.url:
            systems.append(_ours_http(settings, *servers[variant]))
    if settings.url:
        systems.append(_ours_http(settings, *servers["url"]))
    if "openvino" in settings.preset.peers:
        systems.extend(_openvino(model, variants, threads, batch_tokens, batch_size, log))
    if "infinity" in settings.preset.peers:
        peer = _infinity(settings, model, stack, log)
        if peer is not None:
            systems.append(peer)
    return Systems(systems, reference, bare, servers, batch_tokens, batch_size)


def agreement(systems: Systems, sample: Sequence[str], log: Log) -> dict[str, dict[str, float]]:
    """Every system embeds ``sample`` (this warms it up too); cosine to the reference, by key."""
    reference = systems.reference.embed(sample) if systems.reference else None
    out: dict[str, dict[str, float]] = {}
    for system in systems.all:
        try:
            vectors = system.embed(sample)
        except Exception as exc:
            log.note(f"{system.label} failed on the sample: {exc}")
            continue
        if reference is not None and vectors.shape == reference.shape:
            cos = cosines(vectors, reference)
            out[system.key] = {"cos_mean": float(cos.mean()), "cos_min": float(cos.min())}
            log.info(f"agreement {system.key}: cos mean {cos.mean():.6f}, min {cos.min():.6f}")
    return out


# ---- 4. throughput -----------------------------------------------------------------------


@dataclass(frozen=True)
class Rounds:
    """What the interleaved rounds measured, by system key: tokens/s per round (None when the
    system had failed), each pass's figures, and the error that stopped a system."""

    texts: int
    tokens: int
    rounds: int
    per_round: dict[str, list[float | None]]
    passes: dict[str, list[Json]]
    errors: dict[str, str] = field(default_factory=dict)


def measure_throughput(
    systems: Sequence[System], texts: Sequence[str], total: int, rounds: int, log: Log
) -> Rounds:
    """Every system embeds ``texts`` (``total`` tokens) once per round; the order rotates each
    round. A system that fails is not run again."""
    per_round: dict[str, list[float | None]] = {s.key: [] for s in systems}
    passes: dict[str, list[Json]] = {s.key: [] for s in systems}
    errors: dict[str, str] = {}
    n = len(systems)
    for r in range(rounds):
        order = [*systems[r % n :], *systems[: r % n]]
        for system in order:
            if system.key in errors:
                per_round[system.key].append(None)
                continue
            try:
                result = system.run(texts)
            except Exception as exc:
                errors[system.key] = f"{type(exc).__name__}: {exc}"
                log.note(f"{system.label} failed: {errors[system.key]}")
                per_round[system.key].append(None)
                continue
            rate = total / result.seconds
            per_round[system.key].append(rate)
            passes[system.key].append(
                {"seconds": result.seconds, "padding_ratio": result.padding_ratio, **result.detail}
            )
            log.info(
                f"round {r + 1}/{rounds} {system.key}: {rate:,.0f} tokens/s, "
                f"{len(texts) / result.seconds:,.1f} texts/s"
                + (f", padding {result.padding_ratio:.1%}" if result.padding_ratio is not None else "")
            )
    return Rounds(len(texts), total, rounds, per_round, passes, errors)


def throughput_table(
    systems: Sequence[System],
    reference: System | None,
    measured: Rounds,
    agreement: dict[str, dict[str, float]],
    roof: Roofline | None,
) -> Json:
    """One row per system: median tokens/s over the rounds, median of the per-round ratios to
    the reference, padding, agreement and share of the roofline."""
    ref_rounds = measured.per_round.get(reference.key, []) if reference else []
    rows = []
    for system in systems:
        rounds = measured.per_round[system.key]
        values = [v for v in rounds if v is not None]
        tps: float | None = median(values) if values else None
        ratios = [
            q
            for i, v in enumerate(rounds)
            if i < len(ref_rounds) and (q := ratio(v, ref_rounds[i])) is not None
        ]
        passes = measured.passes[system.key]
        paddings = [p["padding_ratio"] for p in passes if p["padding_ratio"] is not None]
        row: Json = {
            "key": system.key,
            "label": system.label,
            "role": system.role,
            "transport": system.transport,
            "variant": system.variant,
            "tokens_per_s": tps,
            "texts_per_s": tps * measured.texts / measured.tokens if tps else None,
            "rounds_tokens_per_s": rounds,
            "ratio_to_reference": median(ratios) if ratios else None,
            "padding_ratio": median(paddings) if paddings else None,
            "passes": passes,
            "agreement": agreement.get(system.key),
            "error": measured.errors.get(system.key),
        }
        if tps and roof is not None:
            row["roofline_share"] = roof.share(tps)
        rows.append(row)
    return {
        "texts": measured.texts,
        "tokens": measured.tokens,
        "rounds": measured.rounds,
        "reference": reference.key if reference else None,
        "systems": rows,
    }


# ---- 5. batch-size sweep -----------------------------------------------------------------


def batch_sweep(
    settings: BenchSettings,
    model: ModelDir,
    workload: Workload,
    variants: Sequence[str],
    systems: Systems,
    log: Log,
) -> Json | None:
    """Bare loop, in-process engine and plain ORT at each of the preset's batch sizes; None
    when the preset has no sweep."""
    preset = settings.preset
    sizes = preset.batch_sizes
    if not sizes or preset.sweep_passages <= 0:
        return None
    from bench.systems.engine import InProcessEngine

    texts = workload.passages[: preset.sweep_passages]
    total = workload.total(texts)
    rows: list[Json] = []

    def measure(system: System, kind: str, variant: str, size: int) -> None:
        system.run(texts[:size])
        result = system.run(texts)
        rows.append(
            {
                "system": kind,
                "variant": variant,
                "batch_size": size,
                "tokens_per_s": total / result.seconds,
                "texts_per_s": len(texts) / result.seconds,
                "padding_ratio": result.padding_ratio,
            }
        )
        log.info(
            f"sweep {kind} {variant} batch {size}: {total / result.seconds:,.0f} tokens/s, "
            f"padding {result.padding_ratio or 0:.1%}"
        )

    for variant in variants:
        for size in sizes:
            measure(systems.bare[variant].with_limits(size * model.max_length, size), "bare", variant, size)
            engine = InProcessEngine(
                model,
                variant,
                settings.threads,
                preset.per_request,
                max_batch_size=size,
                max_batch_tokens=size * model.max_length,
                warmup=False,
            )
            try:
                measure(engine, "engine", variant, size)
            finally:
                engine.close()
    plain = next((s for s in systems.all if isinstance(s, PlainOrt)), None)
    if plain is not None:
        for size in sizes:
            measure(plain.with_batch_size(size), "ort-corpus-order", "fp32", size)
    return {"texts": len(texts), "tokens": total, "rows": rows}


# ---- 6. HTTP profiles --------------------------------------------------------------------


async def _phase(
    endpoint: Endpoint,
    name: str,
    profile: str,
    mode: Literal["closed", "open"],
    body: Body,
    log: Log,
    *,
    concurrency: int = 0,
    rate: float | None = None,
) -> Json:
    return await run_phase(endpoint, name, profile, mode, body, log.info, concurrency=concurrency, rate=rate)


def length_classes(workload: Workload, n: int, max_length: int) -> dict[str, list[str]]:
    """Up to ``n`` texts of each length class: short (queries), medium and long passages."""
    pool = list(workload.corpus.passages)
    tokens = workload.tokens
    return {
        "short": list(workload.corpus.queries[:n]),
        "medium": [t for t in pool if 60 <= tokens[t] <= 120][:n],
        "long": [t for t in pool if tokens[t] >= min(180, max_length - 8)][:n],
    }


def http_profiles(
    settings: BenchSettings, model: ModelDir, workload: Workload, systems: Systems, log: Log
) -> Json:
    """The load profiles on the deployed server; the bare loop on each length class beside them."""
    variant, endpoint, info = systems.deployed()
    p = settings.preset
    target = Target("tei", "/embed", headers=_auth(settings))
    ingest = prepare(target, workload.passages, workload.lengths(workload.passages), p.per_request)
    queries = list(workload.corpus.queries)
    query_reqs = prepare(target, queries, workload.lengths(queries), 1, single=True)
    out: Json = {"variant": variant, "server": info.get("model_id"), "phases": []}
    phases: list[Json] = out["phases"]
    log.info(f"HTTP profiles on our server ({variant}) at {endpoint.url}")

    def closed(reqs: Sequence[Request], c: int) -> Body:
        return lambda pool: closed_loop(pool, target, reqs, c, p.phase_s)

    def opened(reqs: Sequence[Request], arrivals: list[float]) -> Body:
        return lambda pool: open_loop(pool, target, reqs, arrivals)

    wanted = settings.http_profiles
    for c in p.concurrency if "ingest" in wanted else ():
        phases.append(
            run_async(
                _phase(endpoint, f"ingest c={c}", "ingest", "closed", closed(ingest, c), log, concurrency=c)
            )
        )
    classes = length_classes(workload, p.length_texts, model.max_length) if "length" in wanted else {}
    for name, texts in classes.items():
        reqs = prepare(target, texts, workload.lengths(texts), p.per_request)
        phase = run_async(
            _phase(
                endpoint, f"length {name}", f"length:{name}", "closed",
                closed(reqs, p.ingest_concurrency), log,
                concurrency=p.ingest_concurrency,
            )
        )  # fmt: skip
        bare = systems.bare.get(variant)
        if bare is not None:
            result = bare.run(texts)
            phase["bare_tokens_per_s"] = workload.total(texts) / result.seconds
            log.info(f"bare loop on {name} texts: {phase['bare_tokens_per_s']:,.0f} tokens/s")
        phases.append(phase)
    capacity = 0.0
    for c in p.query_concurrency if "query" in wanted else ():
        phase = run_async(
            _phase(endpoint, f"query c={c}", "query", "closed", closed(query_reqs, c), log, concurrency=c)
        )
        capacity = max(capacity, phase["requests_per_s"])
        phases.append(phase)
    out["query_capacity_rps"] = capacity
    for i, load in enumerate(p.open_loads if capacity else ()):
        rate = max(load * capacity, 0.5)
        arrivals = poisson_arrivals(rate, p.phase_s, settings.seed + i)
        phases.append(
            run_async(
                _phase(
                    endpoint,
                    f"query open {load:.0%}",
                    "query",
                    "open",
                    opened(query_reqs, arrivals),
                    log,
                    rate=rate,
                )
            )
        )
    if "callers" in wanted:
        out["callers"] = callers.profiles(
            endpoint, _auth(settings), workload.passages, workload.lengths(workload.passages),
            queries, workload.lengths(queries), p.callers_s, settings.seed, log.info, run_async,
        )  # fmt: skip
    return out


# ---- 7. targets --------------------------------------------------------------------------


def targets(variants: Sequence[str], bare: dict[str, BareLoop], throughput: Json, http: Json) -> list[Json]:
    """The figures the project aims at, from the throughput table and the HTTP profiles."""
    rows = {r["key"]: r for r in throughput.get("systems", [])}
    out: list[Json] = []

    def add(name: str, value: float | None, goal: float, unit: str = "x", most: bool = False) -> None:
        met = value is not None and (value <= goal if most else value >= goal)
        out.append({"name": name, "value": value, "target": goal, "unit": unit, "met": met, "at_most": most})

    for variant in variants:
        bare_row = rows.get(bare[variant].key) if variant in bare else None
        server = next(
            (
                r
                for r in rows.values()
                if r["transport"] == "http" and r["role"] == "ours" and r["variant"] == variant
            ),
            None,
        )
        if bare_row and server:
            per_round = [
                q
                for a, b in zip(server["rounds_tokens_per_s"], bare_row["rounds_tokens_per_s"], strict=True)
                if (q := ratio(a, b)) is not None
            ]
            add(
                f"server {variant} at saturation / its bare engine loop (median of per-round ratios)",
                median(per_round) if per_round else None,
                0.9,
            )
        goal = {"fp32": 1.5, "int8": 3.0}.get(variant)
        if server and goal is not None and server["ratio_to_reference"] is not None:
            add(f"server {variant} / sentence-transformers", server["ratio_to_reference"], goal)
    figures = http.get("callers", {}).get("ratios")
    if figures:
        shape = callers.SATURATING.name
        isolation = figures["isolation"].get(shape, {})
        add(f"query p99 under {shape} / idle query p99", isolation.get("p99_over_idle"), 2.0, most=True)
        add(
            f"{shape} texts/s with {callers.QUERY_RATE:.0f} queries/s / alone",
            isolation.get("ingest_share"),
            0.85,
        )
        add(
            f"texts/s of one-chunk requests ({shape}) / 20-chunk requests ({callers.SEMANTIC_TEXT.name})",
            figures["one_chunk_over_twenty"].get(shape),
            0.85,
        )
        add(
            "goodput of a burst of 20-text requests / steady rate",
            figures.get("burst_goodput_over_steady"),
            0.9,
        )
    for phase in http.get("phases", []):
        if phase["name"] == "query c=1":
            out.append(
                {
                    "name": "single short text, one client (p50 / p99 ms)",
                    "value": [phase["latency"]["p50_ms"], phase["latency"]["p99_ms"]],
                    "target": None,
                    "unit": "ms",
                    "met": None,
                }
            )
    return out


# ---- the whole run -----------------------------------------------------------------------


def run(settings: BenchSettings, progress: Progress | None = None) -> Json:
    """Run the suite of ``settings`` and return the results (not yet written)."""
    log = Log(progress or Progress())
    started = datetime.now(UTC)
    results: Json = {
        "schema": 1,
        "started": started.isoformat(timespec="seconds"),
        "config": settings.to_json(),
    }
    with contextlib.ExitStack() as stack:
        settings.out.mkdir(parents=True, exist_ok=True)
        model = ModelDir.load(settings.model, settings.checkpoint)
        log.info(f"model {model.name} from {model.path} (variants {model.variants})")
        results["machine"] = describe_machine(settings.threads, log)
        workload = load_workload(settings, model, log)
        results["corpus"] = workload.to_json()
        results["model"] = model_json(model)
        variants = choose_variants(settings.variants, model, results["machine"], log)
        roof = measure_roofline(model, workload, settings.threads, log)
        if roof is not None:
            results["roofline"] = roof.to_json()
        systems = start_systems(settings, model, workload, variants, stack, log)
        results["servers"] = {key: info for key, (_, info) in systems.servers.items()}
        agreed = agreement(systems, workload.passages[:QUALITY_TEXTS], log)
        total = workload.total(workload.passages)
        measured = measure_throughput(systems.all, workload.passages, total, settings.preset.rounds, log)
        if roof is not None:
            roof = remeasure(roof, log)
            results["roofline"] = roof.to_json()
        results["throughput"] = throughput_table(systems.all, systems.reference, measured, agreed, roof)
        sweep = batch_sweep(settings, model, workload, variants, systems, log)
        if sweep is not None:
            results["batch_sweep"] = sweep
        results["http"] = http_profiles(settings, model, workload, systems, log)
        results["targets"] = targets(variants, systems.bare, results["throughput"], results["http"])
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["duration_s"] = round(log.progress.elapsed, 1)
    results["load_average_end"] = machine.load_average()
    results["notes"] = log.notes
    return results


def _dist_version(binary: Path, package: str) -> str:
    venv = binary.parent.parent
    found = sorted(venv.glob(f"lib/python*/site-packages/{package}-*.dist-info"))
    return found[-1].name.removeprefix(f"{package}-").removesuffix(".dist-info") if found else "?"
