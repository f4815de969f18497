"""The fixed texts the parity gates run on; built in, deterministic, no download.

- :func:`parity_texts`: 64 texts in several languages and scripts, from one word to far
  past any model's maximum length (so truncation is exercised), to compare each exported
  variant with the PyTorch reference.
- :func:`retrieval_corpus`: 300 passages and their 300 queries made from the docstrings of
  the Python standard library that runs the export, to measure whether a lower-precision
  variant still finds the right passage in its top 10 as often as the fp32 graph does.
- :func:`calibration_texts`: 64 other texts to measure activation ranges for int8;
- :func:`invariance_texts`: 7 parity texts of very different lengths, to check that a
  text's vector does not depend on the texts batched with it.

The corpus and the calibration texts depend only on the Python version (docstrings change
between releases), which is fine: every figure compares two encoders on the same texts in the same run.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import warnings
from dataclasses import dataclass

SHORT_TEXTS: tuple[str, ...] = (
    "hello",
    "How big is the Eiffel Tower?",
    "The quick brown fox jumps over the lazy dog.",
    "Reset a forgotten password from the account settings page.",
    "Elasticsearch stores dense vectors in an HNSW graph for approximate nearest-neighbour search.",
    "What is the capital of Australia, and why is it not Sydney?",
    "A cat sat quietly on the warm windowsill, watching the rain.",
    "Invoice #4471 is overdue by 32 days; the late fee is 1.5% per month.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Wie kann ich meine Bestellung stornieren, nachdem sie versandt wurde?",
    "Le chat dort sur le canapé pendant que la pluie tombe.",
    "Quelle est la différence entre un prêt à taux fixe et un prêt à taux variable ?",
    "¿Dónde está la estación de tren más cercana?",
    "La inteligencia artificial está transformando la medicina moderna.",
    "O tempo hoje está ensolarado com possibilidade de chuva à tarde.",
    "Il servizio clienti è disponibile dal lunedì al venerdì.",
    "Het museum is op maandag gesloten.",
    "Szybki brązowy lis przeskakuje nad leniwym psem.",
    "Быстрая коричневая лиса прыгает через ленивую собаку.",
    "Как настроить резервное копирование базы данных?",
    "敏捷的棕色狐狸跳过了懒狗。",
    "如何在云服务器上部署嵌入模型服务?",
    "今日はとても良い天気ですね。",
    "東京駅から新宿駅までの行き方を教えてください。",
    "빠른 갈색 여우가 게으른 개를 뛰어넘습니다.",
    "الثعلب البني السريع يقفز فوق الكلب الكسول.",
    "השועל החום המהיר קופץ מעל הכלב העצלן.",
    "तेज़ भूरी लोमड़ी आलसी कुत्ते के ऊपर कूदती है।",
    "Hızlı kahverengi tilki tembel köpeğin üzerinden atlar.",  # noqa: RUF001 - Turkish
    "Ο γρήγορος καφέ αλεπού πηδά πάνω από τον τεμπέλη σκύλο.",  # noqa: RUF001 - Greek
    "Con cáo nâu nhanh nhẹn nhảy qua con chó lười.",
    "def embed(texts: list[str]) -> np.ndarray: return session.run(None, feed)[0]",
    "SELECT id, title FROM docs WHERE created_at > now() - interval '7 days' ORDER BY score DESC;",
    'curl -X POST http://localhost:8000/embed -d \'{"inputs": ["how big"]}\'',
    "ERROR 2024-11-02T10:15:03Z worker-3 OOMKilled: container exceeded 2Gi memory limit",
    "3.14159 2.71828 1.41421 1.73205 0.57721",
    "I love this! 😀🎉 Best purchase ever 👍",
    "!!! ??? ... ;;; --- ***",
    "CPU throttling, p99 latency 870 ms, error rate 0.3 %, queue depth 412.",
    "The patient presented with acute dyspnoea, tachycardia and bilateral crackles on auscultation.",
    "Pursuant to clause 14.2, either party may terminate this agreement with ninety days' written notice.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "Mix the flour, sugar and butter, then bake at 180 °C for twenty-five minutes.",
    "Kubernetes restarts a pod whose liveness probe fails three times in a row.",
)

_LONG_SEEDS: tuple[str, ...] = (
    "Retrieval-augmented generation splits documents into chunks, embeds each chunk, stores the "
    "vectors in an index and, at question time, embeds the question and retrieves the nearest chunks. ",
    "Der Bericht beschreibt die Messungen der letzten drei Jahre, die Methoden der Auswertung und die "
    "Grenzen der Aussagekraft, die sich aus der kleinen Stichprobe ergeben. ",
    "该系统由三个部分组成:数据采集、向量检索和答案生成。每个部分都可以单独扩展和部署。",
    "Le rapport annuel présente les résultats financiers, les risques identifiés et les priorités "
    "stratégiques pour l'année à venir, ainsi que les recommandations du comité d'audit. ",
)


def parity_texts() -> list[str]:
    """64 fixed texts: short multilingual ones, mid-length ones, and ones longer than 512 tokens."""
    texts = list(SHORT_TEXTS)
    docs = [p.text for p in _docstring_passages()]
    # Mid-length: real prose of 60-200 tokens.
    texts.extend(docs[i * 37 % len(docs)] for i in range(8))
    # Long: repeated paragraphs far past every supported model's maximum length.
    for i, seed in enumerate(_LONG_SEEDS):
        texts.append((seed * (60 if i % 2 == 0 else 30)).strip())
    texts.extend(
        " ".join(docs[j % len(docs)] for j in range(i * 11, i * 11 + 12)) for i in range(64 - len(texts))
    )
    return texts[:64]


def invariance_texts() -> list[str]:
    """7 texts from one word to past the maximum length, in several scripts, code and emoji."""
    texts = parity_texts()
    mid, long = len(SHORT_TEXTS), len(SHORT_TEXTS) + 8
    picks = ("hello", "如何在云服务器上部署嵌入模型服务?", "I love this! 😀🎉 Best purchase ever 👍")
    return [
        *(t for t in SHORT_TEXTS if t in picks),
        SHORT_TEXTS[32],
        texts[mid],
        texts[mid + 3],
        texts[long],
    ]


_CALIBRATION_EXTRA: tuple[str, ...] = (
    "Bitte senden Sie mir die Rechnung für den letzten Monat noch einmal zu.",
    "Les résultats du trimestre dépassent les prévisions des analystes.",
    "El servidor no responde desde las tres de la madrugada.",
    "请把会议记录发送给所有参会人员。",
    "明日の会議は午後二時に始まります。",
    "Пожалуйста, проверьте журнал ошибок после обновления.",
    "kubectl rollout undo deployment/api --to-revision=3",
    "Total: 1,284.50 EUR incl. 19 % VAT, due 2025-01-31.",
)


def calibration_texts() -> list[str]:
    """64 texts to measure activation ranges for int8 smoothing; none is a parity or corpus text."""
    used_keys = {passage.split(": ", 1)[0] for passage in retrieval_corpus().passages}
    used_texts = set(parity_texts())
    held_out = [p.text for p in _docstring_passages() if p.key not in used_keys and p.text not in used_texts]
    texts = list(_CALIBRATION_EXTRA)
    texts.extend(held_out[i * len(held_out) // 56] for i in range(56))
    return texts


@dataclass(frozen=True)
class Passage:
    """A docstring turned into a retrievable passage, keyed by its qualified name."""

    key: str
    text: str


@dataclass(frozen=True)
class RetrievalCorpus:
    """Passages and queries; ``queries[i]`` is answered by ``passages[i]`` and no other."""

    passages: tuple[str, ...]
    queries: tuple[str, ...]


# Pure-Python modules with many documented callables, imported without side effects.
_DOC_MODULES: tuple[str, ...] = (
    "argparse",
    "base64",
    "bisect",
    "calendar",
    "collections",
    "configparser",
    "contextlib",
    "copy",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "email.message",
    "enum",
    "fnmatch",
    "fractions",
    "ftplib",
    "functools",
    "gettext",
    "glob",
    "gzip",
    "heapq",
    "hmac",
    "html",
    "http.client",
    "http.cookiejar",
    "imaplib",
    "inspect",
    "ipaddress",
    "json",
    "locale",
    "logging",
    "mimetypes",
    "ntpath",
    "pathlib",
    "pickle",
    "platform",
    "posixpath",
    "pprint",
    "queue",
    "random",
    "shlex",
    "shutil",
    "smtplib",
    "statistics",
    "string",
    "subprocess",
    "tarfile",
    "tempfile",
    "textwrap",
    "threading",
    "tokenize",
    "traceback",
    "unittest.case",
    "urllib.parse",
    "urllib.request",
    "uuid",
    "warnings",
    "weakref",
    "xml.dom.minidom",
    "zipfile",
)
_MIN_CHARS = 80
_MAX_CHARS = 700
_MIN_QUERY_CHARS = 20
_MAX_QUERY_CHARS = 200
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _clean(doc: str) -> str:
    text = re.sub(r"\s+", " ", doc).strip()
    if len(text) <= _MAX_CHARS:
        return text
    return text[:_MAX_CHARS].rsplit(" ", 1)[0]


@functools.cache
def _docstring_passages() -> tuple[Passage, ...]:
    """Every documented public function, class and method of :data:`_DOC_MODULES`, sorted by key."""
    seen: set[str] = set()
    passages: list[Passage] = []
    for module_name in _DOC_MODULES:
        module = importlib.import_module(module_name)
        for name, obj in sorted(vars(module).items()):
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            members: list[tuple[str, object]] = [(name, obj)]
            if inspect.isclass(obj):
                members.extend(
                    (f"{name}.{attr}", member)
                    for attr, member in sorted(vars(obj).items())
                    if not attr.startswith("_") and inspect.isfunction(member)
                )
            for key, member in members:
                with warnings.catch_warnings():
                    # Some attributes warn on access (deprecated aliases); their docs are not needed.
                    warnings.simplefilter("ignore")
                    doc = inspect.getdoc(member)
                if not doc:
                    continue
                text = _clean(doc)
                if len(text) < _MIN_CHARS or text in seen:
                    continue
                seen.add(text)
                passages.append(Passage(f"{module_name}.{key}", text))
    return tuple(sorted(passages, key=lambda p: p.key))


def retrieval_corpus(size: int = 300) -> RetrievalCorpus:
    """``size`` passages, each with the one query it answers (``queries[i]`` -> ``passages[i]``).

    A docstring of two or more sentences is split: its first sentence (the summary line) is
    the query, the rest under the qualified name is the passage, so the query is not a
    substring of what it must find. Docstrings are spread evenly over the sorted candidates
    so every module contributes.
    """
    pairs: list[tuple[str, str]] = []
    for passage in _docstring_passages():
        parts = _SENTENCE_END.split(passage.text, maxsplit=1)
        if len(parts) == 2 and len(parts[0]) >= _MIN_QUERY_CHARS and len(parts[1]) >= _MIN_CHARS:
            pairs.append((parts[0][:_MAX_QUERY_CHARS], f"{passage.key}: {parts[1]}"))
    if len(pairs) < size:
        raise RuntimeError(f"only {len(pairs)} usable stdlib docstrings found; need {size}")
    picked = [pairs[i * len(pairs) // size] for i in range(size)]
    return RetrievalCorpus(passages=tuple(p for _, p in picked), queries=tuple(q for q, _ in picked))
