import os
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
            "EMBED_PUBLIC_METRICS": "true",
            "EMBED_REQUEST_TIMEOUT": "2.5",
            "EMBED_MODEL": "/m",
            "EMBED_DEVICE": "cpu",
        },
    )
    assert s.public_metrics is True
    assert s.request_timeout == 2.5
    assert s.model == Path("/m")
    with pytest.raises(SettingsError, match="--device must be one of"):
        from_sources([], env={"EMBED_DEVICE": "tpu"})
    with pytest.raises(SettingsError, match="--max-batch-size must be a number"):
        from_sources([], env={"EMBED_MAX_BATCH_SIZE": "many"})
    with pytest.raises(SettingsError, match="number"):
        from_sources([], env={"EMBED_REQUEST_TIMEOUT": "nan"})


def test_bad_values_are_refused() -> None:
    with pytest.raises(SettingsError, match="--max-batch-tokens must be 0"):
        Settings(max_batch_tokens=-1)
    with pytest.raises(SettingsError, match="--max-batch-size must be a positive"):
        Settings(max_batch_size=0)
    with pytest.raises(SettingsError, match="--port"):
        Settings(port=70000)


def test_the_batch_budget_is_automatic_unless_given() -> None:
    auto = Settings()
    assert (auto.batch_tokens(on_gpu=False), auto.batch_tokens(on_gpu=True)) == (2048, 8192)
    # An explicit value is kept on either device, even when it equals the other's default.
    given = from_sources(["--max-batch-tokens", "8192"], env={})
    assert (given.batch_tokens(on_gpu=False), given.batch_tokens(on_gpu=True)) == (8192, 8192)


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
    assert cpu_count(unlimited) == len(os.sched_getaffinity(0))
    assert cpu_count(limited) == min(1, len(os.sched_getaffinity(0)))
    assert cpu_count(tmp_path / "absent") == cpu_count(unlimited)


@pytest.mark.parametrize("content", ["", "\n", "   \nsecond-line-key\n", "\t\r\n"])
def test_a_blank_key_file_is_refused_not_taken_as_no_auth(tmp_path: Path, content: str) -> None:
    key = tmp_path / "key"
    key.write_text(content)
    with pytest.raises(SettingsError, match="first line is blank"):
        _ = Settings(api_key_file=key).resolved_api_key


@pytest.mark.parametrize(
    ("key", "what"),
    [
        ("clé-secrète", "non-ASCII"),
        ("two words", "whitespace"),
        ("tab\tinside", "whitespace"),
        ("bell\x07", "control character"),
        ("   ", "whitespace"),
    ],
)
def test_keys_no_header_can_carry_are_refused(tmp_path: Path, key: str, what: str) -> None:
    for make in (
        lambda: Settings(api_key=key),
        lambda: from_sources([], env={"EMBED_API_KEY": key}),
    ):
        with pytest.raises(SettingsError, match=what) as caught:
            make()
        assert key not in str(caught.value)
    path = tmp_path / "key"
    path.write_text(f"x{key}x\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=f"--api-key-file .*{what}"):
        _ = Settings(api_key_file=path).resolved_api_key


def test_key_file_tolerates_a_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_bytes(b"\xef\xbb\xbfk3y-from-windows\r\nrest\r\n")
    assert Settings(api_key_file=path).resolved_api_key == "k3y-from-windows"


def test_a_bad_key_file_exits_2_before_serving(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from server.__main__ import main

    path = tmp_path / "key"
    path.write_text("\n")
    assert main(["--model", str(tmp_path / "absent"), "--api-key-file", str(path)]) == 2
    assert "first line is blank" in capsys.readouterr().err


def test_a_key_on_the_command_line_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    from_sources([], env={"EMBED_API_KEY": "from-env"})
    assert not caplog.records
    assert from_sources(["--api-key", "on-the-cli"], env={}).api_key == "on-the-cli"
    (record,) = caplog.records
    assert record.levelname == "WARNING" and "ps" in record.message and "on-the-cli" not in record.message
    text = " ".join(parser().format_help().split())
    assert "Prefer EMBED_API_KEY or --api-key-file" in text and "preferred over --api-key" in text
