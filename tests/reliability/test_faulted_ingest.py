"""Faulted ingest: `rag ingest` ends with exactly the expected chunks, once each, or says what it lacks.

The corpus is 40 text files whose paragraphs are the chunks (document ``k`` has ``k % 5 + 1``
short paragraphs: 120 chunks), so the expected index is known without asking rag. After each
scenario the ES stand-in's index is audited: every expected ``<doc id>#<i>`` holds its
paragraph and a vector, nothing else is there, no chunk is stored twice, and ``_count``
agrees.

1. Elasticsearch faults during client-side ingest (the CLI, in-process): 429, 503 and a
   timeout on ``_bulk``, a timeout on ``_mget``, 429/503 bulk items, and items refused for
   good (400, and 429 past the retries): the refused ids are reported by id, the exit code is
   1, the rest is indexed; the timed-out bulk, carried out late by the cluster, changes
   nothing; a re-run after the cause is fixed indexes only them.
2. Our embedding server (``python -m server`` on MiniLM) crashes mid-request (SIGSTOP, then
   SIGKILL) and later drains (SIGTERM) mid-ingest, and comes back on the same port each
   time: the ingest completes with the exact count and the vectors of the new process.
3. ``python -m rag ingest`` is SIGKILLed while a ``_bulk`` is in flight; the re-run skips the
   stored documents as unchanged, indexes the rest once, and ends with the exact count.
4. ``--via pipeline``: 429/503 on ``_bulk`` requests and items, an ``_mget`` timeout, and our
   server answering 503/429 to the ``_inference`` endpoint, which retries it like ES and
   gives up once, leaving that document to rag's item retry.

Each test prints its figures (``pytest -s``): docs, chunks expected vs indexed, duplicates,
failures reported, retries.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag import ingest, provision
from rag.__main__ import main as rag_main
from rag.embedder import Embedder
from rag.errors import EmbeddingServerError
from rag.settings import Settings
from rag.store import Store, connect
from tests.rag.embed_standin import EmbedStandin
from tests.rag.es_standin import EsStandin
from tests.rag.standin_server import ThreadedServer
from tests.reliability.conftest import ROOT, free_port, wait_ready

DOCS = 40
# A paragraph is about 20 tokens: a 32-token budget without overlap makes each one its own chunk,
# so the expected index is known without asking rag's chunker.
CHUNKING: dict[str, int] = {"chunk_tokens": 32, "chunk_overlap": 0}
WORDS = (
    "ledger invoice quarterly audit payroll pension vacation travel hotel receipt laptop badge "
    "server cluster replica shard backup restore latency throughput tenant contract renewal"
).split()


# -- the corpus and the audit ----------------------------------------------------------------


def paragraph(doc: int, part: int) -> str:
    """A short, unique paragraph (one chunk under ``CHUNKING``)."""
    words = [WORDS[(doc * 7 + part * 3 + i) % len(WORDS)] for i in range(12)]
    return f"Document {doc} part {part} covers {' '.join(words)}."


@dataclass(frozen=True)
class Corpus:
    """``root`` (relative to the working directory) and the chunks each document must give."""

    root: str
    chunks: dict[str, list[str]]

    @property
    def total(self) -> int:
        return sum(len(c) for c in self.chunks.values())

    def chunk_ids(self) -> set[str]:
        return {f"{doc_id}#{i}" for doc_id, chunks in self.chunks.items() for i in range(len(chunks))}


def write_corpus(cwd: Path) -> Corpus:
    chunks: dict[str, list[str]] = {}
    for doc in range(DOCS):
        paragraphs = [paragraph(doc, part) for part in range(doc % 5 + 1)]
        path = cwd / "corpus" / f"doc-{doc:02d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
        chunks[f"corpus/doc-{doc:02d}.txt"] = paragraphs
    return Corpus("corpus", chunks)


@dataclass
class Audit:
    """What the index holds, against what the corpus must give."""

    expected: int
    indexed: int
    counted: int
    duplicates: int
    missing: set[str]
    unexpected: set[str]
    wrong: set[str]

    def line(self) -> str:
        return (
            f"chunks expected {self.expected}, indexed {self.indexed} (_count {self.counted}), "
            f"duplicates {self.duplicates}, missing {len(self.missing)}, unexpected {len(self.unexpected)}, "
            f"wrong text or vector {len(self.wrong)}"
        )


def audit_client(es: EsStandin, store: Store, index: str, corpus: Corpus, dims: int) -> Audit:
    """One document per chunk, ``_id`` = ``<doc id>#<i>`` (client-side ingest)."""
    store.refresh(index)
    docs = es.indices[index].docs
    by_chunk = Counter((d["doc_id"], d["chunk_index"]) for d in docs.values())
    by_text = Counter((d["doc_id"], d["chunk"]) for d in docs.values())
    duplicates = sum(n - 1 for n in by_chunk.values()) + sum(n - 1 for n in by_text.values())
    wrong = {
        item_id
        for item_id, d in docs.items()
        if item_id != f"{d['doc_id']}#{d['chunk_index']}"
        or d["doc_id"] not in corpus.chunks
        or d["chunk_index"] >= len(corpus.chunks[d["doc_id"]])
        or d["chunk"] != corpus.chunks[d["doc_id"]][d["chunk_index"]]
        or len(d.get("dense_vector") or []) != dims
    }
    ids = set(docs)
    return Audit(
        expected=corpus.total,
        indexed=len(docs),
        counted=store.count(index),
        duplicates=duplicates,
        missing=corpus.chunk_ids() - ids,
        unexpected=ids - corpus.chunk_ids(),
        wrong=wrong,
    )


def audit_pipeline(es: EsStandin, store: Store, index: str, corpus: Corpus, dims: int) -> Audit:
    """One document per source document with its nested ``chunks`` (pipeline ingest)."""
    store.refresh(index)
    docs = es.indices[index].docs
    stored = {
        f"{doc_id}#{i}": chunk for doc_id, d in docs.items() for i, chunk in enumerate(d.get("chunks", []))
    }
    by_text = Counter((doc_id, c["chunk"]) for doc_id, d in docs.items() for c in d.get("chunks", []))
    wrong = {
        item_id
        for item_id, chunk in stored.items()
        if item_id in corpus.chunk_ids()
        and (
            chunk["chunk"] != corpus.chunks[item_id.rsplit("#", 1)[0]][int(item_id.rsplit("#", 1)[1])]
            or len(chunk.get("dense_vector") or []) != dims
        )
    }
    return Audit(
        expected=corpus.total,
        indexed=len(stored),
        counted=store.count(index),
        duplicates=sum(n - 1 for n in by_text.values()),
        missing=corpus.chunk_ids() - set(stored),
        unexpected=set(stored) - corpus.chunk_ids(),
        wrong=wrong,
    )


def assert_exact(audit: Audit, expected: int, counted: int) -> None:
    assert (audit.indexed, audit.counted, audit.duplicates) == (expected, counted, 0), audit.line()
    assert not audit.unexpected and not audit.wrong, audit


def figures(scenario: str, **values: object) -> None:
    print(
        f"\n[faulted ingest] {scenario}: "
        + "; ".join(f"{k.replace('_', ' ')} {v}" for k, v in values.items())
    )


SUMMARY = re.compile(
    r"(?P<docs>\d+) documents \((?P<docs_skipped>\d+) unchanged, skipped\), (?P<chunks>\d+) chunks "
    r"\((?P<chunks_skipped>\d+) unchanged, skipped\), (?P<failed>\d+) failed"
)
RETRIED = re.compile(r"(\d+) bulk items were retried")


def parse_summary(text: str) -> dict[str, int]:
    found = SUMMARY.search(text)
    assert found is not None, f"no ingest summary in:\n{text}"
    retried = RETRIED.search(text)
    return {**{k: int(v) for k, v in found.groupdict().items()}, "retried": int(retried[1]) if retried else 0}


# -- fixtures ----------------------------------------------------------------------------------


@dataclass
class Bench:
    """The ES stand-in and the fake embedding server on loopback sockets, a corpus in the cwd."""

    cwd: Path
    corpus: Corpus
    es: EsStandin
    es_url: str
    embed: EmbedStandin
    embed_url: str
    closers: list[Callable[[], None]] = field(default_factory=list)

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "es_url": self.es_url,
            "embed_url": self.embed_url,
            "retry_backoff": 0.01,
            "max_retries": 5,
            "es_timeout": 10.0,
            "embed_timeout": 10.0,
            **CHUNKING,
        }
        return Settings(**{**values, **overrides})

    def set_up(self, settings: Settings) -> tuple[Store, Embedder]:
        store, embedder = connect(settings), Embedder(settings)
        self.closers += [store.close, embedder.close]
        assert provision.setup(settings, store, embedder).complete
        return store, embedder

    def cli_args(self, *extra: str) -> list[str]:
        chunking = ["--chunk-tokens", str(CHUNKING["chunk_tokens"]), "--chunk-overlap", "0"]
        return [
            "ingest",
            self.corpus.root,
            "--es-url",
            self.es_url,
            "--embed-url",
            self.embed_url,
            *chunking,
            *extra,
        ]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No rag, ES, server or chat variable of the caller's environment leaks into a run."""
    for name in list(os.environ):
        if name.startswith("RAG_TEST_"):  # the suite's own options, not rag settings
            continue
        if name.startswith(("ES_", "EMBED_", "CHAT_", "RAG_")) or name in (
            "DASHSCOPE_API_KEY",
            "OPENAI_API_KEY",
        ):
            monkeypatch.delenv(name)


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None) -> Iterator[Bench]:
    monkeypatch.chdir(tmp_path)
    es, embed = EsStandin(), EmbedStandin()
    servers = [ThreadedServer(es.app()).start(), ThreadedServer(embed.app()).start()]
    made = Bench(tmp_path, write_corpus(tmp_path), es, servers[0].url, embed, servers[1].url)
    yield made
    for close in made.closers:
        close()
    es.close()  # releases held requests before the servers stop
    for server in servers:
        server.stop()


def child_env() -> dict[str, str]:
    """The environment of a child process, without rag's or the server's variables."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ES_", "EMBED_", "CHAT_", "RAG_"))
        and k not in ("DASHSCOPE_API_KEY", "OPENAI_API_KEY")
    }


# -- 1. Elasticsearch faults, client-side ingest -------------------------------------------------


def test_client_ingest_under_es_faults_indexes_each_chunk_once_and_names_what_failed(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = bench.settings(bulk_size=16, es_timeout=2.0)
    store, _ = bench.set_up(settings)
    faults = bench.es.faults
    faults.fail_requests(r"^/_bulk$", status=429, times=2)
    faults.fail_requests(r"^/_bulk$", status=503, times=1)
    late = faults.hold_requests(r"^/_bulk$")  # held past ES_TIMEOUT, carried out after the run
    late_read = faults.hold_requests(r"/_mget$")
    faults.fail_bulk_items(status=429, times=2, count=5)
    faults.fail_bulk_items(status=503, times=1, count=3)
    refused = {"corpus/doc-37.txt#1": 400, "corpus/doc-38.txt#0": 400, "corpus/doc-39.txt#4": 429}
    for item_id, status in refused.items():
        faults.refuse_bulk_items({item_id}, status=status)
    # A run that waited for the held requests instead of retrying them fails below, not hangs.
    safety = threading.Timer(60, faults.release_all)
    safety.start()
    out = io.StringIO()
    args = bench.cli_args(
        "--bulk-size", "16", "--es-timeout", "2", "--retry-backoff", "0.01", "--max-retries", "5"
    )
    code = rag_main(args, out=out)
    safety.cancel()
    err = capsys.readouterr().err
    first = parse_summary(out.getvalue())
    assert late.arrived.is_set() and not late.released.is_set(), "the timed-out _bulk was not retried"
    assert late_read.arrived.is_set() and not late_read.released.is_set()
    bulk_calls = sum(1 for c in bench.es.calls if c.path == "/_bulk")
    mget_calls = sum(1 for c in bench.es.calls if c.path.endswith("/_mget"))

    reported = dict(re.findall(r"^failed: (\S+): (\d+) ", out.getvalue(), flags=re.M))
    assert code == 1 and "error: 3 items failed (listed above); re-run the same command" in err
    assert {k: int(v) for k, v in reported.items()} == refused
    assert (first["docs"], first["chunks"], first["failed"]) == (DOCS, 117, 3)
    # 5 items x 2 rounds (429) + 3 (503) + 5 retries of the item refused with 429, nothing more.
    assert first["retried"] == 18
    # 8 bulks of <= 16 chunks + 4 refused or timed out + 2 + 1 + 5 item retry rounds: no resending.
    assert bulk_calls == 20
    assert not faults.requests and not faults.items
    audit = audit_client(bench.es, store, settings.index, bench.corpus, bench.embed.dims)
    assert audit.missing == set(refused)
    assert_exact(audit, 117, 117)

    faults.release_all()  # the cluster carries out the requests whose client timed out
    assert late.finished.wait(30) and late_read.finished.wait(30)
    after_late = audit_client(bench.es, store, settings.index, bench.corpus, bench.embed.dims)
    assert_exact(after_late, 117, 117)

    faults.refused.clear()
    rerun = io.StringIO()
    assert rag_main(args, out=rerun) == 0
    second = parse_summary(rerun.getvalue())
    assert (second["docs_skipped"], second["chunks"], second["chunks_skipped"], second["failed"]) == (
        DOCS - 3,
        3,
        117,
        0,
    )
    final = audit_client(bench.es, store, settings.index, bench.corpus, bench.embed.dims)
    assert not final.missing
    assert_exact(final, 120, 120)
    figures(
        "client ingest, ES faults",
        docs=DOCS,
        chunks_expected=bench.corpus.total,
        first_run=f"indexed {audit.indexed}, failed and reported by id {len(reported)} (exit {code})",
        duplicates=audit.duplicates,
        bulk_items_retried=first["retried"],
        bulk_requests=f"{bulk_calls} (4 refused 429/429/503 or timed out)",
        mget_requests=f"{mget_calls} (1 timed out)",
        after_the_late_bulk=after_late.line(),
        rerun=f"{second['docs_skipped']} documents skipped as unchanged, {second['chunks']} chunks indexed",
        final=final.line(),
    )


# -- 2. our embedding server restarted mid-ingest ------------------------------------------------


@pytest.fixture
def model_dir(request: pytest.FixtureRequest) -> Path:
    chosen = os.environ.get("RAG_TEST_MODEL_DIR")  # an exported model directory, to skip the export
    if chosen:
        return Path(chosen)
    found: Path = request.getfixturevalue("minilm_model_dir")
    return found


@dataclass
class RestartableServer:
    """``python -m server`` on one fixed port, started again on that port after each stop."""

    model: Path
    logs: Path
    port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        return self.procs[-1]

    def start(self) -> None:
        cmd = [sys.executable, "-m", "server", "--model", str(self.model), "--variant", "fp32"]
        cmd += ["--port", str(self.port), "--no-warmup", "--drain-delay", "1", "--log-level", "warning"]
        with (self.logs / f"server-{len(self.procs)}.log").open("wb") as log:
            self.procs.append(
                subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=child_env())
            )

    def restart_when_gone(self) -> None:
        self.proc.wait(60)
        self.start()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(30)


@pytest.fixture
def restartable(model_dir: Path, tmp_path: Path) -> Iterator[RestartableServer]:
    logs = tmp_path / "logs"
    logs.mkdir()
    server = RestartableServer(model_dir, logs)
    server.start()
    wait_ready(server.url, proc=server.proc)
    yield server
    server.stop()


class Interrupting(httpx.BaseTransport):
    """rag's transport to the server: before the n-th ``/embed`` attempt it runs ``actions[n]``.

    Counts ``/embed`` attempts, their answers by status and their transport failures by type.
    """

    def __init__(self, actions: dict[int, Callable[[], None]]) -> None:
        self.inner = httpx.HTTPTransport()
        self.actions = actions
        self.embeds = 0
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/embed":
            return self.inner.handle_request(request)
        self.embeds += 1
        action = self.actions.pop(self.embeds, None)
        if action is not None:
            action()
        try:
            response = self.inner.handle_request(request)
        except httpx.TransportError as exc:
            self.errors[type(exc).__name__] += 1
            raise
        self.statuses[response.status_code] += 1
        return response

    def close(self) -> None:
        self.inner.close()


@pytest.mark.slow
def test_embedding_server_crash_and_drain_mid_ingest_still_index_everything_once(
    bench: Bench, restartable: RestartableServer
) -> None:
    server = restartable
    # Retries back off 0.1 s, 0.2 s, ... (at most 30 s each): 12 of them wait up to 141 s for the
    # new process to load the model, a hang guard; a fast restart is met just as soon.
    settings = bench.settings(embed_url=server.url, embed_batch_size=8, max_retries=12, retry_backoff=0.1)
    store, setup_embedder = bench.set_up(settings)

    def crash() -> None:
        # Stopped, the server takes the request into its socket and never answers; the kill
        # then resets the connection under rag's request: a crash mid-request.
        server.proc.send_signal(signal.SIGSTOP)

        def kill_and_restart() -> None:
            time.sleep(0.5)
            server.proc.kill()
            server.restart_when_gone()

        threading.Thread(target=kill_and_restart, daemon=True).start()

    def drain() -> None:
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # readiness flips first; new requests then get 503
            try:
                if httpx.get(f"{server.url}/health/ready", timeout=2).status_code == 503:
                    break
            except httpx.TransportError:
                break
            time.sleep(0.05)

        threading.Thread(target=server.restart_when_gone, daemon=True).start()

    transport = Interrupting({4: crash, 10: drain})
    embedder = Embedder(settings, transport=transport)
    bench.closers.append(embedder.close)
    docs = ingest.load_documents([bench.corpus.root])
    summary = ingest.ingest(settings, store, embedder, docs)

    assert not transport.actions, "the ingest ended before both interruptions"
    assert len(server.procs) == 3 and server.proc.poll() is None
    assert transport.errors or transport.statuses[503], "no request met the restarts"
    assert (summary.docs, summary.chunks, summary.failed) == (DOCS, 120, {})
    audit = audit_client(bench.es, store, settings.index, bench.corpus, 384)
    assert_exact(audit, 120, 120)
    # Vectors written after the restarts are the model's: the same as the new process gives now.
    stored = bench.es.indices[settings.index].docs["corpus/doc-39.txt#4"]
    fresh = setup_embedder.embed([stored["chunk"]])[0]
    assert max(abs(a - b) for a, b in zip(stored["dense_vector"], fresh, strict=True)) < 1e-4
    figures(
        "client ingest, embedding server restarted twice",
        docs=DOCS,
        chunks_expected=bench.corpus.total,
        indexed=audit.indexed,
        duplicates=audit.duplicates,
        failures_reported=len(summary.failed),
        embed_attempts=f"{transport.embeds} for 15 batches",
        answers=dict(sorted(transport.statuses.items())),
        transport_errors=dict(sorted(transport.errors.items())),
        server_processes=len(server.procs),
        seconds=f"{summary.seconds:.1f}",
    )


# -- 3. rag ingest killed mid-run, then re-run ---------------------------------------------------


def run_cli(bench: Bench, *extra: str) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "rag",
        *bench.cli_args("--bulk-size", "10", "--retry-backoff", "0.01", *extra),
    ]
    env = {**child_env(), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(cmd, cwd=bench.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


@pytest.mark.slow
def test_killed_ingest_resumes_without_duplicates(bench: Bench) -> None:
    settings = bench.settings()
    store, _ = bench.set_up(settings)
    in_flight = bench.es.faults.hold_requests(r"^/_bulk$", after=5)
    first = run_cli(bench)
    while not in_flight.arrived.wait(0.1):
        assert first.poll() is None, first.communicate()[1].decode()[-2000:]
    first.kill()  # the 6th bulk of 10 chunks is in flight
    assert first.wait(30) == -signal.SIGKILL
    first.communicate()
    before_release = len(bench.es.indices[settings.index].docs)
    in_flight.release()  # the cluster carries out the request of the dead client
    assert in_flight.finished.wait(30)
    stored = set(bench.es.indices[settings.index].docs)
    complete_docs = sum(
        1
        for doc_id, chunks in bench.corpus.chunks.items()
        if all(f"{doc_id}#{i}" in stored for i in range(len(chunks)))
    )
    assert (before_release, len(stored), complete_docs) == (50, 60, 20)

    second = run_cli(bench)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err.decode()[-2000:]
    summary = parse_summary(out.decode())
    assert (summary["docs"], summary["docs_skipped"], summary["chunks"], summary["chunks_skipped"]) == (
        DOCS,
        complete_docs,
        120 - len(stored),
        len(stored),
    )
    audit = audit_client(bench.es, store, settings.index, bench.corpus, bench.embed.dims)
    assert not audit.missing
    assert_exact(audit, 120, 120)
    figures(
        "rag ingest SIGKILLed mid-run, then re-run",
        docs=DOCS,
        chunks_expected=bench.corpus.total,
        stored_at_the_kill=f"{before_release} (+{len(stored) - before_release} from the bulk in flight)",
        rerun=(
            f"{summary['docs_skipped']} documents skipped as unchanged, {summary['chunks']} chunks indexed, "
            f"{summary['chunks_skipped']} skipped"
        ),
        final=audit.line(),
    )


# -- 4. pipeline ingest: ES-side retries ----------------------------------------------------------


def test_pipeline_ingest_under_es_and_inference_faults_indexes_each_chunk_once(bench: Bench) -> None:
    settings = bench.settings(bulk_size=16, es_timeout=2.0)
    store, embedder = bench.set_up(settings)
    faults = bench.es.faults
    faults.fail_requests(r"^/_bulk$", status=429, times=1)
    faults.fail_requests(r"^/_bulk$", status=503, times=1)
    late_read = faults.hold_requests(r"/_mget$")
    faults.fail_bulk_items(status=429, times=1, count=4)
    faults.fail_bulk_items(status=503, times=1, count=2)
    # Elasticsearch makes at most 3 attempts per inference call: 503, 503, 429 exhaust them for
    # one chunk and 429, 429, 429 for the next (each item fails with 429, rag re-drives both).
    bench.embed.fail_next(503, times=2, path="/embed")
    bench.embed.fail_next(429, times=4, path="/embed", retry_after=0)
    calls_before = len(bench.es.inference_calls)
    summary = ingest.ingest(
        settings, store, embedder, ingest.load_documents([bench.corpus.root]), via="pipeline"
    )
    inference_calls = len(bench.es.inference_calls) - calls_before
    assert late_read.arrived.is_set() and not late_read.released.is_set(), (
        "the timed-out _mget was not retried"
    )
    late_read.release()
    assert late_read.finished.wait(30)

    assert (summary.docs, summary.chunks, summary.failed) == (DOCS, 120, {})
    # 4 (429) + 2 (503) items, and the two documents whose inference failed with 429.
    assert summary.retried == 8
    assert inference_calls == 120 + 6
    assert not faults.requests and not faults.items and not bench.embed.faults
    audit = audit_pipeline(bench.es, store, settings.index, bench.corpus, bench.embed.dims)
    assert not audit.missing
    assert_exact(audit, 120, DOCS)
    again = ingest.ingest(
        settings, store, embedder, ingest.load_documents([bench.corpus.root]), via="pipeline"
    )
    assert (again.docs_skipped, again.chunks, again.chunks_skipped) == (DOCS, 0, 120)
    figures(
        "pipeline ingest, ES and inference faults",
        docs=DOCS,
        chunks_expected=bench.corpus.total,
        indexed=audit.indexed,
        duplicates=audit.duplicates,
        failures_reported=len(summary.failed),
        bulk_items_retried_by_rag=summary.retried,
        inference_calls=f"{inference_calls} for 120 chunks (6 answered 503/429 and retried by ES)",
        rerun=f"{again.docs_skipped} documents skipped as unchanged",
    )


# -- the retry this suite needed: transport failures of the embedding server -----------------------


def test_embedder_retries_refused_reset_and_timed_out_requests_then_names_the_failure() -> None:
    failures: list[Exception] = []
    attempts: Counter[str] = Counter()

    def handler(request: httpx.Request) -> httpx.Response:
        attempts[request.url.path] += 1
        if failures:
            raise failures.pop(0)
        if request.url.path == "/info":
            return httpx.Response(200, json={"model_id": "m", "dims": 2, "max_client_batch_size": 8})
        return httpx.Response(200, json=[[1.0, 0.0]])

    def embedder(max_retries: int) -> Embedder:
        settings = Settings(embed_url="http://embed.test", max_retries=max_retries, retry_backoff=0.0)
        return Embedder(settings, transport=httpx.MockTransport(handler))

    failures += [httpx.ConnectError("refused"), httpx.RemoteProtocolError("closed mid-response")]
    failures += [httpx.ReadTimeout("slow"), httpx.ReadError("reset by peer")]
    assert embedder(max_retries=4).embed(["x"]) == [[1.0, 0.0]]
    assert attempts == {"/info": 5, "/embed": 1}

    attempts.clear()
    failures += [httpx.ConnectError("refused")] * 3
    with pytest.raises(
        EmbeddingServerError, match=r"cannot reach the embedding server at EMBED_URL=http://embed.test"
    ):
        embedder(max_retries=2).info()
    assert attempts == {"/info": 3}

    attempts.clear()
    failures.append(httpx.UnsupportedProtocol("ftp"))  # a wrong URL: no retry
    with pytest.raises(EmbeddingServerError):
        embedder(max_retries=2).info()
    assert attempts == {"/info": 1}
