"""The CPU's name and the instruction-set extensions that decide which kernels run.

Recorded wherever a figure depends on them: the exporter writes them into the manifest
next to the parity figures (an int8 gate passed with one set of kernels), the bench with
every result, and ``/info`` shows the serving machine's.
"""

from __future__ import annotations

import platform
from pathlib import Path

# The extensions ONNX Runtime's and OpenVINO's CPU kernels choose between, oldest first.
ISA_FLAGS: tuple[str, ...] = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_bf16",
    "amx_int8",
    "amx_fp16",
)


def _fields(cpuinfo: Path) -> tuple[str, frozenset[str]]:
    """The first processor's model name and flags ("", empty where unreadable)."""
    model, flags = "", frozenset[str]()
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = frozenset(value.split())
    except OSError:
        pass
    return model, flags


def flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """Every feature flag of the CPU (empty where /proc/cpuinfo cannot be read)."""
    return _fields(cpuinfo)[1]


def describe(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, list[str]]:
    """The CPU's model name and which of :data:`ISA_FLAGS` it has ("unknown", [] where unreadable)."""
    model, found = _fields(cpuinfo)
    if not model:
        model = platform.processor() or platform.machine() or "unknown"
    return model, [f for f in ISA_FLAGS if f in found]
