"""Building the engine of one served model: the composition root of ``python -m server``.

:func:`load_engine` reads and verifies the manifest, builds the tokenizer, decides the
device once (the execution-provider plan), picks the variant, builds the ONNX Runtime
sessions, resolves the automatic batch budget and warms up. It blocks (seconds to
minutes); the app calls it before the socket opens. Anything that makes the directory
unservable raises :class:`~server.errors.StartupError` with one clear line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Protocol, TypeVar

from server import cpu, providers, runtime
from server.batcher import Session, lower_thread_priority
from server.engine import Engine
from server.errors import StartupError
from server.manifest import ManifestError, load
from server.metrics import Metrics
from server.session import OrtSession, SessionConfig, available_providers, choose_variant, cpu_count
from server.settings import Settings
from server.tokenizer import Tokenizer

log = logging.getLogger("server.loader")


class ModelSession(Session, Protocol):
    """A session of either runtime (:class:`OrtSession`, ``OpenVinoSession``) as the loader uses it."""

    provider: str

    def warm_up(self, pad_id: int, max_batch_tokens: int) -> int: ...


S = TypeVar("S", bound=ModelSession)


class ModelLoadError(StartupError):
    """The model directory cannot be served; the message says why and what to do."""


def build_at_lower_priority(nice: int, build: Callable[[], S]) -> S:
    """``build()`` run in a thread at ``nice`` more than ours, so that the threads the runtime
    starts for the session (ONNX Runtime and OpenVINO both start them at construction) run at
    that priority too."""
    if not nice:
        return build()
    with ThreadPoolExecutor(1, initializer=lower_thread_priority, initargs=(nice,)) as pool:
        return pool.submit(build).result()


def load_engine(settings: Settings, metrics: Metrics) -> Engine:
    """The engine for ``settings.model``, warm and ready to serve (blocking)."""
    directory = settings.model
    try:
        manifest = load(directory, verify_hashes=True)
    except ManifestError as exc:
        raise ModelLoadError(str(exc)) from exc
    tokenizer = Tokenizer(directory, manifest.max_length)
    available = available_providers()
    on_gpu = providers.plan(settings.device, available).on_gpu
    variant = choose_variant(manifest, settings.variant, on_gpu=on_gpu)
    plan = providers.plan(
        settings.device,
        available,
        gpu_id=settings.gpu_id,
        trt_cache_dir=settings.trt_cache_dir,
        fp16=variant.name == "fp16",
        max_batch=settings.max_batch_size,
        max_len=manifest.max_length,
        inputs=manifest.inputs,
    )
    threads = settings.threads_per_session(cpu_count())
    config = SessionConfig(
        device=settings.device,
        intra_op_threads=threads,
        inter_op_threads=settings.inter_op_threads,
        trt_cache_dir=settings.trt_cache_dir,
    )
    chosen = runtime.choose_runtime(
        settings.runtime, plan.on_gpu, variant.name, runtime.openvino_version(), cpu.flags()
    )
    if chosen.runtime == runtime.OPENVINO and variant.name not in runtime.OPENVINO_VARIANTS:
        log.warning(
            "variant %s on OpenVINO is not batch-invariant: a text's vector depends on the texts "
            "batched with it; --runtime auto would run it on ONNX Runtime",
            variant.name,
        )

    log.info("runtime %s (%s)", chosen.runtime, chosen.reason)

    def session(session_config: SessionConfig) -> ModelSession:
        if chosen.runtime == runtime.OPENVINO:
            from server.openvino_session import OpenVinoSession

            return OpenVinoSession(directory, manifest, variant, session_config)
        return OrtSession(directory, manifest, variant, plan, session_config)

    # Bulk sessions are built at the bulk threads' lower priority (the runtime starts its
    # threads at construction); interactive ones at ours, idle between queries without spinning.
    nice = settings.bulk_nice if settings.interactive_sessions else 0
    sessions = [build_at_lower_priority(nice, lambda: session(config)) for _ in range(settings.sessions)]
    quiet = replace(config, spin=False)
    interactive = [session(quiet) for _ in range(settings.interactive_sessions)]
    max_batch_tokens = settings.batch_tokens(on_gpu=plan.on_gpu)
    started = time.perf_counter()
    every = sessions + interactive
    runs = sum(s.warm_up(tokenizer.pad_id, max_batch_tokens) for s in every) if settings.warmup else 0
    log.info(
        "model %s (%s, %d-dim, max %d tokens, %s pooling) variant %s on %s; %d bulk + %d interactive "
        "session(s) x %d intra-op threads; batches <= %d tokens / %d texts; queue <= %d requests / %d "
        "tokens; warm-up %d runs in %.1fs",
        manifest.name,
        manifest.revision,
        manifest.dims,
        manifest.max_length,
        manifest.pooling,
        variant.name,
        sessions[0].provider,
        len(sessions),
        len(interactive),
        threads,
        max_batch_tokens,
        settings.max_batch_size,
        settings.max_queue_requests,
        settings.max_queue_tokens,
        runs,
        time.perf_counter() - started,
    )
    return Engine(
        settings,
        manifest,
        tokenizer,
        sessions,
        metrics,
        interactive=interactive,
        variant=variant.name,
        provider=sessions[0].provider,
        max_batch_tokens=max_batch_tokens,
    )
