"""A document's layout: headings, text paragraphs and code blocks, with character offsets.

``blocks(text, fmt)`` reads three formats:

- ``markdown``: ATX (``# Title``) and setext (``Title`` over ``===``/``---``) headings, fenced
  code (```` ``` ```` or ``~~~``, blank lines inside kept), other paragraphs split on blank lines;
- ``rst``: section titles (a line under-, and maybe over-lined with one punctuation character;
  levels in order of first use), literal blocks (after a paragraph ending in ``::``, or a
  ``code-block``/``code``/``sourcecode`` directive: the indented lines that follow), paragraphs;
- ``text``: paragraphs on blank lines; underlined titles as in ``rst``, and a lone short line
  in capitals (``DESCRIPTION``) as a heading.

Man pages are turned into ``markdown`` when they are read (:mod:`rag.manpage`). Each block is
a span ``[start, end)`` of the text without its surrounding whitespace; ``sentences`` and
``lines`` split a block further. Nothing is rewritten: every span is an exact slice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Format = Literal["text", "markdown", "rst"]
Kind = Literal["heading", "text", "code"]

_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+:.])\1{2,}[ \t]*$")
_DIRECTIVE_CODE = re.compile(r"^\s*\.\.\s+(code-block|code|sourcecode)::")
_SENTENCE_END = re.compile(r"[.!?\u3002\uff01\uff1f]+[\"')\]]*(?=\s)")
_ITEM = re.compile(r"^[ \t]*(?:[-*+\u2022]|\d+[.)]|-{1,2}\w)[ \t]")


@dataclass(frozen=True)
class Block:
    """One heading, paragraph or code block: ``text[start:end]``; ``level`` 1.. for headings."""

    start: int
    end: int
    kind: Kind
    level: int = 0
    title: str = ""


@dataclass(frozen=True)
class _Line:
    start: int
    end: int
    text: str

    @property
    def blank(self) -> bool:
        return not self.text.strip()

    @property
    def indent(self) -> int:
        return len(self.text) - len(self.text.lstrip())


def _lines(text: str) -> list[_Line]:
    out = []
    pos = 0
    for raw in text.split("\n"):
        out.append(_Line(pos, pos + len(raw), raw))
        pos += len(raw) + 1
    return out


def _span(lines: list[_Line], kind: Kind, level: int = 0, title: str = "") -> Block:
    """The block covering ``lines`` without leading and trailing whitespace."""
    first = next(ln for ln in lines if not ln.blank)
    last = next(ln for ln in reversed(lines) if not ln.blank)
    start = first.start + first.indent
    end = last.start + len(last.text.rstrip())
    return Block(start, end, kind, level, title)


def blocks(text: str, fmt: Format) -> list[Block]:
    """The blocks of ``text`` in order (module doc)."""
    if fmt == "markdown":
        return _markdown(_lines(text))
    return _structured(_lines(text), rst=fmt == "rst")


def _markdown(lines: list[_Line]) -> list[Block]:
    out: list[Block] = []
    para: list[_Line] = []

    def flush() -> None:
        if para:
            out.append(_span(para, "text"))
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line.text)
        if fence:
            flush()
            marker = fence.group(1)
            j = i + 1
            while j < len(lines) and not lines[j].text.strip().startswith(marker[0] * len(marker)):
                j += 1
            out.append(_span(lines[i : j + 1], "code"))
            i = j + 1
            continue
        atx = _ATX.match(line.text)
        if atx:
            flush()
            out.append(_span([line], "heading", len(atx.group(1)), atx.group(2).strip()))
        elif line.blank:
            flush()
        elif _SETEXT.match(line.text) and len(para) == 1:
            level = 1 if line.text.strip().startswith("=") else 2
            title = para[0].text.strip()
            out.append(_span([para[0], line], "heading", level, title))
            para.clear()
        elif _SETEXT.match(line.text) and not para and line.text.strip().startswith("-"):
            pass  # a thematic break
        else:
            para.append(line)
        i += 1
    flush()
    return out


def _is_caps_heading(para: list[_Line]) -> bool:
    if len(para) != 1:
        return False
    text = para[0].text.strip()
    letters = [c for c in text if c.isalpha()]
    return 2 <= len(text) <= 60 and len(letters) >= 2 and all(c.isupper() for c in letters)


def _structured(lines: list[_Line], rst: bool) -> list[Block]:
    """``rst`` and ``text``: titles by adornment, literal blocks (rst), paragraphs."""
    out: list[Block] = []
    styles: list[tuple[str, bool]] = []
    para: list[_Line] = []

    def level(style: tuple[str, bool]) -> int:
        if style not in styles:
            styles.append(style)
        return styles.index(style) + 1

    def flush() -> None:
        if not para:
            return
        if not rst and _is_caps_heading(para):
            out.append(_span(para, "heading", 1, para[0].text.strip()))
        else:
            out.append(_span(para, "text"))
        para.clear()

    def literal(from_line: int, base_indent: int) -> tuple[int, list[_Line]]:
        """The lines after ``from_line`` indented past ``base_indent`` (blank ones between)."""
        j = from_line
        while j < len(lines) and lines[j].blank:
            j += 1
        k = j
        while k < len(lines) and (lines[k].blank or lines[k].indent > base_indent):
            k += 1
        body = lines[j:k]
        return k, body if any(not ln.blank for ln in body) else []

    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else None
        if line.blank:
            flush()
            i += 1
            continue
        # Over- and underlined title: adornment, title, same adornment.
        if (
            _ADORNMENT.match(line.text)
            and not para
            and nxt is not None
            and not nxt.blank
            and i + 2 < len(lines)
            and lines[i + 2].text.strip() == line.text.strip()
        ):
            title = nxt.text.strip()
            out.append(_span(lines[i : i + 3], "heading", level((line.text.strip()[0], True)), title))
            i += 3
            continue
        # Underlined title: one line of text, then an adornment at least as long.
        if (
            not para
            and nxt is not None
            and _ADORNMENT.match(nxt.text)
            and not _ADORNMENT.match(line.text)
            and len(nxt.text.strip()) >= len(line.text.strip())
            and (i + 2 >= len(lines) or lines[i + 2].blank or rst)
        ):
            title = line.text.strip()
            out.append(_span([line, nxt], "heading", level((nxt.text.strip()[0], False)), title))
            i += 2
            continue
        if rst and _DIRECTIVE_CODE.match(line.text):
            flush()
            j = i + 1
            while j < len(lines) and not lines[j].blank and lines[j].indent > line.indent:
                j += 1  # the directive's options
            end, body = literal(j, line.indent)
            if body:
                out.append(_span([line, *body], "code"))
                i = end
                continue
        para.append(line)
        if rst and line.text.rstrip().endswith("::") and (nxt is None or nxt.blank):
            base = para[0].indent
            flush()
            end, body = literal(i + 1, base)
            if body:
                out.append(_span(body, "code"))
            i = end
            continue
        i += 1
    flush()
    return out


def sentences(text: str, start: int, end: int) -> list[int]:
    """Offsets inside ``(start, end)`` where a new sentence or list item begins."""
    cuts: set[int] = set()
    piece = text[start:end]
    for m in _SENTENCE_END.finditer(piece):
        j = m.end()
        while j < len(piece) and piece[j].isspace():
            j += 1
        if j < len(piece):
            cuts.add(start + j)
    pos = 0
    for raw in piece.split("\n"):
        if pos and _ITEM.match(raw):
            cuts.add(start + pos + (len(raw) - len(raw.lstrip())))
        pos += len(raw) + 1
    return sorted(c for c in cuts if start < c < end)


def lines(text: str, start: int, end: int) -> list[int]:
    """Offsets inside ``(start, end)`` where a non-blank line begins."""
    cuts = []
    pos = start
    for raw in text[start:end].split("\n"):
        stripped = raw.lstrip()
        if pos > start and stripped:
            cuts.append(pos + len(raw) - len(stripped))
        pos += len(raw) + 1
    return cuts


def words(text: str, start: int, end: int) -> list[int]:
    """Offsets inside ``(start, end)`` where a word begins after whitespace."""
    return [start + m.start() for m in re.finditer(r"(?<=\s)\S", text[start:end]) if m.start() > 0]
