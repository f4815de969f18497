"""The int8 gate's retrieval domains: built in, deterministic, apart from the calibration texts."""

from __future__ import annotations

import pytest

from export import corpus, domains
from export.prose_corpus import PROSE


@pytest.mark.parametrize("name", domains.names())
def test_each_domain_has_distinct_pairs_and_no_query_inside_its_passage(name: str) -> None:
    built = domains.build(name)
    assert len(built.queries) == len(built.passages) == domains.DOMAIN_SIZE
    assert len(set(built.passages)) == len(built.passages), "a passage answers one query only"
    assert len(set(built.queries)) == len(built.queries)
    for query, passage in zip(built.queries, built.passages, strict=True):
        assert query and passage
        if name != "short-queries":  # a section's title may well recur in its text
            assert query not in passage, "the query must be found by meaning, not as a substring"
        if name != "docstrings":  # export.corpus cuts those at 700 characters
            assert len(passage.split()) <= domains.MAX_PASSAGE_WORDS


def test_domains_are_deterministic_and_as_documented() -> None:
    assert domains.names() == ("docstrings", "tech-docs", "short-queries", "code", "prose")
    for name in domains.names():
        assert domains.build(name) == domains.build(name)
    short = domains.build("short-queries")
    assert max(len(q.split()) for q in short.queries) <= 6
    # tech-docs and short-queries ask different questions of the same passages.
    assert short.passages == domains.build("tech-docs").passages
    code = domains.build("code")
    assert sum(p.startswith(("def ", "async def ", "@")) for p in code.passages) == len(code.passages)
    assert all('"""' not in p.split("\n", 1)[1][:200] for p in code.passages if "\n" in p)
    assert set(domains.build("prose").queries) <= {q for q, _ in PROSE}


def test_no_domain_text_is_a_calibration_text() -> None:
    calibration = set(corpus.calibration_texts())
    for name in domains.names():
        built = domains.build(name)
        assert not calibration & {*built.queries, *built.passages}, name


def test_prose_pairs_are_plain_distinct_paragraphs() -> None:
    assert len(PROSE) == 160
    assert len({q for q, _ in PROSE}) == len({p for _, p in PROSE}) == 160
    assert all(50 <= len(p.split()) <= 110 for _, p in PROSE)


def test_a_smaller_domain_is_spread_over_the_whole_source() -> None:
    whole = domains.build("tech-docs", size=10_000)
    part = domains.build("tech-docs", size=10)
    assert len(part.queries) == 10 and set(part.queries) <= set(whole.queries)
    assert part.queries[0] == whole.queries[0] and part.queries[-1] != whole.queries[-1]
    assert part.queries[-1] in whole.queries[len(whole.queries) // 2 :]
