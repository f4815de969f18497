"""The retrieval domains a reduced-precision variant is gated on, built in and deterministic.

A quantised model can keep its cosines on one kind of text and lose its rankings on
another: the int8 gate once passed at 0.990 top-10 agreement on Python docstrings while a
held-out technical manual saw 0.949. So the gate measures, for each domain separately,
how the variant's rankings agree with the fp32 graph's, and a variant ships only if it
passes on every one. Each domain is a :class:`export.corpus.RetrievalCorpus` whose
``queries[i]`` is answered by ``passages[i]``; none of their texts is a calibration text
(:func:`export.corpus.calibration_texts` draws from docstrings only, and the docstring
domain is the corpus the calibration set is kept apart from).

- ``docstrings``: the standard library's docstrings, first sentence against the rest
  (:func:`export.corpus.retrieval_corpus`, the original gate corpus);
- ``tech-docs``: sections of the Python language reference shipped with the interpreter
  (``pydoc_data``): prose mixed with grammar rules and indented code; the query is the
  section's first sentence, the passage the rest of the section;
- ``short-queries``: the same reference's section titles (1 to 6 words, keyword-like)
  against the same passages;
- ``code``: standard-library functions, their docstring's summary line against their source
  with the docstring removed (code-heavy passages, natural-language queries);
Each domain has :data:`DOMAIN_SIZE` pairs and passages of at most :data:`MAX_PASSAGE_WORDS`
words: enough for the gate's figures to be stable (top-10 overlap is averaged per query)
while one pass over all domains stays under a minute of MPNet fp32 on two cores.

- ``prose``: 160 original question/passage pairs of general English prose written for this
  project (:mod:`export.prose_corpus`): encyclopedic, news, letters, policies, reviews,
  stories, in clusters of same-topic passages.

Like the docstring corpus, the first four depend only on the Python version.
"""

from __future__ import annotations

import ast
import functools
import re
import sysconfig
from pathlib import Path

from export.corpus import RetrievalCorpus, retrieval_corpus
from export.prose_corpus import PROSE

DOMAIN_SIZE = 80
MAX_PASSAGE_WORDS = 96
_MIN_PASSAGE_WORDS = 30
_SENTENCE_END = re.compile(r"(?<=[.!?:])\s+")
_HEADING = re.compile(r"^(?P<title>\S.*)\n(?P<rule>[*=\-~^]{3,})$", re.MULTILINE)
# Modules whose functions are the code domain; none is in export.corpus's docstring modules.
_CODE_MODULES: tuple[str, ...] = (
    "ast",
    "asyncio/base_events",
    "asyncio/streams",
    "asyncio/tasks",
    "cmd",
    "codecs",
    "concurrent/futures/_base",
    "dis",
    "doctest",
    "email/_header_value_parser",
    "email/utils",
    "fileinput",
    "getopt",
    "http/server",
    "importlib/_bootstrap_external",
    "logging/handlers",
    "mailbox",
    "multiprocessing/pool",
    "netrc",
    "optparse",
    "os",
    "pdb",
    "pkgutil",
    "plistlib",
    "pydoc",
    "reprlib",
    "sched",
    "selectors",
    "socket",
    "socketserver",
    "ssl",
    "sysconfig",
    "timeit",
    "trace",
    "typing",
    "unittest/mock",
    "urllib/robotparser",
    "wave",
    "xml/etree/ElementTree",
    "zipapp",
)


def names() -> tuple[str, ...]:
    """The domains every reduced-precision variant is gated on, in report order."""
    return tuple(_BUILDERS)


def build(name: str, size: int = DOMAIN_SIZE) -> RetrievalCorpus:
    """The ``name`` domain with at most ``size`` query/passage pairs, spread evenly over it."""
    pairs = _BUILDERS[name]()
    if len(pairs) < min(size, 40):
        raise RuntimeError(f"domain {name}: only {len(pairs)} usable pairs on this Python")
    picked = [pairs[i * len(pairs) // size] for i in range(size)] if len(pairs) > size else pairs
    return RetrievalCorpus(passages=tuple(p for _, p in picked), queries=tuple(q for q, _ in picked))


def _words(text: str, limit: int = MAX_PASSAGE_WORDS) -> str:
    """``text`` cut after ``limit`` words, its line structure (indented code) kept."""
    out: list[str] = []
    count = 0
    for line in text.splitlines():
        words = line.split()
        if count + len(words) > limit:
            out.append(line[: len(line) - len(line.lstrip())] + " ".join(words[: limit - count]))
            break
        out.append(line)
        count += len(words)
    return "\n".join(out).strip()


@functools.cache
def _reference_sections() -> tuple[tuple[str, str], ...]:
    """(title, body) of each section of the language reference, unique titles and bodies, sorted."""
    from pydoc_data.topics import topics

    seen_titles: dict[str, int] = {}
    sections: dict[str, str] = {}
    for _, text in sorted(topics.items()):
        headings = list(_HEADING.finditer(text))
        for i, match in enumerate(headings):
            title = match.group("title").strip()
            if len(match.group("rule")) != len(match.group("title")):
                continue
            end = headings[i + 1].start() if i + 1 < len(headings) else len(text)
            body = text[match.end() : end].strip()
            if len(body.split()) < _MIN_PASSAGE_WORDS:
                continue
            seen_titles[title] = seen_titles.get(title, 0) + 1
            sections.setdefault(title, body)
    # A title used by different sections ("Overview") cannot name one passage.
    return tuple(
        (title, body)
        for title, body in sorted(sections.items())
        if seen_titles[title] == 1 or list(sections.values()).count(body) == 1
    )


@functools.cache
def _sections() -> tuple[tuple[str, str, str], ...]:
    """(title, first sentence, the rest) of each section titled in at most six words; the rest
    is the passage both the title (short-queries) and the first sentence (tech-docs) must
    find, so the two domains share their passages (and the gate embeds them once)."""
    out: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for title, body in _reference_sections():
        first, _, rest = body.partition("\n\n")
        parts = _SENTENCE_END.split(" ".join(first.split()), maxsplit=1)
        sentence = parts[0]
        remainder = " ".join([*parts[1:], ""]).strip()
        passage = _words((remainder + "\n\n" + rest).strip())
        usable = 20 <= len(sentence) <= 240 and len(passage.split()) >= _MIN_PASSAGE_WORDS
        if usable and len(title.split()) <= 6 and sentence not in seen:
            seen.add(sentence)
            out.append((title.replace('"', ""), sentence, passage))
    return tuple(out)


def _tech_docs() -> list[tuple[str, str]]:
    return [(sentence, passage) for _, sentence, passage in _sections()]


def _short_queries() -> list[tuple[str, str]]:
    return [(title, passage) for title, _, passage in _sections()]


def _code() -> list[tuple[str, str]]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for module in _CODE_MODULES:
        path = stdlib / f"{module}.py"
        if not path.is_file():
            continue
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            # Private helpers' docstrings describe internals no user would search for.
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or node.name.startswith("_"):
                continue
            doc = ast.get_docstring(node)
            body = node.body
            if not doc or len(body) < 2 or node.end_lineno is None:
                continue
            summary = _SENTENCE_END.split(" ".join(doc.split()), maxsplit=1)[0]
            first_line = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            docstring = body[0]
            after_doc = docstring.end_lineno or docstring.lineno
            kept = lines[first_line - 1 : docstring.lineno - 1] + lines[after_doc : node.end_lineno]
            if not 4 <= len(kept) <= 40 or not 20 <= len(summary) <= 200 or summary in seen:
                continue
            seen.add(summary)
            indent = min(len(line) - len(line.lstrip()) for line in kept if line.strip())
            pairs.append((summary, _words("\n".join(line[indent:].rstrip() for line in kept))))
    return sorted(pairs)


def _docstrings() -> list[tuple[str, str]]:
    corpus = retrieval_corpus()
    return list(zip(corpus.queries, corpus.passages, strict=True))


def _prose() -> list[tuple[str, str]]:
    return list(PROSE)


_BUILDERS = {
    "docstrings": _docstrings,
    "tech-docs": _tech_docs,
    "short-queries": _short_queries,
    "code": _code,
    "prose": _prose,
}
