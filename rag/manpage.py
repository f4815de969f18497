"""Man pages (troff with the ``man`` macros) as Markdown text, so they chunk by section.

Not a typesetter: it keeps the words and the structure a reader needs. ``.TH NAME SECTION``
becomes the title ``# name(section)``, ``.SH``/``.SS`` become ``##``/``###`` headings,
``.PP``/``.LP``/``.P``/``.sp``/blank lines end a paragraph, ``.TP``/``.IP`` start one whose
first line is the tag (an option, say) with its description on the next line, ``.nf``/``.fi``
and ``.EX``/``.EE`` become fenced code, ``.br`` and ``.RS`` a line break; font macros (``.B``, ``.BR``,
...) and escapes (``\\fB``, ``\\-``, ``\\(em``, ``\\*(Aq``, ``\\[u2014]``, ...) become plain
text; ``.TS``/``.TE`` tables become one line per row; every other request is dropped, and so is
the body of an ``.ie``/``.if`` block (its ``.el`` body is read: groff's branch).
Filled text is joined into one line per paragraph. A page that is only ``.so other`` (an
alias) has no text.

Pages written with the BSD ``mdoc`` macros (``.Dd``/``.Dt``/``.Sh``: OpenSSH's, for one) are
read the same way: ``.Dt`` is the title, ``.Sh``/``.Ss`` the headings, ``.Pp`` a paragraph
break, ``.It`` an item whose first line is its tag, ``.Bd -literal``/``.Ed`` code; the inline
macros become their text (``.Fl L Ar port`` -> ``-L port``, ``.Op`` -> ``[...]``, ``.Xr ssh 1``
-> ``ssh(1)``, ``.Ns`` and ``.Sm off`` join words).
"""

from __future__ import annotations

import re

_NAMED = {
    "em": "\u2014",
    "en": "\u2013",
    "bu": "\u2022",
    "aq": "'",
    "dq": '"',
    "lq": '"',
    "rq": '"',
    "oq": "'",
    "cq": "'",
    "ga": "`",
    "ti": "~",
    "ha": "^",
    "rs": "\\",
    "co": "\u00a9",
    "rg": "\u00ae",
    "tm": "\u2122",
    "hy": "-",
    "mi": "-",
    "pl": "+",
    "mu": "\u00d7",
    "de": "\u00b0",
    ">=": "\u2265",
    "<=": "\u2264",
    "->": "\u2192",
    "<-": "\u2190",
    "sl": "/",
    "ba": "|",
    "br": "|",
    "Aq": "'",
    "R": "\u00ae",
    "Tm": "\u2122",
}
_ESCAPE = re.compile(
    r"""\\(?:
        (?P<font>f(?:\(..|\[[^\]]*\]|.))
      | (?P<string>\*(?:\(..|\[[^\]]*\]|.))
      | \((?P<char2>..)
      | \[(?P<charn>[^\]]*)\]
      | (?P<size>s(?:[+-]?\d|\(\d\d|\[[^\]]*\]))
      | (?P<quoted>[hvwNlLxbDoZXSR]'[^']*')
      | (?P<register>[nmgkMVY](?:\(..|\[[^\]]*\]|.))
      | (?P<single>.)
    )""",
    re.VERBOSE,
)
_SINGLE = {
    "-": "-",
    "e": "\\",
    "\\": "\\",
    " ": " ",
    "~": " ",
    "0": " ",
    "t": "\t",
    "'": "'",
    "`": "`",
    ".": ".",
}
_FONT_JOINED = {"BR", "BI", "IB", "IR", "RB", "RI"}
_FONT_SPACED = {"B", "I", "SM", "SB"}
_SKIP_BLOCK = {"de", "de1", "am", "ig"}


def _char(name: str) -> str:
    if name in _NAMED:
        return _NAMED[name]
    if name.startswith("u") and re.fullmatch(r"u[0-9A-Fa-f]{4,6}", name):
        return chr(int(name[1:], 16))
    return ""


def _unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group("char2") is not None:
            return _char(m.group("char2"))
        if m.group("charn") is not None:
            return _char(m.group("charn"))
        if m.group("string") is not None:
            name = m.group("string")[1:].strip("([]")
            return _char(name)
        if m.group("single") is not None:
            return _SINGLE.get(m.group("single"), "")
        return ""

    return _ESCAPE.sub(one, text.split('\\"', 1)[0] if '\\"' in text else text)


def _args(rest: str) -> list[str]:
    """Macro arguments: whitespace-separated, double quotes group (``""`` is a quote)."""
    out: list[str] = []
    i = 0
    while i < len(rest):
        if rest[i].isspace():
            i += 1
            continue
        if rest[i] == '"':
            j = i + 1
            buf = []
            while j < len(rest):
                if rest[j] == '"' and rest[j + 1 : j + 2] == '"':
                    buf.append('"')
                    j += 2
                    continue
                if rest[j] == '"':
                    break
                buf.append(rest[j])
                j += 1
            out.append("".join(buf))
            i = j + 1
        else:
            j = i
            while j < len(rest) and not rest[j].isspace():
                j += 2 if rest[j] == "\\" else 1
            out.append(rest[i:j])
            i = j
    return out


class _Writer:
    def __init__(self) -> None:
        self.out: list[str] = []
        self.lines: list[list[str]] = []  # the paragraph being filled, line by line
        self.code = False
        self.tag_pending = False

    def end_paragraph(self) -> None:
        if any(words for words in self.lines):
            if self.out and self.out[-1] != "":
                self.out.append("")
            self.out.extend(" ".join(words) for words in self.lines if words)
            self.out.append("")
        self.lines = []

    def block(self, line: str) -> None:
        """A line of its own (a heading), between blank lines."""
        self.end_paragraph()
        if self.out and self.out[-1] != "":
            self.out.append("")
        self.out.extend([line, ""])

    def text(self, words: str) -> None:
        if self.code:
            self.out.append(words.rstrip())
            return
        if not words.strip():
            return
        if not self.lines:
            self.lines.append([])
        self.lines[-1].append(words.strip())
        if self.tag_pending:
            self.tag_pending = False
            self.lines.append([])

    def line_break(self) -> None:
        if self.lines and self.lines[-1]:
            self.lines.append([])

    def start_code(self) -> None:
        if not self.code:
            self.end_paragraph()
            self.out.append("```")
            self.code = True

    def end_code(self) -> None:
        if self.code:
            self.out.extend(["```", ""])
            self.code = False


def _table(w: _Writer, lines: list[str]) -> None:
    """A ``tbl`` table (``.TS`` ... ``.TE``): one line per row, cells joined by `` | ``."""
    tab = "\t"
    body = list(lines)
    if body and body[0].rstrip().endswith(";"):
        found = re.search(r"tab\s*\((.)\)", body[0])
        tab = found.group(1) if found else tab
        body = body[1:]
    while body and not body[0].rstrip().endswith("."):
        body = body[1:]
    text = _unescape("\n".join(body[1:]))
    text = re.sub(
        r"T\{\n(.*?)\nT\}",
        lambda m: " ".join(ln.strip() for ln in m.group(1).split("\n") if not ln.startswith(".")),
        text,
        flags=re.DOTALL,
    )
    w.end_paragraph()
    format_lines = False
    for row in text.split("\n"):
        if format_lines:
            format_lines = not row.rstrip().endswith(".")
            continue
        if row.startswith(".") or not row.strip():
            format_lines = row.startswith(".T&")
            continue
        w.text(" | ".join(cell.strip() for cell in row.split(tab) if cell.strip()))
        w.line_break()
    w.end_paragraph()


_MDOC_ENCLOSE = {
    "Op": ("[", "]"),
    "Dq": ('"', '"'),
    "Qq": ('"', '"'),
    "Sq": ("'", "'"),
    "Ql": ("'", "'"),
    "Pq": ("(", ")"),
    "Bq": ("[", "]"),
    "Brq": ("{", "}"),
    "Aq": ("<", ">"),
}
_MDOC_OPEN = {"Oo": "[", "Do": '"', "Qo": '"', "So": "'", "Po": "(", "Bo": "[", "Ao": "<", "Eo": ""}
_MDOC_CLOSE = {"Oc": "]", "Dc": '"', "Qc": '"', "Sc": "'", "Pc": ")", "Bc": "]", "Ac": ">", "Ec": ""}
_MDOC_WORDS = {
    "Ad", "An", "Ar", "Cd", "Cm", "Dv", "Em", "Er", "Ev", "Fa", "Fn", "Ft", "Ic", "In", "Li", "Lk",
    "Ms", "Mt", "No", "Pa", "Sx", "Sy", "Tn", "Va", "Vt", "Xo", "Xc", "Ta", "Dl", "D1", "Bx", "At",
}  # fmt: skip
_MDOC_MACROS = {
    *_MDOC_ENCLOSE,
    *_MDOC_OPEN,
    *_MDOC_CLOSE,
    *_MDOC_WORDS,
    "Fl",
    "Nm",
    "Ns",
    "Pf",
    "Xr",
    "Sm",
    "Ux",
}
_PUNCT = frozenset({".", ",", ":", ";", ")", "]", "?", "!"})


def _mdoc_text(tokens: list[str], name: str, glued: bool = False) -> str:
    """The text of an mdoc line's macros and words (module doc)."""
    parts: list[tuple[str, bool]] = []  # (text, joined to what precedes)
    glue = glued
    i = 0
    while i < len(tokens):
        t = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        plain = nxt is not None and nxt not in _MDOC_MACROS and nxt not in _PUNCT
        if t in _MDOC_ENCLOSE:
            rest = tokens[i + 1 :]
            trail: list[str] = []
            while rest and rest[-1] in _PUNCT:
                trail.insert(0, rest.pop())
            a, b = _MDOC_ENCLOSE[t]
            parts.append((a + _mdoc_text(rest, name, glued) + b, glue))
            parts.extend((p, True) for p in trail)
            break
        if t in _MDOC_OPEN:
            parts.append((_MDOC_OPEN[t], glue))
            glue, i = True, i + 1
            continue
        if t in _MDOC_CLOSE:
            parts.append((_MDOC_CLOSE[t], True))
            glue, i = glued, i + 1
            continue
        if t == "Ns":
            glue, i = True, i + 1
            continue
        if t == "Fl":
            parts.append(("-" + (nxt if plain and nxt else ""), glue))
            glue, i = glued, i + (2 if plain else 1)
            continue
        if t == "Nm":
            parts.append((nxt if plain and nxt else name, glue))
            glue, i = glued, i + (2 if plain else 1)
            continue
        if t == "Xr" and plain and nxt:
            section = tokens[i + 2] if i + 2 < len(tokens) and tokens[i + 2] not in _MDOC_MACROS else ""
            parts.append((f"{nxt}({section})" if section else nxt, glue))
            glue, i = glued, i + (3 if section else 2)
            continue
        if t == "Pf" and nxt:
            parts.append((nxt, glue))
            glue, i = True, i + 2
            continue
        if t == "Ux":
            parts.append(("UNIX", glue))
            glue, i = glued, i + 1
            continue
        if t in _MDOC_MACROS:
            i += 1
            continue
        parts.append((t, glue or t in _PUNCT))
        glue, i = glued, i + 1
    text = ""
    for piece, joined in parts:
        text += piece if (joined or not text) else " " + piece
    return text


def _mdoc(source: str) -> tuple[str, str | None]:
    w = _Writer()
    title: str | None = None
    name = ""
    spacing = True
    tag: str | None = None  # an .It tag continued over lines (.Xo ... .Xc)
    lists: list[str] = []
    for raw in source.replace("\r\n", "\n").split("\n"):
        if raw.startswith(('.\\"', "'\\\"")):
            continue
        if not raw.startswith("."):
            if raw.strip():
                w.text(_unescape(raw))
            elif not w.code:
                w.end_paragraph()
            continue
        body = raw[1:].strip()
        macro, _, rest = body.partition(" ")
        tokens = [_unescape(a) for a in _args(rest)]
        if macro == "Sm":
            spacing = rest.strip() != "off"
            continue
        text = _mdoc_text(tokens, name, glued=not spacing)
        if tag is not None and macro in _MDOC_MACROS:
            piece = _mdoc_text([macro, *tokens], name, glued=not spacing)
            tag += piece if not spacing or not tag or not piece else " " + piece
            if "Xc" in (macro, *tokens):
                w.text(tag)
                w.line_break()
                tag = None
            continue
        if macro == "Dt" and tokens:
            title = tokens[0].lower() + (f"({tokens[1]})" if len(tokens) > 1 else "")
            w.block(f"# {title}")
        elif macro in ("Sh", "Ss"):
            w.end_code()
            w.block(f"{'##' if macro == 'Sh' else '###'} {text}")
        elif macro == "Nm" and not name and tokens:
            name = tokens[0]
            w.text(text)
        elif macro == "Nd":
            w.text("- " + text)
        elif macro in ("Pp", "Lp", "sp"):
            if w.code:
                w.text("")
            else:
                w.end_paragraph()
        elif macro == "Bl":
            lists.append("bullet" if {"-bullet", "-dash", "-hyphen"} & set(rest.split()) else "tag")
        elif macro == "El":
            if lists:
                lists.pop()
            w.end_paragraph()
        elif macro == "It":
            w.end_paragraph()
            if lists and lists[-1] == "bullet":
                w.text("\u2022")
            elif "Xo" in tokens and "Xc" not in tokens:
                tag = text
            elif text:
                w.text(text)
                w.line_break()
        elif macro == "Bd":
            if "-literal" in rest or "-unfilled" in rest:
                w.start_code()
        elif macro == "Ed":
            w.end_code()
        elif macro == "br":
            w.line_break()
        elif macro in _MDOC_MACROS:
            inline = _mdoc_text([macro, *tokens], name, glued=not spacing)
            if inline:
                w.text(inline)
    w.end_code()
    w.end_paragraph()
    lines = w.out
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines), title


def to_markdown(source: str) -> tuple[str, str | None]:
    """``(markdown, title)`` of a man page's source; the title is ``name(section)``."""
    if re.search(r"^\.(Dd|Dt|Sh) ", source, re.MULTILINE):
        return _mdoc(source)
    w = _Writer()
    title: str | None = None
    heading_next = ""
    skip_until_dots = False
    skip_until_brace = False
    table: list[str] | None = None
    for raw in source.replace("\r\n", "\n").split("\n"):
        if skip_until_dots:
            skip_until_dots = raw.strip() != ".."
            continue
        if skip_until_brace:
            skip_until_brace = "\\}" not in raw
            continue
        if table is not None:
            if raw.startswith(".TE"):
                _table(w, table)
                table = None
            else:
                table.append(raw)
            continue
        if raw[:1] in (".", "'") and not raw.startswith(("'\\\"", '.\\"')):
            body = raw[1:].lstrip()
            name, _, rest = body.partition(" ")
            name, rest = name.strip(), rest.strip()
            if "\t" in name:
                name, _, more = name.partition("\t")
                rest = f"{more} {rest}".strip()
            args = [_unescape(a) for a in _args(rest)]
            if name in _SKIP_BLOCK:
                skip_until_dots = True
            elif name in ("ie", "if"):
                skip_until_brace = "\\{" in rest and "\\}" not in rest
            elif name == "TS":
                table = []
            elif name == "TH" and args:
                title = args[0].lower() + (f"({args[1]})" if len(args) > 1 else "")
                w.block(f"# {title}")
            elif name in ("SH", "SS"):
                mark = "##" if name == "SH" else "###"
                if args:
                    w.end_code()
                    w.block(f"{mark} {' '.join(args)}")
                else:
                    heading_next = mark
            elif name in ("PP", "LP", "P", "sp", "HP", "ns"):
                if w.code:
                    w.text("")
                else:
                    w.end_paragraph()
            elif name in ("TP", "TQ"):
                w.end_paragraph()
                w.tag_pending = True
            elif name == "IP":
                w.end_paragraph()
                tag = args[0] if args else ""
                if tag.strip():
                    w.text(tag)
                    if tag.strip() not in ("\u2022", "-", "*"):
                        w.line_break()
            elif name in _FONT_SPACED:
                if args:
                    w.text(" ".join(args))
            elif name in _FONT_JOINED:
                w.text("".join(args))
            elif name in ("nf", "EX"):
                w.start_code()
            elif name in ("fi", "EE"):
                w.end_code()
            elif name in ("br", "RS"):
                w.line_break()
            elif name in ("UR", "MT"):
                if args:
                    w.text(args[0])
            elif name == "SY":
                w.end_paragraph()
                w.text(" ".join(args))
            elif name == "OP":
                w.text("[" + " ".join(args) + "]")
            elif name == "YS":
                w.end_paragraph()
            continue
        if raw.startswith(("'\\\"", '.\\"')):
            continue
        text = _unescape(raw)
        if heading_next:
            if text.strip():
                w.end_code()
                w.block(f"{heading_next} {text.strip()}")
                heading_next = ""
            continue
        if not text.strip() and not w.code:
            w.end_paragraph()
            continue
        w.text(text)
    w.end_code()
    w.end_paragraph()
    lines = w.out
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines), title
