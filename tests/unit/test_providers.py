import pytest

from server.providers import CPU, CUDA, TENSORRT, ProviderError, plan, verify

ALL_GPU = [TENSORRT, CUDA, CPU]


def test_cpu_always_cpu() -> None:
    assert plan("cpu", ALL_GPU).names == [CPU]


def test_auto_prefers_cuda_but_never_tensorrt() -> None:
    assert plan("auto", ALL_GPU).names == [CUDA, CPU]
    assert plan("auto", [CPU]).names == [CPU]


def test_explicit_cuda_missing_fails_with_a_clear_message() -> None:
    with pytest.raises(ProviderError, match="onnxruntime-gpu"):
        plan("cuda", [CPU])


def test_tensorrt_needs_tensorrt_and_cuda() -> None:
    with pytest.raises(ProviderError, match="TensorrtExecutionProvider"):
        plan("tensorrt", [CUDA, CPU])
    p = plan(
        "tensorrt",
        ALL_GPU,
        fp16=True,
        max_batch=32,
        max_len=128,
        trt_cache_dir="/c",  # type: ignore[arg-type]
        inputs=["input_ids", "attention_mask"],
    )
    assert p.names == [TENSORRT, CUDA, CPU]
    options = dict(p.providers)[TENSORRT]
    assert options["trt_fp16_enable"] is True
    assert options["trt_engine_cache_enable"] is True
    assert options["trt_profile_max_shapes"] == "input_ids:32x128,attention_mask:32x128"


def test_unknown_device() -> None:
    with pytest.raises(ProviderError, match="unknown device"):
        plan("tpu", [CPU])


def test_verify_fails_when_explicit_gpu_was_dropped() -> None:
    p = plan("cuda", [CUDA, CPU])
    with pytest.raises(ProviderError, match="runs on CPUExecutionProvider"):
        verify("cuda", p, [CPU])
    assert verify("cuda", p, [CUDA, CPU]) == CUDA


def test_verify_auto_falls_back_quietly() -> None:
    p = plan("auto", [CUDA, CPU])
    assert verify("auto", p, [CPU]) == CPU
