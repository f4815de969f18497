"""A small Okapi BM25 index over passages, in Python and numpy.

Used to mine lexical hard negatives (:mod:`finetune.negatives`) and to weigh the terms of a
passage for keyword queries (:mod:`finetune.keywords`). Terms are lower-cased runs of letters
and digits of two or more characters, minus a short English stop-word list. Scores are
Lucene's BM25 (``k1`` 1.2, ``b`` 0.75, idf ``ln(1 + (N - df + 0.5) / (df + 0.5))``), so they
are never negative.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

K1 = 1.2
B = 0.75
STOPWORDS = frozenset(
    """a about above after again all also an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers him his how if in into is it its itself just me more
    most my no nor not now of off on once only or other our out over own same she should so
    some such than that the their them then there these they this those through to too under
    until up very was we were what when where which while who whom why will with would you your
    may must might shall use used using one two see""".split()
)
_TERM = re.compile(r"[A-Za-z0-9]+")


def terms(text: str) -> list[str]:
    """The index terms of ``text`` in order: lower-cased words of 2+ characters, no stop words."""
    return [t for w in _TERM.findall(text) if len(t := w.lower()) >= 2 and t not in STOPWORDS]


class Index:
    """BM25 over a fixed list of passages; passage ``i`` is row ``i`` of every score vector."""

    def __init__(self, passages: Sequence[str]) -> None:
        self.size = len(passages)
        postings: dict[str, tuple[list[int], list[int]]] = {}
        lengths = np.zeros(self.size, dtype=np.float32)
        for row, text in enumerate(passages):
            counts = Counter(terms(text))
            lengths[row] = sum(counts.values())
            for term, count in counts.items():
                rows, tfs = postings.setdefault(term, ([], []))
                rows.append(row)
                tfs.append(count)
        average = float(lengths.mean()) if self.size else 0.0
        norm = K1 * (1 - B + B * lengths / max(average, 1e-9))
        self.idf: dict[str, float] = {}
        self._postings: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]] = {}
        for term, (rows, tfs) in postings.items():
            self.idf[term] = math.log(1 + (self.size - len(rows) + 0.5) / (len(rows) + 0.5))
            r = np.asarray(rows, dtype=np.int64)
            tf = np.asarray(tfs, dtype=np.float32)
            self._postings[term] = (r, (tf * (K1 + 1) / (tf + norm[r])).astype(np.float32))

    def scores(self, query: str) -> npt.NDArray[np.float32]:
        """BM25 score of every passage for ``query`` (a query term counts once per occurrence)."""
        result = np.zeros(self.size, dtype=np.float32)
        for term in terms(query):
            found = self._postings.get(term)
            if found is not None:
                rows, weights = found
                result[rows] += np.float32(self.idf[term]) * weights
        return result
