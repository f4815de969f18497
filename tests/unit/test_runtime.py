"""The runtime policy: which runtime runs the model, from fake installs and CPU flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from server import cpu
from server.runtime import (
    OPENVINO_FLAGS,
    RuntimeUnavailableError,
    choose_runtime,
)
from server.settings import SettingsError, from_sources

SPR = frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"})
EPYC_AVX2 = frozenset({"avx2", "fma"})


def test_auto_runs_fp32_on_openvino_where_it_was_measured() -> None:
    choice = choose_runtime("auto", on_gpu=False, variant="fp32", openvino_version="2026.4.1", cpu_flags=SPR)
    assert choice.runtime == "openvino"


@pytest.mark.parametrize(
    ("on_gpu", "variant", "version", "flags", "why"),
    [
        (True, "fp32", "2026.4.1", SPR, "GPU"),
        (False, "fp32", None, SPR, "not installed"),
        (False, "int8", "2026.4.1", SPR, "not batch-invariant on the int8"),
        (False, "fp32", "2026.4.1", EPYC_AVX2, "lacks avx512f, amx_bf16"),
        (False, "fp32", "2026.4.1", SPR - {"amx_bf16"}, "lacks amx_bf16"),
    ],
)
def test_auto_keeps_onnxruntime_everywhere_else(
    on_gpu: bool, variant: str, version: str | None, flags: frozenset[str], why: str
) -> None:
    choice = choose_runtime("auto", on_gpu=on_gpu, variant=variant, openvino_version=version, cpu_flags=flags)
    assert choice.runtime == "onnxruntime"
    assert why in choice.reason


def test_a_named_runtime_is_used_or_refused_with_what_to_do() -> None:
    assert choose_runtime("onnxruntime", False, "fp32", "2026.4.1", SPR).runtime == "onnxruntime"
    # Named, OpenVINO runs any CPU variant (the loader warns about int8) on any CPU.
    assert choose_runtime("openvino", False, "int8", "2026.4.1", EPYC_AVX2).runtime == "openvino"
    with pytest.raises(RuntimeUnavailableError, match=r"pip install -e '\.\[openvino\]'"):
        choose_runtime("openvino", False, "fp32", None, SPR)
    with pytest.raises(RuntimeUnavailableError, match="--device cpu"):
        choose_runtime("openvino", True, "fp32", "2026.4.1", SPR)


def test_cpu_flags_come_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu avx512f amx_bf16\n\nflags : other\n"
    )
    assert cpu.flags(cpuinfo) == frozenset({"fpu", *OPENVINO_FLAGS})
    assert cpu.flags(tmp_path / "missing") == frozenset()
    # What the manifest and the bench record: the name and the kernel-deciding extensions only.
    assert cpu.describe(cpuinfo) == ("Xeon", ["avx512f", "amx_bf16"])


def test_runtime_setting_from_flag_and_environment() -> None:
    assert from_sources([], env={}).runtime == "auto"
    assert from_sources(["--runtime", "openvino"], env={}).runtime == "openvino"
    assert from_sources([], env={"EMBED_RUNTIME": "onnxruntime"}).runtime == "onnxruntime"
    with pytest.raises(SettingsError, match="--runtime must be one of auto, onnxruntime, openvino"):
        from_sources([], env={"EMBED_RUNTIME": "tensorflow"})
