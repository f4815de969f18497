"""Execution-provider policy: a pure function from the requested device to ORT providers.

====================  ========================================  =========================
requested device      chosen providers (in order)               if missing
====================  ========================================  =========================
``cpu``               CPU                                       (always present)
``cuda``              CUDA, CPU                                 start fails (ProviderError)
``tensorrt``          TensorRT (fp16, engine cache), CUDA, CPU  start fails (ProviderError)
``auto``              CUDA, CPU if CUDA is present, else CPU    falls back to CPU, logged
====================  ========================================  =========================

``auto`` never picks TensorRT: its first engine build takes minutes, which a user should
opt into. After the session is built, :func:`verify` checks the provider ORT actually
put first; an explicitly requested GPU that ORT dropped is a start failure, never a
silent CPU fallback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.errors import StartupError

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"


class ProviderError(StartupError):
    """The requested execution provider is not available or was not used."""


@dataclass(frozen=True)
class ProviderPlan:
    """An ordered provider list with options, ready for ``ort.InferenceSession``."""

    device: str
    providers: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.providers]

    @property
    def primary(self) -> str:
        return self.providers[0][0]

    @property
    def on_gpu(self) -> bool:
        return self.primary in (CUDA, TENSORRT)


def _cuda_options(gpu_id: int) -> dict[str, Any]:
    return {
        "device_id": gpu_id,
        "arena_extend_strategy": "kSameAsRequested",
        "cudnn_conv_algo_search": "HEURISTIC",
        "do_copy_in_default_stream": True,
    }


def _tensorrt_options(
    gpu_id: int, cache_dir: Path, fp16: bool, max_batch: int, max_len: int, inputs: Sequence[str]
) -> dict[str, Any]:
    def shapes(batch: int, seq: int) -> str:
        return ",".join(f"{name}:{batch}x{seq}" for name in inputs)

    return {
        "device_id": gpu_id,
        "trt_fp16_enable": fp16,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache_dir),
        "trt_max_workspace_size": 4 << 30,
        "trt_profile_min_shapes": shapes(1, 1),
        "trt_profile_opt_shapes": shapes(max(1, max_batch // 2), min(128, max_len)),
        "trt_profile_max_shapes": shapes(max_batch, max_len),
    }


def plan(
    device: str,
    available: Sequence[str],
    *,
    gpu_id: int = 0,
    trt_cache_dir: Path = Path("trt-cache"),
    fp16: bool = False,
    max_batch: int = 64,
    max_len: int = 512,
    inputs: Sequence[str] = ("input_ids", "attention_mask"),
) -> ProviderPlan:
    """Map a requested device and ``ort.get_available_providers()`` to a provider plan."""
    have = set(available)
    cpu: tuple[str, dict[str, Any]] = (CPU, {})
    if device == "cpu":
        return ProviderPlan("cpu", [cpu])
    if device == "cuda":
        if CUDA not in have:
            raise ProviderError(
                "--device cuda was requested but onnxruntime has no CUDAExecutionProvider "
                f"(available: {', '.join(available) or 'none'}); install the `gpu` extra "
                "(onnxruntime-gpu) with matching CUDA/cuDNN, or use --device cpu"
            )
        return ProviderPlan("cuda", [(CUDA, _cuda_options(gpu_id)), cpu])
    if device == "tensorrt":
        missing = [p for p in (TENSORRT, CUDA) if p not in have]
        if missing:
            raise ProviderError(
                f"--device tensorrt was requested but onnxruntime lacks {', '.join(missing)} "
                f"(available: {', '.join(available) or 'none'}); install onnxruntime-gpu with TensorRT "
                "libraries, or use --device cuda / cpu"
            )
        trt = _tensorrt_options(gpu_id, trt_cache_dir, fp16, max_batch, max_len, inputs)
        return ProviderPlan("tensorrt", [(TENSORRT, trt), (CUDA, _cuda_options(gpu_id)), cpu])
    if device == "auto":
        if CUDA in have:
            return ProviderPlan("cuda", [(CUDA, _cuda_options(gpu_id)), cpu])
        return ProviderPlan("cpu", [cpu])
    raise ProviderError(f"unknown device {device!r}; use auto, cpu, cuda or tensorrt")


def verify(requested: str, chosen: ProviderPlan, in_use: Sequence[str]) -> str:
    """Check the providers a built session reports; return the one that runs the model.

    Raises :class:`ProviderError` when the plan's first provider is not what ORT uses
    and the user asked for that device explicitly.
    """
    actual = in_use[0] if in_use else CPU
    if actual != chosen.primary and requested != "auto":
        raise ProviderError(
            f"--device {requested} asked for {chosen.primary} but the session runs on {actual}; "
            "check the CUDA/cuDNN/TensorRT libraries onnxruntime-gpu needs (see its log above)"
        )
    return actual
