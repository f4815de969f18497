"""`python -m rag ...` as users run it: commands, output, exit codes (2 usage, 1 runtime)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from rag.__main__ import main
from tests.rag.chat_standin import ChatStandin
from tests.rag.conftest import Running
from tests.rag.embed_standin import EmbedStandin
from tests.rag.es_standin import EsStandin

pytestmark = pytest.mark.usefixtures("clean_env", "in_tmp")


@pytest.fixture
def env(
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
    es: Running[EsStandin],
    embed: Running[EmbedStandin],
    chat: Running[ChatStandin],
) -> None:
    """The services, configured the way a user would: environment variables."""
    monkeypatch.setenv("ES_URL", es.url)
    monkeypatch.setenv("EMBED_URL", embed.url)
    monkeypatch.setenv("CHAT_BASE_URL", f"{chat.url}/v1")
    monkeypatch.setenv("CHAT_MODEL", "standin-chat")
    monkeypatch.setenv("DASHSCOPE_API_KEY", "dash-key")
    monkeypatch.setenv("RAG_RETRY_BACKOFF", "0.01")


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


@pytest.mark.usefixtures("env")
def test_the_whole_workflow_from_the_command_line(
    make_corpus: Callable[..., Path], chat: Running[ChatStandin], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run("setup")
    assert code == 0 and "index rag-kb: created" in out and "ingest pipeline rag-embed: created" in out
    code, out = run("setup")
    assert code == 0 and out.count(": exists") == 4
    root = make_corpus()
    code, out = run("ingest", str(root))
    assert code == 0 and "5 documents" in out and "10 chunks" in out and "0 failed" in out
    assert "ingest (client) [" in capsys.readouterr().err

    code, out = run("search", "when do unused vacation days expire", "--k", "2")
    assert code == 0
    assert (
        out.splitlines()[0].startswith(" 1. ")
        and "corpus/handbook/vacation.md (chunk 2)" in out.splitlines()[0]
    )
    code, out = run("search", "office", "--json", "--filter", "lang=de", "--hybrid")
    result = json.loads(out)
    assert result["fusion"] == "server" and [r["doc_id"] for r in result["results"]] == ["faq-2"]

    code, out = run("ask", "When do unused vacation days expire?")
    assert code == 0
    assert out.startswith("Unused vacation days expire on March 31 of the following year. [1]")
    assert "Sources:\n[1] corpus/handbook/vacation.md (chunk 2, score" in out
    sent = chat.standin.requests[-1]
    assert sent["stream"] is True and sent["model"] == "standin-chat"
    code, out = run("ask", "Who won the football world cup?", "--json")
    answer = json.loads(out)
    assert answer["answer"] == "I don't know." and answer["citations"] == []


@pytest.mark.usefixtures("env")
def test_setup_with_differences_exits_1_and_replace_fixes_it(
    make_embed: Callable[..., Running[EmbedStandin]], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("setup")[0] == 0
    moved = make_embed()
    code, out = run("setup", "--embed-url-for-es", moved.url)
    assert code == 1 and "inference endpoint rag-embedder: differs" in out and "--replace" in out
    assert run("setup", "--embed-url-for-es", moved.url, "--replace")[0] == 0


@pytest.mark.usefixtures("env")
def test_failed_items_exit_1_and_list_their_ids(
    make_corpus: Callable[..., Path], es: Running[EsStandin], capsys: pytest.CaptureFixture[str]
) -> None:
    run("setup")
    es.standin.faults.fail_bulk_items(status=400, ids={"faq-1#0"})
    code, out = run("ingest", str(make_corpus()))
    assert code == 1 and "failed: faq-1#0: 400" in out
    assert "1 items failed (listed above); re-run the same command to retry them" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["serch", "x"])
    assert caught.value.code == 2
    assert run("search", "x", "--k", "lots")[0] == 2
    assert "--k must be a number" in capsys.readouterr().err
    assert run("ingest", str(tmp_path / "missing"))[0] == 2
    assert "does not exist" in capsys.readouterr().err
    assert run("ask", "why?", "--es-url", "http://127.0.0.1:9")[0] == 2
    assert "export DASHSCOPE_API_KEY" in capsys.readouterr().err


def test_unreachable_services_exit_1_naming_the_setting(
    embed: Running[EmbedStandin], es: Running[EsStandin], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run("setup", "--es-url", "http://127.0.0.1:9", "--embed-url", embed.url, "--max-retries", "0")
    assert code == 1 and "cannot reach Elasticsearch at ES_URL=http://127.0.0.1:9" in capsys.readouterr().err
    code, _ = run("setup", "--es-url", es.url, "--embed-url", "http://127.0.0.1:9", "--max-retries", "0")
    assert code == 1 and "EMBED_URL=http://127.0.0.1:9" in capsys.readouterr().err


def test_python_dash_m_rag_help_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rag", "ingest", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert "--via {client,pipeline}" in out.stdout and "env ES_URL" in out.stdout
