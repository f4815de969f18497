"""One ONNX Runtime session: options, input discovery, provider check, warm-up.

A session is owned by exactly one worker thread (see batcher.py); it never sees JSON or
HTTP. It checks at load time that the graph matches the manifest (input names, output
name and width), so a mismatched model directory fails at start, not on the first request.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from server import pooling, providers
from server.errors import StartupError
from server.manifest import Manifest, Variant

log = logging.getLogger("server.session")

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


class SessionLoadError(StartupError):
    """The ONNX file cannot be loaded or does not match its manifest."""


@dataclass(frozen=True)
class SessionConfig:
    """How to build a session (derived from Settings by the engine)."""

    device: str
    intra_op_threads: int
    inter_op_threads: int
    trt_cache_dir: Path
    spin: bool = True
    """Whether ORT's threads spin between operators (fast for back-to-back batches; an idle
    interactive session must not burn the cores the bulk session is using)."""


def choose_variant(manifest: Manifest, requested: str, on_gpu: bool) -> Variant:
    """The variant to serve: the requested one, or for ``auto`` fp16 on GPU and the
    fastest gated CPU variant (int8, else fp32) on CPU.

    ``auto`` never picks a variant recorded as not batch-invariant (its vectors would
    depend on the texts batched with it): on CPU a dynamically quantised int8 gives way
    to fp32. Asked for by name, such a variant is served, with a warning.
    """
    variants = manifest.variants
    if requested != "auto":
        if requested not in variants:
            raise SessionLoadError(
                f"variant {requested} is not in this model directory (it has {', '.join(sorted(variants))}); "
                "export it with `python -m export --variants ...` or pick another --variant"
            )
        chosen = variants[requested]
        if chosen.batch_invariant is False:
            measured = chosen.batch_max_abs_diff
            log.warning(
                "variant %s is not batch-invariant: a text's vector depends on the texts batched with "
                "it (%s); --variant auto would not serve it",
                requested,
                "not measured" if measured is None else f"by up to {measured:.1e}",
            )
        return chosen
    order = ("fp16", "fp32", "int8") if on_gpu else ("int8", "fp32")
    for name in order:
        if name in variants and variants[name].batch_invariant is not False:
            return variants[name]
    raise SessionLoadError(
        f"no batch-invariant variant usable on {'GPU' if on_gpu else 'CPU'} in {sorted(variants)}; "
        "re-export the model with `python -m export`, or name a variant with --variant to serve it anyway"
    )


def session_options(intra_op_threads: int, inter_op_threads: int, spin: bool = True) -> ort.SessionOptions:
    """The ONNX Runtime options every session runs with: all graph optimisations, sequential
    execution, ``intra_op_threads`` threads inside an operator (0: ORT's default, one per
    physical core) and ``inter_op_threads`` across operators; warnings and below not logged.

    Pure (builds an options object, starts nothing), so the exporter's parity gate and the
    bench's bare loop run graphs exactly as the server does.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = inter_op_threads
    options.log_severity_level = 3
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


class OrtSession:
    """An ORT session that maps padded int64 inputs to ``[n, dims]`` float32 vectors."""

    def __init__(
        self,
        directory: Path,
        manifest: Manifest,
        variant: Variant,
        plan: providers.ProviderPlan,
        config: SessionConfig,
    ) -> None:
        self.manifest = manifest
        self.variant = variant
        if plan.primary == providers.TENSORRT:
            config.trt_cache_dir.mkdir(parents=True, exist_ok=True)
        options = session_options(config.intra_op_threads, config.inter_op_threads, config.spin)
        path = directory / variant.file
        try:
            self._session = ort.InferenceSession(str(path), sess_options=options, providers=plan.providers)
        except Exception as exc:
            raise SessionLoadError(f"onnxruntime cannot load {path}: {exc}") from exc
        self.provider = providers.verify(config.device, plan, self._session.get_providers())
        self.input_names: Sequence[str] = self._check_graph()
        self._use_binding = self.provider == providers.CUDA

    def _check_graph(self) -> list[str]:
        outputs = {o.name: o.shape[-1] for o in self._session.get_outputs()}
        return check_graph(
            self.variant.file, self.manifest, [i.name for i in self._session.get_inputs()], outputs
        )

    def run(self, inputs: dict[str, I64]) -> F32:
        """Run one padded batch; returns pooled (not normalised) float32 vectors."""
        if self._use_binding:
            out = self._run_bound(inputs)
        else:
            out = self._session.run([self.manifest.output], inputs)[0]
        if not self.manifest.pooling_in_graph:
            out = pooling.pool(out, inputs["attention_mask"], self.manifest.pooling)
        return np.asarray(out, dtype=np.float32)

    def _run_bound(self, inputs: dict[str, I64]) -> F32:
        # IO binding lets ORT copy inputs to the GPU once and write outputs straight to host
        # memory it allocates, instead of staging through extra buffers per run.
        binding = self._session.io_binding()
        for name, array in inputs.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(array))
        binding.bind_output(self.manifest.output, "cpu")
        self._session.run_with_iobinding(binding)
        return np.asarray(binding.copy_outputs_to_cpu()[0], dtype=np.float32)

    def warm_up(self, pad_id: int, max_batch_tokens: int) -> int:
        """Run the shapes traffic will bring (short to max length, 1 to many rows); returns runs."""
        return warm_up(self.run, self.input_names, self.manifest.max_length, pad_id, max_batch_tokens)


def check_graph(
    file: str, manifest: Manifest, inputs: Sequence[str], outputs: dict[str, object]
) -> list[str]:
    """The graph's input names, checked against the manifest: the same inputs, the output,
    and its width (``outputs`` maps each output name to its last dimension, a non-int where
    dynamic). Shared by every runtime's session."""
    graph_inputs = list(inputs)
    if sorted(graph_inputs) != sorted(manifest.inputs):
        raise SessionLoadError(
            f"{file} takes inputs {graph_inputs} but the manifest says "
            f"{list(manifest.inputs)}; the directory mixes files of different exports"
        )
    if manifest.output not in outputs:
        raise SessionLoadError(f"{file} has no output {manifest.output!r} (it has {sorted(outputs)})")
    width = outputs[manifest.output]
    if isinstance(width, int) and width != manifest.dims:
        raise SessionLoadError(f"{file} outputs {width}-dim vectors but the manifest says {manifest.dims}")
    return graph_inputs


def warm_up(
    run: Callable[[dict[str, I64]], F32],
    input_names: Sequence[str],
    max_length: int,
    pad_id: int,
    max_batch_tokens: int,
) -> int:
    """Run the shapes traffic will bring (short to ``max_length``, 1 to many rows) through
    ``run``; returns the number of runs."""
    lengths = sorted({min(n, max_length) for n in (8, 32, 128, max_length)})
    runs = 0
    for length in lengths:
        for rows in (1, max(1, min(16, max_batch_tokens // length))):
            ids = np.full((rows, length), pad_id, dtype=np.int64)
            ids[:, 0] = 0
            feeds = {
                "input_ids": ids,
                "attention_mask": np.ones_like(ids),
                "token_type_ids": np.zeros_like(ids),
            }
            run({name: feeds[name] for name in input_names})
            runs += 1
    return runs


def cpu_count(cgroup_cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota.

    In a container limited to 2 CPUs on a 64-core host, ORT must run 2 threads, not 64.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    try:
        quota, period = cgroup_cpu_max.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cpus


def available_providers() -> list[str]:
    """The execution providers this onnxruntime build offers."""
    return list(ort.get_available_providers())
