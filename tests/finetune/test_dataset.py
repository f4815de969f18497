"""The built-in Python-documentation dataset: pair extraction rules and determinism."""

from __future__ import annotations

import json
from pathlib import Path

from finetune import dataset
from finetune.dataset import ApiDoc
from finetune.pairs import read_pairs


def test_summary_becomes_query_and_rest_the_passage() -> None:
    doc = ApiDoc(
        "statistics",
        "statistics.median",
        "(data)",
        "Return the median (middle value) of numeric data.\n\n"
        "When the number of data points is odd, return the middle data point.\n\n"
        ">>> median([1, 3, 5])\n3",
    )
    pair = dataset.pair_from_doc(doc)
    assert pair is not None
    assert pair.query == "Return the median (middle value) of numeric data."
    assert pair.passage == (
        "statistics.median(data)\n\nWhen the number of data points is odd, return the middle data point."
    )
    assert pair.group == "statistics"


def test_c_signatures_are_skipped_and_stripped() -> None:
    leading = ApiDoc(
        "m",
        "m.f",
        "",
        "f(x) -> int\n\nCompute the thing for x. It is computed twice over, carefully, in linear time.",
    )
    pair = dataset.pair_from_doc(leading)
    assert pair is not None and pair.query == "Compute the thing for x."
    prefixed = ApiDoc(
        "m", "m.D.pop", "", "D.pop(k[,d]) -> v, remove the key and return its value.\nMore text " * 4
    )
    pair = dataset.pair_from_doc(prefixed)
    assert pair is not None and pair.query == "Remove the key and return its value."


def test_short_or_summary_only_docs_give_no_pair() -> None:
    assert dataset.pair_from_doc(ApiDoc("m", "m.f", "", "Return x.\n\nMore words here but short.")) is None
    assert dataset.pair_from_doc(ApiDoc("m", "m.f", "", "Return the square root of x.")) is None


def test_signature_drops_memory_addresses() -> None:
    sentinel = object()

    def f(default: object = sentinel) -> None:
        """Doc."""

    assert "0x" not in dataset._signature(f)


def test_build_is_deterministic_and_split_by_group(tmp_path: Path) -> None:
    modules = ("statistics", "textwrap", "shlex", "fnmatch", "heapq", "bisect")
    first, counts, missing = dataset.build_pairs(modules)
    second, _, _ = dataset.build_pairs(tuple(reversed(modules)))
    assert first == second and missing == []
    assert counts["api"] > 20 and counts["reference"] > 100
    assert len({p.query.casefold() for p in first}) == len(first)

    manifest = dataset.build(tmp_path / "data", heldout_fraction=0.2, seed=3)
    train = read_pairs(tmp_path / "data" / "train.jsonl")
    heldout = read_pairs(tmp_path / "data" / "heldout.jsonl")
    assert manifest["pairs"]["train"] == len(train) and manifest["pairs"]["heldout"] == len(heldout)
    assert 0.15 < len(heldout) / (len(train) + len(heldout)) < 0.3
    assert not {p.group for p in train} & {p.group for p in heldout}
    assert json.loads((tmp_path / "data" / "manifest.json").read_text())["license"].startswith(
        "Python Software"
    )
