"""``python -m rag setup|ingest|search|ask|serve|eval|prune|delete``: parse args -> settings ->
one call -> exit code.

Exit codes: 0 success, 2 usage (bad flag, setting or input path), 1 runtime (a service
failed, setup found differences, or some documents could not be ingested).

Each command's ``--help`` lists the settings it reads (:data:`SETTINGS_OF`; a setting named
by no command there is offered by all). Before a command talks to a service, a quick check
(:mod:`rag.preflight`) says at once when it is down ("retrying...") or is not the right
service. Warnings logged with ``extra={"once": key}`` (the RRF fallback) are shown once per
cluster, remembered in ``~/.cache/rag/notices.json``; ``--verbose`` shows them all.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import fields
from pathlib import Path
from typing import TextIO

from rag import corpus, evaluate, preflight, provision
from rag import ingest as ingesting
from rag.answer import Assistant
from rag.dashscope import embedder_for
from rag.embedder import Embedder
from rag.errors import IngestIncompleteError, RagError
from rag.retrieval import Retriever, parse_filters
from rag.settings import Settings, add_flags, load
from rag.store import Store, connect

_ES = (
    "es_url",
    "es_api_key",
    "es_compat",
    "es_ca_certs",
    "es_verify_certs",
    "es_timeout",
    "index",
    "max_retries",
    "retry_backoff",
)
_EMBED = (
    "embed_provider",
    "embed_url",
    "embed_api_key",
    "embed_timeout",
    "dashscope_embed_model",
    "dashscope_embed_dims",
    "dashscope_region",
    "dashscope_base_url",
    "dashscope_api_key",
)
_SEARCH = ("k", "num_candidates", "hybrid", "rrf", "rrf_rank_constant")
_CHAT = (
    "chat_base_url",
    "chat_model",
    "chat_api_key",
    "chat_timeout",
    "chat_deadline",
    "chat_max_tokens",
    "chat_thinking",
    "chat_thinking_budget",
    "chat_temperature",
    "context_tokens",
)
_SERVE = ("host", "port", "serve_api_key", "max_question_chars", "serve_rate_limit")
SETTINGS_OF: dict[str, tuple[str, ...]] = {
    "setup": (
        *_ES,
        *_EMBED,
        "pipeline",
        "inference_id",
        "inference_service",
        "ingest_path",
        "embed_url_for_es",
        "index_options",
        "rescore_oversample",
        "embed_capacity",
        "es_inference_nodes",
        "inference_rate_limit",
    ),
    "ingest": (
        *_ES,
        *_EMBED,
        "pipeline",
        "inference_id",
        "ingest_path",
        "embed_batch_size",
        "chunk_tokens",
        "chunk_overlap",
        "bulk_size",
    ),
    "search": (*_ES, *_EMBED, *_SEARCH),
    "ask": (*_ES, *_EMBED, *_SEARCH, *_CHAT),
    "serve": (*_ES, *_EMBED, *_SEARCH, *_CHAT, *_SERVE),
    "eval": (*_ES, *_EMBED, *_SEARCH, "context_tokens"),
    "prune": _ES,
    "delete": _ES,
}
NOTICES = Path(".cache") / "rag" / "notices.json"


def settings_of(command: str) -> set[str]:
    """The settings ``command`` offers as flags: its own, and any no command names."""
    named = {name for names in SETTINGS_OF.values() for name in names}
    return set(SETTINGS_OF[command]) | {f.name for f in fields(Settings)} - named


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rag", description="RAG on Elasticsearch with our embedding server and a chat model."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands: dict[str, argparse.ArgumentParser] = {}

    def command(name: str, text: str) -> argparse.ArgumentParser:
        commands[name] = sub.add_parser(name, help=text, description=text)
        return commands[name]

    p = command("setup", "create the index, inference endpoint and ingest pipeline")
    p.add_argument("--replace", action="store_true", help="overwrite an endpoint or pipeline that differs")
    p = command(
        "ingest",
        "index text, Markdown, reStructuredText, man pages and JSONL (gzip'ed or not), files and folders",
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument(
        "--skip-errors",
        action="store_true",
        help="skip files (and JSONL lines) that cannot be read, and report them, instead of stopping",
    )
    p.add_argument(
        "--via",
        choices=["client", "pipeline", "semantic_text"],
        default=None,
        help="client: chunk and embed here; pipeline: Elasticsearch's rag-embed pipeline does it; "
        "semantic_text: the index's semantic_text field does it (default: --ingest-path, else client)",
    )
    for name, text in (
        ("search", "show the chunks closest to QUERY"),
        ("ask", "answer QUESTION with citations"),
    ):
        p = command(name, text)
        p.add_argument("query", metavar="QUERY" if name == "search" else "QUESTION")
        p.add_argument(
            "--filter",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="only chunks whose metadata KEY equals VALUE (repeat; same KEY = any of)",
        )
        p.add_argument("--json", action="store_true", help="print JSON instead of text")
    command("serve", "serve POST /ask, /ask/stream and a web page")
    p = command("eval", "score retrieval on a question set: recall@1/5/10, MRR, nDCG@10 (docs/RAG.md)")
    p.add_argument("questions", metavar="QUESTIONS.jsonl")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p = command(
        "prune", "delete what was ingested from PATHs but is no longer there (removed files, records)"
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    p = command("delete", "delete every chunk of the given sources (files, or whole folders)")
    p.add_argument(
        "--source", action="append", required=True, metavar="PATH", help="a file or folder (repeat)"
    )
    p.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    for name, p in commands.items():
        p.add_argument(
            "-v", "--verbose", action="store_true", help="say more: every skipped file, question, ..."
        )
        add_flags(p, settings_of(name))
    return parser


def _setup(args: argparse.Namespace, settings: Settings, stack: ExitStack, out: TextIO) -> int:
    store, embedder = _backends(settings, stack)
    report = provision.setup(settings, store, embedder, replace=args.replace)
    print(report.render(), file=out)
    return 0 if report.complete else 1


def _ingest(args: argparse.Namespace, settings: Settings, stack: ExitStack, out: TextIO) -> int:
    found = corpus.load(args.paths, skip_errors=args.skip_errors)  # input errors before any connection
    for warning in found.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    store, embedder = _backends(settings, stack)
    via = args.via or settings.ingest_path or "client"
    summary = ingesting.ingest(settings, store, embedder, found.docs, via=via)
    print(summary.render(), file=out)
    if found.skipped:
        more = "" if args.verbose else " (--verbose lists them)"
        print(found.skipped_summary() + more, file=out)
        for skipped in found.skipped if args.verbose else []:
            print(f"  {skipped.path}: {skipped.reason}", file=out)
    if summary.failed:
        raise IngestIncompleteError(
            f"{len(summary.failed)} items failed (listed above); re-run the same command to retry them",
            summary.failed,
        )
    return 0


def _search(args: argparse.Namespace, settings: Settings, stack: ExitStack, out: TextIO) -> int:
    store, embedder = _backends(settings, stack)
    result = Retriever(settings, store, embedder).search(args.query, filters=parse_filters(args.filter))
    if args.json:
        rows = [
            {
                "rank": i,
                "score": p.score,
                "doc_id": p.doc_id,
                "source": p.source,
                "chunk_index": p.chunk_index,
                "text": p.text,
                "metadata": p.metadata,
            }
            for i, p in enumerate(result.passages, start=1)
        ]
        print(json.dumps({"fusion": result.fusion, "results": rows}, indent=2), file=out)
        return 0
    if not result.passages:
        print("no results", file=out)
    for i, p in enumerate(result.passages, start=1):
        snippet = " ".join(p.text.split())
        snippet = snippet if len(snippet) <= 160 else snippet[:157] + "..."
        print(f"{i:>2}. {p.score:.4f}  {p.source} (chunk {p.chunk_index})\n    {snippet}", file=out)
    return 0


def _assistant(settings: Settings, stack: ExitStack) -> Assistant:
    # Imported here: openai takes seconds to import and only `ask` and `serve` need it.
    from rag.chat import OpenAIChat

    chat = OpenAIChat(settings)
    stack.callback(chat.close)
    store, embedder = _backends(settings, stack)
    return Assistant(settings, Retriever(settings, store, embedder), chat, embedder)


def _ask(args: argparse.Namespace, settings: Settings, stack: ExitStack, out: TextIO) -> int:
    assistant = _assistant(settings, stack)
    grounded, fusion = assistant.prepare(args.query, filters=parse_filters(args.filter))
    parts: list[str] = []
    stream = assistant.stream(grounded)
    for delta in stream:
        parts.append(delta)
        if not args.json:
            out.write(delta)
            out.flush()
    answer = assistant.finish(grounded, fusion, "".join(parts), stream.usage)
    if args.json:
        print(json.dumps(answer.as_dict(), indent=2), file=out)
    else:
        print("\n\n" + answer.render_sources(), file=out)
    return 0


def _serve(args: argparse.Namespace, settings: Settings, stack: ExitStack, out: TextIO) -> int:
    import uvicorn

    from rag.app import create_app

    app = create_app(_assistant(settings, stack))
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
    return 0


def _eval(args: argparse.Namespace, settings: Settings, stack: ExitStack, out: TextIO) -> int:
    questions = evaluate.load_questions(args.questions)
    store, embedder = _backends(settings, stack)
    report = evaluate.evaluate(settings, Retriever(settings, store, embedder), embedder, questions)
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.render(args.verbose), file=out)
    return 0


def _prune(args: argparse.Namespace, settings: Settings, stack: ExitStack, out: TextIO) -> int:
    # No --skip-errors here: a file that cannot be read would look removed.
    found = corpus.load(args.paths)
    removal = ingesting.prune(settings, _store(settings, stack), args.paths, found.docs, args.dry_run)
    print(removal.render(), file=out)
    return 0


def _delete(args: argparse.Namespace, settings: Settings, stack: ExitStack, out: TextIO) -> int:
    removal = ingesting.delete_sources(settings, _store(settings, stack), args.source, args.dry_run)
    print(removal.render(), file=out)
    return 0


def _notify(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr, flush=True)


def _store(settings: Settings, stack: ExitStack) -> Store:
    preflight.elasticsearch_cluster(settings, _notify)
    store = connect(settings)
    stack.callback(store.close)
    return store


def _backends(settings: Settings, stack: ExitStack) -> tuple[Store, Embedder]:
    if settings.embed_provider == "server":
        preflight.embedding_server(settings, _notify)
    embedder = embedder_for(settings)
    stack.callback(embedder.close)
    return _store(settings, stack), embedder


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings, ExitStack, TextIO], int]] = {
    "setup": _setup,
    "ingest": _ingest,
    "search": _search,
    "ask": _ask,
    "serve": _serve,
    "eval": _eval,
    "prune": _prune,
    "delete": _delete,
}


class OncePerCluster(logging.Filter):
    """Lets a record logged with ``extra={"once": key}`` through once per key and cluster."""

    def __init__(self, es_url: str, path: Path) -> None:
        super().__init__()
        self.es_url = es_url
        self.path = path

    def filter(self, record: logging.LogRecord) -> bool:
        key = getattr(record, "once", None)
        if key is None:
            return True
        mark = f"{key} {self.es_url}"
        try:
            seen = set(json.loads(self.path.read_text()))
        except (OSError, ValueError, TypeError):
            seen = set()
        if mark in seen:
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(sorted(seen | {mark})))
        except OSError:
            pass
        record.msg = f"{record.msg} (shown once for this cluster; --verbose shows it every time)"
        return True


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run one command; returns the exit code (argparse itself exits 2 on a bad command line)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    stream = out if out is not None else sys.stdout
    rag_log = logging.getLogger("rag")
    # The transport logs every failed attempt; the one error rag prints says what to do.
    transport_log = logging.getLogger("elastic_transport")
    transport_level = transport_log.level
    transport_log.setLevel(logging.DEBUG if args.verbose else logging.ERROR)
    once: OncePerCluster | None = None
    try:
        settings = load(vars(args))
        if not args.verbose:
            once = OncePerCluster(settings.es_url, Path.home() / NOTICES)
            rag_log.addFilter(once)
        with ExitStack() as stack:
            return COMMANDS[args.command](args, settings, stack, stream)
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        transport_log.setLevel(transport_level)
        if once is not None:
            rag_log.removeFilter(once)


if __name__ == "__main__":
    sys.exit(main())
