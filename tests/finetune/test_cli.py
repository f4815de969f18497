"""``python -m finetune``: bad input is refused with exit code 2 before torch is imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from finetune import pairs
from finetune.pairs import Pair

from .test_base import fake_checkpoint

ROOT = Path(__file__).resolve().parents[2]
_WITHOUT_TORCH = """
import sys
# Any import of torch or transformers fails: bad input must be refused before them.
for name in ("torch", "transformers", "sentence_transformers"):
    sys.modules[name] = None
from finetune.__main__ import main
code = main(sys.argv[1:])
assert not any(sys.modules.get(n) for n in ("torch", "transformers")), "a heavy module was imported"
sys.exit(code)
"""


def run_without_torch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_TORCH, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
    )


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing-data", "does not exist"),
        ("empty-corpus", "only 0 pair(s) could be generated"),
        ("empty-pairs", "is empty"),
        ("not-a-checkpoint", "not a checkpoint directory (no config.json)"),
        ("unknown-flag", "unrecognized arguments: --epoch"),
        ("bad-style", "--query-styles: unknown ['titles']"),
        ("out-not-empty", "already exists and it is not empty"),
        ("eval-missing-data", "expected a JSONL file of held-out pairs"),
        ("eval-bad-model", "not a checkpoint directory"),
        ("dataset-out-is-a-file", "is a file"),
    ],
)
def test_bad_input_is_refused_before_torch_is_imported(case: str, message: str, tmp_path: Path) -> None:
    checkpoint = fake_checkpoint(tmp_path)
    data = tmp_path / "pairs.jsonl"
    pairs.write_pairs(data, [Pair(f"query {i} words", f"passage {i}", f"g{i}") for i in range(6)])
    out = tmp_path / "out"
    train = ["train", "--base", str(checkpoint), "--data", str(data), "--out", str(out)]
    if case == "missing-data":
        train[4] = str(tmp_path / "nowhere.jsonl")
    elif case == "empty-corpus":
        (tmp_path / "docs").mkdir()
        (tmp_path / "docs" / "empty.md").write_text("# Title\n\n- only a list\n")
        train[4] = str(tmp_path / "docs")
    elif case == "empty-pairs":
        (tmp_path / "empty.jsonl").write_text("\n")
        train[4] = str(tmp_path / "empty.jsonl")
    elif case == "not-a-checkpoint":
        train[2] = str(tmp_path)
    elif case == "unknown-flag":
        train += ["--epoch", "2"]
    elif case == "bad-style":
        train += ["--query-styles", "heading,titles"]
    elif case == "out-not-empty":
        out.mkdir()
        (out / "something").write_text("x")
    args = train
    if case == "eval-missing-data":
        args = ["eval", "--data", str(tmp_path / "nothing"), "--model", str(checkpoint)]
    elif case == "eval-bad-model":
        args = ["eval", "--data", str(data), "--model", str(tmp_path / "docs-not-model")]
        (tmp_path / "docs-not-model").mkdir()
    elif case == "dataset-out-is-a-file":
        args = ["dataset", "--out", str(data)]
    result = run_without_torch(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_good_input_gets_past_the_checks(tmp_path: Path) -> None:
    """The same harness lets valid input through to the import of torch (which then fails)."""
    data = tmp_path / "pairs.jsonl"
    pairs.write_pairs(data, [Pair(f"query {i} words", f"passage {i}", f"g{i}") for i in range(6)])
    args = ["--base", str(fake_checkpoint(tmp_path)), "--data", str(data), "--out", str(tmp_path / "o")]
    result = run_without_torch(*args)
    assert result.returncode != 2 and "import of torch halted" in result.stderr
