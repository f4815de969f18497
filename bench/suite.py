"""One bench run: corpus, roofline, systems side by side, HTTP load profiles, targets.

Order of a run (each step logs to stderr):

1. corpus and token counts with the model's tokenizer; machine description;
2. roofline: FLOPs per token from the checkpoint's config, fp32 GEMM rate in a child;
3. servers: ours per variant as subprocesses (or ``--url``), infinity-emb if asked and
   installed; then every system embeds a sample to check agreement with the reference;
4. throughput: every system embeds the same passages, in ``rounds`` interleaved rounds
   (the order rotates each round) so that drift in a shared machine hits all alike;
   ratios to the reference are taken within each round, then the median;
5. batch-size sweep (full suite): bare loop, engine and plain ORT by batch size;
6. HTTP profiles on the server as it is deployed (``--variant auto``): ingest throughput
   vs concurrency, vs input length, query latency closed and open loop, and mixed.

The result is one JSON-ready dict; :mod:`bench.report` renders it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson

from bench import corpus as corpus_mod
from bench import machine
from bench.client import Endpoint, HttpError, Pool
from bench.loadgen import (
    Phase,
    Record,
    Target,
    closed_loop,
    open_loop,
    prepare,
    scrape,
    server_batches,
    summarize,
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
MIXED_QUERY_RATE = 10.0
PASS_TIMEOUT = "600"  # seconds, the most a client may ask of our server


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


class Run:
    """State of one bench run; :meth:`execute` does the steps of the module docstring."""

    def __init__(self, settings: BenchSettings, progress: Progress) -> None:
        self.settings = settings
        self.preset = settings.preset
        self.progress = progress
        self.out = settings.out
        self.notes: list[str] = []
        self.results: dict[str, Any] = {}
        self.stack = contextlib.ExitStack()

    # ---- setup -------------------------------------------------------------------------

    def note(self, message: str) -> None:
        self.notes.append(message)
        self.progress.log(f"note: {message}")

    def _corpus(self) -> corpus_mod.Corpus:
        s = self.settings
        full = max(2000, self.preset.passages)
        if s.corpus is not None:
            return corpus_mod.from_jsonl(s.corpus, None, self.preset.queries)
        return corpus_mod.from_stdlib(full, self.preset.queries, seed=s.seed)

    def _variants(self) -> list[str]:
        wanted = self.settings.variants or ("fp32", "int8")
        present = [v for v in wanted if v in self.model.variants]
        if "fp16" in present and "CUDAExecutionProvider" not in self.results["machine"]["ort_providers"]:
            present.remove("fp16")
            self.note("fp16 needs a GPU; skipped on this CPU-only machine")
        missing = [v for v in wanted if v not in self.model.variants]
        if missing:
            self.note(f"{self.model.path} has no {', '.join(missing)} variant; not measured")
        if not present:
            raise BenchError(f"none of the variants {', '.join(wanted)} is in {self.model.path}")
        return present

    def setup(self) -> None:
        s = self.settings
        self.out.mkdir(parents=True, exist_ok=True)
        self.model = ModelDir.load(s.model, s.checkpoint)
        self.progress.log(
            f"model {self.model.name} from {self.model.path} (variants {sorted(self.model.variants)})"
        )
        self.results["machine"] = machine.describe(ROOT)
        m = self.results["machine"]
        self.progress.log(
            f"machine: {m['cpu']}, {m['cores']} cores, load average {m['load_average']}, threads {s.threads}"
        )
        if m["load_average"][0] > (m["cores"] or 1):
            self.note(
                f"the machine was busy when the run started (1-min load {m['load_average'][0]:.2f} on "
                f"{m['cores']} cores); absolute figures are low, ratios within a round stay fair"
            )
        self.corpus = self._corpus()
        texts = list(self.corpus.passages) + list(self.corpus.queries)
        counts = self.model.count_tokens(texts)
        self.tokens = dict(zip(texts, counts, strict=True))
        self.passages = list(self.corpus.passages[: self.preset.passages])
        self.progress.log(
            f"corpus: {self.corpus.source}, {len(self.passages)} passages in the throughput set, "
            f"{len(self.corpus.queries)} queries"
        )
        self.results["corpus"] = {
            "source": self.corpus.source,
            "digest": self.corpus.digest(),
            "passages": len(self.passages),
            "passage_tokens": asdict(LengthStats.of([self.tokens[t] for t in self.passages])),
            "queries": len(self.corpus.queries),
            "query_tokens": asdict(LengthStats.of([self.tokens[t] for t in self.corpus.queries])),
        }
        self.results["model"] = {
            "name": self.model.name,
            "dir": str(self.model.path),
            "dims": self.model.dims,
            "max_length": self.model.max_length,
            "pooling": self.model.pooling,
            "variants": sorted(self.model.variants),
            "checkpoint": str(self.model.checkpoint) if self.model.checkpoint else None,
        }
        self.variants = self._variants()

    def roofline(self) -> None:
        if not self.model.config:
            self.note("no checkpoint config.json (pass --checkpoint): roofline not computed")
            self.shape: Shape | None = None
            return
        try:
            self.shape = Shape.from_config(self.model.config)
            self.progress.log("measuring the fp32 GEMM rate (numpy) ...")
            gemm = gemm_rate(self.shape, child_env(self.settings.threads))
        except RooflineError as exc:
            self.note(f"roofline not computed: {exc}")
            self.shape = None
            return
        lengths = [self.tokens[t] for t in self.passages]
        self.useful_flops = self.shape.corpus_flops(lengths)
        self.results["roofline"] = {
            **asdict(self.shape),
            "linear_flops_per_token": self.shape.linear_flops_per_token,
            "flops_per_token_corpus": self.useful_flops / sum(lengths),
            "threads": self.settings.threads,
            "gemm_runs": [],
        }
        self._add_gemm(gemm)

    def _add_gemm(self, gemm: dict[str, float]) -> None:
        """Record one GEMM measurement; the bound is the best seen (a busy moment only lowers it)."""
        roof = self.results["roofline"]
        roof["gemm_runs"].append(gemm)
        best = max(roof["gemm_runs"], key=lambda g: max(g["square_gflops"], g["model_gflops"]))
        self.peak_flops = max(best["square_gflops"], best["model_gflops"]) * 1e9
        per_token = roof["flops_per_token_corpus"]
        roof.update(
            gemm=best, peak_gflops=self.peak_flops / 1e9, bound_tokens_per_s=self.peak_flops / per_token
        )
        self.progress.log(
            f"roofline: {per_token / 1e6:.1f} MFLOP/token on this corpus, GEMM {gemm['square_gflops']:.0f} "
            f"GFLOP/s now, best {self.peak_flops / 1e9:.0f} "
            f"-> bound {self.peak_flops / per_token:,.0f} tokens/s"
        )

    # ---- systems -----------------------------------------------------------------------

    def _info(self, endpoint: Endpoint) -> dict[str, Any]:
        async def get() -> dict[str, Any]:
            pool = Pool(endpoint, limit=1)
            try:
                reply = await pool.request("GET", "/info", headers=self._auth())
            finally:
                await pool.close()
            if reply.status != 200:
                raise BenchError(f"{endpoint.url}/info answered {reply.status}; is it our server?")
            data: dict[str, Any] = orjson.loads(reply.body)
            return data

        try:
            return run_async(get())
        except HttpError as exc:
            raise BenchError(f"cannot reach {endpoint.url}: {exc}") from exc

    def _auth(self) -> dict[str, str]:
        key = self.settings.api_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _our_server(self, variant: str) -> tuple[Endpoint, dict[str, Any]]:
        port = free_port()
        argv = our_server_argv(
            self.model.path, port, variant, self.settings.threads, self.settings.server_args
        )
        server = ManagedServer(
            f"our server ({variant})",
            argv,
            port,
            self.out / f"server-{variant}.log",
            env=child_env(self.settings.threads),
        )
        self.progress.log(f"starting our server ({variant}) on port {port} ...")
        self.stack.callback(server.stop)
        server.start()
        self.progress.log(f"our server ({variant}) ready in {server.startup_s:.1f}s")
        return server.endpoint, self._info(server.endpoint)

    def _ours_http(self, endpoint: Endpoint, info: dict[str, Any]) -> HttpServer:
        variant = str(info.get("variant", "?"))
        return HttpServer(
            key=f"server-{variant}",
            label=f"our server {variant} over HTTP (/embed, {self.preset.per_request} texts/request, "
            f"{self.preset.ingest_concurrency} clients)",
            role="ours",
            variant=variant,
            endpoint=endpoint,
            # The pass measures throughput; the deadline policy is measured by the HTTP profiles.
            target=Target("tei", "/embed", headers={**self._auth(), "x-request-timeout": PASS_TIMEOUT}),
            concurrency=self.preset.ingest_concurrency,
            per_request=self.preset.per_request,
        )

    def _infinity(self) -> HttpServer | None:
        s = self.settings
        binary = s.infinity_bin
        if not binary.is_file():
            self.note(
                f"infinity-emb is not installed at {binary}; install it in its own venv: "
                "python3 -m venv build/peer-venvs/infinity && build/peer-venvs/infinity/bin/pip install "
                "torch==2.13.0 'infinity-emb[server,torch]' -c <(echo torch==2.13.0)"
            )
            return None
        if self.model.checkpoint is None:
            self.note("infinity-emb needs the checkpoint directory (--checkpoint); skipped")
            return None
        version = _dist_version(binary, "infinity_emb")
        port = free_port()
        argv = [
            str(binary), "v2", "--model-id", str(self.model.checkpoint),
            "--served-model-name", self.model.name,
            "--engine", "torch", "--device", "cpu", "--batch-size", "32", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning", "--url-prefix", "",
        ]  # fmt: skip
        server = ManagedServer(
            "infinity-emb",
            argv,
            port,
            self.out / "infinity.log",
            ready_path="/health",
            env=child_env(s.threads),
        )
        self.progress.log(f"starting infinity-emb {version} on port {port} ...")
        self.stack.callback(server.stop)
        server.start()
        self.progress.log(f"infinity-emb ready in {server.startup_s:.1f}s")
        return HttpServer(
            key="infinity",
            label=f"infinity-emb {version} (torch fp32, batch 32) over HTTP (/embeddings, "
            f"{self.preset.per_request} texts/request, {self.preset.ingest_concurrency} clients)",
            role="peer",
            variant="fp32",
            endpoint=server.endpoint,
            target=Target("openai", "/embeddings", model=self.model.name),
            concurrency=self.preset.ingest_concurrency,
            per_request=self.preset.per_request,
            ours=False,
        )

    def systems(self) -> None:
        s = self.settings
        threads = s.threads
        systems: list[System] = []
        self.reference: System | None = None
        if "st" in s.peers:
            if self.model.checkpoint is None:
                self.note(
                    "sentence-transformers needs the checkpoint (--checkpoint): no reference, no ratios"
                )
            else:
                from bench.systems.torch_st import SentenceTransformers

                offline_hub()
                self.progress.log("loading sentence-transformers ...")
                self.reference = SentenceTransformers(
                    self.model.checkpoint, threads, self.model.max_length, self.tokens
                )
                systems.append(self.reference)
        if "ort" in s.peers and "fp32" in self.model.variants:
            systems.append(PlainOrt(self.model, threads, 32))
        if s.url:
            endpoint = Endpoint.parse(s.url)
            self.servers = {"url": (endpoint, self._info(endpoint))}
        else:
            self.servers = {v: self._our_server(v) for v in self.variants}
        infos = {key: info for key, (_, info) in self.servers.items()}
        any_info = next(iter(infos.values()))
        self.batch_tokens = int(any_info.get("max_batch_tokens", 2048))
        self.batch_size = int(any_info.get("max_batch_requests", 64))
        self.results["servers"] = infos
        from bench.systems.engine import InProcessEngine

        self.bare: dict[str, BareLoop] = {}
        for variant in self.variants:
            self.progress.log(f"loading the bare loop and the in-process engine ({variant}) ...")
            self.bare[variant] = BareLoop(self.model, variant, threads, self.batch_tokens, self.batch_size)
            systems.append(self.bare[variant])
            engine = InProcessEngine(self.model, variant, threads, self.preset.per_request)
            self.stack.callback(engine.close)
            systems.append(engine)
            if not s.url:
                systems.append(self._ours_http(*self.servers[variant]))
        if s.url:
            systems.append(self._ours_http(*self.servers["url"]))
        if "infinity" in s.peers:
            peer = self._infinity()
            if peer is not None:
                systems.append(peer)
        self.all_systems = systems

    # ---- throughput --------------------------------------------------------------------

    def quality(self) -> None:
        """Every system embeds a sample (this warms it up too); cosine to the reference."""
        sample = self.passages[:QUALITY_TEXTS]
        reference = self.reference.embed(sample) if self.reference else None
        self.agreement: dict[str, dict[str, float]] = {}
        for system in self.all_systems:
            try:
                vectors = system.embed(sample)
            except Exception as exc:
                self.note(f"{system.label} failed on the sample: {exc}")
                continue
            if reference is not None and vectors.shape == reference.shape:
                cos = cosines(vectors, reference)
                self.agreement[system.key] = {"cos_mean": float(cos.mean()), "cos_min": float(cos.min())}
                self.progress.log(f"agreement {system.key}: cos mean {cos.mean():.6f}, min {cos.min():.6f}")

    def throughput(self) -> None:
        texts = self.passages
        total = sum(self.tokens[t] for t in texts)
        rounds = self.preset.rounds
        per_round: dict[str, list[float | None]] = {s.key: [] for s in self.all_systems}
        passes: dict[str, list[dict[str, Any]]] = {s.key: [] for s in self.all_systems}
        errors: dict[str, str] = {}
        n = len(self.all_systems)
        for r in range(rounds):
            order = self.all_systems[r % n :] + self.all_systems[: r % n]
            for system in order:
                if system.key in errors:
                    per_round[system.key].append(None)
                    continue
                try:
                    result = system.run(texts)
                except Exception as exc:
                    errors[system.key] = f"{type(exc).__name__}: {exc}"
                    self.note(f"{system.label} failed: {errors[system.key]}")
                    per_round[system.key].append(None)
                    continue
                rate = total / result.seconds
                per_round[system.key].append(rate)
                passes[system.key].append(
                    {"seconds": result.seconds, "padding_ratio": result.padding_ratio, **result.detail}
                )
                self.progress.log(
                    f"round {r + 1}/{rounds} {system.key}: {rate:,.0f} tokens/s, "
                    f"{len(texts) / result.seconds:,.1f} texts/s"
                    + (f", padding {result.padding_ratio:.1%}" if result.padding_ratio is not None else "")
                )
        if self.shape is not None:
            with contextlib.suppress(RooflineError):
                self._add_gemm(gemm_rate(self.shape, child_env(self.settings.threads)))
        ref_rounds = per_round.get(self.reference.key, []) if self.reference else []
        rows = []
        for system in self.all_systems:
            values = [v for v in per_round[system.key] if v is not None]
            tps: float | None = median(values) if values else None
            ratios = [
                q
                for i, v in enumerate(per_round[system.key])
                if i < len(ref_rounds) and (q := ratio(v, ref_rounds[i])) is not None
            ]
            paddings = [p["padding_ratio"] for p in passes[system.key] if p["padding_ratio"] is not None]
            row: dict[str, Any] = {
                "key": system.key,
                "label": system.label,
                "role": system.role,
                "transport": system.transport,
                "variant": system.variant,
                "tokens_per_s": tps,
                "texts_per_s": tps * len(texts) / total if tps else None,
                "rounds_tokens_per_s": per_round[system.key],
                "ratio_to_reference": median(ratios) if ratios else None,
                "padding_ratio": median(paddings) if paddings else None,
                "passes": passes[system.key],
                "agreement": self.agreement.get(system.key),
                "error": errors.get(system.key),
            }
            if tps and self.shape is not None:
                row["roofline_share"] = self.useful_flops * tps / total / self.peak_flops
            rows.append(row)
        self.results["throughput"] = {
            "texts": len(texts),
            "tokens": total,
            "rounds": rounds,
            "reference": self.reference.key if self.reference else None,
            "systems": rows,
        }

    def batch_sweep(self) -> None:
        sizes = self.preset.batch_sizes
        if not sizes or self.preset.sweep_passages <= 0:
            return
        from bench.systems.engine import InProcessEngine

        texts = self.passages[: self.preset.sweep_passages]
        total = sum(self.tokens[t] for t in texts)
        rows: list[dict[str, Any]] = []

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
            self.progress.log(
                f"sweep {kind} {variant} batch {size}: {total / result.seconds:,.0f} tokens/s, "
                f"padding {result.padding_ratio or 0:.1%}"
            )

        for variant in self.variants:
            for size in sizes:
                measure(
                    self.bare[variant].with_limits(size * self.model.max_length, size), "bare", variant, size
                )
                engine = InProcessEngine(
                    self.model,
                    variant,
                    self.settings.threads,
                    self.preset.per_request,
                    max_batch_size=size,
                    max_batch_tokens=size * self.model.max_length,
                    warmup=False,
                )
                try:
                    measure(engine, "engine", variant, size)
                finally:
                    engine.close()
        plain = next((s for s in self.all_systems if isinstance(s, PlainOrt)), None)
        if plain is not None:
            for size in sizes:
                measure(plain.with_batch_size(size), "ort-corpus-order", "fp32", size)
        self.results["batch_sweep"] = {"texts": len(texts), "tokens": total, "rows": rows}

    # ---- HTTP profiles -----------------------------------------------------------------

    def _deployed(self) -> tuple[str, Endpoint, dict[str, Any]]:
        """The server as `make run` serves it: int8 if the model has it (``auto``), else fp32."""
        if "url" in self.servers:
            endpoint, info = self.servers["url"]
            return str(info.get("variant")), endpoint, info
        variant = "int8" if "int8" in self.servers else next(iter(self.servers))
        endpoint, info = self.servers[variant]
        return variant, endpoint, info

    async def _phase(
        self,
        endpoint: Endpoint,
        name: str,
        profile: str,
        mode: Literal["closed", "open"],
        body: Callable[[Pool], Awaitable[list[Record]]],
        *,
        concurrency: int = 0,
        rate: float | None = None,
    ) -> dict[str, Any]:
        pool = Pool(endpoint, limit=max(concurrency, 1) if mode == "closed" else 1024)
        metrics_pool = Pool(endpoint, limit=1)
        try:
            before = await scrape(metrics_pool)
            cpu = time.process_time()
            records = await body(pool)
            cpu = time.process_time() - cpu
            after = await scrape(metrics_pool, settle=0.2)
        finally:
            await pool.close()
            await metrics_pool.close()
        phase = summarize(
            name, profile, mode, records, concurrency=concurrency, target_rate=rate, client_cpu_s=cpu
        )
        self._log_phase(phase)
        return _phase_json(phase, server_batches(before, after))

    def _log_phase(self, phase: Phase) -> None:
        lat = phase.latency
        self.progress.log(
            f"{phase.name}: {phase.requests_per_s:,.1f} req/s, {phase.tokens_per_s:,.0f} tokens/s, "
            f"p50 {lat.p50_ms:.1f} ms, p99 {lat.p99_ms:.1f} ms (server p50 {phase.server_ms.p50_ms:.1f}, "
            f"queue p50 {phase.queue_ms.p50_ms:.1f}), errors {phase.errors} {phase.statuses}, "
            f"client CPU {phase.client_cpu_s / phase.wall_s:.0%}"
        )

    def http(self) -> None:
        variant, endpoint, info = self._deployed()
        p = self.preset
        target = Target("tei", "/embed", headers=self._auth())
        tokens = [self.tokens[t] for t in self.passages]
        ingest = prepare(target, self.passages, tokens, p.per_request)
        queries = list(self.corpus.queries)
        query_reqs = prepare(target, queries, [self.tokens[q] for q in queries], 1, single=True)
        out: dict[str, Any] = {"variant": variant, "server": info.get("model_id"), "phases": []}
        phases: list[dict[str, Any]] = out["phases"]
        self.progress.log(f"HTTP profiles on our server ({variant}) at {endpoint.url}")

        def closed(reqs: Sequence[Any], c: int) -> Callable[[Pool], Awaitable[list[Record]]]:
            return lambda pool: closed_loop(pool, target, reqs, c, p.phase_s)

        def opened(reqs: Sequence[Any], arrivals: list[float]) -> Callable[[Pool], Awaitable[list[Record]]]:
            return lambda pool: open_loop(pool, target, reqs, arrivals)

        for c in p.concurrency:
            phases.append(
                run_async(
                    self._phase(
                        endpoint, f"ingest c={c}", "ingest", "closed", closed(ingest, c), concurrency=c
                    )
                )
            )
        for name, texts in self._length_classes().items():
            reqs = prepare(target, texts, [self.tokens[t] for t in texts], p.per_request)
            phase = run_async(
                self._phase(
                    endpoint, f"length {name}", f"length:{name}", "closed",
                    closed(reqs, p.ingest_concurrency),
                    concurrency=p.ingest_concurrency,
                )
            )  # fmt: skip
            bare = self.bare.get(variant)
            if bare is not None:
                result = bare.run(texts)
                phase["bare_tokens_per_s"] = sum(self.tokens[t] for t in texts) / result.seconds
                self.progress.log(f"bare loop on {name} texts: {phase['bare_tokens_per_s']:,.0f} tokens/s")
            phases.append(phase)
        capacity = 0.0
        for c in p.query_concurrency:
            phase = run_async(
                self._phase(endpoint, f"query c={c}", "query", "closed", closed(query_reqs, c), concurrency=c)
            )
            capacity = max(capacity, phase["requests_per_s"])
            phases.append(phase)
        out["query_capacity_rps"] = capacity
        for i, load in enumerate(p.open_loads):
            rate = max(load * capacity, 0.5)
            arrivals = poisson_arrivals(rate, p.phase_s, self.settings.seed + i)
            phases.append(
                run_async(
                    self._phase(
                        endpoint,
                        f"query open {load:.0%}",
                        "query",
                        "open",
                        opened(query_reqs, arrivals),
                        rate=rate,
                    )
                )
            )
        out["mixed"] = run_async(self._mixed(endpoint, target, ingest, query_reqs, capacity))
        self.results["http"] = out

    def _length_classes(self) -> dict[str, list[str]]:
        n = self.preset.length_texts
        pool = list(self.corpus.passages)
        cap = self.model.max_length
        return {
            "short": list(self.corpus.queries[:n]),
            "medium": [t for t in pool if 60 <= self.tokens[t] <= 120][:n],
            "long": [t for t in pool if self.tokens[t] >= min(180, cap - 8)][:n],
        }

    async def _mixed(
        self,
        endpoint: Endpoint,
        target: Target,
        ingest: Sequence[Any],
        queries: Sequence[Any],
        capacity: float,
    ) -> dict[str, Any]:
        """Query latency at a modest open-loop rate, alone and while ingest saturates the server."""
        p = self.preset
        rate = min(MIXED_QUERY_RATE, max(capacity * 0.2, 1.0))
        arrivals = poisson_arrivals(rate, p.phase_s, self.settings.seed + 100)

        async def alone(pool: Pool) -> list[Record]:
            return await open_loop(pool, target, queries, arrivals)

        alone_phase = await self._phase(endpoint, "query alone", "mixed", "open", alone, rate=rate)
        ingest_pool = Pool(endpoint, limit=p.ingest_concurrency)
        query_pool = Pool(endpoint, limit=1024)
        cpu = time.process_time()
        try:
            ingest_task = asyncio.ensure_future(
                closed_loop(ingest_pool, target, ingest, p.ingest_concurrency, p.phase_s + 1.0)
            )
            await asyncio.sleep(1.0)
            query_records = await open_loop(query_pool, target, queries, arrivals)
            ingest_records = await ingest_task
        finally:
            await ingest_pool.close()
            await query_pool.close()
        cpu = time.process_time() - cpu
        under = summarize(
            "query under ingest", "mixed", "open", query_records, target_rate=rate, client_cpu_s=cpu
        )
        load = summarize(
            "ingest during queries", "mixed", "closed", ingest_records, concurrency=p.ingest_concurrency
        )
        self._log_phase(under)
        self._log_phase(load)
        return {
            "query_rate": rate,
            "query_alone": alone_phase,
            "query_under_ingest": _phase_json(under, None),
            "ingest": _phase_json(load, None),
        }

    # ---- targets and the whole run -----------------------------------------------------

    def targets(self) -> None:
        rows = {r["key"]: r for r in self.results.get("throughput", {}).get("systems", [])}
        out: list[dict[str, Any]] = []

        def add(name: str, value: float | None, goal: float, unit: str = "x") -> None:
            out.append(
                {
                    "name": name,
                    "value": value,
                    "target": goal,
                    "unit": unit,
                    "met": value is not None and value >= goal,
                }
            )

        for variant in self.variants:
            bare = rows.get(self.bare[variant].key) if variant in self.bare else None
            server = next(
                (
                    r
                    for r in rows.values()
                    if r["transport"] == "http" and r["role"] == "ours" and r["variant"] == variant
                ),
                None,
            )
            if bare and server:
                per_round = [
                    q
                    for a, b in zip(server["rounds_tokens_per_s"], bare["rounds_tokens_per_s"], strict=True)
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
        http = self.results.get("http", {})
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
        self.results["targets"] = out

    def execute(self) -> dict[str, Any]:
        started = datetime.now(UTC)
        self.results.update(
            {"schema": 1, "started": started.isoformat(timespec="seconds"), "config": self.settings.to_json()}
        )
        with self.stack:
            self.setup()
            self.roofline()
            self.systems()
            self.quality()
            self.throughput()
            self.batch_sweep()
            self.http()
            self.targets()
        self.results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        self.results["duration_s"] = round(self.progress.elapsed, 1)
        self.results["load_average_end"] = machine.load_average()
        self.results["notes"] = self.notes
        return self.results


def _phase_json(phase: Phase, batches: dict[str, float] | None) -> dict[str, Any]:
    data = asdict(phase)
    data["errors"] = phase.errors
    data["server_batches"] = batches
    return data


def _dist_version(binary: Path, package: str) -> str:
    venv = binary.parent.parent
    found = sorted(venv.glob(f"lib/python*/site-packages/{package}-*.dist-info"))
    return found[-1].name.removeprefix(f"{package}-").removesuffix(".dist-info") if found else "?"


def run(settings: BenchSettings, progress: Progress | None = None) -> dict[str, Any]:
    """Run the suite of ``settings`` and return the results (not yet written)."""
    return Run(settings, progress or Progress()).execute()
