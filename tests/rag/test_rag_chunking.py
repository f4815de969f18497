"""The chunker and what it reads: layout, man pages, and token offsets from POST /tokenize."""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections.abc import Sequence

import httpx
import pytest

from rag import layout, manpage
from rag.chunking import GLUED, Chunk, Chunker, Source
from rag.settings import Settings
from rag.tokens import REQUEST_TOKENS, EstimateTokenizer, ServerTokenizer, TokenMap

WORDS = re.compile(r"\w+|[^\w\s]")


class Words:
    """A tokenizer like the embed stand-in: one token per word or mark, plus [CLS] and [SEP]."""

    specials = 2

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def starts(self, texts: Sequence[str]) -> list[list[int]]:
        self.calls.append(list(texts))
        return [[m.start() for m in WORDS.finditer(t)] for t in texts]

    def total(self, text: str) -> int:
        return len(WORDS.findall(text)) + self.specials


def chunk(text: str, fmt: layout.Format = "markdown", budget: int = 60, overlap: int = 0) -> list[Chunk]:
    return Chunker(Words(), budget, overlap, 512).split([Source(text, fmt)])[0]


def body_of(c: Chunk, text: str) -> str:
    return text[c.start : c.end]


MANUAL = """# Pump manual

The pump moves water from the well to the tank. It runs on mains power.

## Installing

Mount the pump on a flat surface. Keep it dry.

To install the control software, run:

```
sudo apt install pumpctl

pumpctl --init
```

The installer asks for the tank size.

## Maintenance

Clean the filter every month. Replace the seal every year. Check the hoses for cracks after
a frost. Drain the pump before winter.

### Noises

A rattling pump has air in the line. Bleed it at the top valve.
"""


def test_paragraphs_are_merged_up_to_the_budget_as_exact_slices() -> None:
    words = Words()
    chunks = Chunker(words, chunk_tokens=60, overlap=0, model_max=512).split([Source(MANUAL, "markdown")])[0]
    assert 2 <= len(chunks) < 6  # far fewer than the 12 blocks
    text = MANUAL.strip()
    for c in chunks:
        assert words.total(c.text) <= 60 and c.tokens == words.total(c.text)
        assert c.text.endswith(body_of(c, text))
    covered = "".join(body_of(c, text) for c in chunks)
    assert "".join(covered.split()) == "".join(text.split())  # no overlap asked: every word once


def test_headings_lead_ins_and_code_stay_with_their_neighbours() -> None:
    text = MANUAL.strip()
    for budget in (40, 50, 60, 80):
        chunks = chunk(MANUAL, budget=budget)
        for c in chunks:
            body = body_of(c, text)
            assert not re.search(r"(^|\n)#+ [^\n]*$", body), f"a chunk ends with a heading: {body!r}"
        with_code = [c for c in chunks if "pumpctl --init" in c.text]
        assert len(with_code) == 1
        assert "To install the control software, run:" in with_code[0].text
        assert "sudo apt install pumpctl" in with_code[0].text  # the fence is not split at its blank line


def test_each_chunk_carries_its_section_path_once() -> None:
    chunks = chunk(MANUAL, budget=40)
    noises = next(c for c in chunks if "rattling" in c.text)
    assert noises.text.startswith("Pump manual > Maintenance\n\n### Noises")
    installing = next(c for c in chunks if "installer asks" in c.text)
    assert installing.text.startswith("Pump manual > Installing\n\n") or installing.text.startswith(
        "Pump manual\n\n## Installing"
    )
    first = chunks[0]
    assert first.text.startswith("# Pump manual")  # its own heading opens it: no prefix


def test_a_document_title_from_metadata_prefixes_headingless_text() -> None:
    text = "\n\n".join(f"Fact {i} about the system is stated here." for i in range(12))
    chunks = Chunker(Words(), 40, 0, 512).split([Source(text, "text", "sysctl.conf(5)")])[0]
    assert len(chunks) > 1 and all(c.text.startswith("sysctl.conf(5)\n\n") for c in chunks)


def test_consecutive_chunks_overlap_by_whole_sentences() -> None:
    sentences = [f"Sentence {i} has exactly seven words here." for i in range(30)]
    text = " ".join(sentences)
    words = Words()
    chunks = Chunker(words, chunk_tokens=40, overlap=9, model_max=128).split([Source(text)])[0]
    assert len(chunks) > 3
    for first, second in itertools.pairwise(chunks):
        shared = body_of(first, text)[second.start - first.start :] if second.start < first.end else ""
        assert shared and words.total(shared) - 2 <= 9
        assert shared.startswith("Sentence ") and shared.endswith(".")
    assert {s for c in chunks for s in sentences if s in c.text} == set(sentences)


def test_no_overlap_across_a_section_break() -> None:
    text = "# A\n\n" + "Alpha beta gamma delta. " * 8 + "\n\n# B\n\n" + "Epsilon zeta eta theta. " * 8
    chunks = chunk(text, "markdown", budget=50, overlap=10)
    b = next(c for c in chunks if "# B" in c.text)
    assert "Alpha" not in b.text


def test_long_words_and_sentences_are_cut_within_the_budget() -> None:
    blob = "x" * 300 + " " + " ".join(["word"] * 200)

    class Chars(Words):
        """Ten characters per token, so one 300-character word is 30 tokens."""

        def starts(self, texts: Sequence[str]) -> list[list[int]]:
            return [
                [m.start() + k for m in re.finditer(r"\S+", t) for k in range(0, len(m.group()), 10)]
                for t in texts
            ]

    chars = Chars()
    chunks = Chunker(chars, 24, 0, 512).split([Source(blob)])[0]
    assert "".join(c.text for c in chunks).replace(" ", "") == blob.replace(" ", "")
    assert all(len(chars.starts([c.text])[0]) + 2 <= 24 for c in chunks)


def test_a_chunk_the_model_would_truncate_is_repacked_smaller() -> None:
    class Sticky(Words):
        """Counts a whole text as one more token per line than its parts (a non-additive tokenizer)."""

        def starts(self, texts: Sequence[str]) -> list[list[int]]:
            out = super().starts(texts)
            return [
                s + list(range(t.count("\n"))) if len(s) > 30 else s for s, t in zip(out, texts, strict=True)
            ]

    text = "\n".join(f"line {i} of the log" for i in range(60))
    chunks = Chunker(Sticky(), 64, 0, 64).split([Source(text)])[0]
    assert all(len(Sticky().starts([c.text])[0]) + 2 <= 64 for c in chunks)


def test_empty_documents_have_no_chunks() -> None:
    assert Chunker(Words(), 64, 0, 64).split([Source(" \n\n "), Source("")]) == [[], []]


# -- layout ------------------------------------------------------------------------------


def test_markdown_blocks() -> None:
    text = "Title\n=====\n\nIntro line.\n\n---\n\n~~~\ncode\n\nmore code\n~~~\n## Sub ##\nText"
    found = layout.blocks(text, "markdown")
    assert [(b.kind, b.level, b.title) for b in found] == [
        ("heading", 1, "Title"),
        ("text", 0, ""),
        ("code", 0, ""),
        ("heading", 2, "Sub"),
        ("text", 0, ""),
    ]
    assert text[found[2].start : found[2].end] == "~~~\ncode\n\nmore code\n~~~"


def test_rst_titles_and_literal_blocks() -> None:
    text = (
        "=====\nGuide\n=====\n\nUsage\n-----\n\nRun this::\n\n    make\n\n    make install\n\n"
        "Then:\n\n.. code-block:: sh\n\n   ./run\n\nDone.\n"
    )
    found = layout.blocks(text, "rst")
    kinds = [(b.kind, b.level, b.title) for b in found]
    assert kinds == [
        ("heading", 1, "Guide"),
        ("heading", 2, "Usage"),
        ("text", 0, ""),
        ("code", 0, ""),
        ("text", 0, ""),
        ("code", 0, ""),
        ("text", 0, ""),
    ]
    assert text[found[3].start : found[3].end] == "make\n\n    make install"


def test_plain_text_headings_and_glue() -> None:
    text = "NAME\n\n  tool - does things\n\nOptions:\n\n  -v  verbose"
    found = layout.blocks(text, "text")
    assert [b.kind for b in found] == ["heading", "text", "text", "text"]
    chunks = Chunker(Words(), 12, 0, 512).split([Source(text)])[0]
    options = next(c for c in chunks if "Options:" in c.text)
    assert "-v  verbose" in options.text  # a lead-in ending with ':' is glued to what follows
    assert GLUED < 3


# -- man pages ---------------------------------------------------------------------------

TROFF = r""".\" a comment
.TH PUMPCTL 8 "2024" "pump 1.0"
.de XX
..
.SH NAME
pumpctl \- control the pump
.SH OPTIONS
.TP
.BR \-f ", " \-\-force
Start even when the tank is full\(em use with care.
.IP \(bu 2
First \fIbullet\fR point.
.SS "Examples"
.nf
pumpctl \-\-init

pumpctl start
.fi
.ie n \{\
nroff only
.\}
.el \{\
.PP
The user\*(Aqs guide.
.\}
.TS
tab(:);
l l.
Key:Meaning
T{
flow
T}:T{
litres per minute
T}
.TE
"""


def test_man_pages_become_markdown() -> None:
    text, title = manpage.to_markdown(TROFF)
    assert title == "pumpctl(8)"
    assert text.startswith("# pumpctl(8)\n\n## NAME\n\npumpctl - control the pump\n\n## OPTIONS")
    assert "-f, --force\nStart even when the tank is full\u2014 use with care." in text
    assert "\u2022 First bullet point." in text
    assert "### Examples\n\n```\npumpctl --init\n\npumpctl start\n```" in text
    assert "nroff only" not in text and "The user's guide." in text
    assert "Key | Meaning\nflow | litres per minute" in text
    assert manpage.to_markdown(".so man1/other.1\n")[0] == ""


# -- tokens ------------------------------------------------------------------------------


def test_token_maps_count_any_slice() -> None:
    tokens = TokenMap([0, 4, 9, 15])
    assert (tokens.count(0, 20), tokens.count(4, 15), tokens.count(5, 9)) == (4, 2, 0)
    assert (tokens.offset(0, 2), tokens.offset(5, 1), tokens.offset(9, 5)) == (9, 15, -1)


class FakeTokenizeServer:
    """``POST /tokenize`` like ours: truncates at ``max_length``, 413 past ``cap`` tokens per request."""

    def __init__(self, max_length: int = 16, cap: int = REQUEST_TOKENS, status: int = 200) -> None:
        self.max_length = max_length
        self.cap = cap
        self.status = status
        self.requests: list[list[str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["content-type"] == "application/json"
        texts = json.loads(request.content)["inputs"]
        self.requests.append(texts)
        if self.status != 200:
            return httpx.Response(self.status, json={"error": "nope", "error_type": "NotFound"})
        out = []
        for text in texts:
            tokens = [{"id": 101, "special": True, "start": None, "stop": None}]
            for m in WORDS.finditer(text):
                if len(tokens) >= self.max_length - 1:
                    break
                tokens.append({"id": 7, "special": False, "start": m.start(), "stop": m.end()})
            tokens.append({"id": 102, "special": True, "start": None, "stop": None})
            out.append(tokens)
        if sum(len(t) for t in out) > self.cap:
            return httpx.Response(413, json={"error": "too many tokens", "error_type": "Validation"})
        return httpx.Response(200, json=out)


def server_tokenizer(fake: FakeTokenizeServer, max_batch: int = 32) -> ServerTokenizer:
    settings = Settings(embed_url="http://embed.test", max_retries=0)
    return ServerTokenizer(settings, fake.max_length, max_batch, transport=httpx.MockTransport(fake))


def test_the_server_tokenizer_finds_every_token_of_texts_longer_than_the_model() -> None:
    fake = FakeTokenizeServer(max_length=16)
    texts = [
        " ".join(f"w{i}" for i in range(100)),
        "short one",
        "y" * 150 + " tail",  # one 150-character "word": sent in slices, resumed mid-word
        "",
    ]
    tokenizer = server_tokenizer(fake)
    got = tokenizer.starts(texts)
    assert got[:2] + got[3:] == [[m.start() for m in WORDS.finditer(t)] for t in texts[:2] + texts[3:]]
    assert got[2][-1] == 151 and got[2][0] == 0  # the word's token, then "tail"
    assert tokenizer.specials == 2 and len(fake.requests) > 1
    tokenizer.close()


def test_requests_stay_under_the_token_cap_and_a_413_halves_them() -> None:
    fake = FakeTokenizeServer(max_length=64, cap=300)
    texts = [" ".join(["word"] * 40) for _ in range(20)]
    tokenizer = server_tokenizer(fake, max_batch=256)
    assert tokenizer.starts(texts) == [[m.start() for m in WORDS.finditer(t)] for t in texts]
    assert any(len(r) < 10 for r in fake.requests)  # some were halved after a 413
    tokenizer.close()


def test_without_tokenize_the_estimate_is_used_and_said(caplog: pytest.LogCaptureFixture) -> None:
    tokenizer = server_tokenizer(FakeTokenizeServer(status=404))
    with caplog.at_level(logging.WARNING, logger="rag"):
        assert tokenizer.starts(["a b, c"]) == EstimateTokenizer().starts(["a b, c"])
    assert "has no POST /tokenize" in caplog.text and tokenizer.estimating
    tokenizer.close()


MDOC = r""".\" OpenSSH style
.Dd $Mdocdate: November 28 2022 $
.Dt PUMP 1
.Os
.Sh NAME
.Nm pump
.Nd move water
.Sh DESCRIPTION
.Nm
moves water (see
.Xr tank 5 ) .
.Bl -tag -width Ds
.It Fl J Ar destination
Jump through
.Ar destination
first.
.It Xo
.Fl L
.Sm off
.Oo Ar bind : Oc Ar port
.Sm on
.Xc
Forward a port.
.El
.Bd -literal
pump -J a
.Ed
"""


def test_mdoc_man_pages_become_markdown() -> None:
    text, title = manpage.to_markdown(MDOC)
    assert title == "pump(1)"
    assert text == (
        "# pump(1)\n\n## NAME\n\npump - move water\n\n## DESCRIPTION\n\npump moves water (see tank(5)).\n\n"
        "-J destination\nJump through destination first.\n\n-L[bind:]port\nForward a port.\n\n"
        "```\npump -J a\n```"
    )
