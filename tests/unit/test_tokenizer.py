"""The tokenizer's input clip: a huge input costs what a page costs, and changes no result
for ordinary text (compared with tokenizing the whole text and truncating)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer as HFTokenizer

from server.errors import PayloadTooLarge
from server.manifest import load
from server.tokenizer import Tokenizer

WORDS = "the quick brown fox jumps over the lazy dog while embeddings are computed in batches "


@pytest.fixture(scope="module")
def tokenizer(minilm_model_dir: Path) -> Tokenizer:
    return Tokenizer(minilm_model_dir, load(minilm_model_dir).max_length)


def whole(directory: Path, text: str, max_length: int, side: str) -> list[int]:
    reference = HFTokenizer.from_file(str(directory / "tokenizer.json"))
    reference.no_padding()
    reference.enable_truncation(max_length=max_length, direction=side)
    return list(reference.encode(text).ids)


@pytest.mark.parametrize("side", ["right", "left"])
def test_a_huge_input_gets_the_ids_of_the_whole_text_truncated(
    tokenizer: Tokenizer, minilm_model_dir: Path, side: str
) -> None:
    text = WORDS * (2 * 1024 * 1024 // len(WORDS))
    assert len(text) > 100 * tokenizer.max_chars
    got = tokenizer.encode([text], direction=side)  # type: ignore[arg-type]
    assert got.ids[0].tolist() == whole(minilm_model_dir, text, tokenizer.max_length, side)


def test_offsets_of_a_left_clipped_input_point_into_the_input(
    tokenizer: Tokenizer, minilm_model_dir: Path
) -> None:
    text = "".join(f"word{i} " for i in range(20_000))
    assert len(text) > tokenizer.max_chars
    got = tokenizer.encode([text], direction="left", with_offsets=True)
    reference = HFTokenizer.from_file(str(minilm_model_dir / "tokenizer.json"))
    reference.no_padding()
    reference.enable_truncation(max_length=tokenizer.max_length, direction="left")
    expected = reference.encode(text)
    assert got.offsets is not None
    assert got.offsets[0] == list(expected.offsets)
    assert (
        text[got.offsets[0][-2][0] : got.offsets[0][-2][1]]
        == "19999"[-(got.offsets[0][-2][1] - got.offsets[0][-2][0]) :]
    )


def test_without_truncation_an_input_past_the_clip_is_refused(tokenizer: Tokenizer) -> None:
    with pytest.raises(PayloadTooLarge, match="characters"):
        tokenizer.encode(["x " * tokenizer.max_chars], truncate=False)


def test_the_pad_id_comes_from_tokenizer_json_padding_first(tmp_path: Path, minilm_model_dir: Path) -> None:
    data = json.loads((minilm_model_dir / "tokenizer.json").read_text())
    data["padding"] = {
        "strategy": "BatchLongest",
        "direction": "Right",
        "pad_to_multiple_of": None,
        "pad_id": 7,
        "pad_type_id": 0,
        "pad_token": "[unused6]",
    }
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    assert Tokenizer(tmp_path, 128).pad_id == 7
