"""``python -m export`` and ``python -m export.shipped``: exit codes and nothing half-written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from export.__main__ import main
from export.shipped import checkpoint_dir
from export.shipped import main as shipped_main
from tests.export.conftest import FakeCheckpoint

ROOT = Path(__file__).resolve().parents[2]


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_not_a_checkpoint_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "not-a-model"
    source.mkdir()
    (source / "notes.txt").write_text("hello")
    out = tmp_path / "out"
    assert main([str(source), str(out)]) == 2
    assert "no config.json" in capsys.readouterr().err
    assert not out.exists()
    assert _leftovers(tmp_path) == []


def test_unsupported_architecture_exits_2(fake_checkpoint: FakeCheckpoint, tmp_path: Path) -> None:
    source = fake_checkpoint(config={"model_type": "gpt2", "architectures": ["GPT2Model"]})
    assert main([str(source), str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def test_corrupt_weights_exit_2_and_leave_nothing(
    fake_checkpoint: FakeCheckpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = fake_checkpoint()  # config and tokenizer fine, model.safetensors is one zero byte
    out = tmp_path / "models" / "broken"
    assert main([str(source), str(out)]) == 2
    assert "could not load the model" in capsys.readouterr().err
    assert not out.exists()
    assert not out.parent.exists() or _leftovers(out.parent) == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--variants", "fp32,int4"], "unknown variant"),
        (["--variants", "int8"], "must include fp32"),
        (["--opset", "9"], "--opset must be between"),
    ],
)
def test_bad_flags_exit_2(
    minilm_checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    message: str,
) -> None:
    assert main([str(minilm_checkpoint), str(tmp_path / "out"), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bad_max_length_exits_2(
    minilm_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(minilm_checkpoint), str(tmp_path / "out"), "--max-length", "100000"]) == 2
    assert "--max-length must be between 2 and 512" in capsys.readouterr().err


def test_unknown_pooling_is_an_argparse_error(minilm_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main([str(minilm_checkpoint), str(tmp_path / "out"), "--pooling", "max"])
    assert exc.value.code == 2


def test_existing_output_needs_force(
    minilm_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main([str(minilm_checkpoint), str(out)]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert shipped_main(["all-minilm-l6-v2", str(out)]) == 2
    assert (out / "keep.txt").read_text() == "mine"


def test_shipped_checkpoints_are_found() -> None:
    assert (checkpoint_dir("all-minilm-l6-v2") / "config.json").is_file()
    assert (checkpoint_dir("sre-embedding-model") / "config.json").is_file()


def test_unknown_shipped_model(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        shipped_main(["bert-large", str(tmp_path / "out")])
    assert exc.value.code == 2


def test_module_entry_point_runs(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "export", str(tmp_path / "missing"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2
    assert "is not a directory" in result.stderr


_WITHOUT_TORCH = """
import sys
# Any import of torch or transformers fails: bad input must be refused before them.
for name in ("torch", "transformers", "sentence_transformers"):
    sys.modules[name] = None
from export.__main__ import main
code = main(sys.argv[1:])
assert not any(sys.modules.get(n) for n in ("torch", "transformers")), "a heavy module was imported"
sys.exit(code)
"""


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "is not a directory"),
        ("not-a-model", "no config.json"),
        ("gpt2", "gpt2"),
        ("bad-flag", "unknown variant"),
        ("exists", "pass --force"),
        ("bad-prompt", "default_prompt_name 'passage' is not one of its prompts"),
        ("bad-eval-data", "--eval-data"),
    ],
)
def test_bad_input_is_refused_before_torch_is_imported(
    case: str, message: str, fake_checkpoint: FakeCheckpoint, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = [str(tmp_path / case), str(out)]
    if case == "not-a-model":
        (tmp_path / case).mkdir()
    elif case == "gpt2":
        args[0] = str(fake_checkpoint(config={"model_type": "gpt2", "architectures": ["GPT2Model"]}))
    elif case == "bad-flag":
        args = [str(fake_checkpoint()), str(out), "--variants", "fp32,int4"]
    elif case == "exists":
        args[0] = str(fake_checkpoint())
        out.mkdir()
    elif case == "bad-prompt":
        source = fake_checkpoint()
        (source / "config_sentence_transformers.json").write_text(
            '{"prompts": {"query": "query: "}, "default_prompt_name": "passage"}'
        )
        args[0] = str(source)
    elif case == "bad-eval-data":
        (tmp_path / "heldout.jsonl").write_text('{"query": "only a query"}\n')
        args = [str(fake_checkpoint()), str(out), "--eval-data", str(tmp_path / "heldout.jsonl")]
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TORCH, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
