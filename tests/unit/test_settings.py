from pathlib import Path

import pytest

from server.settings import Settings, SettingsError, from_sources, parser


def test_flag_beats_env_beats_default() -> None:
    s = from_sources(["--port", "9000"], env={"EMBED_PORT": "9100", "EMBED_HOST": "0.0.0.0"})
    assert s.port == 9000
    assert s.host == "0.0.0.0"
    assert from_sources([], env={}).port == 8000


def test_env_types_are_converted_and_checked() -> None:
    s = from_sources(
        [],
        env={
            "EMBED_METRICS_REQUIRE_KEY": "true",
            "EMBED_REQUEST_TIMEOUT": "2.5",
            "EMBED_MODEL": "/m",
            "EMBED_DEVICE": "cpu",
        },
    )
    assert s.metrics_require_key is True
    assert s.request_timeout == 2.5
    assert s.model == Path("/m")
    with pytest.raises(SettingsError, match="--device must be one of"):
        from_sources([], env={"EMBED_DEVICE": "tpu"})
    with pytest.raises(SettingsError, match="--max-batch-size must be a number"):
        from_sources([], env={"EMBED_MAX_BATCH_SIZE": "many"})
    with pytest.raises(SettingsError, match="number"):
        from_sources([], env={"EMBED_REQUEST_TIMEOUT": "nan"})


def test_bad_values_are_refused() -> None:
    with pytest.raises(SettingsError, match="--max-batch-tokens must be a positive"):
        Settings(max_batch_tokens=0)
    with pytest.raises(SettingsError, match="--port"):
        Settings(port=70000)


def test_every_field_is_documented_in_help() -> None:
    text = parser().format_help()
    for name in Settings.__dataclass_fields__:
        assert "--" + name.replace("_", "-") in text
        assert "EMBED_" + name.upper() in text


def test_api_key_is_not_in_repr_and_file_is_read(tmp_path: Path) -> None:
    assert "s3cret" not in repr(Settings(api_key="s3cret"))
    key = tmp_path / "key"
    key.write_text("from-file\n")
    assert Settings(api_key_file=key).resolved_api_key == "from-file"
    with pytest.raises(SettingsError, match="cannot be read"):
        _ = Settings(api_key_file=tmp_path / "missing").resolved_api_key


def test_threads_split_across_sessions() -> None:
    assert Settings(sessions=2).threads_per_session(8) == 4
    assert Settings(intra_op_threads=3).threads_per_session(8) == 3
    assert Settings().threads_per_session(1) == 1


def test_cpu_count_honours_a_cgroup_quota(tmp_path: Path) -> None:
    from server.session import cpu_count

    unlimited = tmp_path / "max"
    unlimited.write_text("max 100000\n")
    limited = tmp_path / "quota"
    limited.write_text("150000 100000\n")
    assert cpu_count(unlimited) >= 1
    assert cpu_count(limited) == 1
    assert cpu_count(tmp_path / "absent") == cpu_count(unlimited)
