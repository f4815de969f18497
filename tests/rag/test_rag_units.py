"""Pure parts of rag: settings, corpus reading, chunking, prompt building, fusion."""

from __future__ import annotations

import gzip
import io
import json
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from rag import corpus, evaluate, prompt
from rag.chunking import paragraphs
from rag.embedder import TokenCount
from rag.errors import ConfigError, InputError
from rag.ingest import load_documents
from rag.progress import Progress, duration
from rag.retrieval import Passage, filter_clauses, fuse, parse_filters
from rag.settings import BAILIAN_BASE_URL, Settings, load

ROOT = Path(__file__).resolve().parents[2]


# -- settings ----------------------------------------------------------------------------


def test_flag_beats_environment_beats_default() -> None:
    env = {"ES_URL": "http://es:9200", "RAG_K": "7", "RAG_HYBRID": "yes", "EMBED_URL": ""}
    s = load({"es_url": None, "k": "3"}, env)
    assert (s.es_url, s.k, s.hybrid, s.embed_url) == ("http://es:9200", 3, True, "http://127.0.0.1:8000")
    assert load({"es_url": "https://x:1"}, env).es_url == "https://x:1"
    assert load({}, {}).chat_url == BAILIAN_BASE_URL


def test_chat_key_goes_with_its_host() -> None:
    # Bailian (the default URL) gets CHAT_API_KEY if set, else DASHSCOPE_API_KEY.
    assert load({}, {"DASHSCOPE_API_KEY": "d"}).chat_key == "d"
    assert load({}, {"DASHSCOPE_API_KEY": "d", "CHAT_API_KEY": "c"}).chat_key == "c"
    # Any other URL: CHAT_API_KEY (or OPENAI_API_KEY), never the DashScope key.
    local = {"CHAT_BASE_URL": "http://127.0.0.1:8001/v1", "DASHSCOPE_API_KEY": "d"}
    assert load({}, local).chat_key is None
    assert load({}, {**local, "OPENAI_API_KEY": "o"}).chat_key == "o"
    intl = load({}, {"DASHSCOPE_REGION": "ap-southeast-1", "DASHSCOPE_API_KEY": "d"})
    assert (intl.chat_url, intl.chat_key) == ("https://dashscope-intl.aliyuncs.com/compatible-mode/v1", "d")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"k": "many"}, "--k must be a number"),
        ({"hybrid": None, "rrf": "both"}, "--rrf must be one of auto, server, client"),
        ({"es_url": "localhost:9200"}, "--es-url must be an http"),
        ({"k": "20", "num_candidates": "10"}, "--num-candidates must be between"),
        ({"chunk_tokens": "64", "chunk_overlap": "40"}, "--chunk-overlap"),
        ({"index": "RAG"}, "not a valid index name"),
        ({"ingest_path": "both"}, "--ingest-path must be one of client, pipeline, semantic_text"),
        ({"index_options": "bbq"}, "--index-options must be one of hnsw, int8_hnsw, int4_hnsw, bbq_hnsw"),
        ({"rescore_oversample": "0.5"}, "--rescore-oversample must be 0 or between 1 and 10"),
        ({"embed_capacity": "0"}, "--embed-capacity must be more than 0"),
        ({"dashscope_region": "eu"}, "--dashscope-region must be one of cn-beijing, ap-southeast-1"),
        (
            {"embed_provider": "dashscope", "dashscope_embed_dims": "300"},
            "--dashscope-embed-dims 300 is not offered",
        ),
        ({"chat_thinking": "maybe"}, "--chat-thinking must be one of auto, on, off"),
        ({"chat_deadline": "0"}, "--chat-deadline must be more than 0 seconds"),
        ({"max_question_chars": "0"}, "--max-question-chars must be at least 1"),
        ({"serve_rate_limit": "-1"}, "--serve-rate-limit cannot be negative"),
    ],
)
def test_bad_settings_name_the_flag(flags: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(flags, {})


def test_bad_environment_value_names_the_flag() -> None:
    with pytest.raises(ConfigError, match="--hybrid must be true or false"):
        load({}, {"RAG_HYBRID": "perhaps"})


def test_only_the_settings_module_reads_the_environment() -> None:
    readers = [
        p.name for p in (ROOT / "rag").glob("*.py") if re.search(r"os\.(environ|getenv)", p.read_text())
    ]
    assert readers == ["settings.py"]


# -- corpus ------------------------------------------------------------------------------


def test_corpus_reads_folders_recursively_and_skips_hidden(
    make_corpus: Callable[..., Path], in_tmp: Path
) -> None:
    root = make_corpus()
    (root / ".git").mkdir()
    (root / ".git" / "HEAD.md").write_text("hidden")
    (root / "image.png").write_bytes(b"\x89PNG")
    docs = load_documents([root])
    ids = [d.doc_id for d in docs]
    assert ids == [
        "faq-1",
        "faq-2",
        "corpus/handbook/expenses.md",
        "corpus/handbook/vacation.md",
        "corpus/notes/servers.txt",
    ]
    assert docs[0].metadata == {"source": "corpus/faq.jsonl", "line": 1, "lang": "en", "folders": ["corpus"]}
    assert docs[3].metadata == {
        "source": "corpus/handbook/vacation.md",
        "folders": ["corpus", "corpus/handbook"],
        "title": "Vacation policy",
    }
    assert [d.format for d in docs] == ["text", "text", "markdown", "markdown", "text"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "faq.jsonl:2: not valid JSON"),
        ('["a"]', "faq.jsonl:2: each line must be a JSON object"),
        ('{"content": ""}', "faq.jsonl:2: `content` must be a non-empty string"),
        ('{"content": "x", "metadata": [1]}', "faq.jsonl:2: `metadata` must be an object"),
    ],
)
def test_bad_jsonl_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "faq.jsonl"
    path.write_text('{"content": "fine"}\n' + line + "\n")
    with pytest.raises(InputError, match=re.escape(message)):
        list(corpus.read(path))


def test_missing_unsupported_duplicate_and_binary_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        corpus.files([tmp_path / "nope"])
    (tmp_path / "a.pdf").write_bytes(b"%PDF")
    with pytest.raises(InputError, match="unsupported file type"):
        corpus.files([tmp_path / "a.pdf"])
    (tmp_path / "dup.jsonl").write_text('{"id": 1, "content": "a"}\n{"id": "1", "content": "b"}\n')
    with pytest.raises(InputError, match="appears twice"):
        load_documents([tmp_path / "dup.jsonl"])
    (tmp_path / "broken.md.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(InputError, match=r"broken.md.gz is not a valid gzip file.*--skip-errors"):
        corpus.load([tmp_path / "broken.md.gz"])
    found = corpus.load([tmp_path / "broken.md.gz"], skip_errors=True)
    assert found.docs == [] and found.skipped[0].reason.startswith("error: ")


def test_long_ids_are_hashed_but_stable() -> None:
    raw = "x/" * 300
    assert corpus.safe_id(raw) == corpus.safe_id(raw) and len(corpus.safe_id(raw).encode()) <= 200
    assert corpus.safe_id("short") == "short"


# -- chunking ----------------------------------------------------------------------------


class WordCounter:
    """Counts like the fake server: words and marks, plus [CLS] and [SEP], truncated at ``limit``."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self.calls = 0

    def count_tokens(self, texts: Sequence[str]) -> list[TokenCount]:
        self.calls += 1
        return [TokenCount(min(len(re.findall(r"\w+|[^\w\s]", t)) + 2, self.limit), 2) for t in texts]


def test_paragraphs_split_on_blank_lines_like_the_pipeline() -> None:
    text = "\r\n  Title\r\n\r\nFirst para\nstill first.\n \t\n\n\nSecond.  \n\n"
    assert paragraphs(text) == ["Title", "First para\nstill first.", "Second."]
    assert paragraphs(" \n\n ") == []


# -- prompt and fusion -------------------------------------------------------------------


def _passage(doc: str, i: int, text: str, score: float = 0.5) -> Passage:
    return Passage(doc, i, text, score, {"source": f"{doc}.md"})


def test_prompt_numbers_passages_within_the_budget() -> None:
    passages = [
        _passage("a", 0, "alpha " * 30),
        _passage("b", 1, "beta " * 200),
        _passage("c", 2, "gamma gamma"),
    ]
    built = prompt.build("What is alpha?", passages, WordCounter(), budget=60)
    assert [p.doc_id for p in built.passages] == ["a", "c"]
    assert built.messages[0]["content"] == prompt.SYSTEM_PROMPT
    assert "I don't know" in prompt.SYSTEM_PROMPT and "[1]" in prompt.SYSTEM_PROMPT
    user = built.messages[1]["content"]
    assert "[1] (source: a.md, chunk 0)\nalpha" in user and "[2] (source: c.md, chunk 2)\ngamma gamma" in user
    assert user.endswith("Question: What is alpha?")


def test_citations_resolve_numbers_to_passages() -> None:
    passages = [_passage("a", 0, "x"), _passage("b", 3, "y")]
    found = prompt.citations("Yes [2]. Also [1, 2] and [7] and [2].", passages)
    assert [(c.n, c.passage.doc_id, c.passage.chunk_index) for c in found] == [(2, "b", 3), (1, "a", 0)]
    assert json.loads(json.dumps(found[0].as_dict()))["source"] == "b.md"


def test_reciprocal_rank_fusion() -> None:
    a, b, c = _passage("a", 0, ""), _passage("b", 0, ""), _passage("c", 0, "")
    fused = fuse([[a, b, c], [c, a]], k=2, rank_constant=60)
    assert [p.doc_id for p in fused] == ["a", "c"]
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 62)
    assert fused[1].score == pytest.approx(1 / 63 + 1 / 61)


def test_filters_become_term_clauses() -> None:
    parsed = parse_filters(["lang=en", "lang=de", "source=a.md"])
    assert filter_clauses(parsed) == [
        {"terms": {"metadata.lang": ["en", "de"]}},
        {"term": {"metadata.source": "a.md"}},
    ]
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_filters(["lang"])


def test_settings_default_is_a_valid_object() -> None:
    assert Settings().index == "rag-kb" and Settings().es_side_embed_url == "http://127.0.0.1:8000"


# -- corpus formats ----------------------------------------------------------------------

MAN_PAGE = ".TH PUMPCTL 8\n.SH NAME\npumpctl \\- control the pump\n.SH OPTIONS\n.TP\n.B \\-f\nForce it.\n"


def test_every_documentation_format_is_read_and_the_rest_is_reported(tmp_path: Path, in_tmp: Path) -> None:
    root = tmp_path / "doc"
    (root / "pkg" / "man8").mkdir(parents=True)
    (root / "pkg" / "README.rst").write_text("Pump\n====\n\nIt pumps.\n")
    (root / "pkg" / "NEWS.md.gz").write_bytes(gzip.compress(b"# News\n\nVersion 2 pumps faster.\n"))
    (root / "pkg" / "man8" / "pumpctl.8.gz").write_bytes(gzip.compress(MAN_PAGE.encode()))
    (root / "pkg" / "man8" / "pumpd.8.gz").write_bytes(gzip.compress(b".so man8/pumpctl.8\n"))
    (root / "pkg" / "README.Debian").write_text("Debian notes.\n")
    (root / "pkg" / "copyright").write_text("Public domain.\n")
    (root / "pkg" / "changelog.Debian.gz").write_bytes(gzip.compress(b"pump (2.0) unstable; urgency=low\n"))
    (root / "pkg" / "index.html").write_text("<p>no</p>")
    (root / "pkg" / "logo.png").write_bytes(b"\x89PNG")
    (root / "pkg" / "blob").write_bytes(b"\x00\x01\x02")
    (root / "pkg" / ".hidden.md").write_text("# no")
    (root / "pkg" / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me".encode("latin-1"))
    found = corpus.load([root])
    by_source = {d.metadata["source"]: d for d in found.docs}
    assert sorted(by_source) == [
        "doc/pkg/NEWS.md.gz",
        "doc/pkg/README.Debian",
        "doc/pkg/README.rst",
        "doc/pkg/changelog.Debian.gz",
        "doc/pkg/copyright",
        "doc/pkg/latin1.txt",
        "doc/pkg/man8/pumpctl.8.gz",
    ]
    man = by_source["doc/pkg/man8/pumpctl.8.gz"]
    assert (man.format, man.metadata["title"]) == ("markdown", "pumpctl(8)")
    assert man.content.startswith("# pumpctl(8)\n\n## NAME\n\npumpctl - control the pump")
    assert (by_source["doc/pkg/README.rst"].format, by_source["doc/pkg/README.rst"].metadata["title"]) == (
        "rst",
        "Pump",
    )
    assert by_source["doc/pkg/NEWS.md.gz"].metadata["title"] == "News"
    assert by_source["doc/pkg/latin1.txt"].content == "Café crème"
    assert found.warnings == ["doc/pkg/latin1.txt is not UTF-8 (byte 0xe9 at offset 3): read as Windows-1252"]
    reasons = sorted((Path(s.path).name, s.reason) for s in found.skipped)
    assert reasons == [
        (".hidden.md", "hidden"),
        ("blob", "binary"),
        ("index.html", "unsupported type: .html"),
        ("logo.png", "unsupported type: .png"),
        ("pumpd.8.gz", "man page alias (.so)"),
    ]
    assert found.skipped_summary() == (
        "skipped 5 files: 2 unsupported type (.html 1, .png 1), 1 hidden, 1 binary, 1 man page alias (.so)"
    )


def test_mostly_utf8_text_keeps_its_characters_and_bad_jsonl_lines_can_be_skipped(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes("naïve café ".encode() + b"\xff" + " déjà".encode())
    found = corpus.load([path])
    assert found.docs[0].content == "naïve café \ufffd déjà"
    assert "1 bad bytes replaced" in found.warnings[0]
    (tmp_path / "faq.jsonl").write_text('{"content": "fine"}\n{oops\n{"content": "also fine"}\n')
    with pytest.raises(InputError, match=r"faq\.jsonl:2: not valid JSON"):
        corpus.load([tmp_path / "faq.jsonl"])
    found = corpus.load([tmp_path / "faq.jsonl"], skip_errors=True)
    assert [d.content for d in found.docs] == ["fine", "also fine"]
    assert [s.path.endswith("faq.jsonl:2") for s in found.skipped] == [True]


def test_a_folder_with_nothing_readable_says_what_it_skipped(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<p>")
    with pytest.raises(InputError, match=r"holds no file rag reads \(skipped 1 files: 1 unsupported type"):
        corpus.load([tmp_path / "site"])


# -- progress and evaluation -------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_shows_rate_and_eta() -> None:
    clock = Clock()
    stream = io.StringIO()
    progress = Progress("embed", 400, stream, unit="chunks", clock=clock)
    clock.now += 10
    progress.advance(100)
    clock.now += 5
    progress.advance(10)  # same decile, less than `every` seconds later: no line
    clock.now += 30
    progress.advance(10)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines == [
        "embed [#######.......................] 100/400 chunks, 10.0 chunks/s, ETA 30 s",
        "embed [#########.....................] 120/400 chunks, 2.7 chunks/s, ETA 1 min 45 s",
    ]
    assert duration(7300) == "2 h 01 min"


def _hit(source: str, text: str) -> Passage:
    return Passage(source, 0, text, 0.9, {"source": source})


def test_eval_metrics_on_a_known_ranking() -> None:
    question = evaluate.Question(
        "q",
        "how?",
        (evaluate.Relevant("man/xz.1.gz", "use  all   CORES"), evaluate.Relevant(None, "zstd -T0")),
    )
    ranked = [
        _hit("docs/man/gzip.1.gz", "nothing here"),
        _hit("docs/man/xz.1.gz", "To use all cores, pass -T0."),
        _hit("docs/man/xz.1.gz", "again: use all cores"),
        _hit("other/zstd.1", "run zstd -T0 to"),
    ]
    scored = evaluate.score(question, ranked, ranked[:2])
    assert scored.first_ranks == [2, 4]
    assert scored.recall == {1: 0.0, 5: 1.0, 10: 1.0}
    assert scored.reciprocal_rank == 0.5
    ideal = 1 + 1 / math.log2(3)
    assert scored.ndcg == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / ideal)
    assert scored.in_prompt == 0.5
    assert not evaluate.Relevant("xz.1.gz", None).held_by(_hit("docs/man/unxz.1.gz", "x"))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{", "not valid JSON"),
        ('{"question": "", "relevant": [{"source": "a"}]}', "`question` must be a non-empty string"),
        ('{"question": "q", "relevant": []}', "`relevant` must be a non-empty list"),
        (
            '{"question": "q", "relevant": [{"page": 3}]}',
            "each relevant passage needs a `source` and/or a `text`",
        ),
    ],
)
def test_bad_question_files_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "questions.jsonl"
    path.write_text('{"question": "fine?", "relevant": [{"text": "yes"}]}\n' + line + "\n")
    with pytest.raises(InputError, match=re.escape(f"questions.jsonl:2: {message}")):
        evaluate.load_questions(path)
