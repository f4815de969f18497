"""Keyword queries: the few words that set a passage apart, as a user types them into a search box.

For every distinct training passage, the query is its ``KEYWORDS`` terms of highest weight
``tf x idf`` (the idf of :class:`finetune.bm25.Index` over all training passages), written in
the form of their first occurrence and in passage order (``"ThreadPoolExecutor max_workers
shutdown"`` style, minus punctuation). Terms that are only digits do not count. A passage
with fewer than ``MIN_KEYWORDS`` such terms gets no query, and a keyword query that two
passages share, or that equals an existing query, is dropped: it would have two answers.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from finetune.bm25 import STOPWORDS, Index
from finetune.pairs import Pair

KEYWORDS = 4
MIN_KEYWORDS = 2
STYLE = "keywords"
_WORD = re.compile(r"[A-Za-z0-9]+")


def keyword_query(passage: str, index: Index, count: int = KEYWORDS) -> str | None:
    """The keyword query of one passage, or None when it has too few distinctive terms."""
    first_form: dict[str, tuple[int, str]] = {}
    tf: Counter[str] = Counter()
    for position, word in enumerate(_WORD.findall(passage)):
        term = word.lower()
        if len(term) < 2 or term in STOPWORDS or term.isdigit():
            continue
        tf[term] += 1
        first_form.setdefault(term, (position, word))
    ranked = sorted(tf, key=lambda t: (-tf[t] * index.idf.get(t, 0.0), first_form[t][0]))[:count]
    if len(ranked) < MIN_KEYWORDS:
        return None
    return " ".join(first_form[t][1] for t in sorted(ranked, key=lambda t: first_form[t][0]))


def keyword_pairs(items: Sequence[Pair], index: Index | None = None) -> list[Pair]:
    """One keyword pair per distinct passage of ``items`` (same group), unambiguous ones only."""
    passages = list(dict.fromkeys(p.passage for p in items))
    group = {p.passage: p.group for p in reversed(items)}
    index = index or Index(passages)
    made = [(q, p) for p in passages if (q := keyword_query(p, index)) is not None]
    seen = Counter(q.casefold() for q, _ in made)
    existing = {p.query.casefold() for p in items}
    return [
        Pair(q, p, group[p], style=STYLE)
        for q, p in made
        if seen[q.casefold()] == 1 and q.casefold() not in existing
    ]
