"""``python -m rag setup|ingest|search|ask|serve``: parse args -> settings -> one call -> exit code.

Exit codes: 0 success, 2 usage (bad flag, setting or input path), 1 runtime (a service
failed, setup found differences, or some documents could not be ingested).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import TextIO

from rag import ingest as ingesting
from rag import provision
from rag.answer import Assistant
from rag.embedder import Embedder
from rag.errors import IngestIncompleteError, RagError
from rag.retrieval import Retriever, parse_filters
from rag.settings import Settings, add_flags, load
from rag.store import Store, connect


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    add_flags(common)
    parser = argparse.ArgumentParser(
        prog="python -m rag", description="RAG on Elasticsearch with our embedding server and a chat model."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser(
        "setup", parents=[common], help="create the index, inference endpoint and ingest pipeline"
    )
    p.add_argument("--replace", action="store_true", help="overwrite an endpoint or pipeline that differs")
    p = sub.add_parser("ingest", parents=[common], help="index .txt/.md/.jsonl files and folders")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument(
        "--via",
        choices=["client", "pipeline"],
        default="client",
        help="client: chunk and embed here; pipeline: Elasticsearch's rag-embed pipeline does it",
    )
    for name, text in (
        ("search", "show the chunks closest to QUERY"),
        ("ask", "answer QUESTION with citations"),
    ):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("query", metavar="QUERY" if name == "search" else "QUESTION")
        p.add_argument(
            "--filter",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="only chunks whose metadata KEY equals VALUE (repeat; same KEY = any of)",
        )
        p.add_argument("--json", action="store_true", help="print JSON instead of text")
    sub.add_parser("serve", parents=[common], help="serve POST /ask, /ask/stream and a web page")
    return parser


def _setup(args: argparse.Namespace, settings: Settings, stack: ExitStack, out: TextIO) -> int:
    store, embedder = _backends(settings, stack)
    report = provision.setup(settings, store, embedder, replace=args.replace)
    print(report.render(), file=out)
    return 0 if report.complete else 1


def _ingest(args: argparse.Namespace, settings: Settings, stack: ExitStack, out: TextIO) -> int:
    docs = ingesting.load_documents(args.paths)  # input errors before any connection
    store, embedder = _backends(settings, stack)
    summary = ingesting.ingest(settings, store, embedder, docs, via=args.via)
    print(summary.render(), file=out)
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
    for delta in assistant.stream(grounded):
        parts.append(delta)
        if not args.json:
            out.write(delta)
            out.flush()
    answer = assistant.finish(grounded, fusion, "".join(parts))
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


def _backends(settings: Settings, stack: ExitStack) -> tuple[Store, Embedder]:
    embedder = Embedder(settings)
    stack.callback(embedder.close)
    store = connect(settings)
    stack.callback(store.close)
    return store, embedder


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings, ExitStack, TextIO], int]] = {
    "setup": _setup,
    "ingest": _ingest,
    "search": _search,
    "ask": _ask,
    "serve": _serve,
}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run one command; returns the exit code (argparse itself exits 2 on a bad command line)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    stream = out if out is not None else sys.stdout
    try:
        settings = load(vars(args))
        with ExitStack() as stack:
            return COMMANDS[args.command](args, settings, stack, stream)
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
