"""`python -m rag ...` as users run it: commands, output, exit codes (2 usage, 1 runtime)."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from rag.__main__ import SETTINGS_OF, main, settings_of
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
    # A budget that cuts the Markdown files in two chunks each, to ask about the second.
    code, out = run("ingest", str(root), "--chunk-tokens", "20", "--chunk-overlap", "0")
    assert code == 0 and "5 documents" in out and "8 chunks" in out and "0 failed" in out
    assert "embed [" in capsys.readouterr().err

    code, out = run("search", "when do unused vacation days expire", "--k", "2")
    assert code == 0
    assert (
        out.splitlines()[0].startswith(" 1. ")
        and "corpus/handbook/vacation.md (chunk 1)" in out.splitlines()[0]
    )
    code, out = run("search", "office", "--json", "--filter", "lang=de", "--hybrid")
    result = json.loads(out)
    assert result["fusion"] == "server" and [r["doc_id"] for r in result["results"]] == ["faq-2"]

    code, out = run("ask", "When do unused vacation days expire?")
    assert code == 0
    # The stand-in answers with the chunk's first sentence: its section prefix, then the fact.
    assert out.startswith(
        "Vacation policy\n\nUnused vacation days expire on March 31 of the following year. [1]"
    )
    assert "Sources:\n[1] corpus/handbook/vacation.md (chunk 1, score" in out
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
    assert "--via {client,pipeline,semantic_text}" in out.stdout and "env ES_URL" in out.stdout


def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return capsys.readouterr().out


def test_each_command_lists_only_its_own_settings(capsys: pytest.CaptureFixture[str]) -> None:
    ingest, ask, prune = _help("ingest", capsys), _help("ask", capsys), _help("prune", capsys)
    assert "--chunk-tokens" in ingest and "--chat-model" not in ingest and "--k VALUE" not in ingest
    assert "--chat-model" in ask and "--k VALUE" in ask and "--chunk-tokens" not in ask
    assert "--es-url" in prune and "--embed-url" not in prune and "--index" in prune
    assert "--skip-errors" in ingest and "--verbose" in ingest and "--dry-run" in prune
    for command in SETTINGS_OF:
        assert settings_of(command) >= set(SETTINGS_OF[command])


@pytest.mark.usefixtures("env")
def test_ingest_reports_skipped_files_and_decoding_and_prunes(
    make_corpus: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run("setup")
    root = make_corpus()
    (root / "index.html").write_text("<p>")
    (root / "notes" / "latin.txt").write_bytes("Caf\xe9 opens at nine.".encode("latin-1"))
    (root / "notes" / "broken.txt.gz").write_bytes(b"\x1f\x8b nope")
    code, _ = run("ingest", str(root))
    err = capsys.readouterr().err
    assert code == 2 and "broken.txt.gz is not a valid gzip file" in err and "--skip-errors" in err
    code, out = run("ingest", str(root), "--skip-errors")
    err = capsys.readouterr().err
    assert code == 0 and "6 documents" in out
    assert "warning: corpus/notes/latin.txt is not UTF-8 (byte 0xe9 at offset 3): read as Windows-1252" in err
    assert "skipped 2 files: 1 unsupported type (.html 1), 1 error (--verbose lists them)" in out
    code, out = run("ingest", str(root), "--skip-errors", "--verbose")
    assert "  corpus/index.html: unsupported type: .html" in out and "6 documents (6 unchanged" in out
    (root / "notes" / "latin.txt").unlink()
    (root / "notes" / "broken.txt.gz").unlink()
    code, out = run("prune", str(root), "--dry-run")
    assert code == 0 and out.startswith("would delete 1 index entries") and "corpus/notes/latin.txt" in out
    assert run("prune", str(root))[1].startswith("deleted 1 index entries")
    code, out = run("delete", "--source", "corpus/handbook")
    assert code == 0 and out.startswith(
        "deleted 2 index entries (chunks, or pipeline documents) of 2 sources"
    )


def test_setup_hints_name_the_index(
    es: Running[EsStandin],
    embed: Running[EmbedStandin],
    make_corpus: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    urls = ("--es-url", es.url, "--embed-url", embed.url)
    assert run("ingest", str(make_corpus()), *urls, "--index", "docs-kb")[0] == 1
    assert "run `python -m rag setup --index docs-kb`" in capsys.readouterr().err
    assert run("search", "anything", *urls, "--index", "docs-kb")[0] == 1
    assert "run `python -m rag setup --index docs-kb`" in capsys.readouterr().err


def test_a_service_that_is_down_is_said_at_once_then_retried(
    embed: Running[EmbedStandin], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run(
        "search",
        "x",
        "--es-url",
        "http://127.0.0.1:9",
        "--embed-url",
        embed.url,
        "--max-retries",
        "2",
        "--retry-backoff",
        "0.01",
    )
    err = capsys.readouterr().err.splitlines()
    assert code == 1 and len(err) == 2
    assert err[0] == (
        "warning: cannot reach Elasticsearch at ES_URL=http://127.0.0.1:9 (connection refused); check that "
        "the cluster is up and ES_URL is right; retrying (2 times over 0 s)..."
    )
    assert err[1].startswith(
        "error: cannot reach Elasticsearch at ES_URL=http://127.0.0.1:9 (connection refused)"
    )


def test_wrong_services_are_named(
    es: Running[EsStandin],
    embed: Running[EmbedStandin],
    make_chat: Callable[..., Running[ChatStandin]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run("search", "x", "--es-url", es.url, "--embed-url", es.url)[0] == 1
    assert f"EMBED_URL={es.url} is Elasticsearch, not our embedding server" in capsys.readouterr().err
    assert run("search", "x", "--es-url", embed.url, "--embed-url", embed.url)[0] == 1
    assert f"ES_URL={embed.url} does not answer like Elasticsearch" in capsys.readouterr().err
    stranger = make_chat()  # answers GET /info with 404
    assert run("search", "x", "--es-url", es.url, "--embed-url", stranger.url)[0] == 1
    assert (
        f"EMBED_URL={stranger.url} is not our embedding server: GET /info answered 404"
        in capsys.readouterr().err
    )


@pytest.mark.usefixtures("clean_env")
def test_the_rrf_fallback_is_said_once_per_cluster(
    make_es: Callable[..., Running[EsStandin]],
    embed: Running[EmbedStandin],
    make_corpus: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cluster = make_es(rrf_licensed=False)
    monkeypatch.setenv("ES_URL", cluster.url)
    monkeypatch.setenv("EMBED_URL", embed.url)
    run("setup")
    run("ingest", str(make_corpus()))
    with caplog.at_level(logging.WARNING, logger="rag"):
        for _ in range(2):
            assert run("search", "vacation", "--hybrid")[0] == 0
        said = [r.getMessage() for r in caplog.records if "refused retriever.rrf" in r.getMessage()]
        assert len(said) == 1 and "shown once for this cluster" in said[0]
        assert run("search", "vacation", "--hybrid", "--verbose")[0] == 0
        assert sum("refused retriever.rrf" in r.getMessage() for r in caplog.records) == 2
    assert (tmp_path / "home" / ".cache" / "rag" / "notices.json").exists()


@pytest.mark.usefixtures("env")
def test_eval_scores_retrieval_on_a_question_file(
    make_corpus: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run("setup")
    run("ingest", str(make_corpus()))
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        json.dumps(
            {
                "id": "hotel",
                "question": "hotel costs per night?",
                "relevant": [{"source": "handbook/expenses.md", "text": "up to 150 euros per night"}],
            }
        )
        + "\n"
        + json.dumps(
            {
                "id": "port",
                "question": "which port does the server listen on",
                "relevant": [{"source": "notes/servers.txt"}],
            }
        )
        + "\n"
    )
    code, out = run("eval", str(questions))
    assert code == 0 and out.startswith("2 questions, index rag-kb (5 entries), kNN")
    assert "recall@1 1.000" in out and "mrr@10 1.000" in out and "in_prompt 1.000" in out
    code, out = run("eval", str(questions), "--json")
    report = json.loads(out)
    assert report["means"]["ndcg@10"] == 1.0 and [q["first_ranks"] for q in report["per_question"]] == [
        [1],
        [1],
    ]
