"""Reading pairs, generating them from a corpus, and the deterministic grouped split."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from finetune import pairs
from finetune.errors import UsageError
from finetune.pairs import Document, Pair

MARKDOWN = """# Deployment guide

The service runs on any Linux host with two cores. It needs four gigabytes of memory and a local disk.

## Scaling

Each replica serves one model on one device. Replicas scale horizontally behind a load balancer.

```python
# Code is never turned into pairs.
replicas = 3
```

Queue depth drives the autoscaler. When the queue grows past its high-water mark,
another replica starts within a minute.

- list items are fragments
- and are skipped as well
"""

RST = """Billing terms
=============

Invoices are issued on the first working day of each month and are payable within thirty days.

Late payment adds a fee. The fee is two percent of the unpaid amount for every started month.
"""


def test_markdown_gives_heading_and_sentence_pairs() -> None:
    got = pairs.pairs_from_document(Document("guide.md", "", MARKDOWN))
    assert [(p.query, p.group) for p in got] == [
        ("Deployment guide", "guide.md"),
        ("Deployment guide: Scaling", "guide.md"),
        ("Queue depth drives the autoscaler.", "guide.md"),
    ]
    assert got[0].passage.startswith("The service runs on any Linux host")
    assert (
        got[2].passage
        == "When the queue grows past its high-water mark, another replica starts within a minute."
    )
    assert all(p.query not in p.passage for p in got)


def test_rst_heading_and_title_from_jsonl(write_jsonl: Callable[..., Path]) -> None:
    path = write_jsonl(
        "corpus.jsonl", [{"id": "billing", "content": RST}, {"title": "Refunds", "content": "x"}]
    )
    docs = pairs.read_documents(path)
    assert [d.id for d in docs] == ["billing", "line-1"]
    got = pairs.pairs_from_document(docs[0])
    assert [p.query for p in got] == ["Billing terms", "Late payment adds a fee."]


def test_read_pairs_reports_the_bad_line(write_jsonl: Callable[..., Path]) -> None:
    path = write_jsonl("pairs.jsonl", [{"query": "a b c", "passage": "text"}, {"query": "", "passage": "x"}])
    with pytest.raises(UsageError, match=r"pairs.jsonl:2: field 'query' must be a non-empty string"):
        pairs.read_pairs(path)
    broken = path.with_name("broken.jsonl")
    broken.write_text('{"query": "q", "passage": "p"}\nnot json\n')
    with pytest.raises(UsageError, match=r"broken.jsonl:2: not valid JSON"):
        pairs.read_pairs(broken)


def test_split_is_deterministic_grouped_and_order_free(make_pairs: Callable[..., list[Pair]]) -> None:
    items = make_pairs(40, group_size=4)
    train, heldout = pairs.split(items, 0.25, seed=7)
    again_train, again_heldout = pairs.split(list(reversed(items)), 0.25, seed=7)
    assert {p.query for p in train} == {p.query for p in again_train}
    assert {p.query for p in heldout} == {p.query for p in again_heldout}
    assert len(heldout) == 12  # groups of 4 fill the held-out side until it reaches 10 of 40
    assert not {p.group for p in train} & {p.group for p in heldout}
    other_train, _ = pairs.split(items, 0.25, seed=8)
    assert {p.query for p in other_train} != {p.query for p in train}


def test_split_keeps_both_sides_non_empty(make_pairs: Callable[..., list[Pair]]) -> None:
    train, heldout = pairs.split(make_pairs(2), 0.9, seed=1)
    assert len(train) == 1 and len(heldout) == 1
    with pytest.raises(UsageError, match="heldout-fraction"):
        pairs.split(make_pairs(2), 1.0, seed=1)


def test_load_tells_the_data_shapes_apart(
    tmp_path: Path, make_pairs: Callable[..., list[Pair]], write_jsonl: Callable[..., Path]
) -> None:
    items = make_pairs(10)
    pairs_file = write_jsonl("pairs.jsonl", [p.to_json() for p in items])
    assert pairs.load(pairs_file, 0.2, 1).kind == "pairs"

    dataset = tmp_path / "dataset"
    pairs.write_pairs(dataset / pairs.TRAIN_FILE, items[:8])
    pairs.write_pairs(dataset / pairs.HELDOUT_FILE, items[8:])
    loaded = pairs.load(dataset, 0.5, 1)
    assert (loaded.kind, len(loaded.train), len(loaded.heldout)) == ("split", 8, 2)

    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "guide.md").write_text(MARKDOWN)
    (folder / "sub" / "billing.rst").write_text(RST)
    (folder / "ignored.py").write_text("print('not a document')")
    corpus = pairs.load(folder, 0.3, 1)
    assert corpus.kind == "corpus"
    assert {p.group for p in corpus.train + corpus.heldout} == {"guide.md", "sub/billing.rst"}

    unknown = write_jsonl("unknown.jsonl", [{"text": "no known keys"}])
    with pytest.raises(UsageError, match="neither query/passage"):
        pairs.load(unknown, 0.2, 1)
    with pytest.raises(UsageError, match="does not exist"):
        pairs.load(tmp_path / "missing", 0.2, 1)


def test_heldout_file_resolution(tmp_path: Path, make_pairs: Callable[..., list[Pair]]) -> None:
    run = tmp_path / "run"
    pairs.write_pairs(run / "training" / pairs.HELDOUT_FILE, make_pairs(3))
    assert pairs.heldout_file(run) == run / "training" / pairs.HELDOUT_FILE
    with pytest.raises(UsageError, match="held-out pairs"):
        pairs.heldout_file(tmp_path / "empty")


def test_split_never_puts_a_document_or_a_passage_on_both_sides() -> None:
    items = [Pair(f"query {i} about things", f"passage {i % 5}", "") for i in range(20)]  # no groups
    items += [Pair(f"doc query {i}", f"section {i}", f"doc{i // 4}") for i in range(20)]
    items.append(Pair("bridging query", "section 0", "doc4"))  # doc4 shares a passage with doc0
    for seed in range(5):
        train, heldout = pairs.split(items, 0.3, seed)
        assert train and heldout
        assert not {p.passage for p in train} & {p.passage for p in heldout}
        assert not {p.group for p in train if p.group} & {p.group for p in heldout if p.group}
    units = pairs.split_groups(items)
    assert units[len(items) - 1] == units[20]  # doc4 and doc0 are one unit


def test_corpus_pairs_carry_their_style() -> None:
    doc = Document("guide.md", "", MARKDOWN)
    got = pairs.pairs_from_document(doc)
    assert [p.style for p in got] == ["heading", "heading", "sentence"]
    assert [p.style for p in pairs.pairs_from_document(doc, ("sentence",))] == ["sentence"]
    assert pairs.pairs_from_document(doc, ()) == []


def test_negatives_field_is_checked(write_jsonl: Callable[..., Path]) -> None:
    path = write_jsonl("pairs.jsonl", [{"query": "a b c", "passage": "text", "negatives": "not a list"}])
    with pytest.raises(UsageError, match="'negatives' must be a list"):
        pairs.read_pairs(path)
