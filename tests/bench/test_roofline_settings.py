from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bench.roofline import RooflineError, Shape, measure
from bench.settings import PRESETS, BenchSettings, SettingsError, from_sources, parser

MINILM = {"num_hidden_layers": 6, "hidden_size": 384, "intermediate_size": 1536}


def test_flops_per_token_of_minilm() -> None:
    shape = Shape.from_config(MINILM)
    assert shape.linear_flops_per_token == 6 * 2 * (4 * 384 * 384 + 2 * 384 * 1536)
    assert shape.flops_per_token(78) == shape.linear_flops_per_token + 6 * 4 * 78 * 384
    assert shape.flops_per_token(78) == pytest.approx(22.0e6, rel=0.01)


def test_corpus_flops_counts_attention_per_text() -> None:
    shape = Shape.from_config(MINILM)
    expected = shape.linear_flops_per_token * 30 + 6 * 4 * 384 * (10 * 10 + 20 * 20)
    assert shape.corpus_flops([10, 20]) == pytest.approx(expected)


def test_config_without_sizes_is_an_error() -> None:
    with pytest.raises(RooflineError, match="hidden_size"):
        Shape.from_config({"model_type": "bert"})


def test_gemm_measurement_is_positive() -> None:
    rate = measure(32, 64, size=64, repeats=2)
    assert rate["square_gflops"] > 0 and rate["model_gflops"] > 0


def test_defaults_are_the_quick_suite() -> None:
    settings = from_sources(["--model", "m"], env={})
    assert settings.suite == "quick"
    assert settings.preset == PRESETS["quick"]
    assert settings.preset.peers == ("st", "ort")
    assert str(settings.out).startswith("bench-results")


def test_overrides_and_full_suite() -> None:
    settings = from_sources(
        ["--model", "m", "--suite", "full", "--passages", "10", "--rounds", "2", "--peers", "ort,st,ort"],
        env={"BENCH_API_KEY": "k"},
    )
    assert settings.preset.passages == 10 and settings.preset.rounds == 2
    assert settings.preset.concurrency == PRESETS["full"].concurrency
    assert settings.preset.peers == ("ort", "st")
    assert settings.api_key == "k"
    assert settings.to_json()["api_key"] == "(set)"
    assert from_sources(["--model", "m", "--peers", "none"], env={}).preset.peers == ()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--peers", "tei"], "unknown tei"),
        (["--variants", "bf16"], "unknown bf16"),
        (["--passages", "0"], "must be positive"),
        (["--threads", "0"], "at least 1"),
    ],
)
def test_bad_flags_say_what_to_fix(argv: list[str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        from_sources(["--model", "m", *argv], env={})


def test_every_flag_has_its_environment_variable_and_the_flag_wins() -> None:
    env = {
        "BENCH_MODEL": "from-env",
        "BENCH_SUITE": "full",
        "BENCH_PEERS": "ort",
        "BENCH_PLOTS": "false",
        "BENCH_SERVER_ARGS": "--max-batch-size 32",
        "BENCH_PHASE_SECONDS": "2.5",
    }
    settings = from_sources(["--model", "from-flag"], env=env)
    assert str(settings.model) == "from-flag"
    assert settings.suite == "full" and settings.preset.peers == ("ort",) and settings.plots is False
    assert settings.server_args == ("--max-batch-size", "32")
    assert settings.preset.phase_s == 2.5 and settings.preset.rounds == PRESETS["full"].rounds
    assert from_sources(["--plots"], env=env).plots is True
    help_text = parser().format_help()
    for name in ("BENCH_API_KEY", "BENCH_CHECKPOINT", "BENCH_INFINITY_BIN", "BENCH_NO_PLOTS"):
        assert (name in help_text) == (name != "BENCH_NO_PLOTS")


def test_library_callers_give_their_own_sizes() -> None:
    tiny = replace(PRESETS["quick"], passages=3, peers=())
    settings = BenchSettings(model=Path("m"), sizes=tiny, rounds=2)
    assert settings.preset == replace(tiny, rounds=2)
    assert settings.to_json()["preset"]["passages"] == 3 and "sizes" not in settings.to_json()
