"""Evaluation over HTTP against a fake /embed server, its in-process twin, and the CLI."""

from __future__ import annotations

import inspect
import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from finetune import evaluation, metrics, pairs
from finetune.__main__ import main
from finetune.encoder import HttpEncoder
from finetune.errors import RunError, UsageError
from finetune.evaluation import EvalConfig, System
from finetune.pairs import Pair
from finetune.server_process import ServerProcess

from .conftest import FAKE_DIMS, BagOfWordsEncoder, FakeEmbedServer, hashed_bag_of_words
from .test_base import fake_checkpoint


@pytest.fixture
def heldout(tmp_path: Path, make_pairs: Callable[..., list[Pair]]) -> Path:
    path = tmp_path / "heldout.jsonl"
    pairs.write_pairs(path, make_pairs(40))
    return path


def test_http_evaluation_equals_in_process_scoring(
    heldout: Path, fake_server: Callable[..., FakeEmbedServer], bag_of_words: BagOfWordsEncoder
) -> None:
    server = fake_server()
    config = EvalConfig(
        data=heldout, systems=(System("fake", "server", server.url),), dimensions=(32,), batch_size=7
    )

    results = evaluation.evaluate(config)

    qrels = metrics.build_qrels(pairs.read_pairs(heldout))
    # The client normalises what it receives once, then cuts and re-normalises for narrower widths.
    queries = metrics.truncate(bag_of_words.encode(list(qrels.queries)), 64)
    corpus = metrics.truncate(bag_of_words.encode(list(qrels.corpus)), 64)
    for dims in (64, 32):
        q = queries if dims == 64 else metrics.truncate(queries, dims)
        c = corpus if dims == 64 else metrics.truncate(corpus, dims)
        expected = metrics.retrieval_metrics(metrics.rank(q @ c.T, 10), qrels.relevant, (1, 5, 10))
        row = next(r for r in results["results"] if r["dims"] == dims)
        assert row["metrics"] == {k: round(v, 4) for k, v in expected.items()}
    assert results["queries"] == 40 and results["corpus"] == 40
    full = next(r for r in results["results"] if r["dims"] == 64)["metrics"]
    assert full["recall@10"] > 0.5  # words shared by query and passage make this retrievable
    sizes = [len(r["body"]["inputs"]) for r in server.requests]  # type: ignore[index, arg-type]
    assert max(sizes) == 7 and sum(sizes) == 80
    assert all(r["body"]["normalize"] is True for r in server.requests)  # type: ignore[index]


def test_overload_is_retried_and_errors_carry_the_server_message(
    fake_server: Callable[..., FakeEmbedServer],
) -> None:
    busy = fake_server(fail_first=2, fail_status=503)
    encoder = HttpEncoder(busy.url, api_key="secret")
    assert encoder.encode(["one", "two"]).shape == (2, 64)
    assert busy.requests[-1]["auth"] == "Bearer secret"
    broken = fake_server(error_status=422)
    with pytest.raises(RunError, match="answered 422: inputs must not be empty"):
        HttpEncoder(broken.url).encode(["x"])
    with pytest.raises(RunError, match="is the server running"):
        HttpEncoder("http://127.0.0.1:9").encode(["x"])


def test_distractors_join_the_corpus(
    heldout: Path, tmp_path: Path, fake_server: Callable[..., FakeEmbedServer]
) -> None:
    extra = tmp_path / "extra.jsonl"
    extra.write_text("".join(json.dumps({"content": f"unrelated note number {i}"}) + "\n" for i in range(5)))
    server = fake_server()
    results = evaluation.evaluate(
        EvalConfig(data=heldout, systems=(System("fake", "server", server.url),), distractors=extra)
    )
    assert (results["corpus"], results["distractors"]) == (45, 5)


def test_cli_writes_json_and_markdown(
    heldout: Path,
    tmp_path: Path,
    fake_server: Callable[..., FakeEmbedServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = fake_server()
    out = tmp_path / "results" / "eval.json"
    code = main(["eval", "--data", str(heldout), "--server-url", f"a={server.url}", "--server-url",
                 f"b={server.url}", "--k", "1,10", "--out", str(out)])  # fmt: skip
    assert code == 0
    results = json.loads(out.read_text())
    assert [r["label"] for r in results["results"]] == ["a", "b"]
    assert results["results"][0]["metrics"] == results["results"][1]["metrics"]
    markdown = out.with_suffix(".md").read_text()
    assert "| system | source | dims | recall@1 | recall@10 | MRR@10 | nDCG@10 |" in markdown
    assert "| a |" in markdown and "| a |" in capsys.readouterr().out


def test_cli_usage_errors(heldout: Path, tmp_path: Path) -> None:
    assert main(["eval", "--data", str(heldout)]) == 2
    assert main(["eval", "--data", str(heldout), "--variant", "int8", "--model", str(tmp_path)]) == 2
    assert main(["eval", "--data", str(tmp_path / "nothing"), "--model", str(tmp_path)]) == 2
    with pytest.raises(UsageError, match=r"no manifest\.json"):
        ServerProcess(tmp_path, "fp32")


def test_parse_systems_labels(tmp_path: Path) -> None:
    for name in ("base", "tuned", "other"):
        fake_checkpoint(tmp_path, name)
    (tmp_path / "exported").mkdir()
    (tmp_path / "exported" / "manifest.json").write_text("{}")
    m = str(tmp_path)
    systems = evaluation.parse_systems(
        f"{m}/base", [f"{m}/tuned", f"mine={m}/other"], ["http://h:1"], f"onnx={m}/exported", ["fp32", "int8"]
    )
    assert [(s.label, s.kind, s.variant) for s in systems] == [
        ("base", "checkpoint", ""),
        ("tuned", "checkpoint", ""),
        ("mine", "checkpoint", ""),
        ("server", "server", ""),
        ("onnx-fp32", "onnx", "fp32"),
        ("onnx-int8", "onnx", "int8"),
    ]
    with pytest.raises(UsageError, match="is not a directory"):
        evaluation.parse_systems(None, [f"{m}/missing"], [], None, [])
    with pytest.raises(UsageError, match=r"no config\.json"):
        evaluation.parse_systems(None, [f"{m}/exported"], [], None, [])
    with pytest.raises(UsageError, match=r"no manifest\.json"):
        evaluation.parse_systems(None, [], [], f"{m}/base", [])


SERVER_BODY = textwrap.dedent(
    """
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._send(200, {"status": "ready"})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self._send(200, [hashed_bag_of_words(t).tolist() for t in body["inputs"]])

    server = HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    server.serve_forever()
    """
)


def fake_server_script() -> str:
    """A standalone server script embedding the same toy vectors as the in-process fake."""
    header = (
        "import hashlib, json, re, signal, sys\nimport numpy as np\nimport numpy.typing as npt\n"
        f"FAKE_DIMS = {FAKE_DIMS}\n"
    )
    return header + inspect.getsource(hashed_bag_of_words) + SERVER_BODY


class ScriptedServerProcess(ServerProcess):
    """The real start/wait/stop logic, with a stand-in for `python -m server`."""

    script: Path

    def command(self) -> list[str]:
        return [sys.executable, str(self.script), str(self.port)]


def test_server_process_starts_serves_and_stops(
    tmp_path: Path, heldout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = tmp_path / "exported"
    model_dir.mkdir()
    (model_dir / "manifest.json").write_text("{}")
    script = tmp_path / "fake_server.py"
    script.write_text(fake_server_script())
    ScriptedServerProcess.script = script
    monkeypatch.setattr(evaluation, "ServerProcess", ScriptedServerProcess)

    results = evaluation.evaluate(
        EvalConfig(data=heldout, systems=(System("x", "onnx", str(model_dir), "int8"),))
    )

    assert results["results"][0]["variant"] == "int8"
    assert results["results"][0]["metrics"]["recall@10"] > 0.5


def test_server_that_dies_is_reported_with_its_log(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{}")
    script = tmp_path / "dying.py"
    script.write_text("import sys\nprint('cannot load the model: bad manifest')\nsys.exit(3)\n")
    ScriptedServerProcess.script = script
    with pytest.raises(RunError, match=r"exited with code 3(.|\n)*cannot load the model"):
        with ScriptedServerProcess(tmp_path, "fp32", startup_timeout=60):
            pass
