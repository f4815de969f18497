"""Which inference runtime runs the model: a pure policy, then the runtime's own check.

Two runtimes can run the exported ONNX files on a CPU: ONNX Runtime (always installed, the
only one on GPUs) and OpenVINO (the optional ``openvino`` extra). :func:`choose_runtime`
maps the request (``--runtime``), the device, the variant, whether openvino imports and the
CPU's flags to one runtime, with the reason, and raises for requests that cannot be met.

``auto`` picks OpenVINO only where it was measured to win and to keep the project's
guarantees (docs/PERFORMANCE.md, "Runtimes"): the fp32 variant, on a CPU with AVX-512 and
AMX (:data:`OPENVINO_FLAGS`), where it ran the same file 1.5x or more faster than ONNX
Runtime with the same vectors (max abs diff under 1e-6) and batch-invariant. Its int8 run
of the static QDQ file is faster too but not batch-invariant (a text's vector moves by up to
1e-2 when padding changes its batch's length), so int8 stays on ONNX Runtime unless
OpenVINO is named.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from importlib import metadata
from typing import Literal

from server.errors import StartupError

log = logging.getLogger("server.runtime")

Runtime = Literal["onnxruntime", "openvino"]
ONNXRUNTIME: Runtime = "onnxruntime"
OPENVINO: Runtime = "openvino"
OPENVINO_FLAGS: tuple[str, ...] = ("avx512f", "amx_bf16")
"""CPU flags under which ``auto`` picks OpenVINO: the CPU class it was measured on."""
OPENVINO_VARIANTS: tuple[str, ...] = ("fp32",)
"""Variants OpenVINO runs batch-invariantly (within 1e-5), so ``auto`` may serve them with it."""


class RuntimeUnavailableError(StartupError):
    """The requested runtime cannot run here; the message says what to do."""


@dataclass(frozen=True)
class RuntimeChoice:
    runtime: Runtime
    reason: str


def choose_runtime(
    requested: str,
    on_gpu: bool,
    variant: str,
    openvino_version: str | None,
    cpu_flags: Collection[str],
) -> RuntimeChoice:
    """The runtime for ``requested`` (``auto``, ``onnxruntime`` or ``openvino``); pure."""
    if requested == ONNXRUNTIME:
        return RuntimeChoice(ONNXRUNTIME, "asked for")
    if requested == OPENVINO:
        if on_gpu:
            raise RuntimeUnavailableError(
                "--runtime openvino runs on the CPU only; add --device cpu or use --runtime onnxruntime"
            )
        if openvino_version is None:
            raise RuntimeUnavailableError(
                "--runtime openvino needs the openvino package: pip install -e '.[openvino]' "
                "(or use --runtime auto)"
            )
        return RuntimeChoice(OPENVINO, f"asked for (openvino {openvino_version})")
    if on_gpu:
        return RuntimeChoice(ONNXRUNTIME, "GPU")
    if openvino_version is None:
        return RuntimeChoice(ONNXRUNTIME, "openvino is not installed")
    if variant not in OPENVINO_VARIANTS:
        return RuntimeChoice(ONNXRUNTIME, f"OpenVINO is not batch-invariant on the {variant} variant")
    missing = [f for f in OPENVINO_FLAGS if f not in cpu_flags]
    if missing:
        return RuntimeChoice(ONNXRUNTIME, f"the CPU lacks {', '.join(missing)}, where OpenVINO was measured")
    return RuntimeChoice(OPENVINO, f"auto: {variant} on a CPU with {', '.join(OPENVINO_FLAGS)}")


def openvino_version() -> str | None:
    """The installed openvino's version, or None when it is not installed."""
    try:
        return metadata.version("openvino")
    except metadata.PackageNotFoundError:
        return None
